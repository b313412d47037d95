// `autonuma`: Linux NUMA balancing in memory-tiering mode (kernel.numa_balancing=2), after
// kernel/sched/fair.c (task_numa_work, should_numa_migrate_memory,
// numa_promotion_adjust_threshold, numa_promotion_rate_limit) and mm/mprotect.c:
// - every scan period the next 256 MB of the address space is made PROT_NONE; top-tier (DRAM)
//   pages are skipped but count toward the 256 MB; the scan time is recorded in the page;
// - the first access afterwards takes a hint fault; its latency is fault time - scan time;
// - if DRAM has enough free space the page is promoted at once (and the threshold reset);
//   otherwise it is a promotion candidate only if latency < hot threshold (1000 ms), and is
//   promoted unless this second's candidates exceed the promote rate limit;
// - every scan_period_max (60 s) the threshold moves one of 16 steps toward the value at which
//   candidates match rate limit * 60 s;
// - kswapd demotes the least recently used DRAM pages when a promotion finds no free page,
//   down to the promotion watermark. LRU order comes from aging, as in the kernel: once per
//   epoch the DRAM pages' accessed bits are checked and cleared (page_referenced), and a victim
//   is the page whose bit was last seen longest ago; among those, the one that entered DRAM
//   first (the LRU list's insertion order; first-touch pages in a seeded random order, as a
//   guest faults them in). Ties are never broken by address: a hot set laid out at an offset
//   would then decide the victims. The policy never sees true access rates, only the bits.
// - the scan size is sized to the tracking budget (PTE updates + hint faults), adapted every
//   epoch from the last epoch's cost (the kernel adapts its scan period to faults the same way).
import { CXL, DRAM, PageList, type Migrations, type Policy, type PolicyContext, type PolicySettings } from '../policy.js';
import { HintFaultScanner } from '../samplers.js';

export interface AutonumaParams {
  /** numa_balancing_scan_size_mb; 0 = start at the kernel's 256 and size it to the tracking budget. */
  scanSizeMb: number;
  /** Scan period, ms; 0 = the kernel's fastest, task_scan_min(): max(100, 1000 / (RSS / scan size)). */
  scanPeriodMs: number;
  /** numa_balancing_hot_threshold_ms */
  hotThresholdMs: number;
  /** numa_balancing_promote_rate_limit_MBps (kernel default 65536). */
  promoteRateLimitMBps: number;
  /** Threshold adjustment period (sysctl_numa_balancing_scan_period_max, 60 s). */
  adjustPeriodMs: number;
  /** Free DRAM (share of capacity) above which promotion skips the threshold ("free space enough"). */
  freeEnoughFrac: number;
  /** Free DRAM kswapd reclaims to when a promotion finds none (promotion watermark), share of capacity. */
  promoWatermarkFrac: number;
}

export const AUTONUMA_DEFAULTS: AutonumaParams = {
  scanSizeMb: 0,
  scanPeriodMs: 0,
  hotThresholdMs: 1000,
  promoteRateLimitMBps: 65536,
  adjustPeriodMs: 60_000,
  freeEnoughFrac: 0.02,
  promoWatermarkFrac: 0.01,
};

const ADJUST_STEPS = 16;

export class AutonumaPolicy implements Policy {
  readonly name = 'autonuma';
  private scanner: HintFaultScanner | null = null;
  private promotedNow: Uint8Array | null = null;
  /** Epoch + 1 in which each page's accessed bit was last found set by aging (0 = never). */
  private lastReferenced: Int32Array | null = null;
  /** Epoch + 1 in which each page was promoted (0 = placed there at first touch). */
  private enteredDram: Int32Array | null = null;
  /** Pages in a seeded random order: the LRU order of first-touch pages. */
  private faultOrder: Uint32Array | null = null;
  private last = { trackingNs: 0, events: 0 };
  /** nbp_threshold: 0 means "use the default". */
  private thresholdMs = 0;
  private thStartMs = 0;
  private thNrCand = 0;
  private rlStartMs = 0;
  private rlNrCand = 0;
  private readonly c = { numa_hint_faults: 0, pgpromote_candidate: 0, pgpromote_success: 0, pgdemote_kswapd: 0, rate_limited: 0, over_threshold: 0 };

