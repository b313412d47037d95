// The hot/cold classifier: turns sparse page samples into promote/demote decisions that
// keep the guest's hottest pages in the DRAM the host granted.
//
// Per epoch: pick the lowest count threshold whose pages fit the DRAM budget (from an
// exact count histogram kept up to date on every sample), promote hot pages hottest-first,
// make room by demoting only pages that are clearly colder (count < threshold/2) or idle
// for K epochs, coldest-first, within a per-epoch migration budget. Free DRAM left over is
// filled with warm pages (threshold/2 <= count < threshold), which by the same rule are not
// demoted next epoch, so pages near the threshold do not ping-pong. Counts halve every N
// samples (Memtis) and/or every N epochs. Design notes: docs/classifier.md.
import type { PageRuns, PageSamples } from '../samples.js';
import { ClassifierConfigError } from './errors.js';
import {
  CHUNK_SHIFT,
  COUNT_MASK,
  DIR_CXL,
  DIR_FIRST_CHUNK,
  DIR_PAGE_BITS,
  DIR_PAGE_MASK,
  FLAGS_FIELD,
  IDLE_FIELD,
  IDLE_ONE,
  IDLE_SHIFT,
  DIR_DRAM,
  FLAG_DRAM,
  FLAG_HOT,
  FLAG_NOT_RAM,
  IDLE_NEVER,
  MAX_COUNT,
  PAGES_PER_CHUNK,
  PFN_LIMIT,
  PageTable,
} from './pagetable.js';
import { RamMap, TALLY_ACCEPTED, TALLY_PAGES, TALLY_REJECTED, accumulate } from './ingest.js';
import { RunBuilder, normaliseRuns } from './runs.js';
import { countingSort } from './sort.js';

export type Tier = 'dram' | 'cxl';

export interface ClassifierOptions {
  /** DRAM pages the host grants this guest. Positive integer, <= RAM pages when ramRanges is given. */
  dramBudgetPages: number;
  /** Guest RAM (GPA frame runs). Samples and placements outside it are rejected. */
  ramRanges?: PageRuns;
  /** Halve all counts every N epochs (0 = never; default 0). */
  coolEveryEpochs?: number;
  /** Halve all counts every N page samples (0 = never; default 2,000,000 as in Memtis). */
  coolEverySamples?: number;
  /** Halve all counts before each ingest() of a non-empty batch (default false). For sources
   *  whose batches are whole snapshots (one DAMON aggregation each), counts then become an
   *  exponential average over the snapshots; a sample-count rule would halve in the middle of
   *  one snapshot (biased by address) and far too rarely on a small region. */
  coolEachIngest?: boolean;
  /** A DRAM page with no sample for this many epochs may be demoted whatever its count
   *  (default 8; stretched automatically when sampling is too sparse for K epochs to mean idle). */
  idleEpochsBeforeDemote?: number;
  /** Bytes moved (promote + demote) per epoch; default unlimited. Forced demotions after a
   *  budget cut are not limited by it (the DRAM grant is the harder constraint). */
  migrationBudgetBytesPerEpoch?: number;
  /** Move whole 2 MiB chunks only, and only when most of their sampled pages are hot. */
  hugePages?: boolean;
  /** Fraction of a chunk's sampled pages that must be hot to promote it (huge pages; default 0.5). */
  hugeHotFraction?: number;
  /** Guest base page size (default 4096); converts the migration budget to pages. */
  pageSizeBytes?: number;
  /** Where a sampled page nobody reported a placement for is assumed to be (default 'cxl'). */
  unknownTier?: Tier;
  /** Lowest count that can be hot (default 1: one sample is evidence). */
  minHotCount?: number;
  /** Longest accepted sample run in pages without ramRanges (default 2^28 = 1 TiB). */
  maxRunPages?: number;
  /** 4 KiB decision rule: 'evidence' (default; access-rate estimates per page and per 2 MiB
   *  region, moves that pay for themselves, docs/classifier.md) or 'threshold' (the earlier
   *  count-threshold rule with twice-as-hot hysteresis, kept for comparison). */
  rule?: ClassifierRule;
  /** evidence: how many standard deviations of the estimates' noise a swap's rate
   *  difference must exceed (default 0: the posterior means already carry the noise). */
  confidence?: number;
  /** evidence: relative margin a swap needs on top (the incoming page's estimate must exceed
   *  the outgoing one's by this fraction; default 0.25): estimates of equal true heat never
   *  differ by it at dense sampling, so they never trade places. */
  hysteresis?: number;
  /** evidence: real accesses one unit of sample weight stands for (the PEBS period; DAMON: the
   *  accesses an nr_accesses unit implies). Without it the migration-cost term is off and only
   *  the noise term guards a move. */
  accessesPerSample?: number;
  /** evidence: time one access saves when served from DRAM instead of CXL, ns (default 172 =
   *  279 - 107, the published idle latencies). */
  dramGainNsPerAccess?: number;
  /** evidence: cost of migrating one page, ns (default 1230: ~1 us of move_pages work plus a
   *  4 KiB copy at 17.6 GB/s). */
  migrationCostNsPerPage?: number;
}

export type ClassifierRule = 'evidence' | 'threshold';

export interface EpochStats {
  /** Lowest count in the hot set (65536 = nothing qualifies). */
  thresholdCount: number;
  /** Pages with count >= thresholdCount (always <= budgetPages). */
  hotPages: number;
  /** Tracked pages with a non-zero count. */
  sampledPages: number;
  /** DRAM pages after this epoch's moves. */
  dramPages: number;
  budgetPages: number;
  promotedPages: number;
  demotedPages: number;
  /** Hot pages in CXL left there (no room that may be taken, or migration budget spent); under
   *  the evidence rule only pages that could have moved (free DRAM, or a colder DRAM page to
   *  swap with) count. */
  deferredPages: number;
  /** Sample/placement runs rejected since the start. */
  rejectedRuns: number;
  /** Of promotedPages, warm pages placed into otherwise free DRAM. */
  fillPromotedPages: number;
  /** Of demotedPages, pages demoted because DRAM exceeded the budget (after setBudget). */
  forcedDemotedPages: number;
  /** Whether counts were halved at the end of this epoch. */
  cooled: boolean;
  /** Idle epochs that made a DRAM page cold this epoch (idleEpochsBeforeDemote, stretched
   *  when samples are too sparse for it; threshold rule only). */
  idleEpochs: number;
  /** evidence: epochs of history the counts stand for (cooling's exponential window). */
  windowEpochs: number;
  /** evidence: 2 MiB regions whose pages were estimated from the region rate alone (uniform
   *  regions), and regions split into per-page estimates (skewed ones). */
  uniformRegions: number;
  splitRegions: number;
}

export interface EpochDecision {
  epoch: number;
  promote: PageRuns;
  demote: PageRuns;
  stats: EpochStats;
}

export interface ClassifierStats {
  epoch: number;
  budgetPages: number;
  dramPages: number;
  /** Pages with state (allocated 2 MiB chunks x 512). */
  trackedPages: number;
  sampledPages: number;
  hotPages: number;
  thresholdCount: number;
  /** Accepted sample runs and the page samples they carried. */
  acceptedRuns: number;
  pageSamples: number;
  rejectedRuns: number;
  coolings: number;
  /** Pages per log2 count bin: [0] = count 0, [b] = counts in [2^(b-1), 2^b). 17 entries. */
  histogramLog2: number[];
  /** Pooled per-page arrays (4 bytes per tracked page plus growth slack). */
  pooledBytes: number;
  /** Directory, chunk keys, histogram, per-region burst history (2 bytes per 2 MiB region). */
  overheadBytes: number;
  /** (pooled + overhead) / tracked pages. */
  bytesPerTrackedPage: number;
}

/** A state word that needs no work in a decision: count 0, never sampled, in CXL. */
const IDLE_NEVER_WORD = IDLE_NEVER << IDLE_SHIFT;

