// `vtier eval accuracy`: the real sampler on the real workload, scored against the workload's
// ground truth while both run. One run = one sampling period: start the built-in workload
// (the sampler attaches before its first touch), feed the samples that fall on the workload's
// frames to the classifier, and after every epoch score the classified hot set (precision,
// recall, F1 against the true hot set). From the series: time to converge, time to
// re-converge after each hot-set shift, steady-state precision/recall. A sweep repeats the
// run for several sampling periods. Definitions and measured figures: docs/evaluation.md.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Classifier, type ClassifierOptions } from '../src/classifier/index.js';
import { InputError, parseDurationMs, parsePositiveInt } from '../src/util/units.js';
import { emptyRuns, totalPages, type PageRuns, type PageSamples } from '../src/samples.js';
import { framesToRuns, timeToConverge, type HotSetScore } from '../src/accuracy/index.js';
import { damonStatus, DAMON_OWN_DEFAULTS, resolveDamonMode, type DamonMode, type DamonStatus } from '../guest-agent/damon.js';
import { detectPmu, type PmuInfo } from '../guest-agent/perf-attr.js';
import { recommendSource, Sampler, SamplerError, type SamplerStartOptions, type SourceName } from '../guest-agent/sampler.js';
import { startWorkload, type RunningWorkload, type WorkloadSummary } from '../guest-agent/workload.js';
import { classifierDefaultsFor } from '../guest-agent/run.js';
import { METRICS, type Observation, type ResultsWriter } from './results.js';
import { TruthScorer } from './truth-scorer.js';
import { Aborted, abortableSleep, runAll } from './abort.js';

export const ACCURACY_PATTERNS = ['hotspot', 'uniform', 'shift'] as const;
export type AccuracyPattern = (typeof ACCURACY_PATTERNS)[number];

/** F1 a run must reach and keep to count as converged (default of --converge-level). */
export const DEFAULT_CONVERGE_LEVEL = 0.9;
/** Own-mode DAMON aggregates this many samples per region (DAMON's default 5 ms / 100 ms). */
export const DAMON_AGGR_PER_SAMPLE = 20;
/** Hot/cold sample-rate ratio below which DAMON's regions are said to lump cold pages with hot
 *  ones (runs here: 40-430 when they resolve the hot set, 9 in one that did not). */
export const COARSE_RATIO = 20;
/** How often the truth file is checked for a hot-set shift (the shift time is known to this). */
const TRUTH_POLL_MS = 100;

/** The sample source a campaign will use, resolved before anything starts. */
export interface ResolvedSource {
  source: SourceName;
  damonMode?: DamonMode;
  why: string;
  /** DAMON observe: the other owner's intervals, which vtier cannot change. */
  observed?: { kdamond: number; pid: number; sampleUs: number; aggrUs: number };
}

/** Picks the source for `requested` and checks that it can run here. Reads only. */
export function resolveSource(requested: string, probe: { pmu?: PmuInfo; damon?: DamonStatus } = {}): ResolvedSource {
  if (requested !== 'auto' && !['damon', 'faults', 'pebs', 'ibs'].includes(requested)) {
    throw new InputError(`--source: "${requested}" is not one of auto, damon, faults, pebs, ibs`);
  }
  const damon = probe.damon ?? damonStatus();
  const observedOf = (status: DamonStatus): ResolvedSource['observed'] => {
    const r = status.running.find((k) => k.ops === 'paddr');
    return r ? { kdamond: r.index, pid: r.pid, sampleUs: r.sampleUs, aggrUs: r.aggrUs } : undefined;
  };
  if (requested === 'auto') {
    const rec = recommendSource({ pmu: probe.pmu, damon });
    return { source: rec.source, damonMode: rec.damonMode, why: rec.why, observed: rec.damonMode === 'observe' ? observedOf(damon) : undefined };
  }
  if (requested === 'damon') {
    if (!damon.available || !damon.paddr) throw new SamplerError(`DAMON paddr is not available: ${damon.detail}`, 'damon-unavailable');
    let mode: DamonMode;
    try {
      mode = resolveDamonMode('auto', damon);
    } catch (err) {
      throw new SamplerError((err as Error).message, (err as { code?: string }).code ?? 'damon-unavailable');
    }
    return { source: 'damon', damonMode: mode, why: damon.detail, observed: mode === 'observe' ? observedOf(damon) : undefined };
  }
  if (requested === 'pebs' || requested === 'ibs') {
    const pmu = probe.pmu ?? detectPmu();
    const fits = requested === 'pebs' ? pmu.kind === 'intel' : pmu.kind === 'amd-ibs';
    if (!fits) throw new SamplerError(`--source ${requested}: ${pmu.detail}; use --source damon or faults`, 'no-pmu');
    return { source: requested, why: pmu.detail };
  }
  return { source: 'faults', why: 'page faults (first touch, copy-on-write, hint faults)' };
}

