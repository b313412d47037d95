// `vtier report`: turns a results directory into one self-contained HTML page (inline SVG
// plots, no network) or a Markdown version of the same tables. Every section is derived from
// the tidy observations, so it appears only when the results hold that kind of data.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { loadResults, METRICS, type CommandFacts, type LoadedResults, type Observation } from './results.js';
import { barSpec, heatmapSpec, intervalSpec, wssSpec, renderSvg, setSystemOrder, sweepSpec, timeSeriesSpec, type BarPoint, type IntervalPoint, type PairPoint, type TimeMarkers, type SweepPoint, type TimePoint } from './plots.js';
import { intervalWarnings, mean, meanInterval } from './stats.js';
import { demoLoopSection } from './report-demo.js';
import { labSections, LAB_SECTION_METRICS } from './report-lab.js';
import { describeTrace, summarizeTrace, traceHeatmap, traceWss, type DecodedTrace } from '../src/trace/index.js';

export interface Table {
  columns: string[];
  rows: string[][];
}

export interface Section {
  id: string;
  title: string;
  caption: string;
  table: Table;
  spec?: TopLevelSpec;
  svg?: string;
  /** Show the table, not behind the "data" fold. */
  open?: boolean;
}

export interface ReportModel {
  title: string;
  complete: boolean;
  campaign: string;
  command: CommandFacts | null;
  machine: unknown;
  warnings: string[];
  sections: Section[];
  summary: Table;
}

/** A pair's order rides on its slowdown row as a param; that row is still a plain scalar. */
const ORDER_PARAM = 'agent_first';
const unswept = (o: Observation): boolean => o.param === undefined || o.param === ORDER_PARAM;

const TIME_METRICS = new Set<string>([METRICS.precision, METRICS.recall, METRICS.f1]);
const GIB = 2 ** 30;
const MIB = 2 ** 20;

/** Numbers for people and for golden files: 4 significant digits, no locale. */
export function fmt(value: number): string {
  if (!Number.isFinite(value)) return '–';
  if (Number.isInteger(value) && Math.abs(value) < 1e12) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs >= 1e9 || abs < 1e-4)) return value.toExponential(3);
  return String(Number(value.toPrecision(4)));
}

