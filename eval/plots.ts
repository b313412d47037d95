// Plots for the report: vega-lite specs compiled to vega and rendered to SVG in Node (the
// headless View with renderer 'none' needs no canvas), so the report page carries its plots
// inline and never touches the network.
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

const WIDTH = 560;
const HEIGHT = 260;
const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

const CONFIG = {
  font: FONT,
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#e6e6e6' },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  view: { stroke: null },
};

// Tableau 10: the same system keeps the same colour in every plot of a report.
const PALETTE = ['#4c78a8', '#f58518', '#e45756', '#72b7b2', '#54a24b', '#eeca3b', '#b279a2', '#ff9da6', '#9d755d', '#bab0ac'];
let systemOrder: string[] = [];

/** Fixes the colour of each system for the plots that follow (the report calls it once). */
export function setSystemOrder(systems: string[]): void {
  systemOrder = [...new Set(systems)];
}

function colorScale(names: string[]): { domain: string[]; range: string[] } {
  const domain = [...new Set(names)].sort();
  const range = domain.map((name) => {
    const base = name.replace(/ \(.*\)$/, '');
    const i = systemOrder.indexOf(base);
    return PALETTE[(i >= 0 ? i : systemOrder.length + domain.indexOf(name)) % PALETTE.length];
  });
  return { domain, range };
}

