// The built-in workload (build/Release/vtier-workload) as a child process, and its
// ground-truth file. Record, demo and eval launch it through startWorkload() and score
// samplers against readTruth(). Formats: docs/trace-format.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { builtPath } from '../native/addon.js';

export const WORKLOAD_PATTERNS = ['uniform', 'hotspot', 'zipf', 'shift'] as const;
export type WorkloadPattern = (typeof WORKLOAD_PATTERNS)[number];

export interface WorkloadOptions {
  pattern: WorkloadPattern;
  sizeBytes: number;
  /** Fraction of the region that is hot (hotspot, shift; for zipf: top ranks reported as hot). */
  hotFrac?: number;
  /** Probability an access goes to the hot set (hotspot, shift). */
  hotProb?: number;
  /** Fraction of accesses that are writes. */
  writeFrac?: number;
  zipfS?: number;
  /** 0 or undefined: run until stopped. */
  durationMs?: number;
  thp?: boolean;
  truthPath?: string;
  seed?: number;
  shiftEveryMs?: number;
  threads?: number;
  /** Progress period on the child's stderr; 0 turns progress off. */
  reportMs?: number;
  /** Called with the child's pid before it touches any page (the child waits for it):
   *  attach a sampler here to see first-touch faults. */
  beforeTouch?: (pid: number) => Promise<void> | void;
  /** Called with each progress line the child prints on stderr. */
  onProgress?: (line: string) => void;
  /** A command the workload runs under, e.g. ['numactl', '--interleave=all'] to set where
   *  its first touch lands (it execs the workload: the pid stays the workload's). */
  launcher?: string[];
  /** How often the workload re-reads its frames into the truth file (default 5 s): moves
   *  change frames, so a tiered run wants it often. */
  truthRefreshMs?: number;
}

export interface WorkloadReady {
  pid: number;
  pattern: WorkloadPattern;
  pages: number;
  pageSize: number;
  hotPages: number;
  touchMs: number;
  generation: number;
}

export interface WorkloadSummary {
  accesses: number;
  seconds: number;
  accessesPerSec: number;
  touchMs: number;
  generation: number;
  pages: number;
  threads: number;
  /** Exit code of the child (0 on duration end, SIGINT or SIGTERM). */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunningWorkload {
  pid: number;
  truthPath?: string;
  ready: WorkloadReady;
  child: ChildProcess;
  /** Resolves when the child exits (with its summary, if it printed one). */
  done: Promise<WorkloadSummary>;
  /** Sends SIGTERM (or `signal`) and waits for the summary. */
  stop(signal?: NodeJS.Signals): Promise<WorkloadSummary>;
}

export class WorkloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkloadError';
  }
}

export function workloadBinary(): string {
  return builtPath('Release', 'vtier-workload');
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new WorkloadError(message);
}

