// The guest sampler: picks a sample source, runs it, and hands out one PageSamples
// batch per epoch (page sources) or per DAMON aggregation. It owns the kernel-state
// journal, so whatever a source changed globally comes back on stop, signal or crash.
import type { PageRuns, PageSamples } from '../src/samples.js';
import { damonStatus, resolveDamonMode, type DamonMode, type DamonStatus } from './damon.js';
import { readSystemRam } from './iomem.js';
import { describeRecovery, recoverLeftover } from './kernel-state.js';
import { detectPmu, type PmuInfo } from './perf-attr.js';
import type { DecodedSamples } from './record-layout.js';
import type { SampleSource, SourceStats } from './sources/common.js';
import { DamonSource } from './sources/damon.js';
import { PageSource } from './sources/pages.js';

export type SourceName = 'damon' | 'faults' | 'pebs' | 'ibs';
export const SOURCE_NAMES: readonly SourceName[] = ['damon', 'faults', 'pebs', 'ibs'];

export interface Recommendation {
  source: SourceName;
  why: string;
  damonMode?: DamonMode;
}

/** The best source this machine offers, and why. Reads only. */
export function recommendSource(probe: { pmu?: PmuInfo; damon?: DamonStatus } = {}): Recommendation {
  const pmu = probe.pmu ?? detectPmu();
  if (pmu.kind === 'intel') {
    return { source: 'pebs', why: `${pmu.detail}: sampled loads with physical addresses, lowest overhead` };
  }
  if (pmu.kind === 'amd-ibs') return { source: 'ibs', why: `${pmu.detail}: sampled ops with physical addresses` };
  const damon = probe.damon ?? damonStatus();
  if (damon.available && damon.paddr) {
    try {
      const mode = resolveDamonMode('auto', damon);
      if (mode === 'own') {
        return { source: 'damon', damonMode: 'own', why: `${pmu.detail}; DAMON paddr is free: vtier runs its own kdamond over System RAM` };
      }
      const r = damon.running.find((k) => k.ops === 'paddr')!;
      return {
        source: 'damon',
        damonMode: 'observe',
        why: `${pmu.detail}; DAMON is busy with someone else's kdamond.${r.index} (pid ${r.pid}, paddr): vtier observes it without configuring anything (sample ${r.sampleUs / 1000} ms, aggregation ${r.aggrUs / 1000} ms)`,
      };
    } catch (err) {
      return { source: 'faults', why: `${pmu.detail}; DAMON unusable (${(err as Error).message}); page faults work everywhere` };
    }
  }
  return { source: 'faults', why: `${pmu.detail}; ${damon.available ? 'DAMON has no paddr operations' : damon.detail}; page faults work everywhere` };
}

export interface SamplerStartOptions {
  source: SourceName | 'auto';
  pid?: number;
  samplePeriod?: number;
  /** faults only: which kernel hook (default tracepoint, or perf when samplePeriod > 1). */
  faultsVia?: 'tracepoint' | 'perf';
  /** Perf sources (pebs, ibs, faults via perf): size the sample period to this CPU share of
   *  one core, adapting each epoch (absent: fixed). DAMON and the fault tracepoint have no period. */
  cpuBudget?: number;
  damon?: { mode?: 'auto' | DamonMode; sampleUs?: number; aggrUs?: number; minRegions?: number; maxRegions?: number };
  /** Page sources: also stream raw samples (onRaw). */
  raw?: boolean;
  /** Page sources: drain period (default 1000 ms). DAMON batches follow its aggregation interval. */
  epochMs?: number;
  /** Page sources: aggregation map capacity in pages (default 262144). */
  maxPages?: number;
  verbose?: boolean;
  /** Where sysfs lives for the PMU and DAMON lookups (tests: a fake tree). Default /sys. */
  sysRoot?: string;
}

export interface SamplerDescription {
  source: SourceName;
  damonMode?: DamonMode;
  tunables: Record<string, unknown>;
  ramRanges: PageRuns;
  notes: string[];
}

export class SamplerError extends Error {
  constructor(
    message: string,
    readonly code = 'sampler',
  ) {
    super(message);
    this.name = 'SamplerError';
  }
}

