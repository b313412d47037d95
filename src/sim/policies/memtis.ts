// `memtis` (Lee et al., SOSP'23): PEBS samples count accesses per page; pages fall in a 16-bin
// log2 histogram of their counts; the hot threshold starts at the top bin and is lowered while
// the pages at or above it still fit in DRAM; counts are halved every `coolingSamples` samples;
// kmigrated promotes hot pages and demotes the coldest first. Memtis raises its sample period to
// keep sampling CPU under its CPU target (3% published); here the target is the simulator's
// common tracking budget, the period never below the published 199, adapted every epoch from
// the samples taken (samples x period = accesses), as Memtis adapts from its measured cost.
import { planByScore } from '../plan.js';
import { trackingRates, type Migrations, type Policy, type PolicyContext, type PolicySettings } from '../policy.js';
import { PebsSampler } from '../samplers.js';
import { PAGE_MASK } from '../workloads.js';

export interface MemtisParams {
  /** Published load sample period. */
  samplePeriod: number;
  /** Samples between two halvings of every count. */
  coolingSamples: number;
  /** CPU share sampling may use; the period is raised to stay under it. */
  cpuLimit: number;
  bins: number;
}

export const MEMTIS_DEFAULTS: MemtisParams = { samplePeriod: 199, coolingSamples: 2_000_000, cpuLimit: 0.03, bins: 16 };

export class MemtisPolicy implements Policy {
  readonly name = 'memtis';
  private sampler: PebsSampler | null = null;
  private counts: Uint32Array | null = null;
  private bin: Uint8Array | null = null;
  private hist: Float64Array | null = null;
  private samplesSinceCool = 0;
  private last = { trackingNs: 0, events: 0 };
  hotThresholdBin = 0;
  effectivePeriod = 0;

  constructor(
    private readonly settings: PolicySettings,
    readonly params: MemtisParams = MEMTIS_DEFAULTS,
  ) {}

  onEpoch(ctx: PolicyContext): Migrations {
    if (!this.sampler) {
      // Start where the budget puts it (from the access rate, as vtier does: a first epoch at
      // the published 199 would spend 12x the budget), never below 199; then adapt.
      const accessesPerSec = (ctx.signals.stream.length * ctx.signals.accessWeight) / (ctx.epochMs / 1000);
      this.effectivePeriod = trackingRates.samplePeriod(this.settings, accessesPerSec, this.params.samplePeriod);
      this.sampler = new PebsSampler(this.effectivePeriod);
    }
    this.counts ??= new Uint32Array(ctx.pages);
    this.bin ??= new Uint8Array(ctx.pages);
    const samples = this.sampler.sample(ctx.signals, ctx.rng);
    const counts = this.counts;
    const bins = this.params.bins;
    const bin = this.bin;
    const hist = (this.hist ??= Float64Array.from({ length: bins }, (_, b) => (b === 0 ? ctx.pages : 0)));
    // Histogram kept up to date per sample; rebuilt only when cooling halves every count.
    const weights = this.sampler.weights;
    for (let i = 0; i < samples.count; i++) {
      const p = samples.pages[i] & PAGE_MASK;
      const c = (counts[p] = Math.min(0xffffffff, counts[p] + weights[i]));
      const b = Math.min(bins - 1, 32 - Math.clz32(c));
      if (b !== bin[p]) {
        hist[bin[p]]--;
        hist[b]++;
        bin[p] = b;
      }
    }
    this.samplesSinceCool += this.sampler.total;
    if (this.samplesSinceCool >= this.params.coolingSamples) {
      hist.fill(0);
      for (let p = 0; p < ctx.pages; p++) {
        const c = (counts[p] >>>= 1);
        const b = c === 0 ? 0 : Math.min(bins - 1, 32 - Math.clz32(c));
        bin[p] = b;
        hist[b]++;
      }
      this.samplesSinceCool = 0;
    }
    // Lower the threshold while the hot set (bins >= threshold) still fits in DRAM.
    let threshold = bins - 1;
    let hot = hist[bins - 1];
    while (threshold > 1 && hot + hist[threshold - 1] <= ctx.dramCapacityPages) {
      threshold--;
      hot += hist[threshold];
    }
    this.hotThresholdBin = threshold;
    this.last = { trackingNs: this.sampler.total * this.settings.sampleCostNs, events: this.sampler.total };
    if (this.settings.samplePeriod === 0) {
      this.effectivePeriod = this.sampler.adapt(this.settings.sampleCostNs, this.settings.trackingBudget, ctx.epochMs * 1e6, this.params.samplePeriod);
    }
    return planByScore(bin, bins - 1, ctx.tier, {
      capacity: ctx.dramCapacityPages,
      dramUsed: ctx.dramUsedPages,
      budgetPages: Infinity,
      minPromoteScore: threshold,
    });
  }
  overhead() {
    return this.last;
  }
  counters() {
    return { hotThresholdBin: this.hotThresholdBin, samplePeriod: this.effectivePeriod };
  }
}
