// Page sources (faults, pebs, ibs): the BPF program counts samples per page in the
// kernel; each epoch we drain that map, translate virtual pages to frames through
// /proc/PID/pagemap (one pass per process, sorted, one pread per span) and deliver
// one-page runs. Physical samples (PEBS/IBS with PERF_SAMPLE_PHYS_ADDR) need no translation.
import { closeSync } from 'node:fs';
import { enableBpfRunTimeStats, type PerfEventAttr as AddonPerfAttr, type PerfCpuFailure } from '../../native/addon.js';
import { emptySamples, type PageSamples } from '../../src/samples.js';
import { MAX_PERIOD, PeriodController } from '../../src/sampling/period.js';
import { KpageflagsReader, type Folios } from '../kpageflags.js';
import { Pagemap, processAlive, TargetGoneError } from '../pagemap.js';
import { perfEventsFor, type PerfEventAttr } from '../perf-attr.js';
import type { DecodedPages, DecodedSamples } from '../record-layout.js';
import { KIND_PHYS } from '../record-layout.js';
import { openSampler, type SamplerObject } from '../sampler-object.js';
import { monotonicNs, onlineCpus, PageSet, pageSamplesFrom, type PerfCpuStats, type PeriodStats, type SampleSource, type SourceStats } from './common.js';

export type PageSourceName = 'faults' | 'pebs' | 'ibs';

export interface PageSourceOptions {
  source: PageSourceName;
  pid?: number;
  /** Sample every Nth event (perf sources). For faults, > 1 switches to the perf event. */
  samplePeriod?: number;
  /** faults only: 'tracepoint' (exceptions:page_fault_user, knows writes) or 'perf'
   *  (software page-faults event with a sample period). Default: tracepoint unless samplePeriod > 1. */
  faultsVia?: 'tracepoint' | 'perf';
  epochMs: number;
  /** Also stream raw samples (for traces); delivered through onRaw. */
  raw?: boolean;
  /** Aggregation map capacity in pages. Default 262144. When it fills beyond
   *  EARLY_DRAIN_FILL the map is drained before the epoch ends; samples that still find it
   *  full are counted (stats().mapFull), never evicted silently. */
  maxPages?: number;
  verbose?: boolean;
  /** Where sysfs lives for the PMU lookup (tests: a fake tree). Default /sys. */
  sysRoot?: string;
  /** Perf events only: a CPU budget (share of one core, (0, 1]) that sizes the sample period
   *  each epoch (src/sampling/period.ts): the period starts at samplePeriod (the source's
   *  default) and never goes below it. Absent: a fixed period. The tracepoint has no period. */
  cpuBudget?: number;
  /** Highest adaptive period. Default min(2^32, start * 2^16). */
  maxPeriod?: number;
  /** Reads the online CPU ids (default /sys/devices/system/cpu/online). Perf sources re-read
   *  it every epoch: CPUs that came online get the event, CPUs that went offline lose it. */
  readOnlineCpus?: () => number[];
}

/** The addon's attr for one of ours. */
function addonAttr(attr: PerfEventAttr, samplePeriod = attr.samplePeriod): AddonPerfAttr {
  return {
    type: attr.type,
    config: attr.config,
    config1: attr.config1,
    config2: attr.config2,
    samplePeriod,
    sampleType: attr.sampleType,
    preciseIp: attr.preciseIp as 0 | 1 | 2 | 3,
    excludeKernel: attr.excludeKernel,
    excludeHv: attr.excludeHv,
  };
}

/** The group leader's attr: counting only (no period, no sample type, not precise). */
function addonLeaderAttr(event: PerfEventAttr): AddonPerfAttr | undefined {
  const l = event.leader;
  if (!l) return undefined;
  return { type: l.type, config: l.config, config1: l.config1, config2: l.config2, excludeKernel: l.excludeKernel, excludeHv: l.excludeHv };
}

const DEFAULT_MAX_PAGES = 262144;
/** Fraction of the map's capacity that triggers a drain before the epoch ends. */
export const EARLY_DRAIN_FILL = 0.75;
/** How many fill checks per epoch (a per-CPU counter read each). */
const FILL_CHECKS_PER_EPOCH = 8;

/** Packed sort keys stay exact below 2^53: page numbers below 2^35 with 2^18 indices. */
const PACK_INDEX_BITS = 18;
const PACK_INDEX = 2 ** PACK_INDEX_BITS;
const PACK_MAX_PAGE = 2 ** (53 - PACK_INDEX_BITS);

