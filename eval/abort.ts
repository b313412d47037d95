// Waiting and tearing down for campaigns that Ctrl-C (or a failing part) may end early.

/** Thrown by abortableSleep when the run is aborted. */
export class Aborted extends Error {
  constructor() {
    super('aborted');
    this.name = 'Aborted';
  }
}

/** Resolves after `ms`, or rejects with Aborted as soon as `signal` aborts. */
export function abortableSleep(signal: AbortSignal, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Aborted());
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Aborted());
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs every teardown step in order; a step that throws does not stop the ones after it. */
export async function runAll(steps: ReadonlyArray<() => unknown>): Promise<void> {
  for (const step of steps) {
    try {
      await step();
    } catch {
      /* keep tearing down */
    }
  }
}