/** A page's word after a decision: hot-set flag, idle + 1, count halved when cooling. */
function nextWord(word: number, count: number, idle: number, threshold: number, cool: boolean): number {
  let next = count >= threshold ? word | FLAG_HOT : word & ~FLAG_HOT;
  if (idle < IDLE_NEVER) next += IDLE_ONE;
  if (cool && count > 0) next = (next & ~COUNT_MASK) | (count >>> 1);
  return next;
}

/** Sort keys for rate estimates: 64 steps per octave of (1 + 4e), so estimates 1/4 sample
 *  apart are told apart at the low end and within 1.1% at the top. */
const EVIDENCE_KEYS = 1280;
/** Standard deviations of noise a swap must clear when its incoming page is a split region's
 *  page known from one sample (the sparse-sampling coin flip), whatever `confidence` says. */
const SINGLE_SAMPLE_Z = 0.5;
/** Counts below this get their key memoised per region in the decision pass. */
const KEY_MEMO = 64;
function estimateKey(e: number): number {
  if (!(e > 0)) return 0;
  const k = Math.floor(64 * Math.log2(1 + 4 * e));
  return k < 1 ? 1 : k >= EVIDENCE_KEYS ? EVIDENCE_KEYS - 1 : k;
}
/** A region's rate, checked against its last epoch: under the window estimate m (samples per
 *  page per window) the number of its n pages sampled in the last epoch is ~Poisson with mean
 *  E = n(1 - e^(-m/W)). When the observed number k is more than 3 sd (+1) away, the rate
 *  changed: the estimate becomes the last epoch's, -ln(1 - k/n) per page per epoch, in window
 *  units. A rise must hold for two epochs (the pages sampled the epoch before, and not since,
 *  must be as many as that rate predicts), so a region a stream swept through once (graph edge
 *  arrays) is not promoted after the stream has moved on. */
function recentRegionRate(m: number, n: number, recent: number, before: number, window: number, mayFall: boolean): number {
  // Every page sampled: a region sample (DAMON) or saturation; the count says nothing more.
  if (recent >= n) return m;
  const expected = n * (1 - Math.exp(-m / window));
  const slack = 3 * Math.sqrt(expected) + 1;
  if (recent > expected + slack) {
    const rate = -Math.log(1 - recent / n);
    const hit = 1 - Math.exp(-rate);
    const beforeExpected = n * (1 - hit) * hit;
    if (before < beforeExpected - 3 * Math.sqrt(beforeExpected) - 1) return m;
    return rate * window;
  }
  if (mayFall && recent < expected - slack) return -Math.log(1 - recent / n) * window;
  return m;
}

/** A region's burst history, one decision later: `idle` is its epochs without a sample at the
 *  last decision (255 = never sampled), `gap` the idle epochs between its recent bursts,
 *  `lastSampled` its epochs without a sample now, `before` the epochs decided before this one.
 *  A gap that closes (sampled now, idle before) sets gap to max(that gap, gap - 1); a first
 *  sample closes the gap since the start, counted up to FIRST_GAP_CAP; each further epoch
 *  sampled in a row takes one off, so a region that turns steady forgets its old gaps. */
export function nextRegionGap(gap: number, idle: number, lastSampled: number, before = 0): number {
  if (lastSampled > 0) return gap;
  const closed = idle >= IDLE_NEVER ? Math.min(FIRST_GAP_CAP, before) : idle;
  if (closed > 0) return Math.max(closed, gap - 1);
  return gap > 0 ? gap - 1 : 0;
}
/** Idle epochs before a region's first sample that count as a gap: the run's start is no
 *  burst, but a sweep's first pass is told from steady use by the two epochs before it, and a
 *  region first touched later (a new allocation, a shift) is not held back longer. */
const FIRST_GAP_CAP = 2;
/** Region gap byte: the gap (epochs) in the low 7 bits, GAP_FIRST when it came from a first sample. */
const GAP_MASK = 0x7f;
const GAP_FIRST = 0x80;

/** Idle epochs a region must show before its estimate may fall: none for a region sampled
 *  every epoch (gap 0), its last burst gap plus one epoch of jitter for one swept in bursts
 *  (a fall must hold as long as the gap it follows, as a rise must hold two epochs). */
export function fallHoldEpochs(gap: number): number {
  return gap === 0 ? 0 : gap + 1;
}

/** The (lower end of the) estimate a key stands for. */
function keyEstimate(key: number): number {
  return key <= 0 ? 0 : (2 ** (key / 64) - 1) / 4;
}

/** One epoch's chosen moves, as page indexes (plus whole never-sampled DRAM chunks). */
interface Selection {
  promote: Int32Array;
  demote: Int32Array;
  untouchedDemoted: number[];
  deferred: number;
  filled: number;
  forced: number;
}

/** Grow-only typed arrays by slot: no 10+ MB allocation and zero-fill every epoch. */
class Scratch {
  private readonly buffers: ArrayBuffer[] = [];

  int32(slot: number, length: number): Int32Array {
    return new Int32Array(this.buffer(slot, length * 4), 0, length);
  }

  uint32(slot: number, length: number): Uint32Array {
    return new Uint32Array(this.buffer(slot, length * 4), 0, length);
  }

  uint16(slot: number, length: number): Uint16Array {
    return new Uint16Array(this.buffer(slot, length * 2), 0, length);
  }

  float64(slot: number, length: number): Float64Array {
    return new Float64Array(this.buffer(slot, length * 8), 0, length);
  }

  private buffer(slot: number, bytes: number): ArrayBuffer {
    const have = this.buffers[slot];
    if (have !== undefined && have.byteLength >= bytes) return have;
    const grown = new ArrayBuffer(Math.max(bytes, Math.ceil((have?.byteLength ?? 0) * 1.5)));
    this.buffers[slot] = grown;
    return grown;
  }
}

/** Book-keeping for one epoch's selection: DRAM room and the migration allowance. */
class Picker {
  demoted = 0;
  private dram: number;
  private moves = 0;
  readonly untouchedDemoted: number[] = [];
  private untouchedCursor = 0;

  constructor(
    private readonly budget: number,
    dramPages: number,
    private readonly movesAllowed: number,
    private readonly untouched: number[],
  ) {
    this.dram = dramPages;
  }

  get free(): number {
    return this.budget - this.dram;
  }

  /** Migration allowance left; budget-cut demotions are charged but never refused. */
  get movesLeft(): number {
    return this.movesAllowed - this.moves;
  }

  overBudget(): boolean {
    return this.dram > this.budget;
  }

  /** Demotes the next never-sampled DRAM chunk (the coldest pages there are), if any. */
  demoteUntouched(): boolean {
    if (this.untouchedCursor >= this.untouched.length) return false;
    if (!this.overBudget() && this.movesLeft < PAGES_PER_CHUNK + 1) return false;
    this.untouchedDemoted.push(this.untouched[this.untouchedCursor++]);
    this.charge(PAGES_PER_CHUNK);
    return true;
  }

  demote(pages: number): void {
    this.charge(pages);
  }

  promote(pages: number): void {
    this.dram += pages;
    this.moves += pages;
  }

  private charge(pages: number): void {
    this.dram -= pages;
    this.moves += pages;
    this.demoted += pages;
  }
}

const DEFAULTS = {
  coolEveryEpochs: 0,
  /** Evidence rule: halve every 32 epochs (a ~46-epoch exponential window: long memory for
   *  stable heat; a change is caught by the recent-epoch and idle checks, not by cooling). */
  evidenceCoolEveryEpochs: 32,
  coolEverySamples: 2_000_000,
  confidence: 0,
  hysteresis: 0.25,
  dramGainNsPerAccess: 172,
  migrationCostNsPerPage: 1230,
  idleEpochsBeforeDemote: 8,
  hugeHotFraction: 0.5,
  pageSizeBytes: 4096,
  minHotCount: 1,
  maxRunPages: 2 ** 28,
};