/**
 * Indices of `page` (restricted to `indices`) in ascending page order. Uses a native
 * numeric sort of packed (page, index) keys when they fit, a comparator sort otherwise.
 */
export function sortIndicesByPage(page: Float64Array, indices: Uint32Array): Uint32Array {
  const n = indices.length;
  let packable = n <= PACK_INDEX;
  for (let k = 0; k < n && packable; k++) if (!(page[indices[k]] < PACK_MAX_PAGE)) packable = false;
  if (!packable) return indices.slice().sort((a, b) => page[a] - page[b]);
  const keys = new Float64Array(n);
  for (let k = 0; k < n; k++) keys[k] = page[indices[k]] * PACK_INDEX + k;
  keys.sort();
  const out = new Uint32Array(n);
  for (let k = 0; k < n; k++) out[k] = indices[keys[k] % PACK_INDEX];
  return out;
}

/** Most entries handled between two checks of the time slice (translation, folio lookups). */
export const TRANSLATE_CHUNK = 8192;

/** Translates drained map entries into runs of frames: one page each, or with `folios`
 *  (faults: one fault maps a whole folio) the folio each translated frame belongs to. */
export function translatePages(
  drained: DecodedPages,
  translate: (tgid: number, vpages: Float64Array) => Float64Array,
  folios?: (pfns: Float64Array) => Folios,
): TranslatedPages {
  const steps = translateSteps(drained, translate, folios);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** translatePages in slices of about `sliceMs` of JS-thread time, yielding to the event
 *  loop between them (a 200k-entry drain would otherwise stall it for seconds). */
export async function translatePagesAsync(
  drained: DecodedPages,
  translate: (tgid: number, vpages: Float64Array) => Float64Array,
  folios?: (pfns: Float64Array) => Folios,
  sliceMs = 5,
): Promise<TranslatedPages> {
  const steps = translateSteps(drained, translate, folios);
  let sliceStart = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (performance.now() - sliceStart >= sliceMs) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      sliceStart = performance.now();
    }
  }
}

