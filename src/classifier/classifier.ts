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
  DIR_CXL,
  DIR_DRAM,
  FLAG_DEMOTE,
  FLAG_DRAM,
  FLAG_PROMOTE,
  IDLE_NEVER,
  MAX_COUNT,
  PAGES_PER_CHUNK,
  PFN_LIMIT,
  PageTable,
} from './pagetable.js';
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
  /** A DRAM page with no sample for this many epochs may be demoted whatever its count (default 8). */
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
}

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
  /** Hot pages in CXL left there (no room that may be taken, or migration budget spent). */
  deferredPages: number;
  /** Sample/placement runs rejected since the start. */
  rejectedRuns: number;
  /** Of promotedPages, warm pages placed into otherwise free DRAM. */
  fillPromotedPages: number;
  /** Of demotedPages, pages demoted because DRAM exceeded the budget (after setBudget). */
  forcedDemotedPages: number;
  /** Whether counts were halved at the end of this epoch. */
  cooled: boolean;
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
  /** Directory, chunk keys, histogram. */
  overheadBytes: number;
  /** (pooled + overhead) / tracked pages. */
  bytesPerTrackedPage: number;
}

const DEFAULTS = {
  coolEveryEpochs: 0,
  coolEverySamples: 2_000_000,
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
  private readonly ram: PageRuns | undefined;
  private readonly ramEnd: Float64Array;
  private readonly ramPages: number;
  private budget: number;
  private readonly coolEveryEpochs: number;
  private readonly coolEverySamples: number;
  private readonly idleK: number;
  private readonly migrationPages: number;
  private readonly huge: boolean;
  private readonly hugeHotFraction: number;
  private readonly minHotCount: number;
  private readonly maxRunPages: number;
  private epoch = 0;
  private rejected = 0;
  private acceptedRuns = 0;
  private pageSamples = 0;
  private samplesSinceCool = 0;
  private coolings = 0;
  private pendingCool = false;
  private ramCursor = 0;

  constructor(options: ClassifierOptions) {
    if (!options || typeof options !== 'object') throw new ClassifierConfigError('options are required');
    if (options.ramRanges) {
      const { runs, dropped } = normaliseRuns(options.ramRanges);
      if (dropped > 0 || runs.count === 0) throw new ClassifierConfigError('ramRanges must be non-empty runs of whole, non-negative frames');
      if (runs.gpaPfn[runs.count - 1] + runs.pages[runs.count - 1] > PFN_LIMIT) {
        throw new ClassifierConfigError('ramRanges extend beyond the 52-bit physical address space');
      }
      this.ram = runs;
    }
    this.ramEnd = new Float64Array(this.ram?.count ?? 0);
    let ramPages = 0;
    for (let i = 0; i < (this.ram?.count ?? 0); i++) {
      ramPages += this.ram!.pages[i];
      this.ramEnd[i] = this.ram!.gpaPfn[i] + this.ram!.pages[i];
    }
    this.ramPages = this.ram ? ramPages : Infinity;
    this.budget = this.checkBudget(options.dramBudgetPages);
    this.coolEveryEpochs = requireInt(options.coolEveryEpochs, 'coolEveryEpochs', 0, DEFAULTS.coolEveryEpochs);
    this.coolEverySamples = requireInt(options.coolEverySamples, 'coolEverySamples', 0, DEFAULTS.coolEverySamples);
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
    this.maxRunPages = this.ram ? ramPages : requireInt(options.maxRunPages, 'maxRunPages', 1, DEFAULTS.maxRunPages);
    const unknownTier = options.unknownTier ?? 'cxl';
    if (unknownTier !== 'dram' && unknownTier !== 'cxl') {
      throw new ClassifierConfigError(`unknownTier must be 'dram' or 'cxl' (got ${String(unknownTier)})`);
    }
    let maxChunks = PFN_LIMIT / PAGES_PER_CHUNK;
    if (this.ram) {
      maxChunks = 0;
      for (let i = 0; i < this.ram.count; i++) {
        maxChunks += Math.floor((this.ramEnd[i] - 1) / PAGES_PER_CHUNK) - Math.floor(this.ram.gpaPfn[i] / PAGES_PER_CHUNK) + 1;
      }
    }
    this.table = new PageTable(maxChunks, unknownTier === 'dram');
  }

  /** Adds sample weights. Malformed or out-of-range runs are counted in rejectedRuns and skipped. */
  ingest(samples: PageSamples): void {
    if (this.pendingCool) this.coolNow();
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
    const table = this.table;
    const hist = table.histogram;
    let counts = table.counts;
    let idle = table.idle;
    const maxRunPages = this.maxRunPages;
    const coolEverySamples = this.coolEverySamples;
    let lastKey = -1;
    let lastBase = 0;
    for (let i = 0; i < n; i++) {
      const pfn = gpaPfn[i];
      const runPages = pagesOf[i];
      // NaN, fractions, negatives, empty and absurd runs are all rejected here.
      if (!(pfn >= 0 && pfn === Math.floor(pfn) && runPages >= 1 && runPages <= maxRunPages && pfn + runPages <= PFN_LIMIT)) {
        this.rejected++;
        continue;
      }
      if (this.ram !== undefined && !this.inRam(pfn, runPages)) {
        this.rejected++;
        continue;
      }
      this.acceptedRuns++;
      this.pageSamples += runPages;
      let weight = reads[i] + writes[i];
      if (weight === 0) continue;
      if (weight > MAX_COUNT) weight = MAX_COUNT;
      let page = pfn;
      const end = pfn + runPages;
      while (page < end) {
        const key = Math.floor(page / PAGES_PER_CHUNK);
        if (key !== lastKey) {
          const before = table.counts;
          lastBase = table.chunkBase(key);
          lastKey = key;
          if (table.counts !== before) {
            counts = table.counts;
            idle = table.idle;
          }
        }
        const offset = page - key * PAGES_PER_CHUNK;
        const stop = Math.min(end - page, PAGES_PER_CHUNK - offset);
        const first = lastBase + offset;
        for (let p = first; p < first + stop; p++) {
          const old = counts[p];
          let next = old + weight;
          if (next > MAX_COUNT) next = MAX_COUNT;
          if (next !== old) {
            hist[old]--;
            hist[next]++;
            counts[p] = next;
          }
          idle[p] = 0;
        }
        page += stop;
      }
      if (coolEverySamples > 0) {
        this.samplesSinceCool += runPages;
        if (this.samplesSinceCool >= coolEverySamples) {
          this.samplesSinceCool = 0;
          this.coolNow();
        }
      }
    }
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
      if (this.ram !== undefined && !this.inRam(pfn, runPages)) {
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
          const first = (base < 0 ? table.chunkBase(key) : base) + offset;
          const flags = table.flags;
          let delta = 0;
          for (let p = first; p < first + stop; p++) {
            const wasDram = flags[p] & FLAG_DRAM;
            if (toDram && !wasDram) {
              flags[p] |= FLAG_DRAM;
              delta++;
            } else if (!toDram && wasDram) {
              flags[p] &= ~FLAG_DRAM;
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
    if (this.pendingCool) this.coolNow();
    this.epoch++;
    const threshold = this.threshold();
    const moves = this.huge ? this.selectChunks(threshold) : this.selectPages(threshold);
    const { promote, demote } = this.emit(moves.untouchedDemoted);
    let hotPages = 0;
    const hist = this.table.histogram;
    for (let c = threshold; c <= MAX_COUNT; c++) hotPages += hist[c];
    let cooled = false;
    if (this.coolEveryEpochs > 0 && this.epoch % this.coolEveryEpochs === 0) {
      // Applied lazily (next ingest/decide) so hotRuns() still shows this epoch's hot set.
      this.pendingCool = true;
      cooled = true;
    }
    return {
      epoch: this.epoch,
      promote: promote.finish(),
      demote: demote.finish(),
      stats: {
        thresholdCount: threshold,
        hotPages,
        sampledPages: this.table.trackedPages - hist[0],
        dramPages: this.table.dramPages,
        budgetPages: this.budget,
        promotedPages: promote.pageCount,
        demotedPages: demote.pageCount,
        deferredPages: moves.deferred,
        rejectedRuns: this.rejected,
        fillPromotedPages: moves.filled,
        forcedDemotedPages: moves.forced,
        cooled,
      },
    };
  }

  /** The current hot set: pages whose count reaches the threshold that fits the budget. */
  hotRuns(): PageRuns {
    const threshold = this.threshold();
    const table = this.table;
    const counts = table.counts;
    const builder = new RunBuilder();
    for (const chunk of this.chunksByPfn()) {
      const base = chunk * PAGES_PER_CHUNK;
      const firstPfn = table.chunkKeys[chunk] * PAGES_PER_CHUNK;
      for (let o = 0; o < PAGES_PER_CHUNK; o++) if (counts[base + o] >= threshold) builder.add(firstPfn + o, 1);
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
      overheadBytes: table.overheadBytes,
      bytesPerTrackedPage: tracked === 0 ? 0 : (table.pooledBytes + table.overheadBytes) / tracked,
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
    this.pendingCool = false;
    this.coolings++;
    this.table.cool();
  }

  /** Whether [pfn, pfn+pages) lies inside one RAM range (ranges are merged, so this is exact). */
  private inRam(pfn: number, pages: number): boolean {
    const ram = this.ram!;
    let i = this.ramCursor;
    if (!(ram.gpaPfn[i] <= pfn && pfn < this.ramEnd[i])) {
      let lo = 0;
      let hi = ram.count - 1;
      i = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        if (ram.gpaPfn[mid] <= pfn) {
          i = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      if (i < 0 || pfn >= this.ramEnd[i]) return false;
      this.ramCursor = i;
    }
    return pfn + pages <= this.ramEnd[i];
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

  private migrationLeft(used: number): number {
    return this.migrationPages - used;
  }

  /** 4 KiB mode: candidate lists in one pass, counting-sorted, then the budgeted selection. */
  private selectPages(threshold: number): { untouchedDemoted: number[]; deferred: number; filled: number; forced: number } {
    const table = this.table;
    const hist = table.histogram;
    const counts = table.counts;
    const idle = table.idle;
    const flags = table.flags;
    const warmFloor = Math.max(1, Math.ceil(threshold / 2));
    let candidatesMax = 0;
    for (let c = warmFloor; c <= MAX_COUNT; c++) candidatesMax += hist[c];
    const promoteItems = new Int32Array(candidatesMax);
    const promoteKeys = new Uint32Array(candidatesMax);
    const demoteItems = new Int32Array(table.trackedDramPages);
    const demoteKeys = new Uint32Array(table.trackedDramPages);
    let promoteCount = 0;
    let demoteCount = 0;
    let eligibleCount = 0;
    const idleK = this.idleK;
    const end = table.trackedPages;
    for (let p = 0; p < end; p++) {
      const c = counts[p];
      const i = idle[p];
      if (flags[p] & FLAG_DRAM) {
        // Demotable ("clearly colder"): below half the threshold, or idle for K epochs.
        const eligible = 2 * c < threshold || i >= idleK;
        if (eligible) eligibleCount++;
        demoteItems[demoteCount] = p;
        demoteKeys[demoteCount++] = eligible ? c : MAX_COUNT + 1 + c;
      } else if (c >= warmFloor) {
        promoteItems[promoteCount] = p;
        promoteKeys[promoteCount++] = c;
      }
      if (i < IDLE_NEVER) idle[p] = i + 1;
    }
    const promoteOrder = countingSort(promoteItems, promoteKeys, promoteCount, MAX_COUNT + 1, true);
    const demoteOrder = countingSort(demoteItems, demoteKeys, demoteCount, 2 * (MAX_COUNT + 1), false);

    // Never-sampled DRAM chunks are the coldest of all: they go first.
    const untouched = [...table.untouchedDram].sort((a, b) => a - b);
    const untouchedDemoted: number[] = [];
    let untouchedCursor = 0;
    let demoteCursor = 0;
    let used = 0;
    let dram = table.dramPages;
    const marked = this.markedChunks;

    const demoteNext = (eligibleOnly: boolean, maxPages: number): number => {
      if (untouchedCursor < untouched.length) {
        if (maxPages < PAGES_PER_CHUNK) return 0;
        untouchedDemoted.push(untouched[untouchedCursor++]);
        return PAGES_PER_CHUNK;
      }
      if (demoteCursor >= demoteCount || maxPages < 1) return 0;
      // Eligible pages sort first (their keys are below MAX_COUNT + 1).
      if (eligibleOnly && demoteCursor >= eligibleCount) return 0;
      const p = demoteOrder[demoteCursor];
      demoteCursor++;
      flags[p] |= FLAG_DEMOTE;
      marked.add(p >>> CHUNK_SHIFT);
      return 1;
    };

    let forced = 0;
    while (dram > this.budget) {
      const freed = demoteNext(false, Infinity);
      if (freed === 0) break;
      dram -= freed;
      forced += freed;
      used += freed;
    }
    let free = this.budget - dram;
    let deferred = 0;
    let filled = 0;
    for (let k = 0; k < promoteCount; k++) {
      const p = promoteOrder[k];
      const hot = counts[p] >= threshold;
      if (!hot && (free === 0 || this.migrationLeft(used) < 1)) break;
      if (free === 0 && this.migrationLeft(used) >= 2) {
        const freed = demoteNext(true, this.migrationLeft(used) - 1);
        used += freed;
        free += freed;
      }
      if (free === 0 || this.migrationLeft(used) < 1) {
        deferred++;
        continue;
      }
      flags[p] |= FLAG_PROMOTE;
      marked.add(p >>> CHUNK_SHIFT);
      free--;
      used++;
      if (!hot) filled++;
    }
    return { untouchedDemoted, deferred, filled, forced };
  }

  /** 2 MiB mode: whole chunks move; a chunk is promoted when most of its sampled pages are hot. */
  private selectChunks(threshold: number): { untouchedDemoted: number[]; deferred: number; filled: number; forced: number } {
    const table = this.table;
    const counts = table.counts;
    const idle = table.idle;
    const flags = table.flags;
    const chunks = table.chunkCount;
    const idleK = this.idleK;
    const hotOf = new Uint16Array(chunks);
    const dramOf = new Uint16Array(chunks);
    const promoteItems = new Int32Array(chunks);
    const promoteKeys = new Uint32Array(chunks);
    const demoteItems = new Int32Array(chunks);
    const demoteKeys = new Uint32Array(chunks);
    let promoteCount = 0;
    let demoteCount = 0;
    let eligibleCount = 0;
    for (let chunk = 0; chunk < chunks; chunk++) {
      let hot = 0;
      let sampled = 0;
      let dramPages = 0;
      let recent = 0;
      const base = chunk * PAGES_PER_CHUNK;
      for (let p = base; p < base + PAGES_PER_CHUNK; p++) {
        const c = counts[p];
        if (c >= threshold) hot++;
        if (c > 0) sampled++;
        if (flags[p] & FLAG_DRAM) dramPages++;
        const i = idle[p];
        if (i < idleK) recent++;
        if (i < IDLE_NEVER) idle[p] = i + 1;
      }
      hotOf[chunk] = hot;
      dramOf[chunk] = dramPages;
      const mostlyHot = hot > 0 && hot >= this.hugeHotFraction * sampled;
      if (mostlyHot && dramPages < PAGES_PER_CHUNK) {
        promoteItems[promoteCount] = chunk;
        promoteKeys[promoteCount++] = hot;
      }
      if (dramPages > 0) {
        // Every chunk holding DRAM is listed so a budget cut can always be met; a chunk
        // being promoted sorts last and is never eligible for a demotion to make room.
        const eligible = !mostlyHot && (hot < (this.hugeHotFraction / 2) * sampled || sampled === 0 || recent === 0);
        if (eligible) eligibleCount++;
        demoteItems[demoteCount] = chunk;
        demoteKeys[demoteCount++] = eligible ? hot : mostlyHot ? 2 * PAGES_PER_CHUNK + 1 : PAGES_PER_CHUNK + 1 + hot;
      }
    }
    const promoteOrder = countingSort(promoteItems, promoteKeys, promoteCount, PAGES_PER_CHUNK + 1, true);
    const demoteOrder = countingSort(demoteItems, demoteKeys, demoteCount, 2 * (PAGES_PER_CHUNK + 1), false);
    const untouched = [...table.untouchedDram].sort((a, b) => a - b);
    const untouchedDemoted: number[] = [];
    let untouchedCursor = 0;
    let demoteCursor = 0;
    let used = 0;
    let dram = table.dramPages;
    const marked = this.markedChunks;

    const demoted = new Uint8Array(chunks);
    const markChunk = (chunk: number, mark: number, inTier: boolean): void => {
      const base = chunk * PAGES_PER_CHUNK;
      for (let p = base; p < base + PAGES_PER_CHUNK; p++) if (((flags[p] & FLAG_DRAM) !== 0) === inTier) flags[p] |= mark;
      marked.add(chunk);
    };
    const demoteNext = (eligibleOnly: boolean, maxPages: number): number => {
      if (untouchedCursor < untouched.length) {
        if (maxPages < PAGES_PER_CHUNK) return 0;
        untouchedDemoted.push(untouched[untouchedCursor++]);
        return PAGES_PER_CHUNK;
      }
      if (demoteCursor >= demoteCount) return 0;
      if (eligibleOnly && demoteCursor >= eligibleCount) return 0;
      const chunk = demoteOrder[demoteCursor];
      if (dramOf[chunk] > maxPages) return 0;
      demoteCursor++;
      demoted[chunk] = 1;
      markChunk(chunk, FLAG_DEMOTE, true);
      return dramOf[chunk];
    };

    let forced = 0;
    while (dram > this.budget) {
      const freed = demoteNext(false, Infinity);
      if (freed === 0) break;
      dram -= freed;
      forced += freed;
      used += freed;
    }
    let free = this.budget - dram;
    let deferred = 0;
    for (let k = 0; k < promoteCount; k++) {
      const chunk = promoteOrder[k];
      if (demoted[chunk]) continue;
      const cost = PAGES_PER_CHUNK - dramOf[chunk];
      while (free < cost && this.migrationLeft(used) >= cost + 1) {
        const freed = demoteNext(true, this.migrationLeft(used) - cost);
        if (freed === 0) break;
        used += freed;
        free += freed;
      }
      if (free < cost || this.migrationLeft(used) < cost) {
        deferred += hotOf[chunk];
        continue;
      }
      markChunk(chunk, FLAG_PROMOTE, false);
      free -= cost;
      used += cost;
    }
    return { untouchedDemoted, deferred, filled: 0, forced };
  }

  private readonly markedChunks = new Set<number>();

  /** Turns the marks into pfn-ordered, coalesced runs and applies the moves to the tier bits. */
  private emit(untouchedDemoted: number[]): { promote: RunBuilder; demote: RunBuilder } {
    const table = this.table;
    const flags = table.flags;
    const promote = new RunBuilder();
    const demote = new RunBuilder();
    // [chunk key, allocated chunk index or -1] in pfn order.
    const entries: Array<[number, number]> = [];
    for (const chunk of this.markedChunks) entries.push([table.chunkKeys[chunk], chunk]);
    for (const key of untouchedDemoted) entries.push([key, -1]);
    entries.sort((a, b) => a[0] - b[0]);
    for (const [key, chunk] of entries) {
      const firstPfn = key * PAGES_PER_CHUNK;
      if (chunk < 0) {
        demote.add(firstPfn, PAGES_PER_CHUNK);
        table.setUntouchedTier(key, DIR_CXL);
        continue;
      }
      const base = chunk * PAGES_PER_CHUNK;
      for (let o = 0; o < PAGES_PER_CHUNK; o++) {
        const f = flags[base + o];
        if (f & FLAG_PROMOTE) {
          promote.add(firstPfn + o, 1);
          flags[base + o] = (f | FLAG_DRAM) & ~FLAG_PROMOTE;
          table.trackedDramPages++;
        } else if (f & FLAG_DEMOTE) {
          demote.add(firstPfn + o, 1);
          flags[base + o] = f & ~(FLAG_DRAM | FLAG_DEMOTE);
          table.trackedDramPages--;
        }
      }
    }
    this.markedChunks.clear();
    return { promote, demote };
  }

  /** Allocated chunk indexes sorted by guest frame. */
  private chunksByPfn(): number[] {
    const keys = this.table.chunkKeys;
    const order = Array.from({ length: this.table.chunkCount }, (_, i) => i);
    return order.sort((a, b) => keys[a] - keys[b]);
  }
}
