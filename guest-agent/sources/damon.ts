// DAMON source: our own paddr kdamond (own) or someone else's (observe), its
// damon:damon_aggregated events filtered to that kdamond's pid, one batch per
// aggregation: each region becomes a run of pages weighted by its nr_accesses.
// The BPF filter is bound to the kdamond's pid at load, so each epoch the kdamond is looked
// at in sysfs (KdamondWatch): a restart (new pid) reloads the sampler for the new pid, a
// stop, a disappearance or a silent kdamond is said in the notes and the stats.
import { emptySamples, type PageRuns, type PageSamples } from '../../src/samples.js';
import {
  DamonError,
  damonStatus,
  describeSession,
  KdamondWatch,
  observeKdamond,
  readSession,
  resolveDamonMode,
  startOwnKdamond,
  type DamonMode,
  type DamonSessionInfo,
  type KdamondEvent,
} from '../damon.js';
import { KernelStateJournal } from '../kernel-state.js';
import type { DecodedDamonRegions } from '../record-layout.js';
import { openSampler, type SamplerObject } from '../sampler-object.js';
import { PageSet, type KdamondStats, type SampleSource, type SourceStats } from './common.js';

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
  /** How often the kdamond is looked at in sysfs (default 1000 ms). */
  watchMs?: number;
}