/** The translation, one chunk of at most TRANSLATE_CHUNK entries per step. */
function* translateSteps(
  drained: DecodedPages,
  translate: (tgid: number, vpages: Float64Array) => Float64Array,
  folios?: (pfns: Float64Array) => Folios,
): Generator<void, TranslatedPages> {
  const n = drained.count;
  const PHYS = KIND_PHYS; // a local: an imported binding costs a lookup per access under test transforms
  const pfn = new Float64Array(n);
  const reads = new Uint32Array(n);
  const writes = new Uint32Array(n);
  const runPages = new Uint32Array(n).fill(1);
  // out positions of translated virtual pages (the folio pass looks them up)
  const virtual = new Uint32Array(folios ? n : 0);
  let virtualCount = 0;
  let out = 0;
  let untranslated = 0;
  const missed = new Uint32Array(n);
  let missedCount = 0;
  // Virtual pages grouped by process (counting pass, then fill), each group in
  // ascending page order so pagemap reads whole spans.
  // Runs of equal tgid (the usual case with a pid filter) cost one Map access per run.
  const groupSize = new Map<number, number>();
  let runTgid = -1;
  let runLength = 0;
  for (let i = 0; i < n; i++) {
    if (drained.kind[i] === PHYS) {
      pfn[out] = drained.page[i];
      reads[out] = drained.reads[i];
      writes[out++] = drained.writes[i];
    } else if (drained.tgid[i] === runTgid) {
      runLength++;
    } else {
      if (runLength) groupSize.set(runTgid, (groupSize.get(runTgid) ?? 0) + runLength);
      runTgid = drained.tgid[i];
      runLength = 1;
    }
  }
  if (runLength) groupSize.set(runTgid, (groupSize.get(runTgid) ?? 0) + runLength);
  yield;
  const groups = new Map<number, { indices: Uint32Array; filled: number }>();
  for (const [tgid, size] of groupSize) groups.set(tgid, { indices: new Uint32Array(size), filled: 0 });
  let group: { indices: Uint32Array; filled: number } | undefined;
  runTgid = -1;
  for (let i = 0; i < n; i++) {
    if (drained.kind[i] === PHYS) continue;
    if (drained.tgid[i] !== runTgid) {
      runTgid = drained.tgid[i];
      group = groups.get(runTgid)!;
    }
    group!.indices[group!.filled++] = i;
  }
  yield;
  for (const [tgid, group] of groups) {
    const order = yield* sortIndicesSteps(drained.page, group.indices);
    for (let from = 0; from < order.length; from += TRANSLATE_CHUNK) {
      const to = Math.min(order.length, from + TRANSLATE_CHUNK);
      const vpages = new Float64Array(to - from);
      for (let k = from; k < to; k++) vpages[k - from] = drained.page[order[k]];
      let frames: Float64Array;
      try {
        frames = translate(tgid, vpages);
      } catch (err) {
        if (!(err instanceof TargetGoneError)) throw err;
        untranslated += order.length - from; // the process exited since its samples were taken
        break;
      }
      for (let k = from; k < to; k++) {
        const frame = frames[k - from];
        if (frame < 0) {
          untranslated++;
          missed[missedCount++] = order[k];
          continue;
        }
        if (folios) virtual[virtualCount++] = out;
        pfn[out] = frame;
        reads[out] = drained.reads[order[k]];
        writes[out++] = drained.writes[order[k]];
      }
      yield;
    }
  }
  if (folios && virtualCount) {
    // in frame order, so kpageflags is read in spans of adjacent frames
    const byFrame = yield* sortIndicesSteps(pfn, virtual.subarray(0, virtualCount));
    for (let from = 0; from < virtualCount; from += TRANSLATE_CHUNK) {
      const to = Math.min(virtualCount, from + TRANSLATE_CHUNK);
      const frames = new Float64Array(to - from);
      for (let k = from; k < to; k++) frames[k - from] = pfn[byFrame[k]];
      const f = folios(frames);
      for (let k = from; k < to; k++) {
        pfn[byFrame[k]] = f.first[k - from];
        runPages[byFrame[k]] = f.pages[k - from];
      }
      yield;
    }
  }
  const noFrameYet = missed.subarray(0, missedCount);
  if (out <= SORT_BLOCK) return { samples: pageSamplesFrom(pfn, reads, writes, out, runPages), untranslated, noFrameYet };
  // pageSamplesFrom in steps: frame order, duplicates (frames shared by processes) summed
  const byFrame = yield* sortIndicesSteps(pfn, Uint32Array.from({ length: out }, (_, i) => i));
  const samples = emptySamples(out);
  for (let k = 0; k < out; k++) {
    const i = byFrame[k];
    const last = samples.count - 1;
    if (last >= 0 && samples.gpaPfn[last] === pfn[i] && samples.pages[last] === runPages[i]) {
      samples.reads[last] = Math.min(0xffff_ffff, samples.reads[last] + reads[i]);
      samples.writes[last] = Math.min(0xffff_ffff, samples.writes[last] + writes[i]);
    } else {
      const j = samples.count++;
      samples.gpaPfn[j] = pfn[i];
      samples.pages[j] = runPages[i];
      samples.reads[j] = reads[i];
      samples.writes[j] = writes[i];
    }
    if ((k + 1) % MERGE_STEP === 0) yield;
  }
  return { samples, untranslated, noFrameYet };
}

/** What a translation gives: the samples, how many entries had no frame, and which of them
 *  (indices into the drained entries) had no frame while their process still ran. */
export interface TranslatedPages {
  samples: PageSamples;
  untranslated: number;
  noFrameYet: Uint32Array;
}

/** Entries kept for one more translation at most: a bound on what a drain carries over. */
export const RETRY_MAX_ENTRIES = 65_536;

/** The entries at `indices` of `pages`, as a batch of their own. */
export function pickPages(pages: DecodedPages, indices: Uint32Array): DecodedPages {
  const n = indices.length;
  const out: DecodedPages = { count: n, page: new Float64Array(n), tgid: new Uint32Array(n), kind: new Uint8Array(n), reads: new Uint32Array(n), writes: new Uint32Array(n) };
  for (let k = 0; k < n; k++) {
    const i = indices[k];
    out.page[k] = pages.page[i];
    out.tgid[k] = pages.tgid[i];
    out.kind[k] = pages.kind[i];
    out.reads[k] = pages.reads[i];
    out.writes[k] = pages.writes[i];
  }
  return out;
}

