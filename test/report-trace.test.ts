// `vtier report TRACE`: the address x time heat map and the working-set size of a trace
// (src/trace/views.ts, pure), and the page they make, laid out in headless Chromium.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeTrace, encodeTraceBatch, encodeTraceEnd, encodeTraceHeader, traceHeatmap, traceWss, type TraceHeader } from '../src/trace/index.js';
import { runsFrom, samplesFrom } from '../src/samples.js';
import { CHROMIUM, chromium, ci, haveChromium, probe } from './helpers/browser.js';

const ROOT = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'vtier-report-trace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const S = 1e9;
const header: TraceHeader = {
  source: 'faults', pageSize: 4096, epochMs: 500, tunables: {}, ramRanges: runsFrom([[0, 65536]]), facts: { kernel: 'test' }, startTimeMs: 1_700_000_000_000, startNs: 10 * S,
};

/** 20 batches, 500 ms apart: 100 hot pages at 1000 for 5 s, then at 40000; a few cold pages. */
function movingHotSet(): Uint8Array {
  const parts = [encodeTraceHeader(header)];
  for (let i = 0; i < 20; i++) {
    const base = i < 10 ? 1000 : 40000;
    const rows = Array.from({ length: 100 }, (_, p) => [base + p, 1, 4, 1] as [number, number, number, number]);
    rows.push([20000 + i, 1, 1, 0]);
    parts.push(encodeTraceBatch(header.startNs + (i + 1) * 0.5 * S, samplesFrom(rows)));
  }
  parts.push(encodeTraceEnd({ samples: 20 * 505, pagesSeen: 220, drops: 0, untranslated: 0, batches: 20, endNs: header.startNs + 10.5 * S }));
  return Buffer.concat(parts);
}

describe('trace views (pure)', () => {
  it('the heat map keeps every sample and shows the hot band move', () => {
    const trace = decodeTrace(movingHotSet());
    const heat = traceHeatmap(trace, { timeBins: 21, addrBins: 50 });
    const total = heat.cells.reduce((n, c) => n + c.weight, 0);
    expect(total).toBe(20 * (100 * 5 + 1));
    expect(heat.pfnLow).toBe(1000);
    expect(heat.pfnHigh).toBe(40100);
    // The hottest cell of the first seconds is at the first band, of the last seconds at the second.
    const hottest = (from: number, to: number) => heat.cells.filter((c) => c.timeS >= from && c.timeS < to).sort((a, b) => b.weight - a.weight)[0];
    expect(hottest(0, 4).pfn).toBeLessThanOrEqual(1100);
    expect(hottest(7, 11).pfn).toBeGreaterThan(39000);
    // Bins are never shorter than the epoch (one batch per epoch).
    expect(heat.timeBinS).toBeGreaterThanOrEqual(0.5);
  });

  it('the working set is the pages sampled per window', () => {
    const wss = traceWss(decodeTrace(movingHotSet()), { bins: 21 });
    const nonEmpty = wss.filter((p) => p.pages > 0);
    expect(nonEmpty.length).toBe(20);
    for (const p of nonEmpty) expect(p.pages).toBe(101);
    expect(nonEmpty[0].bytes).toBe(101 * 4096);
  });

  it('heat weight equals the trace weight for any batches (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.tuple(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 9 })), { maxLength: 6 }), { maxLength: 6 }), fc.integer({ min: 1, max: 200 }), (batches, addrBins) => {
        const parts = [encodeTraceHeader(header)];
        let weight = 0;
        batches.forEach((runs, i) => {
          parts.push(encodeTraceBatch(header.startNs + i * 0.3 * S, samplesFrom(runs.map(([pfn, pages, r]) => [pfn, pages, r, 0] as [number, number, number, number]))));
          for (const [, pages, r] of runs) weight += pages * r;
        });
        const heat = traceHeatmap(decodeTrace(Buffer.concat(parts)), { timeBins: 7, addrBins });
        expect(heat.cells.reduce((n, c) => n + c.weight, 0)).toBe(weight);
        expect(heat.addrBins).toBeLessThanOrEqual(addrBins);
      }),
      { numRuns: 150 },
    );
  });
});

describe.skipIf(!haveChromium && !ci)('vtier report TRACE in headless Chromium', () => {
  it('draws the heat map and the working-set size with their axes', () => {
    expect(haveChromium, `${CHROMIUM} is missing; CI must have it`).toBe(true);
    const trace = join(dir, 'moving.trace');
    writeFileSync(trace, movingHotSet());
    const out = join(dir, 'moving.html');
    const res = spawnSync(process.execPath, [join(ROOT, 'bin', 'vtier.js'), 'report', trace, '-o', out, '--json'], { encoding: 'utf8' });
    expect(res.status, res.stdout + res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ output: out, sections: ['heatmap', 'wss'] });
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('faults trace: 10,100 samples in 10.5 s');
    expect(html).toContain('guest-physical address (MiB)');
    expect(html).toContain('time since the trace start (s)');
    const result = probe(out);
    expect(result.plots.map((p) => p.id)).toEqual(['heatmap', 'wss']);
    for (const plot of result.plots) {
      expect(plot.width, plot.id).toBeGreaterThan(300);
      expect(plot.marks, plot.id).toBeGreaterThan(10);
    }
    const shot = join(dir, 'moving.png');
    chromium([`--screenshot=${shot}`, `file://${out}`]);
    expect(statSync(shot).size).toBeGreaterThan(20_000);
    if (process.env.VTIER_KEEP_SCREENSHOT) execFileSync('cp', [shot, process.env.VTIER_KEEP_SCREENSHOT]);
  });

  it('refuses a path that is neither a results directory nor a trace', () => {
    const bad = join(dir, 'not-a-trace');
    writeFileSync(bad, 'hello');
    const res = spawnSync(process.execPath, [join(ROOT, 'bin', 'vtier.js'), 'report', bad, '--json'], { encoding: 'utf8' });
    expect(res.status).toBe(2);
    expect(JSON.parse(res.stdout).error.message).toMatch(/not a valid trace/);
  });
});
