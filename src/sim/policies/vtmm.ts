// `vtmm` (Sha et al., EuroSys'23): host-side page-table (EPT) accessed-bit scans feed a
// multi-level queue; a page climbs one level per period in which it was found accessed and
// falls one when it was not. Its "temperature" combines the level (persistence) with how many
// of the period's scans saw it (frequency); pages are bucket-sorted by temperature and DRAM is
// filled from the hottest bucket down, within a per-period migration budget. PML (dirty logging)
// is used by vTMM for write tracking and migration; writes are not modelled separately here.
import { planByScore } from '../plan.js';
import { emptyMigrations, trackingRates, type Migrations, type Policy, type PolicyContext, type PolicySettings } from '../policy.js';
import { AccessedBitScanner } from '../samplers.js';

export interface VtmmParams {
  /** Page-table scan interval, ms; 0 = what the tracking budget buys (vTMM's own: 100 ms). */
  scanIntervalMs: number;
  /** Levels of the multi-level queue. */
  levels: number;
}

export const VTMM_DEFAULTS: VtmmParams = { scanIntervalMs: 0, levels: 8 };

export class VtmmPolicy implements Policy {
  readonly name = 'vtmm';
  private scanner: AccessedBitScanner | null = null;
  private level: Uint8Array | null = null;
  private temperature: Uint16Array | null = null;
  private last = { trackingNs: 0, events: 0 };

  constructor(
    private readonly settings: PolicySettings,
    readonly params: VtmmParams = VTMM_DEFAULTS,
  ) {}

  onEpoch(ctx: PolicyContext): Migrations {
    this.scanner ??= new AccessedBitScanner(ctx.pages, this.params.scanIntervalMs || trackingRates.scanIntervalMs(this.settings, ctx.pages));
    this.level ??= new Uint8Array(ctx.pages);
    this.temperature ??= new Uint16Array(ctx.pages);
    const seen = this.scanner.scan(ctx.signals, ctx.startMs, ctx.epochMs, ctx.rng);
    const scans = this.scanner.lastScans;
    this.last = { trackingNs: ctx.pages * scans * this.settings.ptScanCostNsPerPage, events: ctx.pages * scans };
    if (scans === 0) return emptyMigrations();
    const top = this.params.levels - 1;
    const level = this.level;
    const temperature = this.temperature;
    for (let p = 0; p < ctx.pages; p++) {
      const l = seen[p] > 0 ? (level[p] < top ? level[p] + 1 : top) : level[p] > 0 ? level[p] - 1 : 0;
      level[p] = l;
      temperature[p] = l * (scans + 1) + seen[p];
    }
    return planByScore(temperature, top * (scans + 1) + scans, ctx.tier, {
      capacity: ctx.dramCapacityPages,
      dramUsed: ctx.dramUsedPages,
      budgetPages: this.settings.migrationBudgetBytesPerEpoch / this.settings.pageSizeBytes,
      minPromoteScore: 1,
    });
  }
  overhead() {
    return this.last;
  }
  counters() {
    return { scanIntervalMs: this.scanner?.intervalMs ?? 0 };
  }
}