/** `a`'s entries, then `b`'s. */
export function concatPages(a: DecodedPages, b: DecodedPages): DecodedPages {
  const n = a.count + b.count;
  const join = <T extends Float64Array | Uint32Array | Uint8Array>(make: new (n: number) => T, x: T, y: T): T => {
    const out = new make(n);
    out.set(x.subarray(0, a.count) as never, 0);
    out.set(y.subarray(0, b.count) as never, a.count);
    return out;
  };
  return {
    count: n,
    page: join(Float64Array, a.page, b.page),
    tgid: join(Uint32Array, a.tgid, b.tgid),
    kind: join(Uint8Array, a.kind, b.kind),
    reads: join(Uint32Array, a.reads, b.reads),
    writes: join(Uint32Array, a.writes, b.writes),
  };
}

/** Sorts of more entries than this go in blocks, merged in steps of MERGE_STEP. */
const SORT_BLOCK = 16384;
const MERGE_STEP = 32768;

/** sortIndicesByPage (same order: by page, ties by position) one step at a time: blocks
 *  of SORT_BLOCK sorted natively, then merged pairwise. */
export function* sortIndicesSteps(page: Float64Array, indices: Uint32Array): Generator<void, Uint32Array> {
  const n = indices.length;
  if (n <= SORT_BLOCK) return sortIndicesByPage(page, indices);
  let src = new Uint32Array(n);
  for (let b = 0; b < n; b += SORT_BLOCK) {
    src.set(sortIndicesByPage(page, indices.subarray(b, b + SORT_BLOCK)), b);
    yield;
  }
  let dst = new Uint32Array(n);
  let merged = 0;
  for (let width = SORT_BLOCK; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(n, lo + width);
      const hi = Math.min(n, lo + 2 * width);
      let a = lo;
      let b = mid;
      for (let o = lo; o < hi; o++) {
        // the left one on ties keeps the order stable
        dst[o] = b >= hi || (a < mid && !(page[src[b]] < page[src[a]])) ? src[a++] : src[b++];
        if (++merged % MERGE_STEP === 0) yield;
      }
    }
    [src, dst] = [dst, src];
  }
  return src;
}

export function pagemapTranslate(tgid: number, vpages: Float64Array): Float64Array {
  const pagemap = Pagemap.open(tgid);
  try {
    return pagemap.translate(vpages);
  } finally {
    pagemap.close();
  }
}

export class PageSource implements SampleSource {
  readonly tunables: Record<string, unknown>;
  readonly notes: string[] = [];
  private readonly batchCbs: Array<(tNs: number, samples: PageSamples) => void> = [];
  private readonly fatalCbs: Array<(err: Error) => void> = [];
  private readonly rawCbs: Array<(records: DecodedSamples) => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private fillTimer: NodeJS.Timeout | undefined;
  /** The drain in flight (one at a time), off the JS thread. */
  private draining: Promise<void> | undefined;
  private earlyDrains = 0;
  private stopped = false;
  private readonly seen = new PageSet();
  private untranslated = 0;
  /** Entries of the last drain whose page had no frame yet: tried once more at the next drain. */
  private noFrameYet: DecodedPages | null = null;
  /** Stats stay readable after stop (the BPF object is gone then). */
  private finalStats: SourceStats | undefined;
  /** Perf sources: the events (one per PMU) and which CPUs carry them. */
  private perfEvents: PerfEventAttr[] = [];
  private readonly perfCpus: PerfCpuStats = { attached: [], failed: [], onlined: 0, offlined: 0 };
  /** Under a CPU budget: the controller, the BPF stats holder's fd, the last epoch's marks. */
  private period: PeriodController | undefined;
  private statsFd: number | undefined;
  private periodHistory: number[] = [];
  /** The cost is the BPF program's run time: the agent's own work (a drain per epoch, the
   *  translation in slices on the event loop) is not measurable as CPU per epoch here and is
   *  mostly fixed per epoch, which no period lowers. */
  private lastMark: { tNs: number; runTimeNs: number; runCnt: number } | undefined;

  private constructor(
    private readonly obj: SamplerObject,
    private readonly opts: PageSourceOptions,
    tunables: Record<string, unknown>,
  ) {
    this.tunables = tunables;
  }