const DEFAULT_EPOCH_MS = 1000;

export class Sampler {
  private stopping: Promise<void> | undefined;
  private readonly errorCbs: Array<(err: Error) => void> = [];
  private fatal: Error | undefined;

  private constructor(
    private readonly source: SampleSource,
    private readonly description: SamplerDescription,
  ) {
    source.onFatal((err) => {
      this.fatal = err;
      for (const cb of this.errorCbs) cb(err);
    });
    // notes of the run (a DAMON kdamond restarted...) join describe().notes as they come
    source.onNote?.((note) => description.notes.push(note));
  }

  static async start(opts: SamplerStartOptions): Promise<Sampler> {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('options: must be an object');
    const requested = opts.source;
    if (requested !== 'auto' && !SOURCE_NAMES.includes(requested)) {
      throw new SamplerError(`unknown source "${String(requested)}" (auto, damon, faults, pebs, ibs)`, 'bad-input');
    }
    if (opts.pid !== undefined && !(Number.isSafeInteger(opts.pid) && opts.pid > 0)) throw new TypeError(`pid: ${opts.pid} is not a process id`);
    const epochMs = opts.epochMs ?? DEFAULT_EPOCH_MS;
    if (!(Number.isFinite(epochMs) && epochMs >= 10 && epochMs <= 3_600_000)) throw new TypeError(`epochMs: ${epochMs} is not in [10, 3600000]`);
    const notes: string[] = [];
    // A crash or SIGKILL of an earlier run may have left DAMON or sysctls changed.
    const recovered = recoverLeftover();
    notes.push(...describeRecovery(recovered));
    let name: SourceName;
    let damonMode = opts.damon?.mode;
    if (requested === 'auto') {
      const rec = recommendSource();
      name = rec.source;
      damonMode = damonMode ?? rec.damonMode;
      notes.push(`source auto -> ${rec.source}: ${rec.why}`);
    } else {
      name = requested;
    }
    const ramRanges = readSystemRam();
    let source: SampleSource;
    if (name === 'damon') {
      if (opts.pid !== undefined) notes.push('damon monitors physical memory of the whole machine: --pid does not filter it');
      source = await DamonSource.start({ ...opts.damon, mode: damonMode ?? 'auto', ramRanges, verbose: opts.verbose, sysRoot: opts.sysRoot });
    } else {
      source = await PageSource.start({
        source: name,
        pid: opts.pid,
        samplePeriod: opts.samplePeriod,
        faultsVia: opts.faultsVia,
        cpuBudget: opts.cpuBudget,
        epochMs,
        raw: opts.raw,
        maxPages: opts.maxPages,
        verbose: opts.verbose,
        sysRoot: opts.sysRoot,
      });
    }
    const mode = source instanceof DamonSource ? source.info.mode : undefined;
    return new Sampler(source, {
      source: name,
      damonMode: mode,
      tunables: source.tunables,
      ramRanges,
      notes: [...notes, ...source.notes],
    });
  }

  /** One call per epoch (page sources) or per DAMON aggregation; tNs is CLOCK_MONOTONIC. */
  onBatch(cb: (tNs: number, samples: PageSamples) => void): void {
    this.source.onBatch(cb);
  }

  /** Raw samples as they arrive (page sources started with raw: true). */
  onRaw(cb: (records: DecodedSamples) => void): void {
    if (!(this.source instanceof PageSource)) throw new SamplerError('raw samples exist for page sources (faults, pebs, ibs) only');
    this.source.onRaw(cb);
  }

  /** The run ended on its own (e.g. TargetGoneError when the target exited); already stopped. */
  onError(cb: (err: Error) => void): void {
    this.errorCbs.push(cb);
    if (this.fatal) cb(this.fatal);
  }

  describe(): SamplerDescription {
    return this.description;
  }

  stats(): SourceStats {
    return this.source.stats();
  }

  /** BPF program run time so far (needs kernel.bpf_stats_enabled=1, else zeros). */
  bpfStats(): { runTimeNs: number; runCnt: number } {
    const s = this.source as PageSource | DamonSource;
    return s.bpfStats();
  }

  /** Final batch, detach, unload, restore kernel state. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.source.stop();
    return this.stopping;
  }
}
