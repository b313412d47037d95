// `lru`: the kernel's two-list LRU driven by accessed-bit scans (page_referenced during aging),
// used for tiering the way reclaim-based demotion does: active pages belong in DRAM, inactive
// ones are demoted first. An inactive page found referenced in two consecutive scans is
// activated; an active page found unreferenced is deactivated. A page touched at least once per
// scan interval is "active" whether it is touched 10 or 10,000 times: LRU cannot tell warm from hot.
import { planByScore } from '../plan.js';
import { emptyMigrations, trackingRates, type Migrations, type Policy, type PolicyContext, type PolicySettings } from '../policy.js';
import { AccessedBitScanner } from '../samplers.js';

export interface LruParams {
  /** Accessed-bit scan interval (kswapd aging pass), ms; 0 = what the tracking budget buys. */
  scanIntervalMs: number;
}

export class LruPolicy implements Policy {
  readonly name = 'lru';
  private scanner: AccessedBitScanner | null = null;
  private active: Uint8Array | null = null;
  private referencedBefore: Uint8Array | null = null;
  private last = { trackingNs: 0, events: 0 };

  constructor(
    private readonly settings: PolicySettings,
    readonly params: LruParams = { scanIntervalMs: 0 },
  ) {}

  onEpoch(ctx: PolicyContext): Migrations {
    this.scanner ??= new AccessedBitScanner(ctx.pages, this.params.scanIntervalMs || trackingRates.scanIntervalMs(this.settings, ctx.pages));
    this.active ??= new Uint8Array(ctx.pages);
    this.referencedBefore ??= new Uint8Array(ctx.pages);
    const seen = this.scanner.scan(ctx.signals, ctx.startMs, ctx.epochMs, ctx.rng);
    const scans = this.scanner.lastScans;
    this.last = { trackingNs: ctx.pages * scans * this.settings.ptScanCostNsPerPage, events: ctx.pages * scans };
    if (scans === 0) return emptyMigrations(); // no aging pass this epoch: nothing new known
    const active = this.active;
    const before = this.referencedBefore;
    for (let p = 0; p < ctx.pages; p++) {
      const referenced = seen[p] > 0 ? 1 : 0;
      if (referenced && before[p]) active[p] = 1;
      else if (!referenced) active[p] = 0;
      before[p] = referenced;
    }
    return planByScore(active, 1, ctx.tier, {
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
