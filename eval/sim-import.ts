// Reads `vtier sim --json` and `vtier sim sweep --json` output saved into a results
// directory, as tidy observations. Importing this module registers the adapter.
//
// The simulator reports per-policy metrics as objects; this adapter maps the metric names
// the report plots (camelCase or snake_case) and keeps every other finite number as a
// generic observation so the summary table shows it.
import { METRICS, registerImportAdapter, type Observation } from './results.js';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function snake(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/[^A-Za-z0-9_]/g, '_').toLowerCase();
}

/** Metric name -> [report metric, unit]. */
const KNOWN: Record<string, [string, string]> = {
  dram_served_share: [METRICS.dramServedShare, 'fraction'],
  dram_share: [METRICS.dramServedShare, 'fraction'],
  dram_hit_share: [METRICS.dramServedShare, 'fraction'],
  precision: [METRICS.precision, 'fraction'],
  recall: [METRICS.recall, 'fraction'],
  f1: [METRICS.f1, 'fraction'],
  slowdown: ['modelled_slowdown', 'ratio'],
  modelled_slowdown: ['modelled_slowdown', 'ratio'],
  promoted_bytes: [METRICS.promotedBytes, 'bytes'],
  demoted_bytes: [METRICS.demotedBytes, 'bytes'],
};

function unitFor(name: string): string {
  if (/bytes$/.test(name)) return 'bytes';
  if (/pages$/.test(name)) return 'pages';
  if (/_ms$/.test(name)) return 'ms';
  if (/_(s|sec)$/.test(name)) return 's';
  if (/epochs/.test(name)) return 'epochs';
  if (/(share|precision|recall|f1|fraction)/.test(name)) return 'fraction';
  if (/count$/.test(name)) return 'count';
  return '';
}

function policyName(entry: Json): string | null {
  for (const key of ['policy', 'name', 'system']) if (typeof entry[key] === 'string') return entry[key] as string;
  return null;
}

/** The per-policy metric objects of one sim run, wherever the output nests them. */
function policyEntries(run: Json): Json[] | null {
  for (const key of ['results', 'policies', 'runs']) {
    const list = run[key];
    if (Array.isArray(list) && list.length > 0 && list.every((e) => isObject(e) && policyName(e) !== null)) return list as Json[];
  }
  return null;
}

function workloadName(run: Json, fallback: string): string {
  const w = run.workload;
  if (typeof w === 'string') return w;
  if (isObject(w) && typeof w.name === 'string') return w.name;
  if (isObject(run.config)) return workloadName(run.config as Json, fallback);
  return fallback;
}

/** A replayed trace (`sim --trace`): its workload is named `trace` or carries the trace summary. */
function isTrace(run: Json): boolean {
  const w = isObject(run.workload) ? (run.workload as Json) : isObject(run.config) && isObject((run.config as Json).workload) ? ((run.config as Json).workload as Json) : null;
  if (w) return w.name === 'trace' || w.trace !== undefined;
  return run.workload === 'trace';
}

function flattenMetrics(entry: Json): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  const source = isObject(entry.metrics) ? { ...entry, ...(entry.metrics as Json) } : entry;
  for (const [key, value] of Object.entries(source)) {
    if (typeof value === 'number' && Number.isFinite(value)) out.push([snake(key), value]);
  }
  return out;
}

function timeline(entry: Json): Json[] {
  for (const key of ['timeline', 'overTime', 'epochs', 'series']) {
    const list = entry[key];
    if (Array.isArray(list) && list.every(isObject)) return list as Json[];
  }
  return [];
}

const TIME_SERIES = new Set<string>([METRICS.precision, METRICS.recall, METRICS.f1]);

/** Columnar per-epoch series ({ precision: [...], recall: [...] }), one point per epoch end. */
function columnarTimeline(entry: Json, epochMs: number, system: string, workload: string): Observation[] {
  const series = entry.timeline;
  if (!isObject(series)) return [];
  const out: Observation[] = [];
  for (const [key, values] of Object.entries(series)) {
    const known = KNOWN[snake(key)];
    if (!known || !TIME_SERIES.has(known[0]) || !Array.isArray(values)) continue;
    values.forEach((value, i) => {
      if (typeof value === 'number' && Number.isFinite(value)) {
        out.push({ system, workload, run: 0, metric: known[0], value, unit: known[1], timeS: ((i + 1) * epochMs) / 1000 });
      }
    });
  }
  return out;
}

