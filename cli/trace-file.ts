// The one way a command reads a trace file, and the one line that describes it: a missing file and a malformed trace become one
// clear usage error (exit 2) naming the file, the same in classify, sim --trace and report.
import { readFileSync } from 'node:fs';
import { UserError } from './output.js';
import { decodeTrace, describeTrace, TraceFormatError, type DecodedTrace, type TraceSummary } from '../src/trace/index.js';

/** The one line that describes a trace file, the same in record, classify, sim --trace and
 *  report: `trace PATH: <describeTrace of summarizeTrace>`. */
export function traceLine(path: string, summary: TraceSummary): string {
  return `trace ${path}: ${describeTrace(summary)}`;
}

export function readTraceFile(path: string): DecodedTrace {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new UserError(`cannot read trace ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'a directory, not a trace' : e.message}`, 'usage', 2);
  }
  try {
    return decodeTrace(bytes);
  } catch (err) {
    if (err instanceof TraceFormatError) throw new UserError(`${path} is not a valid trace: ${err.message}`, 'bad-trace', 2);
    throw err;
  }
}