/** Bytes with a binary unit: 2254857830 -> "2.1 GiB". */
export function fmtBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${fmt(Number(value.toPrecision(3)))} ${units[unit]}`;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = groups.get(k);
    if (list) list.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Hot-set moves and convergence per workload, from observations (sim) and the summary (eval accuracy). */
function timeMarkers(observations: Observation[], summary: unknown, workload: string, singleWorkload: boolean): TimeMarkers {
  const here = observations.filter((o) => o.workload === workload && o.timeS === undefined);
  const shifts = new Set(here.filter((o) => o.metric === 'shift_time').map((o) => o.value));
  const converge = new Map<string, number | null>();
  const reconverge: NonNullable<TimeMarkers['reconverge']> = [];
  for (const o of here) {
    if (o.metric === 'converge_time' || o.metric === 'time_to_converge') converge.set(o.system, Math.min(o.value, converge.get(o.system) ?? Infinity));
    else if (o.metric === 'never_converged' && !converge.has(o.system)) converge.set(o.system, null);
  }
  // eval accuracy: its runs carry the analysis (shift times, convergence, null = never).
  const runs = (summary as { runs?: unknown } | null)?.runs;
  if (Array.isArray(runs) && singleWorkload) {
    for (const r of runs as Array<{ system?: unknown; analysis?: { convergeS?: unknown; reconvergences?: Array<{ shiftS?: unknown }> } }>) {
      if (typeof r.system !== 'string' || !r.analysis) continue;
      for (const rc of (r.analysis.reconvergences ?? []) as Array<{ shiftS?: unknown; reconvergeS?: unknown }>) {
        if (typeof rc.shiftS !== 'number') continue;
        shifts.add(rc.shiftS);
        if (typeof rc.reconvergeS === 'number') reconverge.push({ system: r.system, timeS: rc.shiftS + rc.reconvergeS, afterS: rc.reconvergeS });
      }
      const c = r.analysis.convergeS;
      if (typeof c === 'number') converge.set(r.system, c);
      else if (c === null && !converge.has(r.system)) converge.set(r.system, null);
    }
  }
  // vtier sim: re-convergence after each shift, in epochs (null = never), in shift order.
  const sortedShifts = [...shifts].sort((a, b) => a - b);
  for (const o of here.filter((x) => x.metric === 'reconverge_after')) {
    const shiftS = sortedShifts[o.run - 1];
    if (shiftS !== undefined) reconverge.push({ system: o.system, timeS: shiftS + o.value, afterS: o.value });
  }
  return { shiftsS: sortedShifts, converge: [...converge].sort((a, b) => byText(a[0], b[0])).map(([system, timeS]) => ({ system, timeS })), reconverge };
}

function timeSeriesSections(observations: Observation[], summary: unknown = null): Section[] {
  const points = observations.filter((o) => o.timeS !== undefined && TIME_METRICS.has(o.metric));
  const sections: Section[] = [];
  const workloads = [...groupBy(points, (o) => o.workload)].sort((a, b) => byText(a[0], b[0]));
  for (const [workload, list] of workloads) {
    const markers = timeMarkers(observations, summary, workload, workloads.length === 1);
    // Runs of the same series are averaged at equal times.
    const series: TimePoint[] = [];
    for (const [, group] of groupBy(list, (o) => `${o.system}\u0000${o.metric}\u0000${o.timeS}`)) {
      series.push({ system: group[0].system, metric: group[0].metric, workload, timeS: group[0].timeS ?? 0, value: mean(group.map((o) => o.value)) });
    }
    series.sort((a, b) => byText(a.system, b.system) || byText(a.metric, b.metric) || a.timeS - b.timeS);
    const finals = new Map<string, TimePoint>();
    for (const p of series) finals.set(`${p.system} ${p.metric}`, p);
    sections.push({
      id: `accuracy-${workload}`,
      title: `Hot-set precision and recall over time — ${workload}`,
      caption:
        'Classified hot set against the workload’s true hot set; 1 is perfect. Colour and shape: system; dash: metric' +
        (markers.shiftsS.length ? '; grey dashed rules: the hot set moves' : '') +
        (markers.converge.length ? '; dotted rules in a system’s colour: when it converged (“never” when it did not)' : '') + '.',
      table: {
        columns: ['system', 'metric', 'final time (s)', 'final value', 'converged'],
        rows: [...finals.values()].map((p) => {
          const c = markers.converge.find((m) => m.system === p.system);
          return [p.system, p.metric, fmt(p.timeS), fmt(p.value), c === undefined ? '–' : c.timeS === null ? 'never' : `${fmt(c.timeS)} s`];
        }),
      },
      spec: timeSeriesSpec(`Precision / recall over time — ${workload}`, series, 'fraction (0–1)', markers),
    });
  }
  return sections;
}

function slowdownSection(observations: Observation[]): Section | null {
  const rows = observations.filter((o) => o.metric === METRICS.slowdown && o.timeS === undefined && unswept(o));
  if (rows.length === 0) return null;
  const points: IntervalPoint[] = [];
  for (const [, group] of groupBy(rows, (o) => `${o.workload}\u0000${o.system}`)) {
    const ci = meanInterval(group.map((o) => o.value));
    points.push({ system: group[0].system, workload: group[0].workload, mean: ci.mean, low: ci.low, high: ci.high, n: ci.n });
  }
  points.sort((a, b) => byText(a.workload, b.workload) || byText(a.system, b.system));
  const orderOf = (o: Observation): string => (o.param !== ORDER_PARAM ? 'order not recorded' : o.paramValue === 1 ? 'agent ran first' : 'baseline ran first');
  const pairs: PairPoint[] = rows
    .map((o) => ({ system: o.system, workload: o.workload, run: o.run, value: o.value, order: orderOf(o) }))
    .sort((a, b) => byText(a.workload, b.workload) || byText(a.system, b.system) || a.run - b.run);
  const ciOf = (p: IntervalPoint): string => (Number.isFinite(p.low) ? `${fmt(p.low)} – ${fmt(p.high)}` : 'n < 2');
  return {
    id: 'slowdown',
    title: 'Slowdown per workload',
    caption:
      'Ratio to the paired baseline run (overhead: with / without the agent; compare: system / static, no migration). Every pair is drawn (shape: which arm ran first); ' +
      'the large point is the mean, the bar its 95% t confidence interval; 1 = no slowdown (dashed), below 1 = faster with the agent, which is noise, not a gain.',
    table: {
      columns: ['workload', 'system', 'pair', 'ran first', 'slowdown', 'mean (95% CI) of the pairs'],
      rows: pairs.map((p) => {
        const summary = points.find((q) => q.workload === p.workload && q.system === p.system);
        return [p.workload, p.system, String(p.run), p.order.replace(/ ran first$/, ''), fmt(p.value), summary ? `${fmt(summary.mean)} (${ciOf(summary)}), n = ${summary.n}` : ''];
      }),
    },
    spec: intervalSpec('Slowdown per workload: every pair, mean and 95% CI', points, 'slowdown (ratio, 1 = none)', 1, pairs),
  };
}

/** Warnings a reader needs before trusting a slowdown: a CI wider than +-10% or too few pairs. */
function slowdownWarnings(observations: Observation[]): string[] {
  const rows = observations.filter((o) => o.metric === METRICS.slowdown && o.timeS === undefined && unswept(o));
  const out: string[] = [];
  for (const [, group] of groupBy(rows, (o) => `${o.workload}\u0000${o.system}`)) {
    const ci = meanInterval(group.map((o) => o.value));
    out.push(...intervalWarnings(`slowdown of ${group[0].system} on ${group[0].workload}`, ci, ci.n));
  }
  return out;
}

function dramShareSection(observations: Observation[]): Section | null {
  const rows = observations.filter((o) => o.metric === METRICS.dramServedShare && o.timeS === undefined && unswept(o));
  if (rows.length === 0) return null;
  const points: BarPoint[] = [];
  for (const [, group] of groupBy(rows, (o) => `${o.workload}\u0000${o.system}`)) {
    points.push({ system: group[0].system, group: group[0].workload, value: mean(group.map((o) => o.value)) });
  }
  points.sort((a, b) => byText(a.group, b.group) || byText(a.system, b.system));
  return {
    id: 'dram-share',
    title: 'Accesses served from DRAM per policy',
    caption: 'Share of memory accesses that hit the fast tier; higher is better.',
    table: { columns: ['workload', 'policy', 'DRAM-served share'], rows: points.map((p) => [p.group, p.system, fmt(p.value)]) },
    spec: barSpec('DRAM-served share per policy', points, 'share of accesses from DRAM (fraction 0–1)', 'workload', [0, 1], 'policy'),
  };
}

const SWEEP_METRICS = [METRICS.dramServedShare, METRICS.recall, METRICS.precision, METRICS.f1, 'modelled_slowdown'];

/** A swept parameter's axis title, with its unit (DRAM sizes are plotted in GiB). */
export function sweepParamTitle(param: string): string {
  const titles: Record<string, string> = {
    dram_bytes: 'DRAM size (GiB)',
    period: 'sample period (events per sample)',
    sample_period_events: 'sample period (events per sample)',
    damon_sample_ms: 'DAMON sampling interval (ms)',
    tracking_budget: 'tracking budget (share of a core)',
  };
  return titles[param] ?? `${param} (as recorded)`;
}

/** A plotted metric's axis title, with its unit. */
export function metricTitle(metric: string): string {
  if (metric === 'modelled_slowdown') return 'modelled slowdown (ratio, 1 = none)';
  if (metric === METRICS.dramServedShare) return 'DRAM-served share (fraction 0–1)';
  return `${metric} (fraction 0–1)`;
}

/** One section per swept parameter and plotted metric (DRAM size, sampling period, ...). */
function sweepSections(observations: Observation[]): Section[] {
  const rows = observations.filter((o) => o.param !== undefined && o.paramValue !== undefined && SWEEP_METRICS.includes(o.metric));
  const sections: Section[] = [];
  const byParamMetric = [...groupBy(rows, (o) => `${o.param}\u0000${o.metric}`)].sort((a, b) => byText(a[0], b[0]));
  for (const [, list] of byParamMetric) {
    const param = list[0].param ?? '';
    const metric = list[0].metric;
    const isDram = param === 'dram_bytes';
    const xTitle = sweepParamTitle(param);
    const workloads = new Set(list.map((o) => o.workload));
    const points: SweepPoint[] = [];
    for (const [, group] of groupBy(list, (o) => `${o.workload}\u0000${o.system}\u0000${o.paramValue}`)) {
      const system = workloads.size > 1 ? `${group[0].system} (${group[0].workload})` : group[0].system;
      const values = group.map((o) => o.value);
      points.push({ system, x: (group[0].paramValue ?? 0) / (isDram ? GIB : 1), value: mean(values), low: Math.min(...values), high: Math.max(...values), n: values.length });
    }
    points.sort((a, b) => byText(a.system, b.system) || a.x - b.x);
    const bounded = metric !== 'modelled_slowdown';
    sections.push({
      id: isDram && metric === METRICS.dramServedShare ? 'dram-sensitivity' : `sweep-${param}-${metric}`,
      title: isDram ? `Sensitivity to DRAM size: ${metric}` : `Sensitivity to ${param}: ${metric}`,
      caption: isDram && metric === METRICS.dramServedShare
        ? 'DRAM-served share as the fast tier grows; a good policy approaches the oracle with less DRAM.'
        : `${metric} as ${param} varies.`,
      table: { columns: ['system', xTitle, metric, 'runs', 'range over runs'], rows: points.map((p) => [p.system, fmt(p.x), fmt(p.value), String(p.n ?? 1), (p.n ?? 1) > 1 ? `${fmt(p.low ?? p.value)} – ${fmt(p.high ?? p.value)}` : '']) },
      spec: sweepSpec(isDram ? `DRAM-size sensitivity (${metric})` : `${param} sensitivity (${metric})`, points, xTitle, metricTitle(metric), bounded ? [0, 1] : undefined),
    });
  }
  return sections;
}

function migrationSection(observations: Observation[]): Section | null {
  const rows = observations.filter(
    (o) => (o.metric === METRICS.promotedBytes || o.metric === METRICS.demotedBytes) && o.timeS === undefined && unswept(o),
  );
  if (rows.length === 0) return null;
  const workloads = new Set(rows.map((o) => o.workload));
  const maxBytes = Math.max(...rows.map((o) => o.value));
  const [scale, unit] = maxBytes >= GIB ? [GIB, 'GiB'] : [MIB, 'MiB'];
  const points: BarPoint[] = [];
  for (const [, group] of groupBy(rows, (o) => `${o.workload}\u0000${o.system}\u0000${o.metric}`)) {
    const direction = group[0].metric === METRICS.promotedBytes ? 'promoted' : 'demoted';
    points.push({ system: group[0].system, group: workloads.size > 1 ? `${direction} (${group[0].workload})` : direction, value: mean(group.map((o) => o.value)) / scale });
  }
  points.sort((a, b) => byText(a.group, b.group) || byText(a.system, b.system));
  return {
    id: 'migration',
    title: 'Migration traffic',
    caption: `Bytes moved between tiers per run (${unit}); less traffic for the same DRAM share is better.`,
    table: { columns: ['direction', 'system', `bytes moved (${unit})`], rows: points.map((p) => [p.group, p.system, fmt(p.value)]) },
    spec: barSpec('Migration traffic', points, `bytes moved (${unit})`, 'direction'),
  };
}

/** Metrics the summary shows, in this column order; every other metric is listed under "All other metrics". */
const KEY_METRICS: string[] = [
  METRICS.slowdown, 'cpu_slowdown', 'modelled_slowdown', METRICS.dramServedShare, 'precision_steady', 'recall_steady', 'epochs_to_converge',
  METRICS.throughput, METRICS.wallTime, 'workload_cpu', METRICS.agentCpu, METRICS.agentCpuShare,
  METRICS.promotedBytes, METRICS.demotedBytes, 'vmstat:pgpromote_success', 'vmstat:numa_hint_faults',
  'access_dram_share_mean', 'hot_dram_share_mean', 'migrated_bytes',
];

/** Unit shown in a column header; ratios and fractions speak for themselves. */
function headerUnit(unit: string): string {
  return unit === '' || unit === 'ratio' || unit === 'fraction' || unit === 'bytes' ? '' : ` (${unit})`;
}

/** Key numbers: one row per (workload, system), one column per key metric, mean ± 95% CI half-width. */
function summaryTable(observations: Observation[]): Table {
  const scalar = observations.filter((o) => o.timeS === undefined && unswept(o) && KEY_METRICS.includes(o.metric));
  const present = KEY_METRICS.filter((m) => scalar.some((o) => o.metric === m));
  const finals = observations.filter((o) => o.timeS !== undefined && TIME_METRICS.has(o.metric));
  const finalMetrics = [METRICS.precision, METRICS.recall, METRICS.f1].filter((m) => finals.some((o) => o.metric === m));
  const units = new Map(scalar.map((o) => [o.metric, o.unit]));
  const columns = ['workload', 'system', 'runs', ...present.map((m) => `${m}${headerUnit(units.get(m) ?? '')}`), ...finalMetrics.map((m) => `${m} (final)`)];
  const keys = [...new Set([...scalar, ...finals].map((o) => `${o.workload}\u0000${o.system}`))].sort(byText);
  const rows = keys.map((key) => {
    const [workload, system] = key.split('\u0000');
    let runs = 0;
    const cells = present.map((metric) => {
      const values = scalar.filter((o) => o.workload === workload && o.system === system && o.metric === metric).map((o) => o.value);
      if (values.length === 0) return '';
      runs = Math.max(runs, values.length);
      const ci = meanInterval(values);
      const show = (v: number): string => (units.get(metric) === 'bytes' ? fmtBytes(v) : fmt(v));
      return Number.isFinite(ci.halfWidth) ? `${show(ci.mean)} ± ${show(ci.halfWidth)}` : show(ci.mean);
    });
    const finalCells = finalMetrics.map((metric) => {
      const series = finals.filter((o) => o.workload === workload && o.system === system && o.metric === metric);
      if (series.length === 0) return '';
      const lastTime = Math.max(...series.map((o) => o.timeS ?? 0));
      return fmt(mean(series.filter((o) => o.timeS === lastTime).map((o) => o.value)));
    });
    return [workload, system, runs > 0 ? String(runs) : '', ...cells, ...finalCells];
  });
  return { columns, rows };
}

/** Every other scalar metric, one row per (workload, system, metric). */
function otherMetricsTable(observations: Observation[]): Table {
  const rows: string[][] = [];
  const scalar = observations.filter((o) => o.timeS === undefined && unswept(o) && !KEY_METRICS.includes(o.metric) && !LAB_SECTION_METRICS.has(o.metric));
  const groups = [...groupBy(scalar, (o) => [o.workload, o.system, o.metric, o.unit].join('\u0000'))].sort((a, b) => byText(a[0], b[0]));
  for (const [, group] of groups) {
    const o = group[0];
    const ci = meanInterval(group.map((g) => g.value));
    const show = (v: number): string => (o.unit === 'bytes' ? fmtBytes(v) : fmt(v));
    rows.push([o.workload, o.system, o.metric, o.unit, String(ci.n), show(ci.mean), Number.isFinite(ci.halfWidth) ? `± ${show(ci.halfWidth)}` : '']);
  }
  return { columns: ['workload', 'system', 'metric', 'unit', 'n', 'mean', '95% CI'], rows };
}

/** Builds the report's content from loaded results; renders the plots to SVG. */
export async function buildReport(results: LoadedResults, options: { plots?: boolean } = {}): Promise<ReportModel> {
  const obs = results.observations;
  setSystemOrder([...new Set(obs.filter((o) => o.metric !== 'shift_time').map((o) => o.system))].sort());
  const sections: Section[] = [
    demoLoopSection(results.summary),
    ...timeSeriesSections(obs, results.summary),
    ...labSections(obs),
    slowdownSection(obs),
    dramShareSection(obs),
    ...sweepSections(obs),
    migrationSection(obs),
  ].filter((s): s is Section => s !== null);
  if (options.plots !== false) {
    for (const section of sections) if (section.spec) section.svg = await renderSvg(section.spec);
  }
  const others = otherMetricsTable(obs);
  if (others.rows.length > 0) {
    sections.push({ id: 'all-metrics', title: 'All other metrics', caption: 'Every other metric in the results, mean over runs.', table: others });
  }
  const campaign = results.command?.campaign ?? 'imported';
  let summary = summaryTable(obs);
  if (summary.rows.every((r) => r.slice(3).every((c) => c === ''))) summary = sweepSummaryTable(obs) ?? summary;
  const warnings = [...results.warnings];
  if (obs.length === 0) warnings.push('the results hold no observations yet');
  warnings.push(...slowdownWarnings(obs));
  for (const w of (results.summary as { warnings?: unknown } | null)?.warnings instanceof Array ? ((results.summary as { warnings: unknown[] }).warnings) : []) {
    if (typeof w === 'string' && !warnings.includes(w) && !/^slowdown: /.test(w)) warnings.push(w);
  }
  return {
    title: `vtier ${campaign} report`,
    complete: results.complete,
    campaign,
    command: results.command,
    machine: results.machine,
    warnings,
    sections,
    summary,
  };
}

/** Key numbers of a sweep: per system and swept value, the mean of each swept metric. */
function sweepSummaryTable(observations: Observation[]): Table | null {
  const rows = observations.filter((o) => o.param !== undefined && o.param !== ORDER_PARAM && o.paramValue !== undefined && SWEEP_METRICS.includes(o.metric));
  if (rows.length === 0) return null;
  const metrics = SWEEP_METRICS.filter((m) => rows.some((o) => o.metric === m));
  const param = rows[0].param ?? '';
  const isDram = param === 'dram_bytes';
  const out: string[][] = [];
  for (const [, group] of [...groupBy(rows, (o) => `${o.workload}\u0000${o.system}\u0000${String(o.paramValue).padStart(24, '0')}`)].sort((a, b) => byText(a[0], b[0]))) {
    const o = group[0];
    out.push([o.workload, o.system, isDram ? fmtBytes(o.paramValue ?? 0) : fmt(o.paramValue ?? 0), ...metrics.map((m) => {
      const values = group.filter((g) => g.metric === m).map((g) => g.value);
      return values.length ? fmt(mean(values)) : '';
    })]);
  }
  return { columns: ['workload', 'system', isDram ? 'DRAM size' : param, ...metrics], rows: out };
}

function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./=:,@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The command line as the user would type it (node and bin path shortened to `vtier`). */
export function commandLine(command: CommandFacts): string {
  const argv = [...command.argv];
  if (argv.length >= 2 && /node$/.test(argv[0]) && /vtier(\.js)?$/.test(argv[1])) argv.splice(0, 2, 'vtier');
  return argv.map(shellQuote).join(' ');
}

function factRows(command: CommandFacts | null, machine: unknown): string[][] {
  const rows: string[][] = [];
  if (command) {
    rows.push(['command', commandLine(command)]);
    rows.push(['started', command.startedAt]);
    rows.push(['vtier', `${command.vtierVersion}${command.gitCommit ? ` (${command.gitCommit.slice(0, 12)})` : ''}`]);
    rows.push(['node', command.node]);
    rows.push(['kernel', command.kernel]);
    for (const [tool, version] of Object.entries(command.tools).sort()) rows.push([`tool: ${tool}`, version]);
    for (const [key, value] of Object.entries(command.settings).sort()) rows.push([`setting: ${key}`, typeof value === 'string' ? value : JSON.stringify(value)]);
  }
  const basic = (machine as { basic?: Record<string, unknown> } | null)?.basic;
  if (basic) {
    for (const key of ['hostname', 'os', 'cpuModel', 'cpuCount', 'memTotalBytes', 'numaNodes']) {
      if (basic[key] !== undefined && basic[key] !== null) rows.push([`machine: ${key}`, typeof basic[key] === 'string' ? (basic[key] as string) : JSON.stringify(basic[key])]);
    }
  }
  const doctorError = (machine as { doctorError?: string } | null)?.doctorError;
  if (doctorError) rows.push(['machine: doctor', `unavailable (${doctorError})`]);
  return rows;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

function htmlTable(table: Table, className = ''): string {
  const head = table.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
  const body = table.rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n');
  return `<div class="scroll"><table${className ? ` class="${className}"` : ''}><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