  static async start(opts: PageSourceOptions): Promise<PageSource> {
    const viaPerf = opts.source !== 'faults' || opts.faultsVia === 'perf' || (opts.faultsVia === undefined && (opts.samplePeriod ?? 1) > 1);
    // Refuse before loading anything when the PMU is missing.
    const events = viaPerf ? perfEventsFor(opts.source, { samplePeriod: opts.samplePeriod, sysRoot: opts.sysRoot }) : [];
    if (opts.pid !== undefined && !processAlive(opts.pid)) throw new TargetGoneError(opts.pid, 'not running');
    const obj = await openSampler({
      kind: viaPerf ? 'perf' : 'fault-tracepoint',
      mode: opts.raw ? 'both' : 'aggregate',
      pid: opts.pid,
      maxPages: opts.maxPages ?? DEFAULT_MAX_PAGES,
      verbose: opts.verbose,
    });
    const budget = opts.cpuBudget;
    if (budget !== undefined && !(typeof budget === 'number' && budget > 0 && budget <= 1)) throw new TypeError(`cpuBudget: ${String(budget)} is not a CPU share in (0, 1]`);
    const tunables: Record<string, unknown> = {
      event: events.length ? events.map((e) => e.describe).join(' + ') : 'tp_btf/page_fault_user (every user page fault)',
      samplePeriod: events.length ? events[0].samplePeriod : 1,
      cpuBudget: events.length
        ? (budget ?? 'off (fixed period)')
        : 'n/a: the page-fault tracepoint sees every user fault and has no sample period to adapt',
      pid: opts.pid ?? 'all',
      epochMs: opts.epochMs,
      raw: Boolean(opts.raw),
      program: obj.program,
      maxPages: obj.maxPages,
    };
    const source = new PageSource(obj, opts, tunables);
    try {
      if (opts.raw) obj.onRecords((records) => source.rawCbs.forEach((cb) => cb(records)));
      if (events.length) {
        // One event per CPU with the tgid filter in BPF: covers every thread of the target.
        // A CPU the kernel refuses is reported; the start fails only when none attached.
        source.perfEvents = events;
        if (budget !== undefined) source.startBudget(budget, events[0].samplePeriod);
        const failed = source.followCpus();
        if (!source.perfCpus.attached.length) throw failed[0]?.error ?? new Error(`no online CPU is covered by ${String(tunables.event)}`);
      } else {
        obj.attachTracepoints();
      }
    } catch (err) {
      source.endBudget();
      obj.close();
      throw err;
    }
    if (opts.source === 'faults') {
      source.notes.push('faults sees first touches, copy-on-write and hint faults only, not repeated accesses to mapped pages');
    }
    source.timer = setInterval(() => source.epoch(), opts.epochMs);
    const checkMs = Math.max(5, Math.floor(opts.epochMs / FILL_CHECKS_PER_EPOCH));
    source.fillTimer = setInterval(() => source.checkFill(), checkMs);
    return source;
  }

  onBatch(cb: (tNs: number, samples: PageSamples) => void): void {
    this.batchCbs.push(cb);
  }

  onFatal(cb: (err: Error) => void): void {
    this.fatalCbs.push(cb);
  }

  onRaw(cb: (records: DecodedSamples) => void): void {
    this.rawCbs.push(cb);
  }

  stats(): SourceStats {
    if (this.finalStats) return this.finalStats;
    const c = this.obj.counters();
    const ring = this.obj.ringStats();
    return {
      samples: Number(c.samples),
      pagesSeen: this.seen.size,
      drops: Number(c.drops) + Number(c.mapFull) + ring.malformed,
      mapFull: Number(c.mapFull),
      earlyDrains: this.earlyDrains,
      untranslated: this.untranslated,
      ...(this.perfEvents.length ? { perfCpus: { ...this.perfCpus, attached: [...this.perfCpus.attached], failed: [...this.perfCpus.failed] } } : {}),
      ...(this.period ? { period: this.periodStats() } : {}),
    };
  }

  /** The adaptive period's figures (perf sources under a CPU budget). */
  periodStats(): PeriodStats | undefined {
    return this.period ? { ...this.period.report(), history: [...this.periodHistory] } : undefined;
  }