/** One sampling period of a campaign, as the sampler takes it. */
export interface PeriodSetting {
  /** `damon-sample`: DAMON sampling interval (value in µs; aggregation = 20x);
   *  `events`: events per sample (faults: 1 = every fault via the tracepoint). */
  kind: 'damon-sample' | 'events';
  value: number;
  /** As the user wrote it, for labels: "5ms", "100". */
  label: string;
}

/** The swept parameter's name in observations.csv, and the value it records. */
export function periodParam(p: PeriodSetting): { param: string; paramValue: number } {
  return p.kind === 'damon-sample' ? { param: 'damon_sample_ms', paramValue: p.value / 1000 } : { param: 'sample_period_events', paramValue: p.value };
}

const DEFAULT_SWEEP: Record<'damon-sample' | 'events', string[]> = { 'damon-sample': ['1ms', '5ms', '20ms'], events: ['1', '10', '100'] };

/**
 * The sampling periods to run: null = the source's default (one run). Throws InputError when
 * the period cannot be applied: a list without --sweep, a value out of range, or a DAMON
 * kdamond that belongs to someone else (its intervals are its owner's).
 */
export function resolvePeriods(text: string | undefined, sweep: boolean, resolved: ResolvedSource): Array<PeriodSetting | null> {
  const items = text === undefined ? [] : text.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new InputError(`--sample-period: "${text}" has an empty entry`);
  if (resolved.source === 'damon' && resolved.damonMode === 'observe' && (items.length > 0 || sweep)) {
    const o = resolved.observed;
    const whose = o ? `someone else's kdamond.${o.kdamond} (pid ${o.pid}) with sample ${o.sampleUs / 1000} ms, aggregation ${o.aggrUs / 1000} ms` : "someone else's kdamond";
    throw new InputError(
      `--sample-period${sweep ? '/--sweep' : ''}: DAMON here is observed, not configured: ${whose}; its intervals are its owner's and vtier does not change them. ` +
        'Run without --sample-period (the observed intervals are recorded), or sweep the faults source (--source faults --sweep)',
    );
  }
  if (items.length > 1 && !sweep) throw new InputError(`--sample-period: a list (${text}) needs --sweep`);
  const kind: PeriodSetting['kind'] = resolved.source === 'damon' ? 'damon-sample' : 'events';
  const texts = items.length > 0 ? items : sweep ? DEFAULT_SWEEP[kind] : [];
  if (texts.length === 0) return [null];
  const seen = new Set<number>();
  return texts.map((item) => {
    let value: number;
    if (kind === 'damon-sample') {
      const ms = parseDurationMs(item, '--sample-period');
      value = Math.round(ms * 1000);
      if (!(value >= 100 && value <= 1_000_000)) throw new InputError(`--sample-period: "${item}" is outside 100us..1s (the DAMON sampling interval; aggregation is ${DAMON_AGGR_PER_SAMPLE}x)`);
    } else {
      value = parsePositiveInt(item, '--sample-period');
      if (value > 2 ** 31 - 1) throw new InputError(`--sample-period: "${item}" is more than 2^31-1 events per sample`);
    }
    if (seen.has(value)) throw new InputError(`--sample-period: "${item}" is listed twice`);
    seen.add(value);
    return { kind, value, label: item };
  });
}

/** Sampler options for one run. */
export function samplerOptions(resolved: ResolvedSource, period: PeriodSetting | null, pid: number, epochMs: number): SamplerStartOptions {
  if (resolved.source === 'damon') {
    const damon: NonNullable<SamplerStartOptions['damon']> = { mode: resolved.damonMode ?? 'auto' };
    if (period) {
      damon.sampleUs = period.value;
      damon.aggrUs = period.value * DAMON_AGGR_PER_SAMPLE;
    }
    return { source: 'damon', damon, epochMs };
  }
  return { source: resolved.source, pid, epochMs, ...(period ? { samplePeriod: period.value } : {}) };
}

/** Time between two sampler batches: DAMON's aggregation interval, else the epoch. */
export function batchCadenceMs(resolved: ResolvedSource, period: PeriodSetting | null, epochMs: number): number {
  if (resolved.source !== 'damon') return epochMs;
  if (resolved.damonMode === 'observe') return (resolved.observed?.aggrUs ?? DAMON_OWN_DEFAULTS.aggrUs) / 1000;
  return ((period ? period.value * DAMON_AGGR_PER_SAMPLE : DAMON_OWN_DEFAULTS.aggrUs) / 1000);
}

// ---------------------------------------------------------------------------------------
// The series and what is derived from it (pure).

