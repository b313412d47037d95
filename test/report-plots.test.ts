// The report's plot encodings, read from the Vega-Lite specs (pure, no rendering): systems
// told apart by colour and shape, a unit on every quantitative axis, log x where a sweep spans
// more than a decade, the oracle dashed on top, hot-set moves, convergence and "never" on the
// accuracy plot. report-browser.test.ts checks the same in the rendered page.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TopLevelSpec } from 'vega-lite';
import { loadResults } from '../eval/results.js';
import { buildReport, type ReportModel } from '../eval/report.js';
import { barSpec, intervalSpec, sweepSpec, timeSeriesSpec, wantsLogX, type SweepPoint } from '../eval/plots.js';
import { buildReportFixture } from './helpers/report-fixture.js';

type Enc = { field?: string; type?: string; title?: string | null; scale?: { type?: string; domain?: unknown[]; range?: unknown[] }; condition?: unknown; value?: unknown; datum?: unknown };
type Layer = { mark: { type: string; strokeDash?: number[] } | string; encoding?: Record<string, Enc>; transform?: Array<Record<string, unknown>>; data?: { values: Array<Record<string, unknown>> } };

const base = mkdtempSync(join(tmpdir(), 'vtier-report-plots-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

function layers(spec: TopLevelSpec | undefined): Layer[] {
  const s = spec as unknown as Layer & { layer?: Layer[] };
  return s.layer ?? [s];
}

const markType = (l: Layer): string => (typeof l.mark === 'string' ? l.mark : l.mark.type);

/** A unit in parentheses: "time (s)", "fraction (0–1)", "bytes moved (MiB)". */
const UNIT = /\([^)]+\)/;

/** Titles of every quantitative x/y encoding of a spec. */
function quantitativeTitles(spec: TopLevelSpec | undefined): string[] {
  const out: string[] = [];
  for (const l of layers(spec)) {
    for (const channel of ['x', 'y']) {
      const e = l.encoding?.[channel];
      if (e?.type === 'quantitative' && typeof e.title === 'string') out.push(e.title);
    }
  }
  return out;
}

/** Colour and shape encodings of the `system` field, by layer. */
function seriesEncodings(spec: TopLevelSpec | undefined): { color: Enc[]; shape: Enc[] } {
  const color: Enc[] = [];
  const shape: Enc[] = [];
  for (const l of layers(spec)) {
    if (l.encoding?.color?.field === 'system') color.push(l.encoding.color);
    if (l.encoding?.shape?.field === 'system') shape.push(l.encoding.shape);
  }
  return { color, shape };
}

const distinct = (values: unknown[] | undefined): number => new Set((values ?? []).map((v) => JSON.stringify(v))).size;

let model: ReportModel;
beforeAll(async () => {
  model = await buildReport(loadResults(buildReportFixture(join(base, 'fixture'))), { plots: false });
});
const section = (id: string) => {
  const s = model.sections.find((x) => x.id === id);
  expect(s, id).toBeDefined();
  return s!;
};

describe('report plot specs', () => {
  it('put a unit on every quantitative axis of every plot', () => {
    const plotted = model.sections.filter((s) => s.spec);
    expect(plotted.map((s) => s.id)).toEqual(['accuracy-shifting', 'slowdown', 'dram-share', 'dram-sensitivity', 'migration']);
    for (const s of plotted) {
      const titles = quantitativeTitles(s.spec);
      expect(titles.length, s.id).toBeGreaterThan(0);
      for (const title of titles) expect(title, `${s.id}: axis "${title}" has no unit`).toMatch(UNIT);
    }
  });

  it('tell systems apart by colour and shape, in one legend', () => {
    for (const id of ['accuracy-shifting', 'dram-share', 'dram-sensitivity', 'migration']) {
      const { color, shape } = seriesEncodings(section(id).spec);
      expect(color.length, `${id}: colour by system`).toBeGreaterThan(0);
      expect(shape.length, `${id}: shape by system`).toBeGreaterThan(0);
      for (const c of color) {
        expect(distinct(c.scale?.range), id).toBe(c.scale?.domain?.length);
        // The same title on colour and shape: Vega-Lite merges them into one legend.
        expect(c.title, id).toBe(shape[0].title);
      }
      for (const sh of shape) {
        expect(sh.scale?.domain?.length, id).toBeGreaterThan(1);
        expect(distinct(sh.scale?.range), `${id}: one shape per system`).toBe(sh.scale?.domain?.length);
      }
    }
    // Slowdown: systems by colour and position; each pair's shape says which arm ran first.
    const slow = layers(section('slowdown').spec);
    expect(slow.some((l) => l.encoding?.color?.field === 'system' && l.encoding?.xOffset?.field === 'system')).toBe(true);
    const order = slow.find((l) => l.encoding?.shape?.field === 'order');
    expect(order?.encoding?.shape.scale?.domain).toEqual(['baseline ran first', 'agent ran first']);
    expect(distinct(order?.encoding?.shape.scale?.range)).toBe(2);
  });

  it('mark hot-set moves, convergence and "never" on the accuracy plot', () => {
    const s = section('accuracy-shifting');
    const ls = layers(s.spec);
    const rules = ls.filter((l) => markType(l) === 'rule');
    // The shifting fixture moves its hot set at 4 s: a dashed grey rule there, labelled.
    const shift = rules.find((l) => l.data?.values.some((v) => v.label === 'hot set moves'));
    expect(shift?.data?.values.map((v) => v.timeS)).toEqual([4]);
    expect((shift?.mark as { strokeDash?: number[] }).strokeDash?.length).toBe(2);
    // Convergence: a rule in each converged system's colour, with its time written next to it.
    const converged = rules.find((l) => l.data?.values.some((v) => v.system === 'oracle' && v.timeS === 1));
    expect(converged?.encoding?.color?.field).toBe('system');
    expect(converged?.data?.values.map((v) => [v.system, v.timeS])).toEqual([['oracle', 1], ['vtier', 2]]);
    const labels = ls.flatMap((l) => (markType(l) === 'text' ? l.data?.values.map((v) => v.label) ?? [] : []));
    expect(labels).toEqual(expect.arrayContaining(['oracle converged 1 s', 'vtier converged 2 s', 're-converged in 1 s', 'autonuma: never converged', 'static: never converged']));
    // And in the table under it.
    expect(s.table.rows.filter((r) => r[0] === 'autonuma').map((r) => r[4])).toEqual(['never', 'never']);
    expect(s.caption).toMatch(/“never” when it did not/);
  });

  it('draws no marker it has no data for', () => {
    const plain = timeSeriesSpec('t', [{ system: 'a', metric: 'recall', workload: 'w', timeS: 1, value: 0.5 }], 'fraction (0–1)');
    expect(layers(plain).filter((l) => markType(l) === 'rule' || markType(l) === 'text')).toEqual([]);
  });

  it('draws the oracle dashed, in its own layer above the policies', () => {
    const ls = layers(section('dram-sensitivity').spec);
    const lines = ls.filter((l) => markType(l) === 'line');
    const oracle = lines.findIndex((l) => JSON.stringify(l.transform ?? []).includes("datum.system === 'oracle'"));
    expect(oracle, 'an oracle-only line layer').toBeGreaterThanOrEqual(0);
    expect((lines[oracle].mark as { strokeDash?: number[] }).strokeDash).toEqual([6, 3]);
    expect(oracle, 'drawn after every other line').toBe(lines.length - 1);
    // Without an oracle there is no oracle layer.
    const noOracle = sweepSpec('s', [{ system: 'vtier', x: 1, value: 0.5 }, { system: 'vtier', x: 2, value: 0.6 }], 'x (GiB)', 'y (fraction 0–1)');
    expect(layers(noOracle).filter((l) => markType(l) === 'line')).toHaveLength(1);
  });

  it('uses a log x axis where the swept values span more than a decade', () => {
    const sweep = (xs: number[]): SweepPoint[] => xs.flatMap((x) => ['oracle', 'vtier'].map((system) => ({ system, x, value: 0.5 })));
    const xScale = (spec: TopLevelSpec) => layers(spec).find((l) => markType(l) === 'line')?.encoding?.x;
    // DRAM 0.5..8 GiB (16x): log, and the title says so.
    const wide = xScale(sweepSpec('s', sweep([0.5, 1, 2, 4, 8]), 'DRAM size (GiB)', 'share (fraction 0–1)'));
    expect(wide?.scale?.type).toBe('log');
    expect(wide?.title).toBe('DRAM size (GiB), log scale');
    // 1..4 (4x, the fixture's sweep): linear.
    const narrow = xScale(sweepSpec('s', sweep([1, 2, 4]), 'DRAM size (GiB)', 'share (fraction 0–1)'));
    expect(narrow?.scale?.type).toBeUndefined();
    expect(wantsLogX([100, 1000, 10000])).toBe(true);
    expect(wantsLogX([1, 10])).toBe(false);
    expect(wantsLogX([0, 10, 1000])).toBe(false); // zero has no place on a log axis
    expect(layers(section('dram-sensitivity').spec).find((l) => markType(l) === 'line')?.encoding?.x.scale?.type).toBeUndefined();
  });

  it('gives bars and intervals a legend and units of their own', () => {
    const bars = barSpec('b', [{ system: 'a', group: 'g', value: 1 }, { system: 'b', group: 'g', value: 2 }], 'bytes moved (MiB)', 'direction');
    expect(seriesEncodings(bars).shape).toHaveLength(1);
    expect(seriesEncodings(bars).color.every((c) => c.title === 'system')).toBe(true);
    const interval = intervalSpec('i', [{ system: 'a', workload: 'w', mean: 1, low: 0.9, high: 1.1, n: 3 }], 'slowdown (ratio, 1 = none)', 1);
    for (const title of quantitativeTitles(interval)) expect(title).toMatch(UNIT);
  });
});