  /** Holds BPF run-time stats on (refcounted BPF_ENABLE_STATS fd) and starts the controller. */
  private startBudget(budget: number, start: number): void {
    try {
      this.statsFd = enableBpfRunTimeStats();
    } catch (err) {
      this.notes.push(`--cpu-budget off: BPF run-time stats cannot be enabled (${(err as Error).message}); the period stays ${start}`);
      return;
    }
    const max = this.opts.maxPeriod ?? Math.min(MAX_PERIOD, start * 2 ** 16);
    this.period = new PeriodController({ budget, initial: start, min: start, max });
    this.periodHistory.push(start);
    this.tunables.cpuBudget = budget;
    this.tunables.periodRange = [start, max];
  }

  private noteOnce(note: string): void {
    if (!this.notes.includes(note)) this.notes.push(note);
  }

  private endBudget(): void {
    if (this.statsFd === undefined) return;
    try {
      closeSync(this.statsFd);
    } catch {
      /* already closed */
    }
    this.statsFd = undefined;
  }

  /** One control step: the epoch's tracking cost (the BPF program's run time, from the
   *  run-time stats this source holds on) against the budget; a new period goes to every
   *  CPU's event by ioctl(PERF_EVENT_IOC_PERIOD). */
  private adaptPeriod(): void {
    const ctl = this.period;
    if (!ctl) return;
    const { runTimeNs, runCnt } = this.obj.bpfStats();
    const mark = { tNs: monotonicNs(), runTimeNs, runCnt };
    const last = this.lastMark;
    this.lastMark = mark;
    if (!last || mark.tNs <= last.tNs) return;
    const step = ctl.step({
      epochNs: mark.tNs - last.tNs,
      bpfNs: Math.max(0, mark.runTimeNs - last.runTimeNs),
      samples: Math.max(0, mark.runCnt - last.runCnt),
    });
    if (step.period !== step.previous) {
      const r = this.obj.setPerfPeriod(step.period);
      if (r.failed.length) this.noteOnce(`sample period ${step.period} refused on ${r.failed.length} event(s): ${r.failed[0].message}`);
      if (this.opts.verbose) console.error(`vtier: sample period ${step.previous} -> ${step.period} (tracking ${(step.share * 100).toFixed(3)}% of a core, budget ${(ctl.budget * 100).toFixed(3)}%)`);
    }
    this.periodHistory.push(step.period);
    if (this.periodHistory.length > 64) this.periodHistory.shift();
  }

  /** BPF run time of the program (zero unless kernel.bpf_stats_enabled=1). */
  bpfStats(): { runTimeNs: number; runCnt: number } {
    if (this.finalBpf) return this.finalBpf;
    const { runTimeNs, runCnt } = this.obj.bpfStats();
    return { runTimeNs, runCnt };
  }
  private finalBpf: { runTimeNs: number; runCnt: number } | undefined;

  private deliver(samples: PageSamples): void {
    for (let i = 0; i < samples.count; i++) this.seen.addRun(samples.gpaPfn[i], samples.pages[i]);
    const tNs = monotonicNs();
    for (const cb of this.batchCbs) cb(tNs, samples);
  }

  /** Drains the map (on the thread pool: a large map takes ~1 µs per entry), translates,
   *  delivers. Returns the target-gone error when it applies. */
  private async drainOnce(): Promise<TargetGoneError | undefined> {
    // delivered even when stop() ran meanwhile: these samples are out of the kernel
    await this.deliverDrained(await this.obj.drainPagesAsync());
    if (this.stopped) return undefined;
    const pid = this.opts.pid;
    if (pid !== undefined && !processAlive(pid)) return new TargetGoneError(pid, 'exited during the run');
    return undefined;
  }

  /** Translates and delivers a drain, with the entries the previous drain could not translate
   *  yet in front. `final` (stop): nothing is carried further. */
  private async deliverDrained(fresh: DecodedPages, final = false): Promise<void> {
    const carried = this.noFrameYet;
    this.noFrameYet = null;
    const drained = carried ? concatPages(carried, fresh) : fresh;
    // faults: a fault on a THP maps the whole folio, so the sample covers its run
    const flags = this.opts.source === 'faults' ? KpageflagsReader.open() : null;
    let result: TranslatedPages;
    try {
      // in slices, so the epoch timer (and everything else on this loop) does not slip
      result = await translatePagesAsync(drained, pagemapTranslate, flags ? (pfns) => flags.folios(pfns) : undefined);
    } finally {
      flags?.close();
    }
    let untranslated = result.untranslated;
    if (!final) {
      // The fault tracepoint fires when the fault starts, before the page is mapped (zeroing a
      // 2 MiB THP takes a while): a page of this drain without a frame yet gets one more try at
      // the next drain. Entries already carried once count as untranslated now.
      const again = result.noFrameYet.filter((i) => i >= (carried?.count ?? 0)).subarray(0, RETRY_MAX_ENTRIES);
      if (again.length) {
        this.noFrameYet = pickPages(drained, again);
        untranslated -= again.length;
      }
    }
    this.untranslated += untranslated;
    this.deliver(result.samples.count ? result.samples : emptySamples(0));
  }

