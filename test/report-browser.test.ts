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
    expect(result.plots.map((p) => p.id)).toEqual(['accuracy-shifting', 'dram-share', 'migration']);
    for (const plot of result.plots) {
      expect(plot.width, plot.id).toBeGreaterThan(300);
      expect(plot.marks, plot.id).toBeGreaterThan(5);
    }
  });
});
