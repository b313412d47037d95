// What every sample source gives the Sampler, and helpers they share.
import { readFileSync } from 'node:fs';
import { emptySamples, type PageSamples } from '../../src/samples.js';
import type { PeriodReport } from '../../src/sampling/period.js';

export interface SourceStats {
  /** Events counted by the BPF program (samples / regions). */
  samples: number;
  /** Distinct guest pages that received at least one sample or access. */
  pagesSeen: number;
  /** Samples lost: ring buffer full, aggregation map full, malformed records. */
  drops: number;
  /** Of drops: samples refused because the aggregation map was full (page sources). */
  mapFull?: number;
  /** Page sources: drains started before the epoch ended because the map was filling. */
  earlyDrains?: number;
  /** Virtual pages that could not be translated to a frame (not present, process gone). */
  untranslated: number;
  /** Perf page sources: CPUs sampled now, CPUs whose event could not be opened (errno code,
   *  one line), CPUs attached / dropped since the start as they came online / went offline. */
  perfCpus?: PerfCpuStats;
  /** DAMON: what happened to the kdamond during the run. */
  kdamond?: KdamondStats;
  /** Perf page sources under a CPU budget: the sample period in force and how it moved. */
  period?: PeriodStats;
}

/** The adaptive sample period of a perf source: src/sampling/period.ts's report, and the
 *  period in force in each of the last epochs (at most 64), oldest first. */
export interface PeriodStats extends PeriodReport {
  history: number[];
}

export interface KdamondStats {
  /** The pid sampled now, and the kdamond's state at the last look. */
  pid: number;
  state: 'on' | 'off' | 'gone';
  /** Pid changes seen (restarts), and re-attaches to the new pid that worked. */
  restarts: number;
  reattached: number;
  /** Times it was seen stopped (off) or removed. */
  stops: number;
  /** Times it was on but delivered no aggregation for three aggregation intervals. */
  stalls: number;
  /** Interval changes seen in sysfs (intervals_goal auto-tuning, or its owner). */
  intervalChanges: number;
  addrUnit: number;
  /** Regions skipped because addr_unit-scaled addresses exceed 2^53 bytes. */
  unscalable: number;
  /** Aggregation interval in sysfs now, and as measured between aggregations (median). */
  aggrUs?: number;
  measuredAggrUs?: number;
}

export interface PerfCpuStats {
  attached: number[];
  failed: { cpu: number; code: string; message: string }[];
  onlined: number;
  offlined: number;
}

export interface SampleSource {
  readonly tunables: Record<string, unknown>;
  readonly notes: string[];
  /** Delivers one batch per epoch / DAMON aggregation. */
  onBatch(cb: (tNs: number, samples: PageSamples) => void): void;
  /** A fatal condition (target gone): the source has stopped itself, then reports. */
  onFatal(cb: (err: Error) => void): void;
  /** Notes added during the run (e.g. a DAMON kdamond restarted). */
  onNote?(cb: (note: string) => void): void;
  stats(): SourceStats;
  /** Final delivery, detach, unload. Idempotent. */
  stop(): Promise<void>;
}

/** CLOCK_MONOTONIC in ns, the clock bpf_ktime_get_ns() uses. */
export function monotonicNs(): number {
  return Number(process.hrtime.bigint());
}

/** Highest CPU number a cpu list may name (the kernel's NR_CPUS is at most 8192). */
const MAX_CPU = 65_535;

/** A kernel cpu list ("0-3,6") as sorted distinct ids.
 *  Malformed parts and ids above 65535 are skipped. */
export function parseCpuList(text: string): number[] {
  const seen = new Set<number>();
  for (const part of text.trim().split(',')) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part.trim());
    if (!m) continue;
    const first = Number(m[1]);
    const last = Math.min(m[2] === undefined ? first : Number(m[2]), MAX_CPU);
    for (let cpu = first; cpu <= last; cpu++) seen.add(cpu);
  }
  return [...seen].sort((a, b) => a - b);
}