const DEFAULT_WATCH_MS = 1000;

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
  /** Regions whose scaled byte addresses a JS number cannot hold exactly (skipped). */
  unscalable = 0;

  /** addrUnit: bytes per DAMON address unit (contexts/N/addr_unit, 6.18+). */
  constructor(
    private readonly emit: (tNs: number, samples: PageSamples) => void,
    public addrUnit = 1,
  ) {}

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
      const startByte = this.start[i] * this.addrUnit;
      const endByte = this.end[i] * this.addrUnit;
      if (!Number.isSafeInteger(endByte)) {
        this.unscalable++;
        continue;
      }
      const firstPfn = Math.ceil(startByte / PAGE_BYTES);
      const endPfn = Math.floor(endByte / PAGE_BYTES);
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
  private readonly fatalCbs: Array<(err: Error) => void> = [];
  private readonly noteCbs: Array<(note: string) => void> = [];
  private readonly seen = new PageSet();
  private readonly assembler: AggregationAssembler;
  private idleTimer: NodeJS.Timeout | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private readonly watch: KdamondWatch;
  /** A re-attach in flight (one at a time). */
  private reattaching: Promise<void> | undefined;
  private stopped = false;
  private aggregations = 0;
  private lastAggregationMs: number | undefined;
  private lastAggregationNs: number | undefined;
  private readonly periodsNs: number[] = [];
  private finalStats: SourceStats | undefined;
  /** Counters of samplers closed by re-attaching (the live one adds its own). */
  private retired = { regions: 0, drops: 0, malformed: 0, runTimeNs: 0, runCnt: 0 };
  private readonly kdamond: KdamondStats;

  private constructor(
    public info: DamonSessionInfo,
    private obj: SamplerObject,
    private readonly journal: KernelStateJournal | undefined,
    private readonly opts: DamonSourceOptions,
  ) {
    this.tunables = {
      damonMode: info.mode,
      kdamondOwner: info.mode === 'own' ? 'vtier (configured for this run, restored after)' : "someone else (observed: vtier configured nothing)",
      kdamond: `kdamond.${info.kdamondIndex}`,
      cpuBudget: 'n/a: DAMON has no sample period (its cost follows the sampling interval and the region count)',
    };
    this.setSessionTunables(info);
    this.notes.push(describeSession(info));
    if (info.mode === 'observe') {
      this.notes.push(
        `observing someone else's kdamond: vtier configured nothing; its intervals (sample ${info.sampleUs / 1000} ms, aggregation ${info.aggrUs / 1000} ms) and its target ranges bound what is seen`,
      );
    }
    this.kdamond = { pid: info.kdamondPid, state: 'on', restarts: 0, reattached: 0, stops: 0, stalls: 0, intervalChanges: 0, addrUnit: info.addrUnit, unscalable: 0 };
    this.watch = new KdamondWatch(info.kdamondIndex, info, opts.sysRoot ?? '/sys');
    this.assembler = new AggregationAssembler((tNs, samples) => this.deliver(tNs, samples), info.addrUnit);
  }

  private setSessionTunables(info: DamonSessionInfo): void {
    Object.assign(this.tunables, {
      kdamondPid: info.kdamondPid,
      ops: info.ops,
      sampleUs: info.sampleUs,
      aggrUs: info.aggrUs,
      updateUs: info.updateUs,
      minRegions: info.minRegions,
      maxRegions: info.maxRegions,
      targetRanges: info.targetRanges.map((r) => [r.start, r.end]),
      addrUnit: info.addrUnit,
      intervalsGoal: info.intervalsGoal,
    });
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
    const watchMs = opts.watchMs ?? DEFAULT_WATCH_MS;
    if (!(Number.isInteger(watchMs) && watchMs >= 10 && watchMs <= 600_000)) throw new TypeError(`watchMs: ${watchMs} is not an integer in [10, 600000]`);
    let obj: SamplerObject | undefined;
    try {
      obj = await openSampler({ kind: 'damon', damonPid: info.kdamondPid, verbose: opts.verbose });
      const source = new DamonSource(info, obj, journal, opts);
      if (journal?.recovered.length) source.notes.push(`restored leftover kernel state of ${journal.recovered.length} earlier run(s)`);
      const attached = obj;
      obj.onRegions((batch) => source.onRegions(attached, batch));
      obj.attachTracepoints();
      source.watchTimer = setInterval(() => source.look(), watchMs);
      return source;
    } catch (err) {
      obj?.close();
      journal?.restoreAll();
      throw err;
    }
  }

  private onRegions(from: SamplerObject, batch: DecodedDamonRegions): void {
    if (this.stopped || from !== this.obj) return;
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
    this.lastAggregationMs = Date.now();
    if (this.lastAggregationNs !== undefined && tNs > this.lastAggregationNs) {
      this.periodsNs.push(tNs - this.lastAggregationNs);
      if (this.periodsNs.length > 16) this.periodsNs.shift();
    }
    this.lastAggregationNs = tNs;
    const measured = this.measuredAggrUs();
    if (measured !== undefined) {
      this.watch.measuredAggrUs = measured;
      this.tunables.measuredAggrUs = measured;
    }
    for (let i = 0; i < samples.count; i++) if (samples.reads[i] > 0) this.seen.addRun(samples.gpaPfn[i], samples.pages[i]);
    for (const cb of this.batchCbs) cb(tNs, samples);
  }

  onBatch(cb: (tNs: number, samples: PageSamples) => void): void {
    this.batchCbs.push(cb);
  }

  /** The kdamond changed so that this source cannot go on (it monitors something else now,
   *  or re-attaching to its new pid failed): the source has stopped itself. */
  onFatal(cb: (err: Error) => void): void {
    this.fatalCbs.push(cb);
  }

  /** Notes added during the run (kdamond restarts, stops, stalls). */
  onNote(cb: (note: string) => void): void {
    this.noteCbs.push(cb);
  }

  private note(text: string): void {
    this.notes.push(text);
    for (const cb of this.noteCbs) cb(text);
  }

  /** Aggregations delivered so far. */
  get aggregationCount(): number {
    return this.aggregations;
  }

  /** One look at the kdamond in sysfs (every watchMs). */
  private look(): void {
    if (this.stopped || this.reattaching) return;
    let events: KdamondEvent[];
    try {
      events = this.watch.check(this.lastAggregationMs);
    } catch (err) {
      events = [];
      this.note(`cannot read kdamond.${this.info.kdamondIndex} in sysfs: ${(err as Error).message}`);
    }
    for (const e of events) this.handle(e);
  }

  private handle(e: KdamondEvent): void {
    const k = `kdamond.${this.info.kdamondIndex}`;
    switch (e.kind) {
      case 'stopped':
        this.kdamond.stops++;
        this.kdamond.state = e.why;
        this.assembler.flush();
        this.note(
          e.why === 'off'
            ? `${k} (pid ${e.pid}) stopped (state off): no aggregations until it runs again`
            : `${k} (pid ${e.pid}) was removed from DAMON's sysfs: no aggregations unless it comes back`,
        );
        break;
      case 'restarted':
        this.kdamond.restarts++;
        this.reattaching = this.reattach(e.fromPid, e.toPid).then((err) => {
          this.reattaching = undefined;
          if (err) void this.fail(err);
        });
        break;
      case 'not-paddr':
        void this.fail(new DamonError(`DAMON: ${k} now monitors ${e.ops}, not physical memory (paddr); stopped sampling it`, 'damon-unavailable'));
        break;
      case 'stalled':
        this.kdamond.stalls++;
        this.note(`${k} (pid ${e.pid}) is on but delivered no aggregation for ${(e.silentMs / 1000).toFixed(1)} s (expected every ${(e.expectedMs / 1000).toFixed(1)} s)`);
        break;
      case 'resumed':
        this.kdamond.state = 'on';
        this.note(`${k} (pid ${e.pid}) delivers aggregations again`);
        break;
      case 'intervals':
        this.kdamond.intervalChanges++;
        this.info = { ...this.info, sampleUs: e.sampleUs, aggrUs: e.aggrUs };
        Object.assign(this.tunables, { sampleUs: e.sampleUs, aggrUs: e.aggrUs });
        // every change is counted; the first few are said
        if (this.kdamond.intervalChanges <= 3) {
          this.note(`${k} intervals changed: sample ${e.fromSampleUs / 1000} -> ${e.sampleUs / 1000} ms, aggregation ${e.fromAggrUs / 1000} -> ${e.aggrUs / 1000} ms`);
        }
        break;
    }
  }

  /** The kdamond restarted with a new pid: a new sampler bound to it replaces the old one.
   *  Returns the error that ends the source when that fails. */
  private async reattach(fromPid: number, toPid: number): Promise<Error | undefined> {
    const k = `kdamond.${this.info.kdamondIndex}`;
    let next: SamplerObject | undefined;
    try {
      const info = readSession(this.opts.sysRoot ?? '/sys', {
        index: this.info.kdamondIndex,
        pid: toPid,
        ops: 'paddr',
        sampleUs: this.watch.sampleUs,
        aggrUs: this.watch.aggrUs,
      });
      next = await openSampler({ kind: 'damon', damonPid: toPid, verbose: this.opts.verbose });
      if (this.stopped) {
        next.close();
        return undefined;
      }
      const attached = next;
      next.onRegions((batch) => this.onRegions(attached, batch));
      next.attachTracepoints();
      const old = this.obj;
      this.obj = next;
      this.retire(old);
      this.assembler.flush();
      this.assembler.addrUnit = info.addrUnit;
      this.info = { ...info, mode: this.info.mode };
      this.setSessionTunables(this.info);
      this.kdamond.pid = toPid;
      this.kdamond.state = 'on';
      this.kdamond.addrUnit = info.addrUnit;
      this.kdamond.reattached++;
      this.note(`${k} restarted (pid ${fromPid} -> ${toPid}): re-attached to the new pid; ${describeSession(this.info)}`);
      return undefined;
    } catch (err) {
      if (next && next !== this.obj) next.close();
      return new DamonError(`DAMON: ${k} restarted as pid ${toPid} (was ${fromPid}) but vtier could not re-attach: ${(err as Error).message}`);
    }
  }

  /** Keeps the figures of a sampler being replaced, then unloads it. */
  private retire(old: SamplerObject): void {
    try {
      old.detach();
      const c = old.counters();
      const bpf = old.bpfStats();
      this.retired.regions += Number(c.regions);
      this.retired.drops += Number(c.drops);
      this.retired.malformed += old.ringStats().malformed;
      this.retired.runTimeNs += bpf.runTimeNs;
      this.retired.runCnt += bpf.runCnt;
    } finally {
      old.close();
    }
  }

  private async fail(err: Error): Promise<void> {
    if (this.stopped) return;
    this.note(err.message);
    await this.stop();
    for (const cb of this.fatalCbs) cb(err);
  }

  /** Median time between the last aggregations, in µs (what the kdamond really does, even
   *  while intervals_goal tunes it). */
  private measuredAggrUs(): number | undefined {
    if (this.periodsNs.length < 2) return undefined;
    const sorted = [...this.periodsNs].sort((a, b) => a - b);
    return Math.round(sorted[Math.floor(sorted.length / 2)] / 1000);
  }

  private kdamondStats(): KdamondStats {
    return { ...this.kdamond, unscalable: this.assembler.unscalable, aggrUs: this.info.aggrUs, measuredAggrUs: this.measuredAggrUs() };
  }

  stats(): SourceStats {
    if (this.finalStats) return this.finalStats;
    const c = this.obj.counters();
    return {
      samples: this.retired.regions + Number(c.regions),
      pagesSeen: this.seen.size,
      drops: this.retired.drops + this.retired.malformed + Number(c.drops) + this.obj.ringStats().malformed,
      untranslated: 0,
      kdamond: this.kdamondStats(),
    };
  }

  bpfStats(): { runTimeNs: number; runCnt: number } {
    if (this.finalBpf) return this.finalBpf;
    const { runTimeNs, runCnt } = this.obj.bpfStats();
    return { runTimeNs: this.retired.runTimeNs + runTimeNs, runCnt: this.retired.runCnt + runCnt };
  }
  private finalBpf: { runTimeNs: number; runCnt: number } | undefined;

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.watchTimer) clearInterval(this.watchTimer);
    await this.reattaching;
    try {
      try {
        this.obj.detach();
        this.assembler.flush();
        this.finalStats = this.stats();
        this.finalBpf = this.bpfStats();
      } finally {
        this.finalStats ??= { samples: this.retired.regions, pagesSeen: this.seen.size, drops: this.retired.drops, untranslated: 0, kdamond: this.kdamondStats() };
        this.finalBpf ??= { runTimeNs: this.retired.runTimeNs, runCnt: this.retired.runCnt };
        this.obj.close();
      }
    } finally {
      // Our own kdamond goes off and DAMON's sysfs returns to what it was.
      this.journal?.restoreAll();
    }
  }
}