  constructor(
    private readonly settings: PolicySettings,
    readonly params: AutonumaParams = AUTONUMA_DEFAULTS,
  ) {}

  private get scanSizeMb(): number {
    return this.params.scanSizeMb || 256;
  }

  private scanPeriodMs(pages: number): number {
    if (this.params.scanPeriodMs > 0) return this.params.scanPeriodMs;
    const windows = Math.max(1, Math.ceil((pages * this.settings.pageSizeBytes) / (this.scanSizeMb << 20)));
    const floor = 1000 / Math.max(1, Math.floor(2560 / this.scanSizeMb));
    return Math.max(floor, 1000 / windows);
  }

  get currentThresholdMs(): number {
    return this.thresholdMs || this.params.hotThresholdMs;
  }

  onEpoch(ctx: PolicyContext): Migrations {
    const pageSize = this.settings.pageSizeBytes;
    this.scanner ??= new HintFaultScanner(ctx.pages, Math.floor((this.scanSizeMb << 20) / pageSize), this.scanPeriodMs(ctx.pages));
    const tier = ctx.tier;
    const agingNs = this.age(ctx);
    this.scanner.run(ctx.signals, ctx.startMs, ctx.epochMs, ctx.rng, (p) => tier[p] === CXL);
    const faults = this.scanner.faults;
    const rateLimitPages = (this.params.promoteRateLimitMBps * 2 ** 20) / pageSize;
    const capacity = ctx.dramCapacityPages;
    const freeEnough = Math.floor(capacity * this.params.freeEnoughFrac);
    const promoWatermark = Math.max(1, Math.floor(capacity * this.params.promoWatermarkFrac));

    const promote = new PageList(1024);
    const demote = new PageList(1024);
    let used = ctx.dramUsedPages;
    let victims: Uint32Array | null = null;
    let victimNext = 0;
    const promotedNow = (this.promotedNow ??= new Uint8Array(ctx.pages));
    promotedNow.fill(0);

    for (let i = 0; i < faults.count; i++) {
      const page = faults.page[i];
      if (tier[page] !== CXL || promotedNow[page]) continue;
      this.c.numa_hint_faults++;
      const nowMs = faults.faultMs[i];
      const latencyMs = nowMs - faults.armMs[i];
      if (capacity - used > freeEnough) {
        this.thresholdMs = 0; // the kernel resets the threshold when free space is plentiful
      } else {
        this.adjustThreshold(nowMs, rateLimitPages);
        if (latencyMs >= this.currentThresholdMs) {
          this.c.over_threshold++;
          continue;
        }
        // numa_promotion_rate_limit(): counts the candidate, then limits per one-second window.
        this.c.pgpromote_candidate++;
        if (nowMs - this.rlStartMs > 1000) {
          this.rlStartMs = nowMs;
          this.rlNrCand = this.c.pgpromote_candidate - 1;
        }
        if (this.c.pgpromote_candidate - this.rlNrCand > rateLimitPages) {
          this.c.rate_limited++;
          continue;
        }
      }
      if (used >= capacity) {
        // kswapd: demote least recently used DRAM pages down to the promotion watermark.
        victims ??= this.lruOrder(ctx);
        let freed = 0;
        while (capacity - used < promoWatermark && victimNext < victims.length) {
          const v = victims[victimNext++];
          demote.push(v);
          used--;
          freed++;
        }
        this.c.pgdemote_kswapd += freed;
        if (used >= capacity) continue;
      }
      promote.push(page);
      promotedNow[page] = 1;
      (this.enteredDram ??= new Int32Array(ctx.pages))[page] = ctx.epoch + 1;
      used++;
      this.c.pgpromote_success++;
    }
    const trackingNs = faults.count * this.settings.hintFaultCostNs + this.scanner.scannedThisEpoch * this.settings.ptScanCostNsPerPage + agingNs;
    this.last = { trackingNs, events: faults.count };
    // Size the next epochs' scan to the budget: cost scales with the pages scanned per period.
    const budgetNs = this.settings.trackingBudget * ctx.epochMs * 1e6;
    if (trackingNs > 0 && this.params.scanSizeMb === 0) {
      const scale = Math.min(4, Math.max(0.25, budgetNs / trackingNs));
      const s = this.scanner;
      s.chunkPages = Math.max(256, Math.min(ctx.pages, Math.round(s.chunkPages * scale)));
    }
    return { promote, demote };
  }

