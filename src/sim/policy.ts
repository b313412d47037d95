// The one interface every placement policy implements, and what the simulator hands it each
// epoch. Policies see the workload only through samplers (samplers.ts) built on `signals`;
// only `oracle` reads `futureHotSet`.
import type { Prng } from './prng.js';

export const CXL = 0;
export const DRAM = 1;

/** A growable list of page indices (promotions or demotions). */
export class PageList {
  count = 0;
  pages: Uint32Array;
  constructor(capacity = 1024) {
    this.pages = new Uint32Array(Math.max(16, capacity));
  }
  push(page: number): void {
    if (this.count === this.pages.length) {
      const grown = new Uint32Array(this.pages.length * 2);
      grown.set(this.pages);
      this.pages = grown;
    }
    this.pages[this.count++] = page;
  }
  clear(): void {
    this.count = 0;
  }
}

export interface Migrations {
  /** Pages to move CXL -> DRAM (applied after the demotions). */
  promote: PageList;
  /** Pages to move DRAM -> CXL. */
  demote: PageList;
}

/** Ground truth the samplers model hardware from. Policies must not read it directly. */
export interface Signals {
  /** This epoch's simulated accesses (page index, bit 31 = write). */
  stream: Uint32Array;
  /** Real accesses each simulated access stands for. */
  accessWeight: number;
  /** True per-page access rate in this epoch, real accesses per second. */
  ratesPerSec: Float64Array;
}

export interface PolicyContext {
  epoch: number;
  epochMs: number;
  /** Simulated time at the start of this epoch. */
  startMs: number;
  pages: number;
  dramCapacityPages: number;
  /** Current tier of every page (DRAM or CXL). Read-only for policies. */
  tier: Uint8Array;
  dramUsedPages: number;
  signals: Signals;
  /** The next epoch's true hot set (top-K pages by real accesses): for `oracle` only; null in
   *  the last epoch. At ~1e8 real accesses per epoch a page's count is its rate times the epoch,
   *  so this is the top-K of the next epoch's access probabilities. */
  futureHotSet: Uint8Array | null;
  rng: Prng;
}

export interface PolicyOverhead {
  /** Modelled CPU time the policy's tracking costs the workload (sampling, faults, scans), ns. */
  trackingNs: number;
  /** Samples, hint faults or accessed-bit checks taken this epoch. */
  events: number;
}

export interface Policy {
  readonly name: string;
  /** Called once per epoch after the epoch's accesses ran; returns migrations for the next. */
  onEpoch(ctx: PolicyContext): Migrations;
  /** Tracking cost of the last onEpoch call. */
  overhead(): PolicyOverhead;
  /** Policy-specific counters for the report (e.g. autonuma's pgpromote_candidate). */
  counters?(): Record<string, number>;
}

/** Settings shared by all policies (from the command line). */
export interface PolicySettings {
  /** Tracking CPU every policy may spend (share of one core per second of run): each sizes its
   *  own sampling or scanning from it through its cost model (trackingRates below). */
  trackingBudget: number;
  /** PEBS-like sample period (1 in P accesses) for `vtier` and `memtis`; 0 = sized from the
   *  tracking budget (the default). */
  samplePeriod: number;
  /** Modelled cost of one PEBS sample (assist + interrupt + BPF), ns. */
  sampleCostNs: number;
  /** Modelled cost of one hint fault, ns. */
  hintFaultCostNs: number;
  /** Modelled cost of checking and clearing one accessed bit in a page-table scan, ns. */
  ptScanCostNsPerPage: number;
  /** vtier: which sampler feeds the classifier. */
  vtierSampler: 'pebs' | 'damon' | 'faults' | 'abit';
  /** Per-epoch migration budget for policies that take one (vtier, vtmm, lru), bytes; Infinity = none. */
  migrationBudgetBytesPerEpoch: number;
  /** Page size, bytes. */
  pageSizeBytes: number;
}

export const DEFAULT_POLICY_SETTINGS: PolicySettings = {
  trackingBudget: 0.01,
  samplePeriod: 0,
  sampleCostNs: 250,
  hintFaultCostNs: 1_000,
  ptScanCostNsPerPage: 5,
  vtierSampler: 'pebs',
  migrationBudgetBytesPerEpoch: Infinity,
  pageSizeBytes: 4096,
};

export function emptyMigrations(): Migrations {
  return { promote: new PageList(), demote: new PageList() };
}

/** Modelled cost of one DAMON access check (sample a page's accessed bit: a PTE walk, test and
 *  clear), as a multiple of one page-table-scan step. */
export const DAMON_CHECK_COST_STEPS = 4;

/** The sampling/scan rates a tracking budget buys, from each mechanism's cost model. */
export const trackingRates = {
  /** PEBS period that keeps samples x sampleCostNs within the budget (at least `minPeriod`). */
  samplePeriod(s: PolicySettings, accessesPerSec: number, minPeriod = 1): number {
    if (s.samplePeriod > 0) return Math.max(minPeriod, s.samplePeriod);
    return Math.max(minPeriod, Math.ceil((accessesPerSec * s.sampleCostNs) / (s.trackingBudget * 1e9)));
  },
  /** Interval between full accessed-bit scans of `pages` pages (at least `minMs`). */
  scanIntervalMs(s: PolicySettings, pages: number, minMs = 10): number {
    return Math.max(minMs, (pages * s.ptScanCostNsPerPage) / (s.trackingBudget * 1e9) * 1000);
  },
  /** DAMON regions the budget pays for at a sampling interval (one check per region per
   *  interval): how DAMON spends more CPU for finer monitoring (min/max_nr_regions). */
  damonRegions(s: PolicySettings, pages: number, sampleMs: number): number {
    const checksPerRegionPerSec = 1000 / sampleMs;
    const regions = Math.floor((s.trackingBudget * 1e9) / (checksPerRegionPerSec * s.ptScanCostNsPerPage * DAMON_CHECK_COST_STEPS));
    return Math.max(10, Math.min(pages, regions));
  },
  /** DAMON sampling interval for `regions` regions (one check per region per interval). */
  damonSampleMs(s: PolicySettings, regions: number, aggregateMs: number): number {
    const ms = (regions * s.ptScanCostNsPerPage * DAMON_CHECK_COST_STEPS) / (s.trackingBudget * 1e9) * 1000;
    return Math.min(aggregateMs / 2, Math.max(1, ms));
  },
};