function requireInt(value: number | undefined, name: string, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new ClassifierConfigError(`${name} must be an integer >= ${min} (got ${value})`);
  }
  return value;
}

export class Classifier {
  private readonly table: PageTable;
  private readonly ram: RamMap | undefined;
  private readonly ramPages: number;
  private budget: number;
  private readonly coolEveryEpochs: number;
  private readonly coolEverySamples: number;
  private readonly coolEachIngest: boolean;
  private readonly idleK: number;
  /** Page samples ingested since the last decision, and a smoothed per-epoch rate. */
  private epochPageSamples = 0;
  private samplesPerEpoch = 0;
  private readonly migrationPages: number;
  private readonly huge: boolean;
  private readonly hugeHotFraction: number;
  private readonly minHotCount: number;
  private readonly maxRunPages: number;
  private readonly rule: ClassifierRule;
  private readonly confidence: number;
  private readonly hysteresis: number;
  /** Sample-weight units a swap (two page moves) must gain per epoch of stay; 0 = no cost term. */
  private readonly costPerPageSamples: number;
  private epoch = 0;
  private rejected = 0;
  private acceptedRuns = 0;
  private pageSamples = 0;
  private samplesSinceCool = 0;
  private coolings = 0;
  private readonly tally = new Float64Array(3);
  /** Candidate lists, reused across epochs (they reach millions of entries). */
  private readonly scratch = new Scratch();

  constructor(options: ClassifierOptions) {
    if (!options || typeof options !== 'object') throw new ClassifierConfigError('options are required');
    if (options.ramRanges) {
      const { runs, dropped } = normaliseRuns(options.ramRanges);
      if (dropped > 0 || runs.count === 0) throw new ClassifierConfigError('ramRanges must be non-empty runs of whole, non-negative frames');
      if (runs.gpaPfn[runs.count - 1] + runs.pages[runs.count - 1] > PFN_LIMIT) {
        throw new ClassifierConfigError('ramRanges extend beyond the 52-bit physical address space');
      }
      this.ram = new RamMap(runs);
    }
    this.ramPages = this.ram ? this.ram.pages : Infinity;
    this.budget = this.checkBudget(options.dramBudgetPages);
    const rule = options.rule ?? 'evidence';
    if (rule !== 'evidence' && rule !== 'threshold') throw new ClassifierConfigError(`rule must be 'evidence' or 'threshold' (got ${String(rule)})`);
    this.rule = rule;
    this.coolEachIngest = options.coolEachIngest === true;
    // The evidence rule forgets by time (epochs); snapshot sources (coolEachIngest) already do.
    const evidence = rule === 'evidence' && !options.hugePages;
    const epochDefault = evidence && !this.coolEachIngest ? DEFAULTS.evidenceCoolEveryEpochs : DEFAULTS.coolEveryEpochs;
    this.coolEveryEpochs = requireInt(options.coolEveryEpochs, 'coolEveryEpochs', 0, epochDefault);
    this.coolEverySamples = requireInt(options.coolEverySamples, 'coolEverySamples', 0, evidence ? 0 : DEFAULTS.coolEverySamples);
    const confidence = options.confidence ?? DEFAULTS.confidence;
    if (!(confidence >= 0 && confidence <= 10)) throw new ClassifierConfigError(`confidence must be in [0, 10] (got ${confidence})`);
    this.confidence = confidence;
    const hysteresis = options.hysteresis ?? DEFAULTS.hysteresis;
    if (!(hysteresis >= 0 && hysteresis <= 10)) throw new ClassifierConfigError(`hysteresis must be in [0, 10] (got ${hysteresis})`);
    this.hysteresis = hysteresis;
    const positive = (v: number | undefined, name: string, fallback: number): number => {
      if (v === undefined) return fallback;
      if (!(v > 0 && Number.isFinite(v))) throw new ClassifierConfigError(`${name} must be a positive number (got ${v})`);
      return v;
    };
    const aps = options.accessesPerSample === undefined ? 0 : positive(options.accessesPerSample, 'accessesPerSample', 0);
    const gainNs = positive(options.dramGainNsPerAccess, 'dramGainNsPerAccess', DEFAULTS.dramGainNsPerAccess);
    const costNs = positive(options.migrationCostNsPerPage, 'migrationCostNsPerPage', DEFAULTS.migrationCostNsPerPage);
    // A page moved pays costNs once; it gains gainNs per access for as long as it stays. In
    // sample units per epoch: moving pays off when (rate gain in samples/epoch) x stay >= this.
    this.costPerPageSamples = aps > 0 ? costNs / (gainNs * aps) : 0;
    this.idleK = Math.min(IDLE_NEVER, requireInt(options.idleEpochsBeforeDemote, 'idleEpochsBeforeDemote', 1, DEFAULTS.idleEpochsBeforeDemote));
    const pageSize = requireInt(options.pageSizeBytes, 'pageSizeBytes', 1, DEFAULTS.pageSizeBytes);
    const migrationBytes = options.migrationBudgetBytesPerEpoch;
    if (migrationBytes !== undefined && !(migrationBytes >= 0)) {
      throw new ClassifierConfigError(`migrationBudgetBytesPerEpoch must be >= 0 (got ${migrationBytes})`);
    }
    this.migrationPages = migrationBytes === undefined || migrationBytes === Infinity ? Infinity : Math.floor(migrationBytes / pageSize);
    this.huge = Boolean(options.hugePages);
    const fraction = options.hugeHotFraction ?? DEFAULTS.hugeHotFraction;
    if (!(fraction > 0 && fraction <= 1)) throw new ClassifierConfigError(`hugeHotFraction must be in (0, 1] (got ${fraction})`);
    this.hugeHotFraction = fraction;
    this.minHotCount = Math.min(MAX_COUNT, requireInt(options.minHotCount, 'minHotCount', 1, DEFAULTS.minHotCount));
    this.maxRunPages = this.ram ? this.ram.pages : requireInt(options.maxRunPages, 'maxRunPages', 1, DEFAULTS.maxRunPages);
    const unknownTier = options.unknownTier ?? 'cxl';
    if (unknownTier !== 'dram' && unknownTier !== 'cxl') {
      throw new ClassifierConfigError(`unknownTier must be 'dram' or 'cxl' (got ${String(unknownTier)})`);
    }
    let maxChunks = PFN_LIMIT / PAGES_PER_CHUNK;
    if (this.ram) {
      maxChunks = 0;
      for (let i = 0; i < this.ram.count; i++) {
        maxChunks += Math.floor((this.ram.end[i] - 1) / PAGES_PER_CHUNK) - Math.floor(this.ram.start[i] / PAGES_PER_CHUNK) + 1;
      }
    }
    this.table = new PageTable(maxChunks, unknownTier === 'dram', this.ram);
  }

  /** Adds sample weights. Malformed or out-of-range runs are counted in rejectedRuns and skipped. */
  ingest(samples: PageSamples): void {
    const s = samples as Partial<PageSamples> | null | undefined;
    if (
      !s ||
      typeof s !== 'object' ||
      !(s.gpaPfn instanceof Float64Array) ||
      !(s.pages instanceof Uint32Array) ||
      !(s.reads instanceof Uint32Array) ||
      !(s.writes instanceof Uint32Array) ||
      !Number.isSafeInteger(s.count) ||
      (s.count as number) < 0
    ) {
      this.rejected++;
      return;
    }
    const gpaPfn = s.gpaPfn;
    const pagesOf = s.pages;
    const reads = s.reads;
    const writes = s.writes;
    let n = s.count as number;
    const available = Math.min(gpaPfn.length, pagesOf.length, reads.length, writes.length);
    if (n > available) {
      this.rejected += n - available;
      n = available;
    }
    if (this.coolEachIngest && n > 0) this.coolNow();
    const tally = this.tally;
    tally.fill(0);
    let row = 0;
    while (row < n) {
      const coolAfter = this.coolEverySamples > 0 ? this.coolEverySamples - this.samplesSinceCool : Infinity;
      const pagesBefore = tally[TALLY_PAGES];
      row = accumulate(this.table, this.ram, gpaPfn, pagesOf, reads, writes, row, n, this.maxRunPages, coolAfter, tally);
      if (this.coolEverySamples > 0) {
        this.samplesSinceCool += tally[TALLY_PAGES] - pagesBefore;
        if (this.samplesSinceCool >= this.coolEverySamples) {
          this.samplesSinceCool = 0;
          this.coolNow();
        }
      }
    }
    this.acceptedRuns += tally[TALLY_ACCEPTED];
    this.rejected += tally[TALLY_REJECTED];
    this.pageSamples += tally[TALLY_PAGES];
    this.epochPageSamples += tally[TALLY_PAGES];
  }

