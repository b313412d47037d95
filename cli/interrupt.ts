// Ctrl-C and SIGTERM for long commands: turned into an abort signal, so the command stops
// what it started in order and keeps what it measured, instead of dying mid-way.

/** Runs `body` with SIGINT/SIGTERM turned into an abort of its signal. */
export async function withInterrupt<T>(body: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await body(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