export interface EpochPoint {
  /** Seconds since the workload was ready (all pages touched). */
  timeS: number;
  generation: number;
  /** null for a workload without a hot set (uniform). */
  precision: number | null;
  recall: number | null;
  f1: number | null;
  /** Pages the classifier calls hot. */
  hotPages: number;
  truthPages: number;
  /** Share of the true hot pages the source reported anything about during the epoch
   *  (DAMON: inside its monitored regions, whatever their count; page sources: sampled). */
  hotSeenShare: number | null;
  /** Page-sample weight on the workload's frames during the epoch. */
  pageSamples: number;
  /** Mean sample weight per true-hot page and per other workload page, per batch (DAMON:
   *  mean nr_accesses per aggregation). Their ratio says how far the source tells them apart. */
  hotRate: number | null;
  coldRate: number | null;
  /** The same scores for the classifier's DRAM placement (hot set plus warm pages filling
   *  free DRAM, as decide() leaves it): what a host would serve from DRAM. */
  placementPrecision: number | null;
  placementRecall: number | null;
  placementF1: number | null;
  dramPages: number;
  /** Sample runs (DAMON: region pieces) on the workload's frames during the epoch. */
  sampleRuns: number;
  /** The classifier's decision: lowest count in the hot set (65536 = nothing qualifies),
   *  pages with a non-zero count, runs rejected so far. */
  thresholdCount: number;
  sampledPages: number;
  rejectedRuns: number;
}

export interface ShiftPoint {
  generation: number;
  /** Seconds since ready when vtier saw the new truth file (within 100 ms of the shift). */
  timeS: number;
}

export interface Reconvergence {
  generation: number;
  shiftS: number;
  /** Seconds from the shift until F1 reached the level and stayed there until the next
   *  shift (or the end); null: not within this generation. */
  reconvergeS: number | null;
}

export interface SeriesAnalysis {
  convergeLevel: number;
  /** Seconds from ready until F1 reached the level and stayed (first generation); null: never. */
  convergeS: number | null;
  /** Scored epochs until then (the epoch that reached it included). */
  epochsToConverge: number | null;
  reconvergences: Reconvergence[];
  /** Means over the last third of each generation's span, averaged over generations. */
  steady: {
    precision: number | null;
    recall: number | null;
    f1: number | null;
    placementPrecision: number | null;
    placementRecall: number | null;
    placementF1: number | null;
    hotSeenShare: number | null;
    hotRate: number | null;
    coldRate: number | null;
    /** hotRate / coldRate (null when cold pages got no sample: perfectly apart). */
    hotColdRatio: number | null;
    points: number;
  };
}

/** The time (s) from which `f1` reached `level` and never fell below it again in `points`. */
function convergedAt(points: readonly EpochPoint[], level: number): number | null {
  return timeToConverge(points.map((p) => ({ t: p.timeS, value: p.f1 ?? 0 })), level);
}

const meanOf = (values: number[]): number | null => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : null);

/** Convergence, re-convergence and steady state of one run's series. */
export function analyseSeries(points: readonly EpochPoint[], shifts: readonly ShiftPoint[], endS: number, level = DEFAULT_CONVERGE_LEVEL): SeriesAnalysis {
  // Generation spans: [0, first shift), [shift k, shift k+1), ..., [last shift, end].
  const bounds = [0, ...shifts.map((s) => s.timeS), endS];
  const spans = bounds.slice(0, -1).map((from, i) => ({ from, to: bounds[i + 1] }));
  const inSpan = (i: number) => points.filter((p) => p.timeS >= spans[i].from && (i === spans.length - 1 ? p.timeS <= spans[i].to : p.timeS < spans[i].to));
  const first = inSpan(0);
  const reached = convergedAt(first, level);
  const convergeS = reached === null ? null : reached;
  const epochsToConverge = reached === null ? null : first.filter((p) => p.timeS <= reached).length;
  const reconvergences = shifts.map((s, k) => {
    const at = convergedAt(inSpan(k + 1), level);
    return { generation: s.generation, shiftS: s.timeS, reconvergeS: at === null ? null : Number((at - s.timeS).toFixed(3)) };
  });
  const steadyPoints: EpochPoint[][] = spans.map((span, i) => {
    const cut = span.from + ((span.to - span.from) * 2) / 3;
    return inSpan(i).filter((p) => p.timeS >= cut);
  });
  const steadyOf = (key: 'precision' | 'recall' | 'f1' | 'placementPrecision' | 'placementRecall' | 'placementF1' | 'hotSeenShare' | 'hotRate' | 'coldRate'): number | null => {
    const perSpan = steadyPoints.map((list) => meanOf(list.map((p) => p[key]).filter((v): v is number => v !== null))).filter((v): v is number => v !== null);
    return meanOf(perSpan);
  };
  const hotRate = steadyOf('hotRate');
  const coldRate = steadyOf('coldRate');
  return {
    convergeLevel: level,
    convergeS,
    epochsToConverge,
    reconvergences,
    steady: {
      precision: steadyOf('precision'),
      recall: steadyOf('recall'),
      f1: steadyOf('f1'),
      placementPrecision: steadyOf('placementPrecision'),
      placementRecall: steadyOf('placementRecall'),
      placementF1: steadyOf('placementF1'),
      hotSeenShare: steadyOf('hotSeenShare'),
      hotRate,
      coldRate,
      hotColdRatio: hotRate !== null && coldRate ? hotRate / coldRate : null,
      points: steadyPoints.reduce((n, l) => n + l.length, 0),
    },
  };
}