  /** Records where pages are (host placement reports, or the simulator after moves). */
  setPlacement(runs: PageRuns, tier: Tier): void {
    if (tier !== 'dram' && tier !== 'cxl') throw new ClassifierConfigError(`tier must be 'dram' or 'cxl' (got ${String(tier)})`);
    const r = runs as Partial<PageRuns> | null | undefined;
    if (!r || !(r.gpaPfn instanceof Float64Array) || !(r.pages instanceof Uint32Array) || !Number.isSafeInteger(r.count) || (r.count as number) < 0) {
      this.rejected++;
      return;
    }
    const n = Math.min(r.count as number, r.gpaPfn.length, r.pages.length);
    this.rejected += (r.count as number) - n;
    const table = this.table;
    const toDram = tier === 'dram';
    for (let i = 0; i < n; i++) {
      const pfn = r.gpaPfn[i];
      const runPages = r.pages[i];
      if (!(pfn >= 0 && pfn === Math.floor(pfn) && runPages >= 1 && pfn + runPages <= PFN_LIMIT)) {
        this.rejected++;
        continue;
      }
      if (this.ram !== undefined && !this.ram.contains(pfn, runPages)) {
        this.rejected++;
        continue;
      }
      let page = pfn;
      const end = pfn + runPages;
      while (page < end) {
        const key = Math.floor(page / PAGES_PER_CHUNK);
        const offset = page - key * PAGES_PER_CHUNK;
        const stop = Math.min(end - page, PAGES_PER_CHUNK - offset);
        const base = table.baseOf(key);
        if (base < 0 && stop === PAGES_PER_CHUNK) {
          table.setUntouchedTier(key, toDram ? DIR_DRAM : DIR_CXL);
        } else {
          const allocated = base < 0 ? table.chunkBase(key) : base;
          if (allocated < 0) {
            this.rejected++;
            break;
          }
          const first = allocated + offset;
          const state = table.state;
          let delta = 0;
          for (let p = first; p < first + stop; p++) {
            const word = state[p];
            const wasDram = word & FLAG_DRAM;
            if (toDram && !wasDram) {
              state[p] = word | FLAG_DRAM;
              delta++;
            } else if (!toDram && wasDram) {
              state[p] = word & ~FLAG_DRAM;
              delta--;
            }
          }
          table.trackedDramPages += delta;
        }
        page += stop;
      }
    }
  }

  /** Changes the DRAM grant; the next decide() demotes (coldest first) if DRAM is over it. */
  setBudget(dramBudgetPages: number): void {
    this.budget = this.checkBudget(dramBudgetPages);
  }

  /** One epoch: threshold, promotions and demotions (assumed carried out), then cooling. */
  decide(): EpochDecision {
    this.epoch++;
    this.samplesPerEpoch = this.epoch === 1 ? this.epochPageSamples : 0.5 * this.samplesPerEpoch + 0.5 * this.epochPageSamples;
    this.epochPageSamples = 0;
    let threshold = this.threshold();
    const hist = this.table.histogram;
    let hotPages = 0;
    for (let c = threshold; c <= MAX_COUNT; c++) hotPages += hist[c];
    const sampledPages = this.table.trackedPages - hist[0];
    const idleEpochs = this.effectiveIdleEpochs();
    // Epoch cooling rides on the decision's pass over the pages (no pass of its own).
    const cooled = this.coolEveryEpochs > 0 && this.epoch % this.coolEveryEpochs === 0;
    const window = this.windowEpochs();
    const regions = { uniform: 0, split: 0, hot: hotPages, threshold };
    const moves = this.huge
      ? this.selectChunks(threshold, idleEpochs, cooled)
      : this.rule === 'evidence'
        ? this.selectEvidence(window, cooled, regions)
        : this.selectPages(threshold, idleEpochs, cooled);
    if (cooled) {
      this.table.shiftHistogram();
      this.coolings++;
    }
    const { promote, demote } = this.emit(moves);
    if (this.rule === 'evidence' && !this.huge) {
      hotPages = regions.hot;
      threshold = regions.threshold;
    }
    return {
      epoch: this.epoch,
      promote: promote.finish(),
      demote: demote.finish(),
      stats: {
        thresholdCount: threshold,
        hotPages,
        sampledPages,
        dramPages: this.table.dramPages,
        budgetPages: this.budget,
        promotedPages: promote.pageCount,
        demotedPages: demote.pageCount,
        deferredPages: moves.deferred,
        rejectedRuns: this.rejected,
        fillPromotedPages: moves.filled,
        forcedDemotedPages: moves.forced,
        cooled,
        idleEpochs,
        windowEpochs: window,
        uniformRegions: regions.uniform,
        splitRegions: regions.split,
      },
    };
  }

  /** The hot set of the last decision (pages whose count reached its threshold); before
   *  the first decision, the pages whose count reaches the threshold that fits the budget. */
  hotRuns(): PageRuns {
    const threshold = this.threshold();
    const decided = this.epoch > 0;
    const table = this.table;
    const state = table.state;
    const builder = new RunBuilder();
    for (const chunk of this.chunksByPfn()) {
      const base = chunk * PAGES_PER_CHUNK;
      const firstPfn = table.chunkKeys[chunk] * PAGES_PER_CHUNK;
      for (let o = 0; o < PAGES_PER_CHUNK; o++) {
        const word = state[base + o];
        if (decided ? (word & FLAG_HOT) !== 0 : (word & COUNT_MASK) >= threshold) builder.add(firstPfn + o, 1);
      }
    }
    return builder.finish();
  }

  stats(): ClassifierStats {
    const table = this.table;
    const hist = table.histogram;
    const histogramLog2 = new Array<number>(17).fill(0);
    for (let c = 0; c <= MAX_COUNT; c++) histogramLog2[32 - Math.clz32(c)] += hist[c];
    const threshold = this.threshold();
    let hotPages = 0;
    for (let c = threshold; c <= MAX_COUNT; c++) hotPages += hist[c];
    const tracked = table.trackedPages;
    return {
      epoch: this.epoch,
      budgetPages: this.budget,
      dramPages: table.dramPages,
      trackedPages: tracked,
      sampledPages: tracked - hist[0],
      hotPages,
      thresholdCount: threshold,
      acceptedRuns: this.acceptedRuns,
      pageSamples: this.pageSamples,
      rejectedRuns: this.rejected,
      coolings: this.coolings,
      histogramLog2,
      pooledBytes: table.pooledBytes,
      overheadBytes: table.overheadBytes + this.regionIdle.byteLength + this.regionGap.byteLength,
      bytesPerTrackedPage: tracked === 0 ? 0 : (table.pooledBytes + table.overheadBytes + this.regionIdle.byteLength + this.regionGap.byteLength) / tracked,
    };
  }

  private checkBudget(pages: number): number {
    if (!Number.isSafeInteger(pages) || pages <= 0) {
      throw new ClassifierConfigError(`dramBudgetPages must be a positive integer (got ${pages})`);
    }
    if (pages > this.ramPages) {
      throw new ClassifierConfigError(`dramBudgetPages ${pages} is larger than guest RAM (${this.ramPages} pages)`);
    }
    return pages;
  }