/** What every plot spec starts with: schema, title, size, fonts. */
function frame(title: string, height = HEIGHT): { $schema: string; title: string; width: number; height: number; config: typeof CONFIG } {
  return { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', title, width: WIDTH, height, config: CONFIG };
}

export interface TimePoint {
  system: string;
  metric: string;
  workload: string;
  timeS: number;
  value: number;
}

export interface IntervalPoint {
  system: string;
  workload: string;
  mean: number;
  low: number;
  high: number;
  n: number;
}

/** One paired run: its own ratio and which arm ran first. */
export interface PairPoint {
  system: string;
  workload: string;
  run: number;
  value: number;
  order: string;
}

export interface BarPoint {
  system: string;
  group: string;
  value: number;
}

export interface SweepPoint {
  system: string;
  x: number;
  value: number;
  /** Spread over runs / seeds at this x (min and max); equal to value for one run. */
  low?: number;
  high?: number;
  n?: number;
}

/** Events drawn on a time plot: hot-set moves, and when each system converged (null = never). */
export interface TimeMarkers {
  shiftsS: number[];
  converge: Array<{ system: string; timeS: number | null }>;
  /** After a shift: when the system converged again (timeS absolute, afterS since the shift). */
  reconverge?: Array<{ system: string; timeS: number; afterS: number }>;
}

const SHAPES = ['circle', 'square', 'triangle-up', 'diamond', 'cross', 'triangle-down', 'triangle-left', 'triangle-right', 'wedge', 'stroke'];

function shapeScale(names: string[]): { domain: string[]; range: string[] } {
  const domain = [...new Set(names)].sort();
  return { domain, range: domain.map((_, i) => SHAPES[i % SHAPES.length]) };
}

/**
 * Precision/recall/F1 over time: one line per (system, metric), systems told apart by colour
 * and point shape, metrics by dash; hot-set moves as grey rules, each system's convergence as a
 * rule in its colour, and "never converged" written out.
 */
export function timeSeriesSpec(title: string, points: TimePoint[], yTitle: string, markers: TimeMarkers = { shiftsS: [], converge: [] }): TopLevelSpec {
  const systems = points.map((p) => p.system);
  const color = { field: 'system', type: 'nominal', title: 'system', scale: colorScale(systems) };
  const xMax = Math.max(0, ...points.map((p) => p.timeS));
  const layers: Record<string, unknown>[] = [
    {
      mark: { type: 'line', strokeWidth: 2 },
      encoding: {
        x: { field: 'timeS', type: 'quantitative', title: 'time (s)' },
        y: { field: 'value', type: 'quantitative', title: yTitle, scale: { domain: [0, 1] } },
        color,
        strokeDash: { field: 'metric', type: 'nominal', title: 'metric' },
        detail: { field: 'metric' },
      },
    },
    {
      // Sparse points so shapes stay readable on long runs.
      transform: [{ window: [{ op: 'row_number', as: 'i' }], groupby: ['system', 'metric'] }, { filter: `datum.i % ${Math.max(1, Math.ceil(points.length / 120))} === 0` }],
      mark: { type: 'point', filled: true, size: 36 },
      encoding: {
        x: { field: 'timeS', type: 'quantitative' },
        y: { field: 'value', type: 'quantitative' },
        color,
        shape: { field: 'system', type: 'nominal', title: 'system', scale: shapeScale(systems) },
        tooltip: [{ field: 'system' }, { field: 'metric' }, { field: 'timeS', title: 'time (s)' }, { field: 'value' }],
      },
    },
  ];
  if (markers.shiftsS.length > 0) {
    const shifts = markers.shiftsS.map((t) => ({ timeS: t, label: 'hot set moves' }));
    layers.push({ data: { values: shifts }, mark: { type: 'rule', color: '#555', strokeDash: [6, 3], strokeWidth: 1.5 }, encoding: { x: { field: 'timeS', type: 'quantitative' } } });
    layers.push({
      data: { values: shifts },
      mark: { type: 'text', align: 'left', dx: 3, dy: -4, fontSize: 10, color: '#555', baseline: 'bottom' },
      encoding: { x: { field: 'timeS', type: 'quantitative' }, y: { datum: 1 }, text: { field: 'label' } },
    });
  }
  const converged = markers.converge.filter((c) => c.timeS !== null);
  if (converged.length > 0) {
    layers.push({ data: { values: converged }, mark: { type: 'rule', strokeDash: [2, 2], strokeWidth: 1.5 }, encoding: { x: { field: 'timeS', type: 'quantitative' }, color } });
    layers.push({
      data: { values: converged.map((c, i) => ({ ...c, label: `${c.system} converged ${fmtSeconds(c.timeS as number)}`, y: 0.06 + 0.07 * i })) },
      mark: { type: 'text', align: 'left', dx: 3, fontSize: 10 },
      encoding: { x: { field: 'timeS', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, text: { field: 'label' }, color },
    });
  }
  const again = markers.reconverge ?? [];
  if (again.length > 0) {
    layers.push({ data: { values: again }, mark: { type: 'rule', strokeDash: [2, 2], strokeWidth: 1.5 }, encoding: { x: { field: 'timeS', type: 'quantitative' }, color } });
    layers.push({
      data: { values: again.map((c, i) => ({ ...c, label: `re-converged in ${fmtSeconds(c.afterS)}`, y: 0.94 - 0.07 * (i % 3) })) },
      mark: { type: 'text', align: 'left', dx: 3, fontSize: 10 },
      encoding: { x: { field: 'timeS', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, text: { field: 'label' }, color },
    });
  }
  const never = markers.converge.filter((c) => c.timeS === null);
  if (never.length > 0) {
    layers.push({
      data: { values: never.map((c, i) => ({ ...c, label: `${c.system}: never converged`, x: xMax, y: 0.06 + 0.07 * (converged.length + i) })) },
      mark: { type: 'text', align: 'right', fontSize: 10, fontWeight: 'bold' },
      encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, text: { field: 'label' }, color },
    });
  }
  return {
    ...frame(title),
    data: { values: points },
    layer: layers,
  } as unknown as TopLevelSpec;
}

function fmtSeconds(s: number): string {
  return `${Number(s.toPrecision(3))} s`;
}

const PAIR_SHAPES: Record<string, string> = { 'baseline ran first': 'circle', 'agent ran first': 'triangle-up', 'order not recorded': 'square' };

/** The pair orders present, each with its own shape (the legend lists only those). */
function pairShapes(pairs: PairPoint[]): { domain: string[]; range: string[] } {
  const domain = Object.keys(PAIR_SHAPES).filter((k) => pairs.some((p) => p.order === k));
  return { domain, range: domain.map((k) => PAIR_SHAPES[k]) };
}

/** Mean with confidence interval per workload and system (slowdown ratios), and every pair. */
export function intervalSpec(title: string, points: IntervalPoint[], yTitle: string, reference?: number, pairs: PairPoint[] = []): TopLevelSpec {
  const finite = points.filter((p) => Number.isFinite(p.low) && Number.isFinite(p.high));
  const shared = {
    x: { field: 'workload', type: 'nominal', title: 'workload', axis: { labelAngle: 0 } },
    xOffset: { field: 'system', type: 'nominal' },
    color: { field: 'system', type: 'nominal', title: 'system', scale: colorScale(points.map((p) => p.system)) },
  };
  const layers: Record<string, unknown>[] = [];
  if (reference !== undefined) {
    // Its own data and only a y encoding: the reference must not add a category to x.
    layers.push({ data: { values: [{ ref: reference }] }, mark: { type: 'rule', strokeDash: [4, 4], color: '#888' }, encoding: { y: { field: 'ref', type: 'quantitative' } } });
  }
  if (finite.length > 0) {
    layers.push({
      transform: [{ filter: 'isValid(datum.low) && isValid(datum.high)' }],
      mark: { type: 'errorbar', ticks: { size: 16 }, thickness: 1.5 },
      encoding: { ...shared, y: { field: 'low', type: 'quantitative', title: yTitle, scale: { zero: false } }, y2: { field: 'high' } },
    });
  }
  layers.push({
    mark: { type: 'point', filled: true, size: 150, opacity: 1, shape: 'diamond' },
    encoding: {
      ...shared,
      y: { field: 'mean', type: 'quantitative', title: yTitle, scale: { zero: false } },
      tooltip: [{ field: 'system' }, { field: 'mean' }, { field: 'low' }, { field: 'high' }, { field: 'n' }],
    },
  });
  if (pairs.length > 0) {
    // Every pair, hollow, its shape saying which arm ran first: a drift with order shows up.
    layers.push({
      data: { values: pairs },
      mark: { type: 'point', filled: false, size: 60, strokeWidth: 1.5, opacity: 0.9 },
      encoding: {
        ...shared,
        y: { field: 'value', type: 'quantitative', title: yTitle, scale: { zero: false } },
        shape: { field: 'order', type: 'nominal', title: 'each pair', scale: pairShapes(pairs) },
        tooltip: [{ field: 'system' }, { field: 'run', title: 'pair' }, { field: 'value', title: 'slowdown' }, { field: 'order' }],
      },
    });
  }
  return {
    ...frame(title),
    data: { values: points.map((p) => ({ ...p, low: Number.isFinite(p.low) ? p.low : null, high: Number.isFinite(p.high) ? p.high : null })) },
    layer: layers,
  } as unknown as TopLevelSpec;
}

/** Grouped bars: one bar per system inside each group (workload, or promoted/demoted), each
 *  system told apart by colour and by a shape on top of its bar (greyscale prints, colour-blind readers). */
export function barSpec(title: string, points: BarPoint[], yTitle: string, groupTitle: string, domain?: [number, number], legendTitle = 'system'): TopLevelSpec {
  const systems = points.map((p) => p.system);
  const x = { field: 'group', type: 'nominal', title: groupTitle, axis: { labelAngle: 0 } };
  const y = { field: 'value', type: 'quantitative', title: yTitle, ...(domain ? { scale: { domain } } : {}) };
  const color = { field: 'system', type: 'nominal', title: legendTitle, scale: colorScale(systems) };
  return {
    ...frame(title),
    data: { values: points },
    layer: [
      {
        mark: { type: 'bar' },
        encoding: { x, xOffset: { field: 'system', type: 'nominal' }, y, color, tooltip: [{ field: 'system' }, { field: 'group' }, { field: 'value' }] },
      },
      {
        mark: { type: 'point', filled: true, size: 40, stroke: '#1d1d1f', strokeWidth: 0.5 },
        encoding: { x, xOffset: { field: 'system', type: 'nominal' }, y, color, shape: { field: 'system', type: 'nominal', title: legendTitle, scale: shapeScale(systems) } },
      },
    ],
  } as unknown as TopLevelSpec;
}

/** True when positive x values span more than a decade: the sweep then reads on a log axis. */
export function wantsLogX(xs: number[]): boolean {
  const positive = xs.filter((x) => x > 0);
  return positive.length === xs.length && positive.length > 1 && Math.max(...positive) / Math.min(...positive) > 10;
}

/**
 * A swept parameter (DRAM size, sampling period) against a metric: one line per system with the
 * spread of its runs/seeds as a band, colour and shape per system, a log x axis when the values
 * span more than a decade, and the oracle drawn dashed on top so it stays visible where lines overlap.
 */
export function sweepSpec(title: string, points: SweepPoint[], xTitle: string, yTitle: string, domain?: [number, number]): TopLevelSpec {
  const systems = points.map((p) => p.system);
  const color = { field: 'system', type: 'nominal', title: 'system', scale: colorScale(systems) };
  const log = wantsLogX(points.map((p) => p.x));
  const x = { field: 'x', type: 'quantitative', title: `${xTitle}${log ? ', log scale' : ''}`, scale: log ? { type: 'log' } : { zero: false } };
  const y = { field: 'value', type: 'quantitative', title: yTitle, ...(domain ? { scale: { domain } } : {}) };
  const layers: Record<string, unknown>[] = [];
  if (points.some((p) => (p.n ?? 1) > 1)) {
    layers.push({ mark: { type: 'area', opacity: 0.18 }, encoding: { x, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' }, color } });
  }
  layers.push({
    transform: [{ filter: "datum.system !== 'oracle'" }],
    mark: { type: 'line', strokeWidth: 2, point: false },
    encoding: { x, y, color, order: { field: 'x' } },
  });
  // The oracle last, dashed and a little wider: drawn over the policies it bounds, it stays
  // visible where a policy reaches it.
  if (points.some((p) => p.system === 'oracle')) {
    layers.push({
      transform: [{ filter: "datum.system === 'oracle'" }],
      mark: { type: 'line', strokeWidth: 2.5, strokeDash: [6, 3], point: false },
      encoding: { x, y, color, order: { field: 'x' } },
    });
  }
  layers.push({
    mark: { type: 'point', filled: true, size: 50 },
    encoding: {
      x, y, color,
      shape: { field: 'system', type: 'nominal', title: 'system', scale: shapeScale(systems) },
      tooltip: [{ field: 'system' }, { field: 'x', title: xTitle }, { field: 'value', title: yTitle }, { field: 'low', title: 'lowest run' }, { field: 'high', title: 'highest run' }, { field: 'n', title: 'runs' }],
    },
  });
  return {
    ...frame(title),
    data: { values: points.map((p) => ({ low: p.value, high: p.value, n: 1, ...p })) },
    layer: layers,
  } as unknown as TopLevelSpec;
}

/** Renders a vega-lite spec to an SVG string (no canvas, no network). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const compiled = compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', logLevel: vega.Error });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Address x time heat map of a trace (damo `report heats`): colour = sample weight, log scale. */
export function heatmapSpec(title: string, cells: Array<{ timeS: number; timeEndS: number; addrMiB: number; addrEndMiB: number; weight: number }>): TopLevelSpec {
  return {
    ...frame(title, HEIGHT + 60),
    data: { values: cells },
    mark: { type: 'rect' },
    encoding: {
      x: { field: 'timeS', type: 'quantitative', title: 'time since the trace start (s)' },
      x2: { field: 'timeEndS' },
      y: { field: 'addrMiB', type: 'quantitative', title: 'guest-physical address (MiB)', scale: { zero: false } },
      y2: { field: 'addrEndMiB' },
      color: { field: 'weight', type: 'quantitative', title: 'samples per bin', scale: { type: 'log', scheme: 'inferno', reverse: true } },
      tooltip: [{ field: 'timeS', title: 'time (s)' }, { field: 'addrMiB', title: 'address (MiB)' }, { field: 'weight', title: 'samples' }],
    },
  };
}

/** Working-set size over time (damo `report wss`): one line, MiB on y. */
export function wssSpec(title: string, points: Array<{ timeS: number; wssMiB: number }>): TopLevelSpec {
  return {
    ...frame(title),
    data: { values: points },
    mark: { type: 'line', point: { filled: true, size: 30 }, strokeWidth: 2, color: PALETTE[0], interpolate: 'step-after' },
    encoding: {
      x: { field: 'timeS', type: 'quantitative', title: 'time since the trace start (s)' },
      y: { field: 'wssMiB', type: 'quantitative', title: 'working set (MiB sampled in the window)' },
      tooltip: [{ field: 'timeS', title: 'time (s)' }, { field: 'wssMiB', title: 'WSS (MiB)' }],
    },
  };
}

/**
 * One line per system over time (the lab's DRAM-served share): colour and point shape per
 * system in one legend, units in the axis titles, the y axis fixed to [0, 1] for shares.
 */
export function systemLinesSpec(title: string, points: Array<{ system: string; timeS: number; value: number }>, yTitle: string, domain?: [number, number]): TopLevelSpec {
  const systems = points.map((p) => p.system);
  const color = { field: 'system', type: 'nominal', title: 'system', scale: colorScale(systems) };
  const shape = { field: 'system', type: 'nominal', title: 'system', scale: shapeScale(systems) };
  const x = { field: 'timeS', type: 'quantitative', title: 'time since the system started (s)' };
  const y = { field: 'value', type: 'quantitative', title: yTitle, ...(domain ? { scale: { domain } } : {}) };
  const every = Math.max(1, Math.ceil(points.length / 150));
  return {
    ...frame(title),
    data: { values: points },
    layer: [
      { mark: { type: 'line', strokeWidth: 2 }, encoding: { x, y, color, detail: { field: 'system' } } },
      {
        transform: [{ window: [{ op: 'row_number', as: 'i' }], groupby: ['system'] }, { filter: `datum.i % ${every} === 1 || ${every} === 1` }],
        mark: { type: 'point', filled: true, size: 40 },
        encoding: { x, y, color, shape, tooltip: [{ field: 'system' }, { field: 'timeS', title: 'time (s)' }, { field: 'value', title: yTitle }] },
      },
    ],
  } as unknown as TopLevelSpec;
}