/** Online CPU ids from /sys/devices/system/cpu/online ("0-3,6"). */
export function onlineCpus(path = '/sys/devices/system/cpu/online'): number[] {
  return parseCpuList(readFileSync(path, 'utf8'));
}

/**
 * Distinct pages seen, as a growable bitset indexed by frame. Frames above the cap are
 * counted without deduplication (the bitset would be too large).
 */
export class PageSet {
  private bits = new Uint32Array(1024);
  private distinct = 0;
  private overflow = 0;
  constructor(private readonly maxPfn = 2 ** 32) {}

  get size(): number {
    return this.distinct + this.overflow;
  }

  addRun(pfn: number, pages: number): void {
    let first = pfn;
    let end = pfn + pages;
    if (end > this.maxPfn) {
      this.overflow += end - Math.max(first, this.maxPfn);
      end = this.maxPfn;
    }
    if (first >= end) return;
    this.ensure(end);
    // Partial words at the edges bit by bit, whole words in between.
    while (first < end && first & 31) this.addOne(first++);
    while (end - first >= 32) {
      const w = first >>> 5;
      this.distinct += 32 - popcount(this.bits[w]);
      this.bits[w] = 0xffff_ffff;
      first += 32;
    }
    while (first < end) this.addOne(first++);
  }

  private addOne(pfn: number): void {
    const w = pfn >>> 5;
    const bit = 1 << (pfn & 31);
    if (!(this.bits[w] & bit)) {
      this.bits[w] |= bit;
      this.distinct++;
    }
  }

  private ensure(endPfn: number): void {
    const words = Math.ceil(endPfn / 32);
    if (words <= this.bits.length) return;
    const grown = new Uint32Array(Math.max(words, this.bits.length * 2));
    grown.set(this.bits);
    this.bits = grown;
  }
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x5555_5555;
  x = (x & 0x3333_3333) + ((x >>> 2) & 0x3333_3333);
  return (((x + (x >>> 4)) & 0x0f0f_0f0f) * 0x0101_0101) >>> 24;
}

/** Packed (value, index) keys are exact below 2^53: values below 2^35 with 2^18 indices. */
const PACK_INDEX = 2 ** 18;
const PACK_MAX_VALUE = 2 ** 35;

/** Indices 0..count-1 ordered by value: a native numeric sort of packed keys when they fit. */
export function sortedOrder(values: Float64Array, count: number): Uint32Array {
  const order = new Uint32Array(count);
  let packable = count <= PACK_INDEX;
  for (let i = 0; i < count && packable; i++) if (!(values[i] >= 0 && values[i] < PACK_MAX_VALUE)) packable = false;
  if (!packable) {
    for (let i = 0; i < count; i++) order[i] = i;
    return order.sort((a, b) => values[a] - values[b]);
  }
  const keys = new Float64Array(count);
  for (let i = 0; i < count; i++) keys[i] = values[i] * PACK_INDEX + i;
  keys.sort();
  for (let i = 0; i < count; i++) order[i] = keys[i] % PACK_INDEX;
  return order;
}

/**
 * Sorts frame/read/write triples by frame and sums duplicates (two virtual pages of
 * different processes can share one frame) into one-page runs.
 */
export function pageSamplesFrom(pfn: Float64Array, reads: Uint32Array, writes: Uint32Array, count: number, runPages?: Uint32Array): PageSamples {
  const order = sortedOrder(pfn, count);
  const out = emptySamples(count);
  for (let k = 0; k < count; k++) {
    const i = order[k];
    const last = out.count - 1;
    if (last >= 0 && out.gpaPfn[last] === pfn[i] && out.pages[last] === (runPages ? runPages[i] : 1)) {
      out.reads[last] = Math.min(0xffff_ffff, out.reads[last] + reads[i]);
      out.writes[last] = Math.min(0xffff_ffff, out.writes[last] + writes[i]);
      continue;
    }
    const j = out.count++;
    out.gpaPfn[j] = pfn[i];
    out.pages[j] = runPages ? runPages[i] : 1;
    out.reads[j] = reads[i];
    out.writes[j] = writes[i];
  }
  return out;
}
