import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeTraceBatch, encodeTraceEnd, encodeTraceHeader, type TraceHeader } from '../src/trace/index.js';
import { runsFrom, samplesFrom } from '../src/samples.js';
import { replayFromTrace } from '../src/sim/index.js';
import { simObservations } from '../eval/sim-import.js';
import { buildReport } from '../eval/report.js';
import type { LoadedResults } from '../eval/results.js';

function vtier(args: string[]) {
  const r = spawnSync('node', ['bin/vtier.js', ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SMALL = ['--size', '64M', '--dram', '25%', '--duration', '4s', '--epoch', '1s', '--accesses-per-epoch', '100K'];

function traceFile(): string {
  const header: TraceHeader = {
    source: 'pebs',
    pageSize: 4096,
    epochMs: 500,
    tunables: { period: 1000 },
    ramRanges: runsFrom([[4096, 4096]]),
    facts: { kernel: 'test' },
    startTimeMs: 1_763_790_000_000,
    startNs: 1_000_000_000,
  };
  // Pages 4096..4195 are hot in the first second, 6000..6099 in the second.
  const batch = (base: number) => samplesFrom(Array.from({ length: 100 }, (_, i) => [base + i, 1, 5, 1] as [number, number, number, number]));
  const parts = [
    encodeTraceHeader(header),
    encodeTraceBatch(1_000_000_000, batch(4096)),
    encodeTraceBatch(1_500_000_000, batch(4096)),
    encodeTraceBatch(2_000_000_000, batch(6000)),
    encodeTraceBatch(2_500_000_000, batch(6000)),
    encodeTraceEnd({ samples: 2400, pagesSeen: 200, drops: 0, untranslated: 0, batches: 4, endNs: 3_000_000_000 }),
  ];
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  const dir = mkdtempSync(join(tmpdir(), 'vtier-sim-'));
  const file = join(dir, 'run.trace');
  writeFileSync(file, bytes);
  return file;
}

describe('vtier sim CLI', () => {
  it('takes shift, the name vtier workload uses, for the shifting workload', () => {
    const r = vtier(['sim', ...SMALL, '--workload', 'shift', '--shift-every', '2s', '--policy', 'oracle', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const data = JSON.parse(r.stdout);
    expect(data.workload.name).toBe('shift');
    expect(data.workload.shiftEveryEpochs).toBe(2);
  });

  it('prints a comparison as JSON, one entry per policy', () => {
    const r = vtier(['sim', ...SMALL, '--policy', 'vtier,autonuma,lru,oracle', '--json', '--timeline']);
    expect(r.code).toBe(0);
    const data = JSON.parse(r.stdout);
    expect(data.workload.name).toBe('hotspot');
    expect(data.epochs).toBe(4);
    expect(data.policies.map((p: { policy: string }) => p.policy)).toEqual(['vtier', 'autonuma', 'lru', 'oracle']);
    const oracle = data.policies[3];
    expect(oracle.dramShare).toBeGreaterThan(0.5);
    expect(oracle.recall).toBe(oracle.recallSteady);
    expect(oracle.timeline.recall).toHaveLength(4);
    for (const p of data.policies) expect(p.maxDramUsedPages).toBeLessThanOrEqual(data.dramPages);
  });

  it('prints a table by default and CSV with --csv', () => {
    const table = vtier(['sim', ...SMALL, '--policy', 'static,oracle']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^policy\s+dram-share/m);
    expect(table.stdout).toMatch(/^oracle\s/m);
    const csv = vtier(['sim', ...SMALL, '--policy', 'static,oracle', '--csv']);
    expect(csv.code).toBe(0);
    const lines = csv.stdout.trim().split('\n');
    expect(lines[0].startsWith('policy,dram_share,')).toBe(true);
    expect(lines).toHaveLength(3);
  });

  it('is reproducible for a seed', () => {
    const strip = (s: string) => {
      const d = JSON.parse(s);
      for (const p of d.policies) delete p.policyCpuMs;
      delete d.wallMs;
      return d;
    };
    const args = ['sim', ...SMALL, '--policy', 'vtier,memtis', '--seed', '3', '--json'];
    expect(strip(vtier(args).stdout)).toEqual(strip(vtier(args).stdout));
  });

  it('sweeps over DRAM sizes and sample periods', () => {
    const dram = vtier(['sim', 'sweep', '--over', 'dram', '--values', '10%,30%', ...SMALL.slice(0, 2), '--duration', '2s', '--accesses-per-epoch', '50K', '--policy', 'static,oracle', '--json']);
    expect(dram.code).toBe(0);
    const d = JSON.parse(dram.stdout);
    expect(d.parameter).toBe('dram');
    expect(d.points).toHaveLength(2);
    expect(d.points[1].dramBytes).toBeGreaterThan(d.points[0].dramBytes);
    const period = vtier(['sim', 'sweep', '--over', 'period', '--values', '100,10000', ...SMALL.slice(0, 2), '--duration', '2s', '--accesses-per-epoch', '50K', '--policy', 'vtier', '--csv']);
    expect(period.code).toBe(0);
    expect(period.stdout.split('\n')[0]).toMatch(/^period,policy,/);
  });

  it('replays a recorded trace', () => {
    const file = traceFile();
    const r = vtier(['sim', '--trace', file, '--dram', '400K', '--epoch', '500ms', '--policy', 'static,oracle', '--json', '--accesses-per-epoch', '10K']);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.workload.name).toBe('trace');
    expect(d.pages).toBe(4096);
    expect(d.epochs).toBe(4);
    // Every trace epoch is its own access distribution (a phase).
    expect(d.shiftEpochs).toEqual([1, 2, 3]);
    const oracle = d.policies.find((p: { policy: string }) => p.policy === 'oracle');
    expect(oracle.dramShare).toBeGreaterThan(0.99);
  });

  it('draws hot-set moves only where a synthetic workload really moved its hot set', async () => {
    // A trace: every epoch is a phase in sim's output, but no move is known; the imported
    // results (eval sim, vtier report) must not mark any.
    const trace = JSON.parse(vtier(['sim', '--trace', traceFile(), '--dram', '400K', '--epoch', '500ms', '--policy', 'vtier,oracle', '--json', '--accesses-per-epoch', '10K']).stdout);
    expect(trace.shiftEpochs.length).toBeGreaterThan(0);
    const fromTrace = simObservations(trace) ?? [];
    expect(fromTrace.some((o) => o.metric === 'recall')).toBe(true);
    expect(fromTrace.filter((o) => o.metric === 'shift_time' || o.metric === 'reconverge_after')).toEqual([]);
    // A shifting workload: its one move (epoch 2 of 1 s epochs) becomes one marker at 2 s.
    const shifting = JSON.parse(vtier(['sim', ...SMALL, '--workload', 'shift', '--shift-every', '2s', '--policy', 'vtier,oracle', '--json', '--timeline']).stdout);
    const fromShift = simObservations(shifting) ?? [];
    expect(fromShift.filter((o) => o.metric === 'shift_time').map((o) => o.value)).toEqual([2]);
    expect(fromShift.filter((o) => o.metric === 'reconverge_after').length).toBe(2);
    // A hotspot never moves: no marker.
    const hotspot = JSON.parse(vtier(['sim', ...SMALL, '--policy', 'oracle', '--json']).stdout);
    expect((simObservations(hotspot) ?? []).filter((o) => o.metric === 'shift_time')).toEqual([]);
    // And the report draws what was imported: no "hot set moves" rule on the trace's plot.
    const loaded = (observations: ReturnType<typeof simObservations>): LoadedResults =>
      ({ dir: '', observations: observations ?? [], complete: true, command: null, machine: null, summary: null, warnings: [] });
    const shiftRules = async (observations: ReturnType<typeof simObservations>): Promise<number> => {
      const model = await buildReport(loaded(observations), { plots: false });
      const spec = JSON.stringify(model.sections.find((s) => s.id.startsWith('accuracy-'))?.spec ?? {});
      return (spec.match(/hot set moves/g) ?? []).length;
    };
    expect(await shiftRules(fromTrace)).toBe(0);
    expect(await shiftRules(fromShift)).toBeGreaterThan(0);
  });

  it('refuses to replay a trace without samples', () => {
    expect(() => replayFromTrace({ header: { ramRanges: runsFrom([]) } as never, batches: [], truncated: false }, { epochMs: 500, seed: 1 })).toThrow(/no samples/);
  });

  it('rejects bad input with one line and a non-zero exit', () => {
    const cases: Array<[string[], RegExp]> = [
      [['sim', '--policy', 'vtier,nope'], /unknown policy "nope"/],
      [['sim', '--workload', 'nope'], /unknown workload "nope"/],
      [['sim', '--size', '1G', '--dram', '1G'], /not smaller than the memory size/],
      [['sim', '--size', '1G', '--dram', '2G'], /not smaller than the memory size/],
      [['sim', '--dram', '0'], /DRAM must not be zero/],
      [['sim', '--size', '10Q'], /not a size/],
      [['sim', '--sample-period', '0'], /not a positive integer/],
      [['sim', '--epoch', 'soon'], /not a duration/],
      [['sim', '--trace', '/nonexistent/x.trace', '--dram', '1M'], /cannot read trace/],
      [['sim', 'sweep', '--over', 'cpus'], /not dram, period or budget/],
    ];
    for (const [args, message] of cases) {
      const r = vtier(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
    const j = vtier(['sim', '--policy', 'nope', '--json']);
    expect(j.code).toBe(2);
    expect(JSON.parse(j.stdout).error.message).toMatch(/unknown policy/);
  });

  it('rejects a corrupt trace file with one line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtier-sim-'));
    const file = join(dir, 'bad.trace');
    writeFileSync(file, 'not a trace at all');
    const r = vtier(['sim', '--trace', file, '--dram', '1M']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/trace/);
  });
});