const STYLE = `
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f; margin: 0 auto; max-width: 980px; padding: 24px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 6px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #555; margin: 0 0 16px; }
.banner { background: #fff3cd; border: 1px solid #e0b800; padding: 10px 14px; border-radius: 6px; margin: 12px 0; }
.warn { color: #8a5a00; }
figure { margin: 8px 0; } figure svg { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f7; } td { font-variant-numeric: tabular-nums; }
table.facts td:first-child { white-space: nowrap; color: #555; }
table.key th { white-space: normal; max-width: 150px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
pre { background: #f5f5f7; padding: 8px; overflow-x: auto; max-height: 400px; }
details { margin: 6px 0; }
.scroll { overflow-x: auto; }
`;

/** A wide table as several that fit the page: the first `keep` columns repeated, `per` others each. */
export function splitColumns(table: Table, keep: number, per: number): Table[] {
  if (table.columns.length <= keep + per + 1) return [table];
  const out: Table[] = [];
  for (let c = keep; c < table.columns.length; c += per) {
    const pick = (row: string[]): string[] => [...row.slice(0, keep), ...row.slice(c, c + per)];
    const rows = table.rows.map(pick).filter((r) => r.slice(keep).some((cell) => cell !== ''));
    if (rows.length > 0) out.push({ columns: pick(table.columns), rows });
  }
  return out;
}