  private coolNow(): void {
    this.coolings++;
    this.table.cool();
  }

  /** Epochs without a sample after which a page counts as cold. With sparse sampling a
   *  hot page goes several epochs unsampled, so K is stretched until a page sampled at the
   *  hot set's mean rate (samples per epoch / budget) is idle that long with ~5% chance (e^-3). */
  private effectiveIdleEpochs(): number {
    const perEpoch = this.samplesPerEpoch;
    const rate = perEpoch / this.budget; // samples per hot page per epoch, pessimistic
    const stretched = rate > 0 ? Math.ceil(3 / rate) : IDLE_NEVER;
    return Math.min(IDLE_NEVER, Math.max(this.idleK, stretched));
  }

  /** Lowest count c >= minHotCount with (pages with count >= c) <= budget; 65536 if none. */
  private threshold(): number {
    const hist = this.table.histogram;
    let above = 0;
    let threshold = MAX_COUNT + 1;
    for (let c = MAX_COUNT; c >= this.minHotCount; c--) {
      above += hist[c];
      if (above > this.budget) break;
      threshold = c;
    }
    return threshold;
  }

  /** Epochs of history a count stands for: cooling by halving every H epochs keeps an
   *  exponential window of H / ln 2 epochs; snapshot cooling (coolEachIngest) about one. */
  private windowEpochs(): number {
    if (this.coolEachIngest) return 1;
    if (this.coolEveryEpochs > 0) return Math.min(this.epoch, this.coolEveryEpochs / Math.LN2);
    return Math.max(1, this.epoch);
  }

