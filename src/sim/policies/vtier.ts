// `vtier` (ours): the guest classifier (src/classifier) fed by a guest-side sampler — PEBS-like
// by default (1 in samplePeriod accesses), or the DAMON-like, hint-fault or accessed-bit
// models — deciding once per epoch; its promote/demote runs are applied exactly as returned.
// `vtier-thp` is the same with the classifier's 2 MiB mode (whole huge pages move).
import { Classifier, type ClassifierOptions } from '../../classifier/index.js';
import { emptySamples, runsFrom, type PageRuns, type PageSamples } from '../../samples.js';
import { DAMON_CHECK_COST_STEPS, PageList, trackingRates, type Migrations, type Policy, type PolicyContext, type PolicySettings } from '../policy.js';
import { AccessedBitScanner, DamonMonitor, HintFaultScanner, PebsSampler } from '../samplers.js';
import { PAGE_MASK, WRITE_BIT } from '../workloads.js';

const HUGE_PAGES = 512;

export interface VtierParams {
  hugePages: boolean;
  /** Extra classifier options (cooling, idle epochs, ...); the simulator supplies budget and RAM. */
  classifier?: Partial<ClassifierOptions>;
}

export class VtierPolicy implements Policy {
  readonly name: string;
  private classifier: Classifier | null = null;
  private pebs: PebsSampler | null = null;
  private abit: AccessedBitScanner | null = null;
  private faults: HintFaultScanner | null = null;
  private damon: DamonMonitor | null = null;
  private last = { trackingNs: 0, events: 0 };
  private lastStats: Record<string, number> = {};

  constructor(
    private readonly settings: PolicySettings,
    readonly params: VtierParams = { hugePages: false },
  ) {
    this.name = params.hugePages ? 'vtier-thp' : 'vtier';
  }

  private init(ctx: PolicyContext): Classifier {
    // Cooling: in 4 KiB mode the classifier's default (halve every 2 M page samples) lets sparse
    // samples accumulate; in 2 MiB mode a sample counts for 512 pages, so halve once per epoch
    // instead (the "halving each epoch"), which also forgets an old hot set quickly.
    const cooling: Partial<ClassifierOptions> = this.params.hugePages ? { coolEveryEpochs: 1, coolEverySamples: 0 } : {};
    // The migration-cost term needs what one unit of sample weight stands for: the PEBS period
    // for sampled accesses; for DAMON/A-bit/fault counts (accessed or not in an interval) the
    // term is left off, as in the guest agent.
    const sampled: Partial<ClassifierOptions> =
      this.settings.vtierSampler === 'pebs'
        ? { accessesPerSample: this.pebsPeriod(ctx) }
        : this.settings.vtierSampler === 'damon'
          ? { coolEachIngest: true, coolEverySamples: 0 } // the guest agent's DAMON defaults
          : {};
    const c = new Classifier({
      ...cooling,
      ...sampled,
      ...this.params.classifier,
      dramBudgetPages: ctx.dramCapacityPages,
      ramRanges: runsFrom([[0, ctx.pages]]),
      migrationBudgetBytesPerEpoch: Number.isFinite(this.settings.migrationBudgetBytesPerEpoch)
        ? this.settings.migrationBudgetBytesPerEpoch
        : undefined,
      hugePages: this.params.hugePages,
      pageSizeBytes: this.settings.pageSizeBytes,
    });
    // Tell it where every page starts (first touch), as the host agent's placement report does.
    const dram = new PageList();
    const cxl = new PageList();
    let runStart = 0;
    for (let p = 1; p <= ctx.pages; p++) {
      if (p === ctx.pages || ctx.tier[p] !== ctx.tier[runStart]) {
        (ctx.tier[runStart] ? dram : cxl).push(runStart);
        (ctx.tier[runStart] ? dram : cxl).push(p - runStart);
        runStart = p;
      }
    }
    const toRuns = (l: PageList): PageRuns => {
      const rows: Array<[number, number]> = [];
      for (let i = 0; i < l.count; i += 2) rows.push([l.pages[i], l.pages[i + 1]]);
      return runsFrom(rows);
    };
    c.setPlacement(toRuns(dram), 'dram');
    c.setPlacement(toRuns(cxl), 'cxl');
    return c;
  }

  /** The PEBS period the tracking budget buys (the access rate is what a PMU counter gives). */
  private pebsPeriod(ctx: PolicyContext): number {
    const accessesPerSec = (ctx.signals.stream.length * ctx.signals.accessWeight) / (ctx.epochMs / 1000);
    return trackingRates.samplePeriod(this.settings, accessesPerSec);
  }