/** Sorted, merged runs from (first frame, pages) pairs in any order. */
export function mergeRuns(first: readonly number[], pages: readonly number[]): PageRuns {
  const order = first.map((_, i) => i).sort((a, b) => first[a] - first[b]);
  const out = emptyRuns(first.length);
  let end = -1;
  for (const i of order) {
    const start = first[i];
    const stop = start + pages[i];
    if (out.count > 0 && start <= end) {
      end = Math.max(end, stop);
      // Merged runs stay below 2^32 pages: the workload's frames are far fewer.
      out.pages[out.count - 1] = Math.min(0xffff_ffff, end - out.gpaPfn[out.count - 1]);
    } else {
      out.gpaPfn[out.count] = start;
      out.pages[out.count++] = pages[i];
      end = stop;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// One run on the real kernel.

export interface AccuracyRunOptions {
  resolved: ResolvedSource;
  period: PeriodSetting | null;
  pattern: AccuracyPattern;
  sizeBytes: number;
  hotFrac: number;
  hotProb: number;
  thp: boolean;
  seed: number;
  durationMs: number;
  shiftEveryMs?: number;
  epochMs: number;
  /** DRAM budget (pages) for the classifier; default the true hot-set size (uniform: hotFrac of the region). */
  dramPages?: number;
  convergeLevel: number;
  /** Classifier tunables other than the budget (default: the guest agent's defaults). */
  classifier?: Pick<ClassifierOptions, 'coolEveryEpochs' | 'coolEverySamples'>;
  /** Observation labels. */
  system: string;
  workloadLabel: string;
  run: number;
  results: ResultsWriter;
  signal: AbortSignal;
  /** About once a second and after each scored epoch. */
  onTick?: (tick: AccuracyTick) => void;
  /** Phase lines (workload ready, sampler attached). */
  onStep?: (line: string) => void;
}

export interface AccuracyTick {
  elapsedS: number;
  last: EpochPoint | null;
  epochs: number;
  shifts: number;
}

export interface AccuracyRunResult {
  system: string;
  period: PeriodSetting | null;
  source: SourceName;
  damonMode: DamonMode | null;
  sourceNotes: string[];
  tunables: Record<string, unknown>;
  workload: {
    pattern: AccuracyPattern;
    sizeBytes: number;
    hotFrac: number;
    hotProb: number;
    thp: boolean;
    seed: number;
    shiftEveryMs: number | null;
    pid: number;
    touchMs: number;
    residentPages: number;
    truthHotPages: number;
    summary: WorkloadSummary | null;
  };
  dramBudgetPages: number;
  /** True for uniform: no hot set, so precision and recall are undefined. */
  noHotSet: boolean;
  durationS: number;
  epochs: number;
  pageSamples: number;
  /** Batches that arrived before the workload was ready (its first touch), ingested unscored. */
  batchesBeforeReady: number;
  analysis: SeriesAnalysis;
  points: EpochPoint[];
  shifts: ShiftPoint[];
  /** Sentences for the reader: what limits this run's figures. */
  remarks: string[];
  interrupted: boolean;
}

export class AccuracyInterrupted extends Error {
  constructor(
    readonly completedRuns: number,
    readonly partial: AccuracyRunResult | null,
  ) {
    super(`interrupted after ${completedRuns} complete run(s)`);
    this.name = 'AccuracyInterrupted';
  }
}

const round = (v: number | null, digits = 4): number | null => (v === null ? null : Number(v.toFixed(digits)));

/** Runs the workload and the sampler for one period; observations are appended as epochs end. */
export async function runAccuracy(o: AccuracyRunOptions): Promise<AccuracyRunResult> {
  const step = o.onStep ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'vtier-accuracy-'));
  const truthPath = join(dir, 'truth.bin');
  const parts: { workload?: RunningWorkload; sampler?: Sampler } = {};
  const points: EpochPoint[] = [];
  const shifts: ShiftPoint[] = [];
  const noHotSet = o.pattern === 'uniform';
  const timers: NodeJS.Timeout[] = [];
  let interrupted = false;
  let readyAtMs = 0;
  let scorer: TruthScorer | null = null;
  let classifier: Classifier | null = null;
  let budget = 0;
  let pageSamples = 0;
  let batchesBeforeReady = 0;
  let fatal: Error | null = null;
  let summary: WorkloadSummary | null = null;
  const pending: PageSamples[] = [];
  // Per epoch: sample weight and the runs the source reported (for hotSeenShare).
  let epochSamples = 0;
  let epochBatches = 0;
  let epochHotWeight = 0;
  let epochOtherWeight = 0;
  let epochRuns = 0;
  // The classifier's DRAM placement, as its decisions leave it (decide() assumes they happen).
  const dram = new Set<number>();
  let seenFirst: number[] = [];
  let seenPages: number[] = [];
  let lastEpochMs = 0;
  const elapsedS = () => (performance.now() - readyAtMs) / 1000;

  const ingest = (batch: PageSamples): void => {
    const clipped = scorer!.clip(batch);
    classifier!.ingest(clipped);
    epochRuns += clipped.count;
    if (!noHotSet) {
      const split = scorer!.weightSplit(clipped);
      epochHotWeight += split.hotWeight;
      epochOtherWeight += split.otherWeight;
    }
    for (let i = 0; i < clipped.count; i++) {
      epochSamples += (clipped.reads[i] + clipped.writes[i]) * clipped.pages[i];
      seenFirst.push(clipped.gpaPfn[i]);
      seenPages.push(clipped.pages[i]);
    }
    epochBatches++;
  };

  const checkShift = (): void => {
    if (!scorer) return;
    let shifted = false;
    try {
      shifted = scorer.refresh();
    } catch (err) {
      // A half-written file cannot happen (atomic rename); a vanished one means the workload ended.
      fatal ??= err as Error;
      return;
    }
    if (shifted) {
      const shift = { generation: scorer.generation, timeS: Number(elapsedS().toFixed(3)) };
      shifts.push(shift);
      step(`hot set shifted at ${shift.timeS.toFixed(1)} s (generation ${shift.generation})`);
    }
  };

  const epoch = (): void => {
    if (!scorer || !classifier) return;
    checkShift();
    const decision = classifier.decide();
    for (let i = 0; i < decision.demote.count; i++) for (let p = 0; p < decision.demote.pages[i]; p++) dram.delete(decision.demote.gpaPfn[i] + p);
    for (let i = 0; i < decision.promote.count; i++) for (let p = 0; p < decision.promote.pages[i]; p++) dram.add(decision.promote.gpaPfn[i] + p);
    const timeS = Number(elapsedS().toFixed(3));
    let s: HotSetScore | null = null;
    const hot = classifier.hotRuns();
    let hotPages = 0;
    for (let i = 0; i < hot.count; i++) hotPages += hot.pages[i];
    let hotSeenShare: number | null = null;
    let hotRate: number | null = null;
    let coldRate: number | null = null;
    let placement: HotSetScore | null = null;
    if (!noHotSet) {
      s = scorer.score(hot);
      placement = scorer.score(framesToRuns(Float64Array.from(dram).sort()));
      hotSeenShare = scorer.score(mergeRuns(seenFirst, seenPages)).recall;
      const batches = Math.max(1, epochBatches);
      const coldPages = scorer.residentPages - scorer.truthHotPages;
      hotRate = scorer.truthHotPages ? epochHotWeight / scorer.truthHotPages / batches : null;
      coldRate = coldPages > 0 ? epochOtherWeight / coldPages / batches : null;
    }
    const point: EpochPoint = {
      timeS,
      generation: scorer.generation,
      precision: round(s?.precision ?? null),
      recall: round(s?.recall ?? null),
      f1: round(s?.f1 ?? null),
      hotPages,
      truthPages: scorer.truthHotPages,
      hotSeenShare: round(hotSeenShare),
      pageSamples: epochSamples,
      hotRate: round(hotRate),
      coldRate: round(coldRate),
      placementPrecision: round(placement?.precision ?? null),
      placementRecall: round(placement?.recall ?? null),
      placementF1: round(placement?.f1 ?? null),
      dramPages: dram.size,
      sampleRuns: epochRuns,
      thresholdCount: decision.stats.thresholdCount,
      sampledPages: decision.stats.sampledPages,
      rejectedRuns: decision.stats.rejectedRuns,
    };
    points.push(point);
    pageSamples += epochSamples;
    epochSamples = 0;
    epochBatches = 0;
    epochHotWeight = 0;
    epochOtherWeight = 0;
    epochRuns = 0;
    seenFirst = [];
    seenPages = [];
    lastEpochMs = performance.now();
    const base = { system: o.system, workload: o.workloadLabel, run: o.run, timeS };
    const obs: Observation[] = [];
    if (s) {
      obs.push({ ...base, metric: METRICS.precision, value: point.precision!, unit: 'fraction' });
      obs.push({ ...base, metric: METRICS.recall, value: point.recall!, unit: 'fraction' });
      obs.push({ ...base, metric: METRICS.f1, value: point.f1!, unit: 'fraction' });
      obs.push({ ...base, metric: 'hot_seen_share', value: point.hotSeenShare!, unit: 'fraction' });
      obs.push({ ...base, metric: 'placement_precision', value: point.placementPrecision!, unit: 'fraction' });
      obs.push({ ...base, metric: 'placement_recall', value: point.placementRecall!, unit: 'fraction' });
      if (point.hotRate !== null) obs.push({ ...base, metric: 'hot_sample_rate', value: point.hotRate, unit: 'samples/page/batch' });
      if (point.coldRate !== null) obs.push({ ...base, metric: 'cold_sample_rate', value: point.coldRate, unit: 'samples/page/batch' });
    }
    obs.push({ ...base, metric: 'hot_pages', value: hotPages, unit: 'pages' });
    obs.push({ ...base, metric: 'page_samples', value: point.pageSamples, unit: 'samples' });
    o.results.observe(obs);
    o.onTick?.({ elapsedS: timeS, last: point, epochs: points.length, shifts: shifts.length });
  };

  // Ctrl-C during the first touch: stop the workload we started (it runs in its own process
  // group, so the terminal's SIGINT does not reach it) instead of waiting for it to be ready.
  let startingPid = 0;
  const onAbort = () => {
    if (!parts.workload && startingPid > 0) {
      try {
        process.kill(startingPid, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
  };
  o.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const workload = await startWorkload({
      pattern: o.pattern,
      sizeBytes: o.sizeBytes,
      hotFrac: o.pattern === 'uniform' ? undefined : o.hotFrac,
      hotProb: o.pattern === 'uniform' ? undefined : o.hotProb,
      thp: o.thp,
      truthPath,
      seed: o.seed,
      reportMs: 0,
      shiftEveryMs: o.pattern === 'shift' ? o.shiftEveryMs : undefined,
      // Attach before the first touch: a fault source sees it, DAMON does not mind.
      beforeTouch: async (pid) => {
        startingPid = pid;
        if (o.signal.aborted) throw new Aborted();
        const sampler = (parts.sampler = await Sampler.start(samplerOptions(o.resolved, o.period, pid, o.epochMs)));
        sampler.onError((err) => (fatal ??= err));
        sampler.onBatch((_tNs, batch) => {
          if (!scorer) {
            pending.push(batch);
            return;
          }
          ingest(batch);
          // DAMON batches come per aggregation: an epoch ends on a batch once epochMs has passed.
          if (performance.now() - lastEpochMs >= o.epochMs * 0.95) epoch();
        });
      },
    });
    parts.workload = workload;
    void workload.done.then((s) => (summary = s), (err: Error) => (fatal ??= err));
    if (o.signal.aborted) throw new Aborted();
    scorer = new TruthScorer(truthPath);
    readyAtMs = performance.now();
    lastEpochMs = readyAtMs;
    const resident = scorer.residentPages;
    budget = o.dramPages ?? (noHotSet ? Math.round(o.hotFrac * resident) : scorer.truthHotPages);
    budget = Math.max(1, Math.min(budget, resident));
    const ramRanges = scorer.ramRanges(1024);
    // The guest agent's settings for this source, then what the command line overrides.
    classifier = new Classifier({ ...classifierDefaultsFor(o.resolved.source), ...o.classifier, dramBudgetPages: Math.min(budget, totalPages(ramRanges)), ramRanges });
    batchesBeforeReady = pending.length;
    for (const batch of pending.splice(0)) ingest(batch);
    const described = parts.sampler!.describe();
    step(
      `workload pid ${workload.pid}: ${o.pattern} over ${fmtSize(o.sizeBytes)}${o.thp ? ' (THP)' : ''}, touched in ${workload.ready.touchMs} ms, ${resident} pages resident, ` +
        (noHotSet ? 'no hot set (uniform)' : `true hot set ${scorer.truthHotPages} pages`) +
        `; DRAM budget ${budget} pages`,
    );
    step(`sampler ${described.source}${described.damonMode ? ` (${described.damonMode})` : ''}${o.period ? `, period ${o.period.label}` : ''}: ${described.notes.join('; ')}`);
    timers.push(setInterval(checkShift, TRUTH_POLL_MS));
    // Page sources deliver a batch every epoch; a timer closes epochs whose batches are late.
    timers.push(
      setInterval(() => {
        if (epochBatches > 0 && performance.now() - lastEpochMs >= o.epochMs) epoch();
        o.onTick?.({ elapsedS: elapsedS(), last: points[points.length - 1] ?? null, epochs: points.length, shifts: shifts.length });
      }, 1000),
    );
    const endAt = readyAtMs + o.durationMs;
    while (performance.now() < endAt) {
      await abortableSleep(o.signal, Math.min(200, endAt - performance.now()));
      if (fatal) throw fatal;
      if (summary) throw new Error(`the workload exited early (code ${(summary as WorkloadSummary).exitCode}, signal ${(summary as WorkloadSummary).signal})`);
    }
  } catch (err) {
    if (err instanceof Aborted || o.signal.aborted) interrupted = true;
    else {
      o.signal.removeEventListener('abort', onAbort);
      await teardown(parts, timers, dir);
      throw err;
    }
  }
  o.signal.removeEventListener('abort', onAbort);
  const endS = readyAtMs ? elapsedS() : 0;
  await teardown(parts, timers, dir);
  summary = (await parts.workload?.done.catch(() => null)) ?? summary;
  const described = parts.sampler?.describe();
  const analysis = analyseSeries(points, shifts, endS, o.convergeLevel);
  const remarks = remarksFor(o, described?.tunables ?? {}, analysis, points, noHotSet);
  const result: AccuracyRunResult = {
    system: o.system,
    period: o.period,
    source: described?.source ?? o.resolved.source,
    damonMode: described?.damonMode ?? null,
    sourceNotes: described?.notes ?? [],
    tunables: described?.tunables ?? {},
    workload: {
      pattern: o.pattern,
      sizeBytes: o.sizeBytes,
      hotFrac: o.hotFrac,
      hotProb: o.hotProb,
      thp: o.thp,
      seed: o.seed,
      shiftEveryMs: o.pattern === 'shift' ? (o.shiftEveryMs ?? null) : null,
      pid: parts.workload?.pid ?? 0,
      touchMs: parts.workload?.ready.touchMs ?? 0,
      residentPages: scorer?.residentPages ?? 0,
      truthHotPages: noHotSet ? 0 : (scorer?.truthHotPages ?? 0),
      summary,
    },
    dramBudgetPages: budget,
    noHotSet,
    durationS: Number(endS.toFixed(3)),
    epochs: points.length,
    pageSamples,
    batchesBeforeReady,
    analysis,
    points,
    shifts,
    remarks,
    interrupted,
  };
  o.results.writeRaw(`${o.workloadLabel}-${o.system}${interrupted ? '-interrupted' : ''}`, result);
  if (!interrupted) o.results.observe(scalarObservations(result, o));
  if (interrupted) throw new AccuracyInterrupted(o.run - 1, result);
  return result;
}

async function teardown(parts: { workload?: RunningWorkload; sampler?: Sampler }, timers: NodeJS.Timeout[], dir: string): Promise<void> {
  for (const t of timers.splice(0)) clearInterval(t);
  await runAll([() => parts.sampler?.stop(), () => parts.workload?.stop(), () => rmSync(dir, { recursive: true, force: true })]);
}

function fmtSize(bytes: number): string {
  return bytes >= 2 ** 30 ? `${Number((bytes / 2 ** 30).toFixed(2))} GiB` : `${Number((bytes / 2 ** 20).toFixed(1))} MiB`;
}

/** What limits the figures of a run, in words (printed and kept in the raw JSON). */
function remarksFor(o: AccuracyRunOptions, tunables: Record<string, unknown>, a: SeriesAnalysis, points: EpochPoint[], noHotSet: boolean): string[] {
  const out: string[] = [];
  if (noHotSet) out.push('uniform has no hot set: precision and recall are undefined (not 0); the hot-set size and samples are recorded');
  if (o.resolved.source === 'damon' && o.resolved.damonMode === 'observe') {
    out.push(`DAMON observed (someone else's kdamond): sampling ${Number(tunables.sampleUs) / 1000} ms and aggregation ${Number(tunables.aggrUs) / 1000} ms are its owner's; one epoch per aggregation`);
    if (a.steady.hotSeenShare !== null && a.steady.hotSeenShare < 0.95) {
      out.push(`the observed kdamond's target ranges hold only ${(a.steady.hotSeenShare * 100).toFixed(1)}% of the true hot set: recall cannot exceed that`);
    }
  }
  const { hotRate, coldRate, hotColdRatio } = a.steady;
  if (!noHotSet && hotRate !== null && coldRate !== null && coldRate > 0 && hotColdRatio !== null && hotColdRatio < 2) {
    const damonMax = o.resolved.source === 'damon' && Number(tunables.sampleUs) > 0 ? Number(tunables.aggrUs) / Number(tunables.sampleUs) : null;
    out.push(
      `the source barely tells hot from cold here: true-hot pages got ${hotRate.toFixed(2)} and the other pages ${coldRate.toFixed(2)} samples per page per ${o.resolved.source === 'damon' ? 'aggregation' : 'epoch'}` +
        (damonMax !== null
          ? ` (at most ${damonMax}): at a ${Number(tunables.sampleUs) / 1000} ms sampling interval the cold pages are accessed in nearly every sample too (with THP any access to a 2 MiB page sets its accessed bit); --hot-prob 1 makes them idle, a shorter interval needs DAMON's own kdamond`
          : ''),
    );
  }
  else if (!noHotSet && o.resolved.source === 'damon' && hotRate !== null && coldRate !== null && hotColdRatio !== null && hotColdRatio < COARSE_RATIO) {
    out.push(
      `DAMON's regions lumped cold pages with hot ones: the other pages got 1/${hotColdRatio.toFixed(1)} of the true-hot pages' samples (${coldRate.toFixed(2)} vs ${hotRate.toFixed(2)} per aggregation); ` +
        "a region's pages share one count, and the observed kdamond's regions (its owner's min/max, adapted to all of its target) were coarse next to the workload's scattered 2 MiB pages",
    );
  }
  if (o.resolved.source === 'faults') {
    const after = points.slice(1).reduce((n, p) => n + p.pageSamples, 0);
    out.push(
      `faults sees page faults only (first touch, copy-on-write, hint faults): ${after === 0 ? 'no fault arrived after the first touch, so' : `${after} page samples after the first epoch;`} ` +
        'repeated accesses to mapped pages are invisible and the classified hot set cannot follow the access pattern',
    );
  }
  const emptyEpochs = points.slice(1).filter((p) => p.hotPages === 0).length;
  if (!noHotSet && emptyEpochs > 0) {
    out.push(
      `the classified hot set was empty in ${emptyEpochs} of ${points.length - 1} epochs after the first: the hottest count level held more pages than the DRAM budget ` +
        '(region samples give every page of a region the same count, so a region straddling the hot set ties its cold pages with the hot ones); ' +
        `the DRAM placement, filled with warm pages, had recall ${a.steady.placementRecall === null ? 'n/a' : a.steady.placementRecall.toFixed(3)} in steady state`,
    );
  }
  if (!noHotSet && a.convergeS === null) out.push(`F1 never reached ${a.convergeLevel} and stayed there before ${a.reconvergences.length ? 'the first shift' : 'the end'}`);
  return out;
}

/** The run's scalar figures: key numbers in the report, one row per run in the CSV. */
function scalarObservations(r: AccuracyRunResult, o: AccuracyRunOptions): Observation[] {
  const base = { system: o.system, workload: o.workloadLabel, run: o.run };
  const out: Observation[] = [];
  const add = (metric: string, value: number | null, unit: string) => {
    if (value !== null && Number.isFinite(value)) out.push({ ...base, metric, value, unit });
  };
  const a = r.analysis;
  add('precision_steady', a.steady.precision, 'fraction');
  add('recall_steady', a.steady.recall, 'fraction');
  add('f1_steady', a.steady.f1, 'fraction');
  add('placement_precision_steady', a.steady.placementPrecision, 'fraction');
  add('placement_recall_steady', a.steady.placementRecall, 'fraction');
  add('hot_seen_share_steady', a.steady.hotSeenShare, 'fraction');
  add('hot_cold_ratio_steady', a.steady.hotColdRatio, 'ratio');
  add('time_to_converge', a.convergeS, 's');
  add('epochs_to_converge', a.epochsToConverge, 'epochs');
  for (const rc of a.reconvergences) add('time_to_reconverge', rc.reconvergeS, 's');
  if (a.reconvergences.length) add('shifts_not_reconverged', a.reconvergences.filter((rc) => rc.reconvergeS === null).length, 'shifts');
  add('epochs', r.epochs, 'epochs');
  add('page_samples_total', r.pageSamples, 'samples');
  add('dram_budget_pages', r.dramBudgetPages, 'pages');
  if (o.period && !r.noHotSet) {
    const { param, paramValue } = periodParam(o.period);
    const sweepBase = { system: `${r.source}${r.damonMode ? `-${r.damonMode}` : ''}`, workload: o.workloadLabel, run: o.run, param, paramValue };
    for (const [metric, value] of [[METRICS.precision, a.steady.precision], [METRICS.recall, a.steady.recall], [METRICS.f1, a.steady.f1]] as const) {
      if (value !== null) out.push({ ...sweepBase, metric, value, unit: 'fraction' });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// A campaign: one run per period.

export interface AccuracyCampaignOptions extends Omit<AccuracyRunOptions, 'period' | 'system' | 'run' | 'onTick'> {
  periods: Array<PeriodSetting | null>;
  onTick?: (runIndex: number, tick: AccuracyTick) => void;
}

export interface AccuracyCampaignSummary {
  source: SourceName;
  damonMode: DamonMode | null;
  why: string;
  workload: string;
  pattern: AccuracyPattern;
  convergeLevel: number;
  runs: Array<Omit<AccuracyRunResult, 'points'>>;
}

/** System label of a run: source (and DAMON mode), plus the period when one was set. */
export function systemLabel(resolved: ResolvedSource, period: PeriodSetting | null): string {
  const base = `${resolved.source}${resolved.damonMode ? `-${resolved.damonMode}` : ''}`;
  return period ? `${base} ${period.kind === 'damon-sample' ? `sample ${period.label}` : `period ${period.label}`}` : base;
}

export async function runAccuracyCampaign(o: AccuracyCampaignOptions): Promise<AccuracyCampaignSummary> {
  const runs: AccuracyRunResult[] = [];
  for (let i = 0; i < o.periods.length; i++) {
    const period = o.periods[i];
    try {
      runs.push(
        await runAccuracy({ ...o, period, system: systemLabel(o.resolved, period), run: 1, onTick: (tick) => o.onTick?.(i, tick) }),
      );
    } catch (err) {
      if (err instanceof AccuracyInterrupted) throw new AccuracyInterrupted(i, err.partial);
      throw err;
    }
  }
  return {
    source: o.resolved.source,
    damonMode: o.resolved.damonMode ?? null,
    why: o.resolved.why,
    workload: o.workloadLabel,
    pattern: o.pattern,
    convergeLevel: o.convergeLevel,
    runs: runs.map(({ points: _points, ...rest }) => rest),
  };
}