/** Validates the options and turns them into the binary's numeric arguments. */
export function workloadArgs(opts: WorkloadOptions): string[] {
  check(WORKLOAD_PATTERNS.includes(opts.pattern), `unknown pattern "${opts.pattern}" (uniform, hotspot, zipf, shift)`);
  check(Number.isSafeInteger(opts.sizeBytes) && opts.sizeBytes >= 8192, `size must be at least 8K, got ${opts.sizeBytes}`);
  const fraction = (v: number | undefined, what: string, openZero = false) =>
    check(v === undefined || (Number.isFinite(v) && v <= 1 && (openZero ? v > 0 : v >= 0)), `${what} must be a fraction in ${openZero ? '(0, 1]' : '[0, 1]'}`);
  fraction(opts.hotFrac, '--hot-frac', true);
  fraction(opts.hotProb, '--hot-prob');
  fraction(opts.writeFrac, '--write-frac');
  const int = (v: number | undefined, what: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
    check(v === undefined || (Number.isInteger(v) && v >= min && v <= max), `${what} must be an integer in ${min}..${max}`);
  int(opts.durationMs === undefined ? undefined : Math.round(opts.durationMs), '--duration (ms)', 0);
  int(opts.shiftEveryMs === undefined ? undefined : Math.round(opts.shiftEveryMs), '--shift-every (ms)', 1);
  int(opts.threads, '--threads', 1, 256);
  int(opts.seed, '--seed', 0);
  int(opts.reportMs, 'report period (ms)', 0);
  check(opts.zipfS === undefined || (Number.isFinite(opts.zipfS) && opts.zipfS > 0 && opts.zipfS <= 5), '--zipf-s must be in (0, 5]');

  const args: string[] = [opts.pattern, '--size-bytes', String(opts.sizeBytes)];
  const add = (flag: string, v: number | string | undefined) => v !== undefined && args.push(flag, String(v));
  add('--hot-frac', opts.hotFrac);
  add('--hot-prob', opts.hotProb);
  add('--write-frac', opts.writeFrac);
  add('--zipf-s', opts.zipfS);
  add('--duration-ms', opts.durationMs === undefined ? undefined : Math.round(opts.durationMs));
  add('--shift-ms', opts.shiftEveryMs === undefined ? undefined : Math.round(opts.shiftEveryMs));
  add('--threads', opts.threads);
  add('--seed', opts.seed);
  add('--report-ms', opts.reportMs);
  add('--truth', opts.truthPath);
  add('--truth-refresh-ms', opts.truthRefreshMs === undefined ? undefined : Math.round(opts.truthRefreshMs));
  if (opts.thp) args.push('--thp');
  if (opts.beforeTouch) args.push('--wait-start');
  return args;
}

/** Starts the workload and resolves once every page is touched (and the truth file written). */
export function startWorkload(opts: WorkloadOptions): Promise<RunningWorkload> {
  const args = workloadArgs(opts);
  const binary = workloadBinary();
  if (!existsSync(binary)) return Promise.reject(new WorkloadError(`workload binary not built (${binary}); run "npm run build"`));
  // Its own process group: a terminal's Ctrl-C reaches the launcher, which stops the
  // workload in order (the workload also dies with its parent: PR_SET_PDEATHSIG).
  const launcher = opts.launcher ?? [];
  const child = spawn(launcher[0] ?? binary, launcher.length > 0 ? [...launcher.slice(1), binary, ...args] : args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const stderrTail: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderrTail.push(line);
    if (stderrTail.length > 5) stderrTail.shift();
    opts.onProgress?.(line);
  });
  let summary: Omit<WorkloadSummary, 'exitCode' | 'signal'> | undefined;
  let resolveReady: (ready: WorkloadReady) => void;
  let rejectReady: (err: Error) => void;
  const ready = new Promise<WorkloadReady>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let event: { event?: string } & Record<string, unknown>;
    try {
      event = JSON.parse(line);
    } catch {
      return;
    }
    if (event.event === 'waiting') {
      Promise.resolve()
        .then(() => opts.beforeTouch?.(event.pid as number))
        .then(
          () => child.kill('SIGUSR1'),
          (err: Error) => {
            rejectReady(err);
            child.kill('SIGTERM');
          },
        );
    } else if (event.event === 'ready') resolveReady(event as unknown as WorkloadReady);
    else if (event.event === 'summary') summary = event as unknown as typeof summary;
  });
  const done = new Promise<WorkloadSummary>((resolve, reject) => {
    child.on('error', (err) => {
      rejectReady(err);
      reject(err);
    });
    child.on('close', (exitCode, signal) => {
      const why = stderrTail.filter((l) => !/accesses\/s/.test(l)).pop()?.replace(/^vtier-workload: /, '');
      rejectReady(new WorkloadError(`workload exited before it was ready${why ? `: ${why}` : ` (code ${exitCode}, signal ${signal})`}`));
      if (!summary && exitCode !== 0) {
        reject(new WorkloadError(`workload failed${why ? `: ${why}` : ` (code ${exitCode}, signal ${signal})`}`));
        return;
      }
      const base = summary ?? { accesses: 0, seconds: 0, accessesPerSec: 0, touchMs: 0, generation: 0, pages: 0, threads: 0 };
      resolve({ ...base, exitCode, signal });
    });
  });
  done.catch(() => {});
  return ready.then((info) => ({
    pid: info.pid,
    truthPath: opts.truthPath,
    ready: info,
    child,
    done,
    stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return done;
    },
  }));
}

