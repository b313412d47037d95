// `damon`: DAMON physical-address monitoring with two DAMOS schemes, the shape of the kernel's
// memory-tiering sample (samples/damon/mtier.c) and DAMON's tiering documentation:
// - migrate_hot: regions in CXL with nr_accesses >= hotMinNr, hottest (then oldest) first;
// - migrate_cold: DRAM regions with nr_accesses <= coldMaxNr and age >= coldMinAgeAggr, coldest
//   (then oldest) first, to keep freeGoalFrac of DRAM free and to make room for hotter regions;
// each under a size quota per second. Monitoring: 5 ms sampling, 100 ms aggregation, and as
// many regions as the tracking budget pays for: R, with min_nr_regions R/4 and max_nr_regions
// R, so it monitors R/2..R regions (DAMON's cost is one check per region per sampling
// interval: its knob for finer monitoring at more CPU is the region count). DamonMonitor in
// samplers.ts models the monitor.
import { CXL, DAMON_CHECK_COST_STEPS, DRAM, PageList, trackingRates, type Migrations, type Policy, type PolicyContext, type PolicySettings } from '../policy.js';
import { DamonMonitor } from '../samplers.js';

export interface DamonParams {
  /** Sampling interval, ms; 0 = DAMON's default 5 ms with the region count sized from the
   *  tracking budget (minRegions and maxRegions then unused). */
  sampleMs: number;
  aggregateMs: number;
  minRegions: number;
  maxRegions: number;
  /** migrate_hot access pattern: nr_accesses at least this (of sampleMs/aggregateMs samples). */
  hotMinNr: number;
  /** migrate_cold access pattern: nr_accesses at most this. */
  coldMaxNr: number;
  /** migrate_cold access pattern: age at least this many aggregations. */
  coldMinAgeAggr: number;
  /** Quota of each scheme, MiB per second. */
  quotaMiBPerSec: number;
  /** migrate_cold goal: free share of DRAM. */
  freeGoalFrac: number;
}

export const DAMON_DEFAULTS: DamonParams = {
  sampleMs: 0,
  aggregateMs: 100,
  minRegions: 10,
  maxRegions: 1000,
  hotMinNr: 1,
  coldMaxNr: 2,
  coldMinAgeAggr: 5,
  quotaMiBPerSec: 200,
  freeGoalFrac: 0.005,
};

/** The kernel's default sampling interval (damon_attrs.sample_interval, 5 ms). */
export const DAMON_DEFAULT_SAMPLE_MS = 5;

export class DamonPolicy implements Policy {
  readonly name = 'damon';
  monitor: DamonMonitor | null = null;
  private last = { trackingNs: 0, events: 0 };

  constructor(
    private readonly settings: PolicySettings,
    readonly params: DamonParams = DAMON_DEFAULTS,
  ) {}

  onEpoch(ctx: PolicyContext): Migrations {
    const o = this.params;
    if (this.monitor === null) {
      if (o.sampleMs > 0) this.monitor = new DamonMonitor(ctx.pages, o.sampleMs, o.aggregateMs, o.minRegions, o.maxRegions);
      else {
        const regions = trackingRates.damonRegions(this.settings, ctx.pages, DAMON_DEFAULT_SAMPLE_MS);
        this.monitor = new DamonMonitor(ctx.pages, DAMON_DEFAULT_SAMPLE_MS, o.aggregateMs, Math.max(10, Math.floor(regions / 4)), regions);
      }
    }
    const m = this.monitor;
    m.run(ctx.signals, ctx.epochMs, ctx.rng);
    this.last = { trackingNs: m.samplesThisEpoch * this.settings.ptScanCostNsPerPage * DAMON_CHECK_COST_STEPS, events: m.samplesThisEpoch };

    const quotaPages = Math.floor(((o.quotaMiBPerSec << 20) * (ctx.epochMs / 1000)) / this.settings.pageSizeBytes);
    const regions = m.start.map((_, r) => r);
    const hot = regions.filter((r) => m.nr[r] >= o.hotMinNr).sort((a, b) => m.nr[b] - m.nr[a] || m.age[b] - m.age[a]);
    const cold = regions
      .filter((r) => m.nr[r] <= o.coldMaxNr && m.age[r] >= o.coldMinAgeAggr)
      .sort((a, b) => m.nr[a] - m.nr[b] || m.age[b] - m.age[a]);

    const tier = ctx.tier;
    const capacity = ctx.dramCapacityPages;
    const freeGoal = Math.ceil(capacity * o.freeGoalFrac);
    const promote = new PageList(1024);
    const demote = new PageList(1024);
    let used = ctx.dramUsedPages;
    let coldIdx = 0;
    let coldPage = -1;
    let demoted = 0;

    // Next DRAM page of a cold region colder than `than` (nr), or -1.
    const nextColdPage = (than: number): number => {
      while (coldIdx < cold.length && demoted < quotaPages) {
        const r = cold[coldIdx];
        if (m.nr[r] >= than) return -1;
        const end = m.start[r] + m.len[r];
        coldPage = coldPage < m.start[r] ? m.start[r] : coldPage + 1;
        while (coldPage < end && tier[coldPage] !== DRAM) coldPage++;
        if (coldPage < end) return coldPage;
        coldIdx++;
        coldPage = -1;
      }
      return -1;
    };
    // migrate_cold toward its free-space goal.
    while (capacity - used < freeGoal) {
      const p = nextColdPage(Infinity);
      if (p < 0) break;
      demote.push(p);
      demoted++;
      used--;
    }
    // migrate_hot: fill free DRAM, exchanging with strictly colder regions when full.
    outer: for (const r of hot) {
      const end = m.start[r] + m.len[r];
      for (let p = m.start[r]; p < end; p++) {
        if (promote.count >= quotaPages) break outer;
        if (tier[p] !== CXL) continue;
        if (capacity - used <= freeGoal) {
          const v = nextColdPage(m.nr[r]);
          if (v < 0) break outer;
          demote.push(v);
          demoted++;
          used--;
        }
        promote.push(p);
        used++;
      }
    }
    return { promote, demote };
  }
  overhead() {
    return this.last;
  }
  counters() {
    return { regions: this.monitor?.start.length ?? 0, sampleMs: this.monitor?.sampleMs ?? 0 };
  }
}
