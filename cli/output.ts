// How every command talks to the user: one clear error line (or a JSON object under
// --json) and a non-zero exit code; results printed as text or JSON.
import { InputError } from '../src/util/units.js';

/** An error the user can act on: printed as one line, never with a stack trace. */
export class UserError extends Error {
  constructor(
    message: string,
    /** Short machine-readable kind, e.g. "no-pmu", "damon-busy"; exit code 2 always reports "usage". */
    readonly kind = 'error',
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export interface OutputOptions {
  json?: boolean;
}

/** Prints a command's result: `text()` for people, `data` for --json. */
export function printResult(options: OutputOptions, data: unknown, text: () => string): void {
  if (options.json) process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else process.stdout.write(text().replace(/\n?$/, '\n'));
}

/** Turns any thrown value into one line (or one JSON object) and the exit code. */
export function reportError(err: unknown, json: boolean): number {
  const known = err instanceof UserError || err instanceof InputError;
  const e = err as { message?: string; code?: string; syscall?: string };
  let message = e?.message ?? String(err);
  if (!known && e?.code) message = `${message}${e.syscall ? ` (${e.syscall})` : ''}`;
  const exitCode = err instanceof UserError ? err.exitCode : err instanceof InputError ? 2 : 1;
  // Exit 2 is a usage error in every command: one kind for scripts to test.
  const kind = exitCode === 2 ? 'usage' : err instanceof UserError ? err.kind : e?.code ?? 'internal';
  const oneLine = message.split('\n')[0];
  if (json) {
    process.stdout.write(`${JSON.stringify({ error: { message: oneLine, kind, code: e?.code } })}\n`);
  } else {
    process.stderr.write(`vtier: error: ${oneLine}\n`);
    if (process.env.VTIER_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  }
  return exitCode;
}