export interface Truth {
  generation: number;
  timestampMs: number;
  pattern: WorkloadPattern;
  pageSize: number;
  pages: number;
  pid: number;
  thp: boolean;
  /** False when pagemap hid the frames (not root): gpaPfn then holds -1. */
  pfnKnown: boolean;
  /** Region page i -> guest frame (-1 when not present). */
  gpaPfn: Float64Array;
  /** Region page i -> expected fraction of all accesses (sums to 1). */
  share: Float64Array;
  /** First region page of the hot block and its length (wraps around the region end). */
  hotFirstPage: number;
  hotPages: number;
  /** Guest frames of the hot pages, sorted ascending. */
  hotPfns: Float64Array;
  meta: Record<string, unknown>;
}

const TRUTH_MAGIC = 'VTIERTRU';

/** Reads a truth file written by the workload. Throws WorkloadError on a malformed file. */
export function readTruth(path: string): Truth {
  return decodeTruth(readFileSync(path), path);
}

/** Decodes truth-file bytes; every size is checked against the bytes present. */
export function decodeTruth(input: Uint8Array, name = 'truth'): Truth {
  const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const path = name;
  const fail = (what: string) => new WorkloadError(`truth file ${path}: ${what}`);
  if (bytes.length < 16 || bytes.toString('latin1', 0, 8) !== TRUTH_MAGIC) throw fail('not a vtier truth file');
  const version = bytes.readUInt32LE(8);
  if (version !== 1) throw fail(`unsupported version ${version}`);
  const jsonBytes = bytes.readUInt32LE(12);
  if (jsonBytes > 65536 || 16 + jsonBytes > bytes.length) throw fail('bad header length');
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(bytes.toString('utf8', 16, 16 + jsonBytes));
  } catch {
    throw fail('header is not JSON');
  }
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw fail('header is not a JSON object');
  if (!Number.isSafeInteger(meta.generation) || (meta.generation as number) < 1) throw fail('bad generation');
  if (!WORKLOAD_PATTERNS.includes(meta.pattern as WorkloadPattern)) throw fail(`unknown pattern ${JSON.stringify(meta.pattern)}`);
  const pages = meta.pages as number;
  const pageSize = meta.pageSize as number;
  const hotFirstPage = meta.hotFirstPage as number;
  const hotPages = meta.hotPages as number;
  if (!Number.isSafeInteger(pages) || pages < 1 || !Number.isSafeInteger(pageSize) || pageSize < 512) throw fail('bad pages/pageSize');
  if (!Number.isSafeInteger(hotPages) || hotPages < 0 || hotPages > pages || !Number.isSafeInteger(hotFirstPage) || hotFirstPage < 0 || hotFirstPage >= pages) {
    throw fail('bad hot block');
  }
  const dataAt = 16 + jsonBytes + ((8 - ((16 + jsonBytes) % 8)) % 8);
  if (bytes.length !== dataAt + pages * 16) throw fail(`size ${bytes.length} does not match ${pages} pages`);
  const words = new Uint32Array(pages * 2);
  new Uint8Array(words.buffer).set(bytes.subarray(dataAt, dataAt + pages * 8));
  const gpaPfn = new Float64Array(pages);
  for (let i = 0; i < pages; i++) {
    const lo = words[2 * i];
    const hi = words[2 * i + 1];
    gpaPfn[i] = lo === 0xffffffff && hi === 0xffffffff ? -1 : hi * 2 ** 32 + lo;
  }
  const share = new Float64Array(pages);
  new Uint8Array(share.buffer).set(bytes.subarray(dataAt + pages * 8, dataAt + pages * 16));
  for (let i = 0; i < pages; i++) if (!(share[i] >= 0 && share[i] <= 1)) throw fail(`share of page ${i} is not in [0, 1]`);
  const hot: number[] = [];
  for (let i = 0; i < hotPages; i++) {
    const pfn = gpaPfn[(hotFirstPage + i) % pages];
    if (pfn >= 0) hot.push(pfn);
  }
  const hotPfns = Float64Array.from(hot).sort();
  return {
    generation: meta.generation as number,
    timestampMs: meta.timestampMs as number,
    pattern: meta.pattern as WorkloadPattern,
    pageSize,
    pages,
    pid: meta.pid as number,
    thp: meta.thp === true,
    pfnKnown: meta.pfnKnown === true,
    gpaPfn,
    share,
    hotFirstPage,
    hotPages,
    hotPfns,
    meta,
  };
}