  /** numa_promotion_adjust_threshold() */
  private adjustThreshold(nowMs: number, rateLimitPages: number): void {
    if (nowMs - this.thStartMs <= this.params.adjustPeriodMs) return;
    this.thStartMs = nowMs;
    const refTh = this.params.hotThresholdMs;
    const refCand = (rateLimitPages * this.params.adjustPeriodMs) / 1000;
    const diffCand = this.c.pgpromote_candidate - this.thNrCand;
    const unitTh = (refTh * 2) / ADJUST_STEPS;
    let th = this.thresholdMs || refTh;
    if (diffCand > (refCand * 11) / 10) th = Math.max(th - unitTh, unitTh);
    else if (diffCand < (refCand * 9) / 10) th = Math.min(th + unitTh, refTh * 2);
    this.thNrCand = this.c.pgpromote_candidate;
    this.thresholdMs = th;
  }

  /** kswapd-style aging of the DRAM pages: each bit found set (P = 1 - exp(-rate * epoch) for
   *  a Poisson stream, the samplers' model) stamps the page; returns the modelled cost. */
  private age(ctx: PolicyContext): number {
    const last = (this.lastReferenced ??= new Int32Array(ctx.pages));
    const rates = ctx.signals.ratesPerSec;
    const dt = ctx.epochMs / 1000;
    let checked = 0;
    for (let p = 0; p < ctx.pages; p++) {
      if (ctx.tier[p] !== DRAM) continue;
      checked++;
      const r = rates[p];
      if (r > 0 && ctx.rng.next() < 1 - Math.exp(-r * dt)) last[p] = ctx.epoch + 1;
    }
    return checked * this.settings.ptScanCostNsPerPage;
  }

  /** DRAM pages, least recently referenced first (by the aging stamps), then in LRU insertion
   *  order (promotion epoch; first-touch pages in fault order): two stable counting sorts. */
  private lruOrder(ctx: PolicyContext): Uint32Array {
    const last = this.lastReferenced as Int32Array;
    const entered = (this.enteredDram ??= new Int32Array(ctx.pages));
    const faultOrder = (this.faultOrder ??= shuffled(ctx.pages, ctx.rng));
    let n = 0;
    for (let p = 0; p < ctx.pages; p++) if (ctx.tier[p] === DRAM) n++;
    const byFault = new Uint32Array(n);
    for (let i = 0, k = 0; i < ctx.pages; i++) if (ctx.tier[faultOrder[i]] === DRAM) byFault[k++] = faultOrder[i];
    const buckets = ctx.epoch + 2;
    const byEntry = stableCountingSort(byFault, entered, buckets);
    return stableCountingSort(byEntry, last, buckets);
  }

  overhead() {
    return this.last;
  }
  counters() {
    return { ...this.c, hot_threshold_ms: this.currentThresholdMs, scan_size_pages: this.scanner?.chunkPages ?? 0 };
  }
}

/** 0..n-1 in a random order (Fisher-Yates with the policy's own generator). */
function shuffled(n: number, rng: PolicyContext['rng']): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}

/** `items` ordered by key[item] (0..buckets-1), keeping their order within a key. */
function stableCountingSort(items: Uint32Array, key: Int32Array, buckets: number): Uint32Array {
  const counts = new Uint32Array(buckets + 1);
  for (let i = 0; i < items.length; i++) counts[key[items[i]] + 1]++;
  for (let k = 1; k <= buckets; k++) counts[k] += counts[k - 1];
  const out = new Uint32Array(items.length);
  for (let i = 0; i < items.length; i++) out[counts[key[items[i]]]++] = items[i];
  return out;
}
