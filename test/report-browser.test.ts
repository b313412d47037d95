// The HTML report in a real browser: Debian's headless Chromium lays the page out, and a probe
// script appended to a copy of the page measures every plot (its box and the marks inside).
// With CI=true a missing Chromium fails the test; elsewhere it skips with the reason printed.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildReportFixture } from './helpers/report-fixture.js';
import { CHROMIUM, chromium, ci, haveChromium, probe } from './helpers/browser.js';

const base = mkdtempSync(join(tmpdir(), 'vtier-browser-report-'));

interface EncodingProbe {
  viewport: number;
  body: number;
  keyTables: Array<{ scrollWidth: number; right: number }>;
  plots: Array<{
    id: string;
    axisTitles: string[];
    legends: Array<{ title: string | null; entries: Array<{ label: string; shape: string; colour: string; dash: string | null }> }>;
    texts: string[];
    rules: Array<{ dash: string | null; colour: string | null }>;
    lines: Array<{ dash: string | null; colour: string | null }>;
  }>;
}

// What a reader sees, read from the laid-out SVG: legend symbols (shape = path, colour =
// fill or stroke), axis titles, the text and rule marks, line dashes, and how wide the key
// tables are against the viewport.
const ENCODING_PROBE = `<script>
const colourOf = (e) => (e.getAttribute('fill') && e.getAttribute('fill') !== 'none' ? e.getAttribute('fill') : e.getAttribute('stroke'));
const plots = [...document.querySelectorAll('figure.plot')].map((f) => {
  const svg = f.querySelector('svg');
  const legends = [...svg.querySelectorAll('g.role-legend')].map((g) => {
    const labels = [...g.querySelectorAll('.role-legend-label text')].map((t) => t.textContent);
    const entries = [...g.querySelectorAll('g.role-legend-symbol path')].map((p, i) => ({ label: labels[i] ?? '', shape: p.getAttribute('d'), colour: colourOf(p), dash: p.getAttribute('stroke-dasharray') }));
    return { title: g.querySelector('.role-legend-title text')?.textContent ?? null, entries };
  });
  return {
    id: f.dataset.plot,
    axisTitles: [...svg.querySelectorAll('g.role-axis-title text')].map((t) => t.textContent),
    legends,
    texts: [...svg.querySelectorAll('g.role-mark text')].map((t) => t.textContent),
    rules: [...svg.querySelectorAll('g.mark-rule.role-mark line')].map((l) => ({ dash: l.getAttribute('stroke-dasharray'), colour: l.getAttribute('stroke') })),
    lines: [...svg.querySelectorAll('g.mark-line.role-mark path')].map((p) => ({ dash: p.getAttribute('stroke-dasharray'), colour: p.getAttribute('stroke') })),
  };
});
const keyTables = [...document.querySelectorAll('table.key')].map((t) => ({ scrollWidth: t.scrollWidth, right: t.getBoundingClientRect().right }));
const out = document.createElement('pre');
out.id = 'encodings';
out.textContent = JSON.stringify({ viewport: document.documentElement.clientWidth, body: document.body.getBoundingClientRect().right, keyTables, plots });
document.body.appendChild(out);
</script>`;

