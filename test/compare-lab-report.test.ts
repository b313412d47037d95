// The `eval compare --lab` report without a VM: a synthetic results directory holding what the
// campaign writes (each arm's time series, its scalars, the model's figures), the sections the
// report builds from it (DRAM-served share over time, migration traffic per system, the
// calibration table), the calibration itself, the arm order and the arm settings.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadResults, ResultsWriter, type Observation } from '../eval/results.js';
import { buildReport, renderHtml, writeReportFile } from '../eval/report.js';
import { calibrationCells, labSections } from '../eval/report-lab.js';
import { renderSvg } from '../eval/plots.js';
import { calibrate, relativeError } from '../eval/calibrate.js';
import { armCommand, armOrder } from '../eval/compare-lab.js';
import { armSettings } from '../eval/lab-arm.js';
import { haveChromium, ci, probe } from './helpers/browser.js';
import { resolvePromoteRate } from '../cli/commands/eval-lab.js';
import { execFileSync } from 'node:child_process';
import { repoRoot } from '../eval/results.js';

const base = mkdtempSync(join(tmpdir(), 'vtier-compare-lab-report-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const MACHINE = { basic: { hostname: 'fake' }, doctor: null, doctorError: 'test' };
const MiB = 2 ** 20;

/** What runLabCompare observes for one arm, with a share curve rising at `rate` per second. */
function arm(system: string, run: number, rate: number, migratedMiB: number, access = true): Observation[] {
  const at = { system, workload: 'hotspot', run };
  const out: Observation[] = [];
  const curve: number[] = [];
  for (let t = 1; t <= 20; t++) {
    const v = Math.min(1, rate * t);
    curve.push(v);
    out.push({ ...at, metric: 'hot_dram_share', value: v, unit: 'fraction', timeS: t + 0.013 * run });
    if (access) out.push({ ...at, metric: 'access_dram_share', value: v * 0.9, unit: 'fraction', timeS: t + 0.013 * run });
  }
  const m = curve.reduce((a, b) => a + b, 0) / curve.length;
  out.push(
    { ...at, metric: 'hot_dram_share_mean', value: m, unit: 'fraction' },
    { ...at, metric: 'hot_dram_share_end', value: curve.at(-1)!, unit: 'fraction' },
    { ...at, metric: 'migrated_bytes', value: migratedMiB * MiB, unit: 'bytes' },
    { ...at, metric: 'promoted_bytes', value: migratedMiB * MiB, unit: 'bytes' },
    { ...at, metric: 'demoted_bytes', value: 0, unit: 'bytes' },
  );
  if (access) out.push({ ...at, metric: 'access_dram_share_mean', value: m * 0.9, unit: 'fraction' });
  return out;
}

function fixture(name: string, access = true): string {
  const dir = join(base, name);
  const results = ResultsWriter.create({ campaign: 'compare-lab', dir, machine: MACHINE, argv: ['node', 'vtier', 'eval', 'compare', '--lab'] });
  for (const run of [1, 2]) {
    results.observe(arm('vtier', run, 0.03, 51, access));
    results.observe(arm('autonuma', run, 0.2, 52, access));
    results.observe(arm('static', run, 0, 0, access));
  }
  const sim = (system: string, share: number, bytes: number): Observation[] => [
    { system, workload: 'hotspot', run: 0, metric: 'sim_dram_served_share', value: share, unit: 'fraction' },
    { system, workload: 'hotspot', run: 0, metric: 'sim_migrated_bytes', value: bytes, unit: 'bytes' },
  ];
  results.observe([...sim('vtier', 0.98, 51.2 * MiB), ...sim('autonuma', 0.85, 51.2 * MiB), ...sim('static', 0, 0)]);
  results.finish({ workload: 'hotspot' });
  return dir;
}

describe('compare --lab report', () => {
  it('plots the DRAM-served share over time, one series per system, with units and a colour + shape legend', async () => {
    const model = await buildReport(loadResults(fixture('plot')), { plots: false });
    const ids = model.sections.map((s) => s.id);
    expect(ids).toEqual(expect.arrayContaining(['lab-dram-share-hotspot', 'lab-migration', 'calibration']));
    const share = model.sections.find((s) => s.id === 'lab-dram-share-hotspot')!;
    const spec = share.spec as unknown as { data: { values: Array<{ system: string; timeS: number; value: number }> }; layer: Array<{ mark: { type: string }; encoding: Record<string, { field?: string; title?: string; scale?: { domain?: unknown } }> }> };
    const values = spec.data.values;
    expect([...new Set(values.map((v) => v.system))].sort()).toEqual(['autonuma', 'static', 'vtier']);
    // The two runs (times 1.013 s and 1.026 s) are averaged per second: 20 points per system.
    expect(values.filter((v) => v.system === 'vtier')).toHaveLength(20);
    // The access-weighted series is the one plotted (0.9 x the hot set's here).
    expect(values.find((v) => v.system === 'autonuma' && v.timeS === 20)?.value).toBeCloseTo(0.9, 9);
    const line = spec.layer.find((l) => l.mark.type === 'line')!;
    const points = spec.layer.find((l) => l.mark.type === 'point')!;
    expect(line.encoding.color.field).toBe('system');
    expect(points.encoding.shape.field).toBe('system');
    expect(points.encoding.color.title).toBe(points.encoding.shape.title); // one merged legend
    expect(line.encoding.x.title).toMatch(/\(s\)/);
    expect(line.encoding.y.title).toMatch(/fraction 0–1/);
    expect(line.encoding.y.scale?.domain).toEqual([0, 1]);
    // Rendered: one line path per system.
    // Rendered: one line per system (vega draws each series in a group of its own) and one
    // legend whose entries carry colour and shape together.
    const svg = await renderSvg(share.spec!);
    expect(svg.match(/<g class="mark-line role-mark/g)).toHaveLength(3);
    expect(svg.match(/<g class="mark-group role-legend"/g)).toHaveLength(1);
    expect(svg.match(/<g class="mark-symbol role-legend-symbol"/g)).toHaveLength(3);
    expect(share.table.rows.find((r) => r[0] === 'static')?.[4]).toBe('never');
  });

  it('falls back to the hot set share for results without the access-weighted series, and says so', async () => {
    const sections = labSections(loadResults(fixture('old', false)).observations);
    const share = sections.find((s) => s.id === 'lab-dram-share-hotspot')!;
    expect(share.caption).toMatch(/true hot set/);
    const values = (share.spec as unknown as { data: { values: Array<{ system: string; timeS: number; value: number }> } }).data.values;
    expect(values.find((v) => v.system === 'autonuma' && v.timeS === 20)?.value).toBe(1);
  });

  it('charts migration traffic per system and puts the calibration in its own table, not under "All other metrics"', async () => {
    const dir = fixture('tables');
    const model = await buildReport(loadResults(dir), { plots: false });
    const migration = model.sections.find((s) => s.id === 'lab-migration')!;
    const bars = (migration.spec as unknown as { data: { values: Array<{ system: string; value: number }> } }).data.values;
    expect(bars.map((b) => [b.system, b.value])).toEqual([['autonuma', 52], ['static', 0], ['vtier', 51]]);
    expect(migration.table.rows.find((r) => r[1] === 'vtier')).toEqual(['hotspot', 'vtier', '2', '51.0', '51.0', '0.0']);
    const calibration = model.sections.find((s) => s.id === 'calibration')!;
    expect(calibration.open).toBe(true);
    expect(calibration.table.columns).toEqual(['workload', 'system', 'real DRAM-served', 'sim DRAM-served', 'error', 'real migrated (MiB)', 'sim migrated (MiB)', 'error', 'within 20%?']);
    const row = (system: string) => calibration.table.rows.find((r) => r[1] === system)!;
    // vtier: real mean 0.9 x mean(min(1, 0.03 t)) = 0.2835 against 0.98: flagged.
    expect(row('vtier').slice(2, 5)).toEqual(['28.4%', '98.0%', '246%']);
    expect(row('vtier')[8]).toBe('> 20%');
    // autonuma: real 0.9 x 0.95 = 0.855 against 0.85; traffic 52 against 51.2 MiB: within.
    expect(row('autonuma')[8]).toBe('yes');
    expect(row('autonuma')[7]).toBe('2%');
    // static: 0 against 0 is exact, not "no error".
    expect(row('static').slice(2, 9)).toEqual(['0.0%', '0.0%', '0%', '0.0', '0.0', '0%', 'yes']);
    expect(calibration.caption).toMatch(/1 of 3 row\(s\) flagged/);
    const others = model.sections.find((s) => s.id === 'all-metrics');
    const otherMetrics = new Set(others?.table.rows.map((r) => r[2]) ?? []);
    for (const m of ['sim_dram_served_share', 'sim_migrated_bytes', 'hot_dram_share_mean', 'access_dram_share_mean', 'migrated_bytes']) expect(otherMetrics.has(m), m).toBe(false);
    const html = renderHtml(model);
    expect(html).toMatch(/<h2 id="calibration">Calibration: lab against the simulator<\/h2>[^]*?<details open>/);
    expect(calibrationCells(loadResults(dir).observations).map((c) => c.flagged)).toEqual([false, false, true]);
  });

  it.skipIf(!haveChromium && !ci)('renders the DRAM-served share plot in headless Chromium with one line per system', async () => {
    const dir = fixture('browser');
    const report = await writeReportFile(dir);
    const html = readFileSync(report, 'utf8');
    const figure = /<figure class="plot" data-plot="lab-dram-share-hotspot">(.*?)<\/figure>/s.exec(html)?.[1] ?? '';
    expect(figure.match(/<g class="mark-line role-mark/g)).toHaveLength(3);
    const result = probe(report);
    const plot = result.plots.find((p) => p.id === 'lab-dram-share-hotspot')!;
    expect(plot.width).toBeGreaterThan(300);
    expect(plot.height).toBeGreaterThan(150);
    expect(plot.marks).toBeGreaterThan(20);
    expect(result.plots.map((p) => p.id)).toContain('lab-migration');
  });
});

describe('calibration', () => {
  it('relative errors: both 0 is exact, real 0 alone has none', () => {
    expect(relativeError(0, 0)).toBe(0);
    expect(relativeError(0, 0.1)).toBeNull();
    expect(relativeError(0.5, 0.6)).toBeCloseTo(0.2, 12);
    expect(relativeError(null, 0.6)).toBeNull();
  });

  it('starts the model on the slow tier as the lab does: static serves 0, promoting systems rise', () => {
    const rows = calibrate({
      workload: 'hotspot', sizeBytes: 64 * MiB, hotFrac: 0.1, durationMs: 10_000, shiftEveryMs: 20_000, seed: 1,
      measured: [
        { system: 'static', dramServedShareMean: 0, migratedBytes: 0, runs: 1 },
        { system: 'autonuma', dramServedShareMean: 0.9, migratedBytes: 6.4 * MiB, runs: 1 },
      ],
    });
    const byName = (s: string) => rows.find((r) => r.system === s)!;
    expect(byName('static')).toMatchObject({ simDramServedShare: 0, simMigratedBytes: 0, relativeError: 0, flagged: false, remark: null });
    // The whole 1,638-page hot set is promoted once from an empty DRAM (6.4 MiB).
    expect(byName('autonuma').simMigratedBytes).toBeGreaterThanOrEqual(1638 * 4096 * 0.95);
    expect(byName('autonuma').simDramServedShare).toBeGreaterThan(0.8);
  });

  it('models zipf as the C workload draws it and flags a row off by more than 20%', () => {
    const rows = calibrate({
      workload: 'zipf', sizeBytes: 64 * MiB, hotFrac: 0.1, durationMs: 5_000, shiftEveryMs: 20_000, seed: 1,
      measured: [{ system: 'static', dramServedShareMean: 0.3, migratedBytes: 0, runs: 1 }],
    });
    expect(rows[0]).toMatchObject({ workload: 'zipf', simDramServedShare: 0, flagged: true });
    expect(rows[0].remark).toMatch(/DRAM-served share off by 100%/);
  });
});

describe('lab arms', () => {
  it('alternates the order of two systems between runs and rotates longer lists', () => {
    expect([1, 2, 3, 4].map((run) => armOrder(['vtier', 'autonuma'], run))).toEqual([
      ['vtier', 'autonuma'], ['autonuma', 'vtier'], ['vtier', 'autonuma'], ['autonuma', 'vtier'],
    ]);
    const four = ['vtier', 'autonuma', 'damos', 'static'];
    const firsts = [1, 2, 3, 4].map((run) => armOrder(four, run)[0]);
    expect(firsts).toEqual(four);
    for (let run = 1; run <= 5; run++) expect([...armOrder(four, run)].sort()).toEqual([...four].sort());
  });

  it('hands --promote-rate to the arm and into the sysctl the autonuma arm writes', () => {
    const roots = { sys: '/S', procSys: '/P', proc: '/proc' };
    const spec = { workload: 'hotspot' as const, sizeBytes: 64 * MiB, hotFrac: 0.1, durationMs: 10_000, shiftEveryMs: 20_000, seed: 4 };
    const cmd = armCommand({ ...spec, promoteRateMBps: 256 }, 'autonuma', 2, '/out');
    expect(cmd.slice(cmd.indexOf('--promote-rate'), cmd.indexOf('--promote-rate') + 2)).toEqual(['--promote-rate', '256']);
    expect(cmd[cmd.indexOf('--seed') + 1]).toBe('5');
    expect(armCommand(spec, 'autonuma', 1, '/out')).not.toContain('--promote-rate');
    expect(armSettings('autonuma', 256, roots)).toEqual([
      { path: '/P/kernel/numa_balancing', value: '2' },
      { path: '/S/kernel/mm/numa/demotion_enabled', value: 'true' },
      { path: '/P/kernel/numa_balancing_promote_rate_limit_MBps', value: '256' },
    ]);
    // No rate asked for: the kernel's own stays (not written at all).
    expect(armSettings('autonuma', undefined, roots).map((s) => s.path)).not.toContain('/P/kernel/numa_balancing_promote_rate_limit_MBps');
    // Every other system: balancing and demotion off, the rate limit untouched.
    for (const system of ['vtier', 'damos', 'static'] as const) {
      expect(armSettings(system, 256, roots)).toEqual([
        { path: '/P/kernel/numa_balancing', value: '0' },
        { path: '/S/kernel/mm/numa/demotion_enabled', value: 'false' },
      ]);
    }
  });

  it('--rate-limit and --promote-rate are one setting: either works, both must agree', () => {
    // Neither given: undefined (the lab keeps the kernel's value; the host comparison its 65536).
    expect(resolvePromoteRate('65536', false, undefined)).toBeUndefined();
    expect(resolvePromoteRate('100', true, undefined)).toBe(100);
    expect(resolvePromoteRate('65536', false, '200')).toBe(200);
    expect(resolvePromoteRate('200', true, '200')).toBe(200);
    expect(() => resolvePromoteRate('100', true, '200')).toThrow(/--rate-limit 100 and --promote-rate 200 set the same thing/);
    expect(() => resolvePromoteRate('x', true, undefined)).toThrow(/--rate-limit/);
    // From the command line: refused as a usage error before anything starts (no VM, no sysctl).
    let out = '';
    let status = 0;
    try {
      execFileSync(process.execPath, ['bin/vtier.js', 'eval', 'compare', '--lab', '--rate-limit', '100', '--promote-rate', '200', '--json'], { cwd: repoRoot(), encoding: 'utf8', stdio: 'pipe' });
    } catch (err) {
      out = (err as { stdout: string }).stdout;
      status = (err as { status: number }).status;
    }
    expect(status).toBe(2);
    expect(JSON.parse(out).error).toMatchObject({ kind: 'usage', message: expect.stringMatching(/same thing/) });
  });
});