  /** The epoch's samples in the normalised form, from the configured sampler. */
  private collect(ctx: PolicyContext): PageSamples {
    const kind = this.settings.vtierSampler;
    if (kind === 'pebs') {
      this.pebs ??= new PebsSampler(this.pebsPeriod(ctx));
      const list = this.pebs.sample(ctx.signals, ctx.rng);
      const s = emptySamples(list.count);
      // In 2 MiB mode a sample stands for its whole huge page (a region sample, as DAMON's
      // are): the classifier then ranks huge pages by how many samples land in them, which
      // is what sparse sampling can resolve; 4 KiB pages would each see at most a sample or two.
      const huge = this.params.hugePages;
      for (let i = 0; i < list.count; i++) {
        const a = list.pages[i];
        const page = a & PAGE_MASK;
        if (huge) {
          const first = page - (page % HUGE_PAGES);
          s.gpaPfn[i] = first;
          s.pages[i] = Math.min(HUGE_PAGES, ctx.pages - first);
        } else {
          s.gpaPfn[i] = page;
          s.pages[i] = 1;
        }
        const w = this.pebs.weights[i];
        if (a & WRITE_BIT) s.writes[i] = w;
        else s.reads[i] = w;
      }
      s.count = list.count;
      this.last = { trackingNs: this.pebs.total * this.settings.sampleCostNs, events: this.pebs.total };
      return s;
    }
    if (kind === 'abit') {
      this.abit ??= new AccessedBitScanner(ctx.pages, trackingRates.scanIntervalMs(this.settings, ctx.pages));
      const seen = this.abit.scan(ctx.signals, ctx.startMs, ctx.epochMs, ctx.rng);
      let n = 0;
      for (let p = 0; p < ctx.pages; p++) if (seen[p]) n++;
      const s = emptySamples(n);
      for (let p = 0; p < ctx.pages; p++) {
        if (!seen[p]) continue;
        s.gpaPfn[s.count] = p;
        s.pages[s.count] = 1;
        s.reads[s.count++] = seen[p];
      }
      const scans = this.abit.lastScans;
      this.last = { trackingNs: ctx.pages * scans * this.settings.ptScanCostNsPerPage, events: ctx.pages * scans };
      return s;
    }
    if (kind === 'faults') {
      this.faults ??= new HintFaultScanner(ctx.pages, 65536, 100);
      this.faults.run(ctx.signals, ctx.startMs, ctx.epochMs, ctx.rng, () => true);
      const f = this.faults.faults;
      const s = emptySamples(f.count);
      for (let i = 0; i < f.count; i++) {
        s.gpaPfn[i] = f.page[i];
        s.pages[i] = 1;
        s.reads[i] = 1;
      }
      s.count = f.count;
      this.last = {
        trackingNs: f.count * this.settings.hintFaultCostNs + this.faults.scannedThisEpoch * this.settings.ptScanCostNsPerPage,
        events: f.count,
      };
      return s;
    }
    this.damon ??= new DamonMonitor(ctx.pages, trackingRates.damonSampleMs(this.settings, 1000, 100));
    this.damon.run(ctx.signals, ctx.epochMs, ctx.rng);
    const m = this.damon;
    const s = emptySamples(m.start.length);
    for (let r = 0; r < m.start.length; r++) {
      if (m.nr[r] === 0) continue;
      s.gpaPfn[s.count] = m.start[r];
      s.pages[s.count] = m.len[r];
      s.reads[s.count++] = m.nr[r];
    }
    this.last = { trackingNs: m.samplesThisEpoch * this.settings.ptScanCostNsPerPage * DAMON_CHECK_COST_STEPS, events: m.samplesThisEpoch };
    return s;
  }

  onEpoch(ctx: PolicyContext): Migrations {
    this.classifier ??= this.init(ctx);
    this.classifier.ingest(this.collect(ctx));
    const d = this.classifier.decide();
    this.lastStats = {
      thresholdCount: d.stats.thresholdCount,
      hotPages: d.stats.hotPages,
      sampledPages: d.stats.sampledPages,
      deferredPages: d.stats.deferredPages,
      rejectedRuns: d.stats.rejectedRuns,
      uniformRegions: d.stats.uniformRegions,
      splitRegions: d.stats.splitRegions,
      ...(this.pebs ? { samplePeriod: this.pebs.period } : {}),
    };
    return { promote: expand(d.promote), demote: expand(d.demote) };
  }

  overhead() {
    return this.last;
  }
  counters() {
    return this.lastStats;
  }
}

function expand(runs: PageRuns): PageList {
  const out = new PageList(1024);
  for (let i = 0; i < runs.count; i++) {
    const first = runs.gpaPfn[i];
    for (let k = 0; k < runs.pages[i]; k++) out.push(first + k);
  }
  return out;
}