function probeEncodings(reportPath: string): EncodingProbe {
  const probed = join(base, `encodings-${Date.now()}.html`);
  writeFileSync(probed, readFileSync(reportPath, 'utf8').replace('</body>', `${ENCODING_PROBE}</body>`));
  const match = /<pre id="encodings">([^<]*)<\/pre>/.exec(chromium(['--dump-dom', `file://${probed}`]));
  expect(match, 'the encoding probe did not run in Chromium').not.toBeNull();
  return JSON.parse((match as RegExpExecArray)[1].replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&'));
}

/** Nominal axes name their categories; every other axis title carries a unit in parentheses. */
const NOMINAL_AXES = ['workload', 'direction'];
afterAll(() => rmSync(base, { recursive: true, force: true }));

function runCli(args: string[]): string {
  return execFileSync(process.execPath, ['bin/vtier.js', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
}

describe.skipIf(!haveChromium && !ci)('report in headless Chromium', () => {
  it('lays out every plot of a full report with marks inside', () => {
    expect(haveChromium, `${CHROMIUM} is missing; CI must have it (scripts/setup.sh)`).toBe(true);
    const dir = buildReportFixture(join(base, 'fixture'));
    const report = join(base, 'fixture.html');
    runCli(['report', dir, '-o', report]);
    const result = probe(report);
    expect(result.title).toBe('vtier fixture report');
    expect(result.interrupted).toBe(false);
    expect(result.plots.map((p) => p.id)).toEqual(['accuracy-shifting', 'slowdown', 'dram-share', 'dram-sensitivity', 'migration']);
    for (const plot of result.plots) {
      expect(plot.width, plot.id).toBeGreaterThan(300);
      expect(plot.height, plot.id).toBeGreaterThan(150);
      expect(plot.marks, plot.id).toBeGreaterThan(10);
      expect(plot.paths, plot.id).toBeGreaterThan(0);
      expect(plot.texts, plot.id).toBeGreaterThan(3);
    }
    const seen = probeEncodings(report);
    const plot = (id: string) => seen.plots.find((p) => p.id === id)!;
    for (const p of seen.plots) {
      // Units on every axis.
      for (const title of p.axisTitles) if (!NOMINAL_AXES.includes(title)) expect(title, `${p.id}: axis "${title}" has no unit`).toMatch(/\([^)]+\)/);
      // Series legends: one colour and one shape per system (not three black dots).
      const systems = p.legends.filter((l) => l.title === 'system' || l.title === 'policy');
      expect(systems.length, `${p.id}: a system legend`).toBe(1);
      const entries = systems[0].entries;
      expect(new Set(entries.map((e) => e.colour)).size, `${p.id}: colours`).toBe(entries.length);
      if (p.id !== 'slowdown') {
        expect(entries.length, p.id).toBeGreaterThan(1);
        expect(new Set(entries.map((e) => e.shape)).size, `${p.id}: shapes`).toBe(entries.length);
      }
    }
    // Slowdown: each pair's shape says which arm ran first.
    const order = plot('slowdown').legends.find((l) => l.title === 'each pair')!;
    expect(new Set(order.entries.map((e) => e.shape)).size).toBe(order.entries.length);
    // Accuracy: the hot-set move (a dashed grey rule and its label), convergence rules in the
    // systems' colours with their times, and "never" written out for the two that did not.
    const accuracy = plot('accuracy-shifting');
    expect(accuracy.texts).toContain('hot set moves');
    expect(accuracy.rules.filter((r) => r.dash === '6,3')).toHaveLength(1);
    const colourOf = (system: string) => accuracy.legends[0].entries.find((e) => e.label === system)?.colour;
    expect(accuracy.rules.filter((r) => r.dash === '2,2').map((r) => r.colour)).toEqual(expect.arrayContaining([colourOf('oracle'), colourOf('vtier')]));
    expect(accuracy.texts).toEqual(expect.arrayContaining(['oracle converged 1 s', 'vtier converged 2 s', 'autonuma: never converged', 'static: never converged']));
    // Sweep: the oracle's line is dashed and drawn last (on top).
    const sweep = plot('dram-sensitivity');
    const oracleColour = sweep.legends[0].entries.find((e) => e.label === 'oracle')?.colour;
    expect(sweep.lines.at(-1)).toEqual({ dash: '6,3', colour: oracleColour });
    expect(sweep.lines.filter((l) => l.dash === '6,3')).toHaveLength(1);
    // The key numbers fit the page: no table wider than the viewport or the body.
    expect(seen.keyTables.length).toBeGreaterThan(0);
    for (const t of seen.keyTables) {
      expect(t.scrollWidth).toBeLessThanOrEqual(seen.viewport);
      expect(t.right).toBeLessThanOrEqual(seen.body);
    }
    // A picture for people to look at (kept when VTIER_KEEP_SCREENSHOT names a path).
    const shot = process.env.VTIER_KEEP_SCREENSHOT ?? join(base, 'fixture.png');
    chromium([`--screenshot=${shot}`, `file://${report}`]);
    expect(statSync(shot).size).toBeGreaterThan(20_000);
  });

  it('renders the report a real overhead campaign wrote', () => {
    const out = join(base, 'overhead');
    runCli([
      'eval', 'overhead', '--runs', '2', '--warmup', '100ms', '--out', out,
      '--agent-cmd', 'sh -c "while kill -0 {pid} 2>/dev/null; do sleep 0.01; done"',
      '--', 'sh', '-c', 'i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done',
    ]);
    expect(existsSync(join(out, 'DONE'))).toBe(true);
    const result = probe(join(out, 'report.html'));
    expect(result.plots.map((p) => p.id)).toEqual(['slowdown']);
    expect(result.plots[0].marks).toBeGreaterThan(5);
    expect(result.plots[0].width).toBeGreaterThan(300);
  });

  it('renders the report of a real vtier eval sim run', () => {
    const out = join(base, 'sim');
    runCli([
      'eval', 'sim', '--out', out, '--', '--workload', 'shifting', '--size', '128M', '--dram', '20%', '--policy', 'vtier,autonuma,static,oracle',
      '--duration', '12s', '--shift-every', '6s', '--accesses-per-epoch', '50000', '--timeline',
    ]);
    const result = probe(join(out, 'report.html'));
    expect(result.plots.map((p) => p.id)).toEqual(['accuracy-shift', 'dram-share', 'migration']);
    for (const plot of result.plots) {
      expect(plot.width, plot.id).toBeGreaterThan(300);
      expect(plot.marks, plot.id).toBeGreaterThan(5);
    }
    // The workload moved its hot set once (at 6 s of 12): one marker, drawn and labelled.
    const accuracy = probeEncodings(join(out, 'report.html')).plots.find((p) => p.id === 'accuracy-shift')!;
    expect(accuracy.texts.filter((t) => t === 'hot set moves')).toHaveLength(1);
    expect(accuracy.rules.filter((r) => r.dash === '6,3')).toHaveLength(1);
  });
});