  /** Starts a drain unless one is running; a fatal error stops the source. */
  private drain(): Promise<void> {
    if (this.draining) return this.draining;
    this.draining = this.drainOnce()
      .catch((err: Error) => err)
      .then((gone) => {
        this.draining = undefined;
        if (gone && !this.stopped) void this.stop().then(() => this.fatalCbs.forEach((cb) => cb(gone)));
      });
    return this.draining;
  }

  /** Attaches the perf events to online CPUs that lack them and detaches the CPUs that went
   *  offline (vCPU hotplug). Returns this pass's failures; they stay in perfCpus.failed (the
   *  summaries' NOT SAMPLED lines) and are not retried until the CPU goes offline. */
  private followCpus(): PerfCpuFailure[] {
    const online = new Set((this.opts.readOnlineCpus ?? onlineCpus)());
    const st = this.perfCpus;
    const first = st.attached.length === 0 && st.onlined === 0 && st.offlined === 0;
    const attached = new Set(st.attached);
    for (const cpu of st.attached) {
      if (online.has(cpu)) continue;
      this.obj.detachCpu(cpu);
      attached.delete(cpu);
      st.offlined++;
    }
    st.failed = st.failed.filter((f) => online.has(f.cpu));
    const known = new Set([...attached, ...st.failed.map((f) => f.cpu)]);
    const failures: PerfCpuFailure[] = [];
    for (const event of this.perfEvents) {
      const covered = event.cpus ? new Set(event.cpus) : undefined;
      const cpus = [...online].filter((cpu) => !known.has(cpu) && (!covered || covered.has(cpu))).sort((a, b) => a - b);
      if (!cpus.length) continue;
      const leader = addonLeaderAttr(event);
      // a CPU that comes online takes the period in force
      const r = this.obj.attachPerfPerCpu(addonAttr(event, this.period?.period), { cpus }, leader ? { leader } : {});
      for (const cpu of r.cpus) attached.add(cpu);
      if (!first) st.onlined += r.cpus.length;
      for (const f of r.failed) {
        failures.push(f);
        st.failed.push({ cpu: f.cpu, code: f.error.code, message: f.error.message });
      }
    }
    st.attached = [...attached].sort((a, b) => a - b);
    return failures;
  }

  private epoch(): void {
    if (this.stopped) return;
    if (this.perfEvents.length) {
      try {
        this.adaptPeriod();
      } catch (err) {
        this.noteOnce(`sample period not adapted: ${(err as Error).message}`);
      }
      try {
        this.followCpus();
      } catch {
        /* the online list is unreadable this time: keep the CPUs as they are */
      }
    }
    void this.drain();
  }

  /** Drains before the epoch ends when the map is filling up (no sample is evicted; the
   *  ones that meet a full map are counted in mapFull). */
  private checkFill(): void {
    if (this.stopped || this.draining) return;
    let fill: number;
    try {
      fill = this.obj.mapFill();
    } catch {
      return;
    }
    if (fill >= this.obj.maxPages * EARLY_DRAIN_FILL) {
      this.earlyDrains++;
      void this.drain();
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.fillTimer) clearInterval(this.fillTimer);
    try {
      this.obj.detach();
      await this.draining;
      // Samples of the last partial epoch.
      const drained = await this.obj.drainPagesAsync();
      if (drained.count || this.noFrameYet) await this.deliverDrained(drained, true);
    } finally {
      this.keepFinalFigures();
      this.obj.close();
      this.endBudget();
    }
  }

  private keepFinalFigures(): void {
    try {
      this.finalStats = this.stats();
      this.finalBpf = this.bpfStats();
    } catch {
      /* counters unreadable: stats() then reports zeros */
      this.finalStats ??= { samples: 0, pagesSeen: this.seen.size, drops: 0, untranslated: this.untranslated };
      this.finalBpf ??= { runTimeNs: 0, runCnt: 0 };
    }
  }
}