/** One self-contained HTML page: inline CSS and SVG, no scripts, no network. */
export function renderHtml(model: ReportModel): string {
  const parts: string[] = [];
  parts.push('<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">', `<title>${escapeHtml(model.title)}</title>`);
  parts.push('<meta name="viewport" content="width=device-width, initial-scale=1">', `<style>${STYLE}</style></head><body>`);
  parts.push(`<h1>${escapeHtml(model.title)}</h1>`);
  const sub = model.command ? `<code>${escapeHtml(commandLine(model.command))}</code> · ${escapeHtml(model.command.startedAt)}` : model.campaign === 'trace' ? 'a trace recorded by vtier guest record' : 'imported tool output';
  parts.push(`<p class="sub">${sub}</p>`);
  if (!model.complete && model.campaign === 'trace') {
    parts.push('<div class="banner" id="interrupted"><strong>Truncated trace:</strong> the recorder stopped before writing its end record; the views cover the batches present.</div>');
  } else if (!model.complete) {
    parts.push('<div class="banner" id="interrupted"><strong>Partial (interrupted):</strong> the campaign did not finish (no DONE marker). The numbers below cover only the runs completed before it stopped.</div>');
  }
  for (const warning of model.warnings) parts.push(`<p class="warn">⚠ ${escapeHtml(warning)}</p>`);
  parts.push(`<h2 id="summary">${model.campaign === 'trace' ? 'The trace' : 'Key numbers'}</h2>`);
  parts.push(model.summary.rows.length ? splitColumns(model.summary, model.campaign === 'trace' ? 99 : 3, 4).map((t) => htmlTable(t, 'key')).join('\n') : '<p>No observations.</p>');
  for (const section of model.sections) {
    parts.push(`<h2 id="${escapeHtml(section.id)}">${escapeHtml(section.title)}</h2>`);
    if (section.svg) parts.push(`<figure class="plot" data-plot="${escapeHtml(section.id)}">${section.svg}<figcaption>${escapeHtml(section.caption)}</figcaption></figure>`);
    else parts.push(`<p>${escapeHtml(section.caption)}</p>`);
    parts.push(`<details${section.open ? ' open' : ''}><summary>data</summary>${htmlTable(section.table)}</details>`);
  }
  parts.push('<h2 id="facts">Command and machine</h2>');
  parts.push(htmlTable({ columns: ['fact', 'value'], rows: factRows(model.command, model.machine) }, 'facts'));
  const doctor = (model.machine as { doctor?: unknown } | null)?.doctor;
  if (doctor) parts.push(`<details><summary>vtier doctor --json</summary><pre>${escapeHtml(JSON.stringify(doctor, null, 2))}</pre></details>`);
  parts.push('</body></html>');
  return `${parts.join('\n')}\n`;
}

function mdCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function mdTable(table: Table): string {
  const lines = [`| ${table.columns.map(mdCell).join(' | ')} |`, `|${table.columns.map(() => ' --- ').join('|')}|`];
  for (const row of table.rows) lines.push(`| ${row.map(mdCell).join(' | ')} |`);
  return lines.join('\n');
}

/** The same content as Markdown tables (no plots). */
export function renderMarkdown(model: ReportModel): string {
  const out: string[] = [`# ${model.title}`, ''];
  if (model.command) out.push(`\`${commandLine(model.command)}\``, '');
  if (!model.complete) out.push('> **Partial (interrupted):** the campaign did not finish (no DONE marker); the numbers cover only the completed runs.', '');
  for (const warning of model.warnings) out.push(`> warning: ${warning}`, '');
  out.push('## Key numbers', '', model.summary.rows.length ? mdTable(model.summary) : 'No observations.', '');
  for (const section of model.sections) out.push(`## ${section.title}`, '', section.caption, '', mdTable(section.table), '');
  out.push('## Command and machine', '', mdTable({ columns: ['fact', 'value'], rows: factRows(model.command, model.machine) }), '');
  return out.join('\n');
}

/** Builds and writes <dir>/report.html; returns its path. */
export async function writeReportFile(dir: string): Promise<string> {
  const model = await buildReport(loadResults(dir));
  const path = join(dir, 'report.html');
  writeFileSync(path, renderHtml(model));
  return path;
}