function runObservations(run: Json, fallbackWorkload: string, param?: { name: string; value: number }): Observation[] | null {
  const entries = policyEntries(run);
  if (!entries) return null;
  const workload = workloadName(run, fallbackWorkload);
  const epochMs = typeof run.epochMs === 'number' && run.epochMs > 0 ? run.epochMs : 1000;
  const out: Observation[] = [];
  // Hot-set moves, once per workload (the report draws them as markers on the time plots).
  // Only a synthetic workload's moves are known: a replayed trace has one phase per epoch
  // (sim lists each as a shift), and nobody knows when, or whether, its hot set moved.
  const shifts = !param && !isTrace(run) && Array.isArray(run.shiftEpochs) ? (run.shiftEpochs as unknown[]) : [];
  if (shifts.length > 0) {
    for (const e of shifts) if (typeof e === 'number') out.push({ system: 'workload', workload, run: 0, metric: 'shift_time', value: (e * epochMs) / 1000, unit: 's' });
  }
  for (const entry of entries) {
    const system = policyName(entry) ?? '?';
    for (const [name, value] of flattenMetrics(entry)) {
      const [metric, unit] = KNOWN[name] ?? [name, unitFor(name)];
      out.push({ system, workload, run: 0, metric, value, unit, ...(param ? { param: param.name, paramValue: param.value } : {}) });
    }
    if (param) continue;
    // Convergence on the time axis of the plots: epochs -> seconds at the end of that epoch.
    const converge = entry.epochsToConverge;
    if (typeof converge === 'number') out.push({ system, workload, run: 0, metric: 'converge_time', value: (converge * epochMs) / 1000, unit: 's' });
    else if (converge === null) out.push({ system, workload, run: 0, metric: 'never_converged', value: 1, unit: 'count' });
    // Re-convergence after shift k (run = k, 1-based), in seconds after that shift.
    if (shifts.length > 0 && Array.isArray(entry.reconvergeEpochs)) {
      entry.reconvergeEpochs.forEach((e, k) => {
        if (typeof e === 'number') out.push({ system, workload, run: k + 1, metric: 'reconverge_after', value: (e * epochMs) / 1000, unit: 's' });
      });
    }
    out.push(...columnarTimeline(entry, epochMs, system, workload));
    for (const point of timeline(entry)) {
      const t = [point.timeS, point.time_s, point.tS, point.seconds].find((v) => typeof v === 'number') as number | undefined;
      const tMs = [point.timeMs, point.time_ms, point.epochMs].find((v) => typeof v === 'number') as number | undefined;
      const timeS = t ?? (tMs !== undefined ? tMs / 1000 : undefined);
      if (timeS === undefined) continue;
      for (const [name, value] of flattenMetrics(point)) {
        const known = KNOWN[name];
        if (!known || (known[0] !== METRICS.precision && known[0] !== METRICS.recall && known[0] !== METRICS.f1)) continue;
        out.push({ system, workload, run: 0, metric: known[0], value, unit: known[1], timeS });
      }
    }
  }
  return out;
}

const SWEEP_PARAMS: Record<string, string> = { dram: 'dram_bytes', dramBytes: 'dram_bytes', dram_bytes: 'dram_bytes', period: 'period', samplePeriod: 'period', budget: 'tracking_budget', trackingBudget: 'tracking_budget' };

/** Converts saved sim / sim sweep JSON; null when the data is not sim output. */
export function simObservations(data: unknown, fileName = 'sim.json'): Observation[] | null {
  if (!isObject(data)) return null;
  const fallback = fileName.replace(/\.json$/, '');
  const direct = runObservations(data, fallback);
  if (direct) return direct;
  // A sweep: a list of points, each a sim run plus the swept value.
  const points = [data.points, data.sweep, data.runs].find((v) => Array.isArray(v)) as unknown[] | undefined;
  if (!points || !points.every(isObject)) return null;
  const out: Observation[] = [];
  // Each point is a full sim run, so it carries both dramBytes and samplePeriod: the
  // sweep's own `parameter` says which of them varies.
  const swept = typeof data.parameter === 'string' ? data.parameter : null;
  const keyFor: Record<string, string[]> = { dram: ['dramBytes', 'dram_bytes'], period: ['samplePeriod', 'period'], budget: ['trackingBudget'] };
  for (const point of points as Json[]) {
    let param: { name: string; value: number } | undefined;
    const candidates = swept ? keyFor[swept] ?? [swept] : Object.keys(SWEEP_PARAMS);
    for (const key of candidates) {
      if (!param && typeof point[key] === 'number') param = { name: SWEEP_PARAMS[key] ?? snake(key), value: point[key] as number };
    }
    if (!param && swept && typeof point.value === 'number') param = { name: SWEEP_PARAMS[swept] ?? snake(swept), value: point.value };
    const run = runObservations(point, workloadName(data, fallback), param);
    if (!run) return null;
    out.push(...run);
  }
  return out.length > 0 ? out : null;
}

registerImportAdapter(simObservations);