  /** The evidence rule (4 KiB mode; derivation in docs/classifier.md). Per 2 MiB region, the
   *  pages' counts give a region rate m and the spread between pages beyond Poisson noise
   *  (tau^2); a page's rate estimate is the Gamma-Poisson posterior mean (c + beta*m)/(1 + beta),
   *  beta = m/tau^2: a uniform region (tau^2 <= 0) is one estimate for all its pages, a skewed
   *  one splits into per-page estimates. A count that should have produced a sample in the
   *  idle epochs since the last one, but did not, is capped at what zero samples allow (3
   *  per idle span, P(0) < 5%): a hot set that left is forgotten within epochs, whatever the
   *  cooling. A page moves only when the estimated gain beats the migration cost over its
   *  expected stay (the evidence window) plus `confidence` standard deviations of the noise
   *  of both estimates, so pages of equal heat never trade places at any sampling density. */
  private selectEvidence(window: number, cool: boolean, out: { uniform: number; split: number; hot: number; threshold: number }): Selection {
    const table = this.table;
    const state = table.state;
    const chunks = table.chunkCount;
    const end = table.trackedPages;
    const keyOf = this.scratch.uint16(4, end);
    const shrinkOf = this.scratch.float64(5, chunks);
    // Per region: relative variance of a bursty region's rate (1 / bursts in the window).
    const burstOf = this.scratch.float64(7, chunks);
    const observed = Math.max(1, Math.min(this.epoch, window));
    const keyHist = new Uint32Array(EVIDENCE_KEYS);
    const cxlHist = new Uint32Array(EVIDENCE_KEYS);
    const dramHist = new Uint32Array(EVIDENCE_KEYS);
    const maxKeyOf = this.scratch.uint16(6, chunks);
    const promoteItems = this.scratch.int32(0, end - table.trackedDramPages);
    const promoteKeys = this.scratch.uint32(1, end - table.trackedDramPages);
    const demoteItems = this.scratch.int32(2, table.trackedDramPages);
    const demoteKeys = this.scratch.uint32(3, table.trackedDramPages);
    let promoteCount = 0;
    let demoteCount = 0;
    const idleCap = 3 * window; // samples a window may hold for a page idle one epoch
    const memo = new Uint16Array(KEY_MEMO);
    this.growRegionHistory(chunks);
    const regionIdle = this.regionIdle;
    const regionGap = this.regionGap;
    for (let chunk = 0; chunk < chunks; chunk++) {
      const base = chunk * PAGES_PER_CHUNK;
      let n = 0;
      let sum = 0;
      let sumSq = 0;
      let minIdle = IDLE_NEVER;
      let lastSampled = IDLE_NEVER; // epochs since any page's last sample, counts cooled or not
      let recent = 0;
      let before = 0;
      let dramIn = 0;
      for (let p = base; p < base + PAGES_PER_CHUNK; p++) {
        const word = state[p];
        if (word === IDLE_NEVER_WORD) {
          n++;
          continue;
        }
        if (word & FLAG_NOT_RAM) continue;
        n++;
        if (word & FLAG_DRAM) dramIn++;
        const c = word & COUNT_MASK;
        const i = (word & IDLE_FIELD) >>> IDLE_SHIFT;
        if (i < lastSampled) lastSampled = i;
        if (c === 0) continue;
        sum += c;
        sumSq += c * c;
        if (i < minIdle) minIdle = i;
        if (i === 0) recent++;
        else if (i === 1) before++;
      }
      let m = n > 0 ? sum / n : 0;
      // Spread between pages beyond Poisson noise, trusted only when it is 2 standard errors
      // of a Poisson sample variance ((m + 2m^2)/n) above zero: sparse samples of a uniform
      // region look skewed by chance, and splitting on that chance is the one-beats-zero coin flip.
      const excess = n > 0 ? sumSq / n - m * m - m : 0;
      const tau2 = n > 0 && excess > 2 * Math.sqrt((m + 2 * m * m) / n) ? excess : 0;
      // Burst history: a region swept in bursts (graph edge arrays) is idle between them by
      // design; its estimate may fall only once it has been idle longer than its last gap.
      // (Snapshot sources, one estimate per snapshot, keep no history: a region absent from a
      // snapshot had no access in it, which is not a burst gap.)
      // The top bit marks a gap known only from a first sample (the run's start before it):
      // it holds falls but does not say the region's rate is uncertain.
      const raw = regionGap[chunk];
      const idleBefore = regionIdle[chunk];
      const gap = this.coolEachIngest ? 0 : Math.min(GAP_MASK, nextRegionGap(raw & GAP_MASK, idleBefore, lastSampled, this.epoch - 1));
      const firstGap = gap > 0 && lastSampled === 0 ? idleBefore >= IDLE_NEVER : gap > 0 && (raw & GAP_FIRST) !== 0;
      regionGap[chunk] = firstGap ? gap | GAP_FIRST : gap;
      regionIdle[chunk] = lastSampled;
      const hold = fallHoldEpochs(gap);
      const mayFall = minIdle > hold;
      // Region staleness: the whole region expected > 3 samples since its last one.
      if (minIdle > 0 && mayFall && m * n > idleCap / minIdle) m = idleCap / (minIdle * n);
      else if (n > 0 && window > 1) m = recentRegionRate(m, n, recent, before, window, mayFall || hold === 0);
      // beta: prior strength in windows; Infinity = the region estimate alone.
      const beta = tau2 > 0 && m > 0 ? m / tau2 : Infinity;
      shrinkOf[chunk] = beta;
      // A region swept in bursts every gap + 1 epochs has seen observed / (gap + 1) of them:
      // its rate is known to 1/sqrt(bursts), not to the Poisson noise of its many samples.
      burstOf[chunk] = gap > 0 && !firstGap ? Math.min(1, (gap + 1) / observed) : 0;
      const regionKey = estimateKey(m);
      memo.fill(0xffff);
      let chunkMax = 0;
      if (sum > 0) {
        if (beta === Infinity) out.uniform++;
        else out.split++;
      }
      if (beta === Infinity && n === PAGES_PER_CHUNK) {
        // A uniform region: one estimate for all its pages; only DRAM pages and pages with
        // state to age need a look.
        keyOf.fill(regionKey, base, base + PAGES_PER_CHUNK);
        keyHist[regionKey] += PAGES_PER_CHUNK;
        cxlHist[regionKey] += PAGES_PER_CHUNK - dramIn;
        maxKeyOf[chunk] = regionKey;
        for (let p = base; p < base + PAGES_PER_CHUNK; p++) {
          const word = state[p];
          if (word === IDLE_NEVER_WORD) continue;
          if (word & FLAG_DRAM) {
            demoteItems[demoteCount] = p;
            demoteKeys[demoteCount++] = regionKey;
            dramHist[regionKey]++;
          }
          const next = nextWord(word, word & COUNT_MASK, (word & IDLE_FIELD) >>> IDLE_SHIFT, MAX_COUNT + 1, cool);
          if (next !== word) state[p] = next;
        }
        continue;
      }
      // Never-sampled CXL pages (most of a sparse region) all get the prior's estimate.
      const neverKey = estimateKey((beta * m) / (1 + beta));
      let never = 0;
      for (let p = base; p < base + PAGES_PER_CHUNK; p++) {
        const word = state[p];
        if (word === IDLE_NEVER_WORD) {
          keyOf[p] = neverKey;
          never++;
          continue;
        }
        if (word & FLAG_NOT_RAM) {
          keyOf[p] = 0;
          continue;
        }
        const c = word & COUNT_MASK;
        const i = (word & IDLE_FIELD) >>> IDLE_SHIFT;
        let key: number;
        if (beta === Infinity) key = regionKey;
        else if (c > 0 && i > hold && c * i > idleCap) key = estimateKey((idleCap / i + beta * m) / (1 + beta));
        else if (c < KEY_MEMO) {
          // Sparse counts repeat: one log per distinct small count per region.
          key = memo[c];
          if (key === 0xffff) key = memo[c] = estimateKey((c + beta * m) / (1 + beta));
        } else key = estimateKey((c + beta * m) / (1 + beta));
        keyOf[p] = key;
        keyHist[key]++;
        if (key > chunkMax) chunkMax = key;
        if (word & FLAG_DRAM) {
          demoteItems[demoteCount] = p;
          demoteKeys[demoteCount++] = key;
          dramHist[key]++;
        } else cxlHist[key]++;
        const next = nextWord(word, c, i, MAX_COUNT + 1, cool);
        if (next !== word) state[p] = next;
      }
      if (never > 0) {
        keyHist[neverKey] += never;
        cxlHist[neverKey] += never;
        if (neverKey > chunkMax) chunkMax = neverKey;
      }
      maxKeyOf[chunk] = chunkMax;
    }
    // The hot set: the budget's worth of the highest estimates (ties all in or all out).
    let above = 0;
    let hotKey = EVIDENCE_KEYS;
    for (let k = EVIDENCE_KEYS - 1; k >= 1; k--) {
      if (above + keyHist[k] > this.budget) break;
      above += keyHist[k];
      hotKey = k;
    }
    out.hot = above;
    out.threshold = hotKey >= EVIDENCE_KEYS ? MAX_COUNT + 1 : Math.max(1, Math.round(keyEstimate(hotKey)));
    // At most `budget` promotions: only CXL pages among the budget's worth of the highest
    // estimates can be candidates, so the gathering pass lists those alone (the work then
    // follows the hot set, not the tracked memory, for the sort and the selection).
    // Fewer still can move: free DRAM, plus DRAM pages estimated below the best CXL page
    // (a swap needs a colder page to leave); in a settled epoch that is next to nothing.
    let maxCxlKey = EVIDENCE_KEYS - 1;
    while (maxCxlKey > 0 && cxlHist[maxCxlKey] === 0) maxCxlKey--;
    let swappable = table.untouchedDram.size * PAGES_PER_CHUNK;
    for (let k = 0; k < maxCxlKey; k++) swappable += dramHist[k];
    const movable = Math.min(this.budget, Math.max(0, this.budget - table.dramPages) + swappable);
    // The bucket where that runs out is taken only as far as it (address order).
    let cut = 1;
    let tiesLeft = Infinity;
    for (let k = EVIDENCE_KEYS - 1, above = 0; k >= 1; k--) {
      if (above + cxlHist[k] >= movable) {
        cut = k;
        tiesLeft = movable - above;
        break;
      }
      above += cxlHist[k];
    }
    const flagFrom = Math.min(hotKey, cut);
    for (let chunk = 0; chunk < chunks; chunk++) {
      if (maxKeyOf[chunk] < flagFrom) continue;
      const base = chunk * PAGES_PER_CHUNK;
      for (let p = base; p < base + PAGES_PER_CHUNK; p++) {
        const key = keyOf[p];
        if (key < flagFrom) continue;
        if (key >= hotKey) state[p] |= FLAG_HOT;
        if (key >= cut && (state[p] & (FLAG_DRAM | FLAG_NOT_RAM)) === 0) {
          if (key === cut) {
            if (tiesLeft <= 0) continue;
            tiesLeft--;
          }
          promoteItems[promoteCount] = p;
          promoteKeys[promoteCount++] = key;
        }
      }
    }

    const promoteSortedKeys = new Uint32Array(promoteCount);
    const promoteOrder = countingSort(promoteItems, promoteKeys, promoteCount, EVIDENCE_KEYS, true, promoteSortedKeys);
    const listAll = table.dramPages > this.budget;
    const demoteNeeded = listAll ? demoteCount : Math.min(demoteCount, promoteCount);
    const demoteSortedKeys = new Uint32Array(demoteNeeded);
    const demoteOrder = countingSort(demoteItems, demoteKeys, demoteCount, EVIDENCE_KEYS, false, demoteSortedKeys, demoteNeeded);

    const picked = new Picker(this.budget, table.dramPages, this.migrationPages, [...table.untouchedDram].sort((a, b) => a - b));
    // Variance of a page's estimate: Poisson noise shrunk by the prior, or the region mean's.
    const variance = (p: number, e: number): number => {
      const beta = shrinkOf[p >>> CHUNK_SHIFT];
      return beta === Infinity ? e / PAGES_PER_CHUNK : e / (1 + beta);
    };
    // Moving a page pays off when its rate gain (samples per window) over a stay of one
    // window beats the cost: gain/window * window >= cost -> gain >= cost.
    const costOne = this.costPerPageSamples;
    let demoteCursor = 0;
    while (picked.overBudget()) {
      if (picked.demoteUntouched()) continue;
      if (demoteCursor >= demoteNeeded) break;
      demoteCursor++;
      picked.demote(1);
    }
    const forced = picked.demoted;
    const promote = new Int32Array(Math.min(promoteCount, this.budget));
    let promoted = 0;
    let deferred = 0;
    let filled = 0;
    const z = this.confidence;
    for (let k = 0; k < promoteCount; k++) {
      const p = promoteOrder[k];
      const e = keyEstimate(promoteSortedKeys[k]);
      if (picked.movesLeft < 1) {
        deferred += promoteCount - k;
        break;
      }
      if (picked.free >= 1) {
        // Free DRAM: any page whose gain pays for its own move.
        if (e <= costOne) break;
        picked.promote(1);
        promote[promoted++] = p;
        filled++;
        continue;
      }
      if (picked.movesLeft < 2) {
        deferred += promoteCount - k;
        break;
      }
      // Swap with the coldest DRAM page (a never-sampled DRAM chunk first: estimate 0).
      if (picked.demoteUntouched()) {
        k--;
        continue;
      }
      if (demoteCursor >= demoteNeeded) break;
      const q = demoteOrder[demoteCursor];
      const eq = keyEstimate(demoteSortedKeys[demoteCursor]);
      const bp = burstOf[p >>> CHUNK_SHIFT];
      const bq = burstOf[q >>> CHUNK_SHIFT];
      const burst = bp + bq > 0 ? Math.sqrt(e * e * bp + eq * eq * bq) : 0;
      // A page of a split region known from one sample is the sparse-sampling coin flip: its
      // swap must clear one standard deviation of the noise whatever `confidence` says.
      const zp = z < SINGLE_SAMPLE_Z && shrinkOf[p >>> CHUNK_SHIFT] !== Infinity && (state[p] & COUNT_MASK) <= 1 ? SINGLE_SAMPLE_Z : z;
      const margin = 2 * costOne + zp * Math.sqrt(variance(p, e) + variance(q, eq)) + burst + this.hysteresis * eq;
      if (e - eq <= margin) break; // later candidates are colder, later DRAM pages hotter
      demoteCursor++;
      picked.demote(1);
      picked.promote(1);
      promote[promoted++] = p;
    }
    return { promote: promote.subarray(0, promoted), demote: demoteOrder.subarray(0, demoteCursor), untouchedDemoted: picked.untouchedDemoted, deferred, filled, forced };
  }

