// DAMON source: our own paddr kdamond (own) or someone else's (observe), its
// damon:damon_aggregated events filtered to that kdamond's pid, one batch per
// aggregation: each region becomes a run of pages weighted by its nr_accesses.
import { emptySamples, type PageRuns, type PageSamples } from '../../src/samples.js';
import { damonStatus, describeSession, observeKdamond, resolveDamonMode, startOwnKdamond, type DamonMode, type DamonSessionInfo } from '../damon.js';
import { KernelStateJournal } from '../kernel-state.js';
import type { DecodedDamonRegions } from '../record-layout.js';
import { openSampler, type SamplerObject } from '../sampler-object.js';
import { PageSet, type SampleSource, type SourceStats } from './common.js';

const PAGE_BYTES = 4096;
/** A region list larger than this in one aggregation is not DAMON's (max nr_regions is far lower in practice). */
const MAX_REGIONS_PER_AGGREGATION = 1 << 20;

export interface DamonSourceOptions {
  mode?: 'auto' | DamonMode;
  sampleUs?: number;
  aggrUs?: number;
  minRegions?: number;
  maxRegions?: number;
  ramRanges: PageRuns;
  verbose?: boolean;
  /** Injectable for tests: where DAMON's sysfs lives and where the journal goes. */
  sysRoot?: string;
  journalPath?: string;
}

/**
 * Groups region records into aggregations. Records of one aggregation come in a burst,
 * in address order per target; a new aggregation starts when the count announced by
 * nr_regions is complete.
 */
export class AggregationAssembler {
  private start: number[] = [];
  private end: number[] = [];
  private accesses: number[] = [];
  private expected = 0;
  private firstTsNs = 0;

  constructor(private readonly emit: (tNs: number, samples: PageSamples) => void) {}

  get pending(): number {
    return this.start.length;
  }

  push(batch: DecodedDamonRegions): void {
    for (let i = 0; i < batch.count; i++) {
      const startByte = batch.start[i];
      const endByte = batch.end[i];
      if (!(endByte > startByte)) continue; // malformed region: skip
      // A region at or below the previous start means a new aggregation began.
      if (this.start.length && startByte <= this.start[this.start.length - 1]) this.flush();
      if (this.start.length === 0) {
        this.firstTsNs = batch.tsNs[i];
        this.expected = Math.min(batch.nrRegions[i], MAX_REGIONS_PER_AGGREGATION);
      }
      this.start.push(startByte);
      this.end.push(endByte);
      this.accesses.push(batch.nrAccesses[i]);
      if (this.start.length >= this.expected || this.start.length >= MAX_REGIONS_PER_AGGREGATION) this.flush();
    }
  }

  /** Delivers what is pending (called by the idle timer too). */
  flush(): void {
    const n = this.start.length;
    if (n === 0) return;
    const samples = emptySamples(n);
    for (let i = 0; i < n; i++) {
      const firstPfn = Math.ceil(this.start[i] / PAGE_BYTES);
      const endPfn = Math.floor(this.end[i] / PAGE_BYTES);
      if (endPfn <= firstPfn) continue;
      // Runs longer than 2^32-1 pages (16 TiB) are clipped: no real region is that large.
      const j = samples.count++;
      samples.gpaPfn[j] = firstPfn;
      samples.pages[j] = Math.min(0xffff_ffff, endPfn - firstPfn);
      samples.reads[j] = this.accesses[i];
      samples.writes[j] = 0;
    }
    this.start = [];
    this.end = [];
    this.accesses = [];
    this.emit(this.firstTsNs, samples);
  }
}

export class DamonSource implements SampleSource {
  readonly tunables: Record<string, unknown>;
  readonly notes: string[] = [];
  private readonly batchCbs: Array<(tNs: number, samples: PageSamples) => void> = [];
  private readonly seen = new PageSet();
  private readonly assembler: AggregationAssembler;
  private idleTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private aggregations = 0;
  private finalStats: SourceStats | undefined;

