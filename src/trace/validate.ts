// Range checks shared by the encoder (refuses to write nonsense) and the decoder
// (refuses to return it). `fail` builds the error each side throws.
import type { PageSamples } from '../samples.js';
import { DAMON_MODES, LIMITS, TRACE_SOURCES, type TraceHeader } from './format.js';

type Fail = (message: string) => Error;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkScalars(value: unknown, what: string, fail: Fail): void {
  if (!isRecord(value)) throw fail(`${what} must be an object`);
  for (const [key, item] of Object.entries(value)) {
    const ok = typeof item === 'string' || typeof item === 'boolean' || (typeof item === 'number' && Number.isFinite(item));
    if (!ok) throw fail(`${what}.${key} must be a string, finite number or boolean`);
  }
}

function checkNonNegative(value: unknown, what: string, fail: Fail, integer = false): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (integer && !Number.isSafeInteger(value))) {
    throw fail(`${what} must be a non-negative ${integer ? 'integer' : 'number'}`);
  }
}

/** Checks one page run: a frame below 2^52 and 1..2^32-1 pages that stay below 2^52. */
export function checkRun(gpaPfn: number, pages: number, what: string, fail: Fail): void {
  if (!Number.isInteger(gpaPfn) || gpaPfn < 0 || gpaPfn >= LIMITS.maxPfn) throw fail(`${what}: gpaPfn ${gpaPfn} out of range`);
  if (!Number.isInteger(pages) || pages < 1 || pages > 0xffffffff) throw fail(`${what}: pages ${pages} out of range`);
  if (gpaPfn + pages > LIMITS.maxPfn) throw fail(`${what}: run ${gpaPfn}+${pages} ends past the largest frame`);
}

export function checkSamples(samples: PageSamples, fail: Fail): void {
  const { count } = samples;
  if (!Number.isInteger(count) || count < 0 || count > LIMITS.batchRuns) throw fail(`count ${count} out of range`);
  for (const column of [samples.gpaPfn, samples.pages, samples.reads, samples.writes]) {
    if (column.length < count) throw fail(`a column holds ${column.length} entries, fewer than count ${count}`);
  }
  for (let i = 0; i < count; i++) checkRun(samples.gpaPfn[i], samples.pages[i], `run ${i}`, fail);
}

/** Checks a header (typed, or parsed from untrusted JSON before conversion). */
export function checkHeader(header: TraceHeader, fail: Fail): void {
  const h = header as unknown as Record<string, unknown>;
  if (!isRecord(h)) throw fail('not an object');
  if (!TRACE_SOURCES.includes(h.source as never)) throw fail(`unknown source ${JSON.stringify(h.source)}`);
  if (h.damonMode !== undefined && !DAMON_MODES.includes(h.damonMode as never)) {
    throw fail(`unknown damonMode ${JSON.stringify(h.damonMode)}`);
  }
  const pageSize = h.pageSize as number;
  if (!Number.isInteger(pageSize) || pageSize < 512 || pageSize > 2 ** 30 || (pageSize & (pageSize - 1)) !== 0) {
    throw fail(`pageSize ${JSON.stringify(h.pageSize)} is not a power of two between 512 and 1 GiB`);
  }
  checkNonNegative(h.epochMs, 'epochMs', fail);
  checkNonNegative(h.startTimeMs, 'startTimeMs', fail);
  checkNonNegative(h.startNs, 'startNs', fail, true);
  checkScalars(h.tunables, 'tunables', fail);
  checkScalars(h.facts, 'facts', fail);
  if (h.target !== undefined) {
    const target = h.target;
    if (!isRecord(target)) throw fail('target must be an object');
    if (target.pid !== undefined && (!Number.isSafeInteger(target.pid) || (target.pid as number) <= 0)) throw fail('target.pid must be a positive integer');
    if (target.command !== undefined && (!Array.isArray(target.command) || !target.command.every((a) => typeof a === 'string'))) {
      throw fail('target.command must be an array of strings');
    }
    if (target.truthPath !== undefined && typeof target.truthPath !== 'string') throw fail('target.truthPath must be a string');
  }
  const ram = h.ramRanges as { count?: unknown; gpaPfn?: unknown; pages?: unknown };
  if (!isRecord(ram) || !Number.isInteger(ram.count) || (ram.count as number) < 0 || (ram.count as number) > LIMITS.ramRanges) {
    throw fail('ramRanges must be PageRuns with at most 65536 ranges');
  }
  const runs = ram as { count: number; gpaPfn: ArrayLike<number>; pages: ArrayLike<number> };
  if (!(runs.gpaPfn?.length >= runs.count) || !(runs.pages?.length >= runs.count)) throw fail('ramRanges columns shorter than count');
  for (let i = 0; i < runs.count; i++) checkRun(runs.gpaPfn[i], runs.pages[i], `ramRanges[${i}]`, fail);
}