  /** 4 KiB mode: candidate lists in one pass, counting-sorted, then the budgeted selection.
   *  Hysteresis is pairwise: a hot page displaces a DRAM page only when it is at least
   *  twice as hot (or the DRAM page has been idle for K epochs), so pages of similar heat
   *  never trade places, while a new hot set displaces a stale one at once. */
  private selectPages(threshold: number, idleK: number, cool: boolean): Selection {
    const table = this.table;
    const hist = table.histogram;
    const state = table.state;
    const warmFloor = Math.max(1, Math.ceil(threshold / 2));
    let candidatesMax = 0;
    for (let c = warmFloor; c <= MAX_COUNT; c++) candidatesMax += hist[c];
    let maxCount = MAX_COUNT;
    while (maxCount > 0 && hist[maxCount] === 0) maxCount--;
    const promoteItems = this.scratch.int32(0, candidatesMax);
    const promoteKeys = this.scratch.uint32(1, candidatesMax);
    // Only a budget cut can demote a page that no candidate is twice as hot as.
    const listAll = table.dramPages > this.budget;
    const demoteItems = this.scratch.int32(2, table.trackedDramPages);
    const demoteKeys = this.scratch.uint32(3, table.trackedDramPages);
    let promoteCount = 0;
    let hotCount = 0;
    let demoteCount = 0;
    const end = table.trackedPages;
    for (let p = 0; p < end; p++) {
      const word = state[p];
      if (word === IDLE_NEVER_WORD) continue; // never sampled, in CXL: nothing to do
      const c = word & COUNT_MASK;
      const i = (word & IDLE_FIELD) >>> IDLE_SHIFT;
      if (word & FLAG_DRAM) {
        // Idle for K epochs counts as cold whatever the (stale) count says.
        const key = i >= idleK ? 0 : c;
        if (listAll || 2 * key < maxCount) {
          demoteItems[demoteCount] = p;
          demoteKeys[demoteCount++] = key;
        }
      } else if (c >= warmFloor) {
        if (c >= threshold) hotCount++;
        promoteItems[promoteCount] = p;
        promoteKeys[promoteCount++] = c;
      }
      const next = nextWord(word, c, i, threshold, cool);
      if (next !== word) state[p] = next;
    }
    // Hottest first (the hot ones are the first hotCount), coldest first.
    const promoteSortedKeys = new Uint32Array(promoteCount);
    const promoteOrder = countingSort(promoteItems, promoteKeys, promoteCount, MAX_COUNT + 1, true, promoteSortedKeys);
    // Without a budget cut, each demotion makes room for one promotion: at most
    // promoteCount of the coldest are ever needed (none in a settled epoch).
    const demoteNeeded = listAll ? demoteCount : Math.min(demoteCount, promoteCount);
    const demoteSortedKeys = new Uint32Array(demoteNeeded);
    const demoteOrder = countingSort(demoteItems, demoteKeys, demoteCount, MAX_COUNT + 1, false, demoteSortedKeys, demoteNeeded);
    demoteCount = demoteNeeded;

    const picked = new Picker(this.budget, table.dramPages, this.migrationPages, [...table.untouchedDram].sort((a, b) => a - b));
    const promote = new Int32Array(Math.min(promoteCount, this.budget));
    let promoted = 0;
    let demoteCursor = 0;
    /** Demotes the coldest DRAM page(s) if they are colder than half of `incoming`. */
    const demoteOne = (incoming: number): boolean => {
      if (picked.demoteUntouched()) return true;
      if (demoteCursor >= demoteCount || 2 * demoteSortedKeys[demoteCursor] >= incoming) return false;
      demoteCursor++;
      picked.demote(1);
      return true;
    };
    while (picked.overBudget() && demoteOne(Infinity));
    const forced = picked.demoted;
    let deferred = 0;
    let filled = 0;
    for (let k = 0; k < promoteCount; k++) {
      const hot = k < hotCount;
      // Warm pages only go into free DRAM; hot ones may swap with clearly colder pages.
      if (!hot && (picked.free < 1 || picked.movesLeft < 1)) break;
      if (picked.free < 1 && picked.movesLeft >= 2 && !demoteOne(promoteSortedKeys[k])) {
        // Later candidates are colder and later DRAM pages hotter: no more swaps.
        deferred += hotCount - k;
        break;
      }
      if (picked.free < 1 || picked.movesLeft < 1) {
        deferred++;
        continue;
      }
      picked.promote(1);
      promote[promoted++] = promoteOrder[k];
      if (!hot) filled++;
    }
    return { promote: promote.subarray(0, promoted), demote: demoteOrder.subarray(0, demoteCursor), untouchedDemoted: picked.untouchedDemoted, deferred, filled, forced };
  }