  private constructor(
    readonly info: DamonSessionInfo,
    private readonly obj: SamplerObject,
    private readonly journal: KernelStateJournal | undefined,
  ) {
    this.tunables = {
      damonMode: info.mode,
      kdamondOwner: info.mode === 'own' ? 'vtier (configured for this run, restored after)' : "someone else (observed: vtier configured nothing)",
      kdamond: `kdamond.${info.kdamondIndex}`,
      kdamondPid: info.kdamondPid,
      ops: info.ops,
      sampleUs: info.sampleUs,
      aggrUs: info.aggrUs,
      updateUs: info.updateUs,
      minRegions: info.minRegions,
      maxRegions: info.maxRegions,
      targetRanges: info.targetRanges.map((r) => [r.start, r.end]),
    };
    this.notes.push(describeSession(info));
    if (info.mode === 'observe') {
      this.notes.push(
        `observing someone else's kdamond: vtier configured nothing; its intervals (sample ${info.sampleUs / 1000} ms, aggregation ${info.aggrUs / 1000} ms) and its target ranges bound what is seen`,
      );
    }
    this.assembler = new AggregationAssembler((tNs, samples) => this.deliver(tNs, samples));
  }

  static async start(opts: DamonSourceOptions): Promise<DamonSource> {
    const sysRoot = opts.sysRoot ?? '/sys';
    const status = damonStatus(sysRoot);
    const mode = resolveDamonMode(opts.mode ?? 'auto', status);
    let journal: KernelStateJournal | undefined;
    let info: DamonSessionInfo;
    if (mode === 'own') {
      journal = await KernelStateJournal.open(opts.journalPath);
      try {
        info = startOwnKdamond(journal, opts.ramRanges, opts, sysRoot);
      } catch (err) {
        journal.restoreAll();
        throw err;
      }
    } else {
      info = observeKdamond(sysRoot, status);
    }
    let obj: SamplerObject | undefined;
    try {
      obj = await openSampler({ kind: 'damon', damonPid: info.kdamondPid, verbose: opts.verbose });
      const source = new DamonSource(info, obj, journal);
      if (journal?.recovered.length) source.notes.push(`restored leftover kernel state of ${journal.recovered.length} earlier run(s)`);
      obj.onRegions((batch) => source.onRegions(batch));
      obj.attachTracepoints();
      return source;
    } catch (err) {
      obj?.close();
      journal?.restoreAll();
      throw err;
    }
  }

  private onRegions(batch: DecodedDamonRegions): void {
    if (this.stopped) return;
    this.assembler.push(batch);
    // The burst of one aggregation is over well before the next one: flush leftovers
    // (e.g. when nr_regions changed mid-aggregation) after a short idle time.
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.assembler.pending) {
      this.idleTimer = setTimeout(() => this.assembler.flush(), Math.min(200, Math.max(5, this.info.aggrUs / 4000)));
    }
  }

  private deliver(tNs: number, samples: PageSamples): void {
    this.aggregations++;
    for (let i = 0; i < samples.count; i++) if (samples.reads[i] > 0) this.seen.addRun(samples.gpaPfn[i], samples.pages[i]);
    for (const cb of this.batchCbs) cb(tNs, samples);
  }

  onBatch(cb: (tNs: number, samples: PageSamples) => void): void {
    this.batchCbs.push(cb);
  }

  onFatal(): void {
    /* DAMON monitors the whole machine: no target to lose */
  }

  /** Aggregations delivered so far. */
  get aggregationCount(): number {
    return this.aggregations;
  }

  stats(): SourceStats {
    if (this.finalStats) return this.finalStats;
    const c = this.obj.counters();
    return { samples: Number(c.regions), pagesSeen: this.seen.size, drops: Number(c.drops) + this.obj.ringStats().malformed, untranslated: 0 };
  }

  bpfStats(): { runTimeNs: number; runCnt: number } {
    if (this.finalBpf) return this.finalBpf;
    const { runTimeNs, runCnt } = this.obj.bpfStats();
    return { runTimeNs, runCnt };
  }
  private finalBpf: { runTimeNs: number; runCnt: number } | undefined;

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    try {
      try {
        this.obj.detach();
        this.assembler.flush();
        this.finalStats = this.stats();
        this.finalBpf = this.bpfStats();
      } finally {
        this.finalStats ??= { samples: 0, pagesSeen: this.seen.size, drops: 0, untranslated: 0 };
        this.finalBpf ??= { runTimeNs: 0, runCnt: 0 };
        this.obj.close();
      }
    } finally {
      // Our own kdamond goes off and DAMON's sysfs returns to what it was.
      this.journal?.restoreAll();
    }
  }
}