/**
 * The report of one trace file (`vtier report TRACE`): what the trace holds (the shared trace
 * summary), an address x time heat map and the working-set size over time, as damo's
 * `report heats` and `report wss` show a DAMON record.
 */
export async function buildTraceReport(trace: DecodedTrace, path: string, options: { plots?: boolean; timeBins?: number; addrBins?: number } = {}): Promise<ReportModel> {
  const summary = summarizeTrace(trace);
  const pageSize = trace.header.pageSize;
  const heat = traceHeatmap(trace, { timeBins: options.timeBins ?? 80, addrBins: options.addrBins ?? 64 });
  const wss = traceWss(trace, { bins: options.timeBins ?? 80 });
  const toMiB = (pfn: number): number => (pfn * pageSize) / MIB;
  const cells = heat.cells.map((c) => ({
    timeS: c.timeS,
    timeEndS: c.timeS + heat.timeBinS,
    addrMiB: toMiB(c.pfn),
    addrEndMiB: toMiB(Math.min(c.pfn + heat.pagesPerBin, heat.pfnHigh)),
    weight: c.weight,
  }));
  const wssPoints = wss.map((p) => ({ timeS: p.timeS, wssMiB: p.bytes / MIB }));
  const sections: Section[] = [];
  if (cells.length > 0) {
    sections.push({
      id: 'heatmap',
      title: 'Where the samples land: address x time',
      caption:
        `Sample weight per cell (log colour; darker = more) over ${fmt(heat.timeBinS)} s x ${fmtBytes(heat.pagesPerBin * pageSize)} bins, ` +
        `addresses ${fmtBytes(heat.pfnLow * pageSize)} to ${fmtBytes(heat.pfnHigh * pageSize)} (the span any sample touched). A hot set is a dark band; when it moves, the band moves.`,
      table: {
        columns: ['time (s)', 'address (MiB)', 'samples'],
        rows: [...cells].sort((a, b) => b.weight - a.weight).slice(0, 50).map((c) => [fmt(c.timeS), fmt(c.addrMiB), fmt(c.weight)]),
      },
      spec: heatmapSpec(`Sample heat — ${summary.source}`, cells),
    });
  }
  sections.push({
    id: 'wss',
    title: 'Working-set size over time',
    caption: `Distinct pages with at least one sample in each ${fmt(wss.length > 1 ? wss[1].timeS - wss[0].timeS : heat.timeBinS)} s window, in MiB. A sampler sees a subset of the pages touched: faults only first touches, DAMON whole regions.`,
    table: { columns: ['time (s)', 'WSS (MiB)', 'pages'], rows: wss.map((p) => [fmt(p.timeS), fmt(p.bytes / MIB), String(p.pages)]) },
    spec: wssSpec(`Working-set size — ${summary.source}`, wssPoints),
  });
  if (options.plots !== false) for (const section of sections) if (section.spec) section.svg = await renderSvg(section.spec);
  const warnings: string[] = [];
  if (summary.truncated) warnings.push(`the trace is truncated (${summary.truncatedReason ?? 'no end record'}); the views cover the batches present`);
  if (cells.length === 0) warnings.push('the trace holds no samples: nothing to map (faults only sees first touches; an idle target gives none)');
  const rows: string[][] = [
    ['trace', path],
    ['summary', describeTrace(summary)],
    ['source', `${summary.source}${summary.damonMode ? ` (${summary.damonMode})` : ''}`],
    ['duration', `${fmt(summary.durationS)} s`],
    ['samples', summary.samples === null ? 'unknown (no end record)' : String(summary.samples)],
    ['page samples', String(summary.pageSamples)],
    ['distinct pages', `${summary.distinctPages} (${fmtBytes(summary.distinctPages * pageSize)})`],
    ['peak WSS', fmtBytes(Math.max(0, ...wss.map((p) => p.bytes)))],
    ['guest RAM', summary.ramPages > 0 ? fmtBytes(summary.ramPages * pageSize) : 'not recorded'],
    ['epoch', `${summary.epochMs} ms`],
  ];
  return {
    title: `vtier trace report: ${path.split('/').pop()}`,
    complete: !summary.truncated,
    campaign: 'trace',
    command: null,
    machine: { basic: trace.header.facts },
    warnings,
    sections,
    summary: { columns: ['fact', 'value'], rows },
  };
}