  /** 2 MiB mode: whole chunks move; a chunk is promoted when most of its sampled pages are
   *  hot, and displaces a DRAM chunk less than half as hot (mean count of sampled pages),
   *  or one idle for K epochs. */
  private selectChunks(threshold: number, idleK: number, cool: boolean): Selection {
    const table = this.table;
    const state = table.state;
    const chunks = table.chunkCount;
    const hotOf = new Uint16Array(chunks);
    const heatOf = new Uint16Array(chunks);
    const dramOf = new Uint16Array(chunks);
    const ramOf = new Uint16Array(chunks);
    const promoteItems = new Int32Array(chunks);
    const promoteKeys = new Uint32Array(chunks);
    const demoteItems = new Int32Array(chunks);
    const demoteKeys = new Uint32Array(chunks);
    let promoteCount = 0;
    let demoteCount = 0;
    for (let chunk = 0; chunk < chunks; chunk++) {
      let hot = 0;
      let sampled = 0;
      let dramPages = 0;
      let recent = 0;
      let countSum = 0;
      let outsidePages = 0;
      const base = chunk * PAGES_PER_CHUNK;
      for (let p = base; p < base + PAGES_PER_CHUNK; p++) {
        const word = state[p];
        if (word === IDLE_NEVER_WORD) continue;
        const c = word & COUNT_MASK;
        if (c >= threshold) hot++;
        if (c > 0) sampled++;
        countSum += c;
        if (word & FLAG_DRAM) dramPages++;
        if (word & FLAG_NOT_RAM) outsidePages++;
        const i = (word & IDLE_FIELD) >>> IDLE_SHIFT;
        if (i < idleK) recent++;
        const next = nextWord(word, c, i, threshold, cool);
      if (next !== word) state[p] = next;
      }
      hotOf[chunk] = hot;
      dramOf[chunk] = dramPages;
      ramOf[chunk] = PAGES_PER_CHUNK - outsidePages;
      // Heat: the mean count of the chunk's sampled pages. Hot-page counts alone are all or
      // nothing under region samples (every page of a huge page has the same count), which
      // made chunks at the threshold swap back and forth on noise.
      const heat = sampled === 0 ? 0 : Math.round(countSum / sampled);
      heatOf[chunk] = heat;
      const mostlyHot = hot > 0 && hot >= this.hugeHotFraction * sampled;
      if (mostlyHot && dramPages < PAGES_PER_CHUNK - outsidePages) {
        promoteItems[promoteCount] = chunk;
        promoteKeys[promoteCount++] = heat;
      } else if (dramPages > 0) {
        // Every other chunk holding DRAM is listed, so a budget cut can always be met.
        demoteItems[demoteCount] = chunk;
        demoteKeys[demoteCount++] = recent === 0 ? 0 : heat;
      }
    }
    const promoteOrder = countingSort(promoteItems, promoteKeys, promoteCount, MAX_COUNT + 1, true);
    const demoteSortedKeys = new Uint32Array(demoteCount);
    const demoteOrder = countingSort(demoteItems, demoteKeys, demoteCount, MAX_COUNT + 1, false, demoteSortedKeys);
    const picked = new Picker(this.budget, table.dramPages, this.migrationPages, [...table.untouchedDram].sort((a, b) => a - b));
    const demoteChunks: number[] = [];
    const promoteChunks: number[] = [];
    let demoteCursor = 0;
    const demoteOne = (incoming: number, maxPages: number): boolean => {
      if (maxPages >= PAGES_PER_CHUNK && picked.demoteUntouched()) return true;
      if (demoteCursor >= demoteCount || 2 * demoteSortedKeys[demoteCursor] >= incoming) return false;
      const chunk = demoteOrder[demoteCursor];
      if (dramOf[chunk] > maxPages) return false;
      demoteCursor++;
      demoteChunks.push(chunk);
      picked.demote(dramOf[chunk]);
      return true;
    };
    while (picked.overBudget() && demoteOne(Infinity, Infinity));
    if (picked.overBudget()) {
      // Only chunks being promoted are left holding DRAM: give up their DRAM pages too.
      const partial = promoteOrder.slice().reverse().filter((chunk) => dramOf[chunk] > 0);
      for (const chunk of partial) {
        if (!picked.overBudget()) break;
        demoteChunks.push(chunk);
        picked.demote(dramOf[chunk]);
        hotOf[chunk] = 0;
        dramOf[chunk] = ramOf[chunk]; // never promoted below
      }
    }
    const forced = picked.demoted;
    let deferred = 0;
    for (let k = 0; k < promoteCount; k++) {
      const chunk = promoteOrder[k];
      const cost = ramOf[chunk] - dramOf[chunk];
      if (cost <= 0) continue;
      while (picked.free < cost && picked.movesLeft > cost && demoteOne(heatOf[chunk], picked.movesLeft - cost));
      if (picked.free < cost || picked.movesLeft < cost) {
        deferred += hotOf[chunk];
        continue;
      }
      picked.promote(cost);
      promoteChunks.push(chunk);
    }
    return {
      promote: this.pagesOfChunks(promoteChunks, false),
      demote: this.pagesOfChunks(demoteChunks, true),
      untouchedDemoted: picked.untouchedDemoted,
      deferred,
      filled: 0,
      forced,
    };
  }

  /** Page indexes of the listed chunks that are (inDram) or are not in DRAM. */
  private pagesOfChunks(chunks: number[], inDram: boolean): Int32Array {
    const state = this.table.state;
    const out = new Int32Array(chunks.length * PAGES_PER_CHUNK);
    let n = 0;
    for (const chunk of chunks) {
      const base = chunk * PAGES_PER_CHUNK;
      for (let p = base; p < base + PAGES_PER_CHUNK; p++) {
        const word = state[p];
        if ((word & FLAG_NOT_RAM) === 0 && ((word & FLAG_DRAM) !== 0) === inDram) out[n++] = p;
      }
    }
    return out.subarray(0, n);
  }

  /** Applies the moves to the tier bits and turns them into pfn-ordered, coalesced runs. */
  private emit(moves: Selection): { promote: RunBuilder; demote: RunBuilder } {
    const table = this.table;
    table.trackedDramPages += moves.promote.length - moves.demote.length;
    for (const key of moves.untouchedDemoted) table.setUntouchedTier(key, DIR_CXL);
    const rank = this.chunkRanks();
    return {
      promote: this.runsOf(moves.promote, rank, [], true),
      demote: this.runsOf(moves.demote, rank, moves.untouchedDemoted, false),
    };
  }

  /** Rank of each allocated chunk in pfn order (cached until a chunk is added). */
  private chunkRanks(): Uint32Array {
    if (this.rankCache === undefined || this.rankCache.length !== this.table.chunkCount) {
      const order = this.chunksByPfn();
      const rank = new Uint32Array(order.length);
      order.forEach((chunk, i) => (rank[chunk] = i));
      this.rankCache = rank;
    }
    return this.rankCache;
  }

  private rankCache: Uint32Array | undefined;

  /** Per 2 MiB region (by chunk index): epochs idle at the last decision and the idle gap
   *  between its recent bursts (nextRegionGap): 2 bytes per 512 pages. */
  private regionIdle = new Uint8Array(0);
  private regionGap = new Uint8Array(0);

  private growRegionHistory(chunks: number): void {
    if (this.regionIdle.length >= chunks) return;
    const size = Math.max(64, chunks, Math.ceil(this.regionIdle.length * 1.5));
    const idle = new Uint8Array(size).fill(IDLE_NEVER);
    idle.set(this.regionIdle);
    const gap = new Uint8Array(size);
    gap.set(this.regionGap);
    this.regionIdle = idle;
    this.regionGap = gap;
  }

  /** Page indexes -> coalesced pfn runs: an LSD radix sort by (chunk rank, offset), then a
   *  merge with whole never-sampled chunks (sorted keys). O(n + chunks). Sets or clears
   *  the DRAM bit on the way, in sorted order (page-contiguous, unlike the selection order). */
  private runsOf(pages: Int32Array, rank: Uint32Array, wholeChunkKeys: number[], toDram: boolean): RunBuilder {
    const n = pages.length;
    const byOffset = new Int32Array(n);
    const sorted = new Int32Array(n);
    const offsetBuckets = new Uint32Array(PAGES_PER_CHUNK + 1);
    for (let i = 0; i < n; i++) offsetBuckets[(pages[i] & (PAGES_PER_CHUNK - 1)) + 1]++;
    for (let b = 1; b <= PAGES_PER_CHUNK; b++) offsetBuckets[b] += offsetBuckets[b - 1];
    for (let i = 0; i < n; i++) byOffset[offsetBuckets[pages[i] & (PAGES_PER_CHUNK - 1)]++] = pages[i];
    const rankBuckets = new Uint32Array(rank.length + 1);
    for (let i = 0; i < n; i++) rankBuckets[rank[byOffset[i] >>> CHUNK_SHIFT] + 1]++;
    for (let b = 1; b <= rank.length; b++) rankBuckets[b] += rankBuckets[b - 1];
    for (let i = 0; i < n; i++) sorted[rankBuckets[rank[byOffset[i] >>> CHUNK_SHIFT]]++] = byOffset[i];
    const keys = this.table.chunkKeys;
    const state = this.table.state;
    const builder = new RunBuilder();
    let w = 0;
    for (let i = 0; i < n; i++) {
      const p = sorted[i];
      state[p] = toDram ? state[p] | FLAG_DRAM : state[p] & ~FLAG_DRAM;
      const pfn = keys[p >>> CHUNK_SHIFT] * PAGES_PER_CHUNK + (p & (PAGES_PER_CHUNK - 1));
      while (w < wholeChunkKeys.length && wholeChunkKeys[w] * PAGES_PER_CHUNK < pfn) builder.add(wholeChunkKeys[w++] * PAGES_PER_CHUNK, PAGES_PER_CHUNK);
      builder.add(pfn, 1);
    }
    while (w < wholeChunkKeys.length) builder.add(wholeChunkKeys[w++] * PAGES_PER_CHUNK, PAGES_PER_CHUNK);
    return builder;
  }

  /** Allocated chunk indexes sorted by guest frame. */
  private chunksByPfn(): number[] {
    const keys = this.table.chunkKeys;
    const order = Array.from({ length: this.table.chunkCount }, (_, i) => i);
    return order.sort((a, b) => keys[a] - keys[b]);
  }
}
