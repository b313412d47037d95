// The results directory: layout, tidy CSV, DONE marker last, and the reader's errors.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CSV_COLUMNS, loadResults, parseCsv, ResultsWriter, timestampForName, type Observation } from '../eval/results.js';
import { simObservations } from '../eval/sim-import.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'vtier-results-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const MACHINE = { basic: { hostname: 'test' }, doctor: null, doctorError: 'not built' };

describe('eval/results', () => {
  it('writes the documented layout, with DONE only after finish()', () => {
    const base = tmp();
    const now = new Date('2026-11-22T04:31:00.123Z');
    const w = ResultsWriter.create({ campaign: 'overhead', baseDir: base, argv: ['node', 'vtier', 'eval', 'overhead'], machine: MACHINE, now, settings: { runs: 2 } });
    expect(w.dir).toBe(join(base, 'overhead-20261122T043100Z'));
    expect(readdirSync(w.dir).sort()).toEqual(['command.json', 'machine.json', 'observations.csv', 'runs']);
    const command = JSON.parse(readFileSync(join(w.dir, 'command.json'), 'utf8'));
    expect(command).toMatchObject({ campaign: 'overhead', argv: ['node', 'vtier', 'eval', 'overhead'], node: process.version, settings: { runs: 2 } });
    expect(typeof command.kernel).toBe('string');
    // A second campaign in the same second gets its own directory.
    const w2 = ResultsWriter.create({ campaign: 'overhead', baseDir: base, machine: MACHINE, now });
    expect(w2.dir).toBe(join(base, 'overhead-20261122T043100Z-2'));

    w.writeRaw('run1 baseline', { wallS: 1.5 });
    w.observe([{ system: 'baseline', workload: 'redis', run: 1, metric: 'wall_time', value: 1.5, unit: 's' }]);
    expect(existsSync(join(w.dir, 'DONE'))).toBe(false);
    const partial = loadResults(w.dir);
    expect(partial.complete).toBe(false);
    expect(partial.observations).toHaveLength(1);
    w.note('tool', 'redis-server', '7.0.15');
    w.finish({ pairs: 1 });
    expect(existsSync(join(w.dir, 'DONE'))).toBe(true);
    expect(readdirSync(join(w.dir, 'runs'))).toEqual(['001-run1_baseline.json']);
    const loaded = loadResults(w.dir);
    expect(loaded.complete).toBe(true);
    expect(loaded.command?.tools['redis-server']).toBe('7.0.15');
    expect(loaded.summary).toEqual({ pairs: 1 });
  });

  it('writes a tidy CSV: one row per observation, fixed columns, quoting that round-trips', () => {
    const w = ResultsWriter.create({ campaign: 'c', baseDir: tmp(), machine: MACHINE });
    const obs: Observation[] = [
      { system: 'vtier', workload: 'hot,spot "x"', run: 0, metric: 'recall', value: 0.5, unit: 'fraction', timeS: 2 },
      { system: 'vtier', workload: 'w', run: 0, metric: 'dram_served_share', value: 0.25, unit: 'fraction', param: 'dram_bytes', paramValue: 2 ** 31 },
      { system: 'agent', workload: 'w', run: 3, metric: 'slowdown', value: 1.0123456789, unit: 'ratio' },
    ];
    w.observe(obs);
    const rows = parseCsv(readFileSync(join(w.dir, 'observations.csv'), 'utf8'));
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    expect(rows).toHaveLength(4);
    for (const row of rows) expect(row).toHaveLength(CSV_COLUMNS.length);
    expect(rows[1]).toEqual(['c', 'vtier', 'hot,spot "x"', '0', 'recall', '0.5', 'fraction', '2', '', '']);
    expect(loadResults(w.dir).observations).toEqual(obs);
  });

  it('round-trips arbitrary text and numbers through the CSV', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ system: fc.string(), workload: fc.string(), run: fc.nat(1000), metric: fc.string({ minLength: 1 }), value: fc.double({ noNaN: true, noDefaultInfinity: true }), unit: fc.string() }), { maxLength: 8 }),
        (list) => {
          const w = ResultsWriter.create({ campaign: 'p', baseDir: tmp(), machine: MACHINE });
          const normalised = list.map((o) => ({ ...o, value: Object.is(o.value, -0) ? 0 : o.value }));
          w.observe(normalised);
          expect(loadResults(w.dir).observations).toEqual(normalised);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('rejects what is not a results directory with one-line errors', () => {
    const base = tmp();
    expect(() => loadResults(join(base, 'nope'))).toThrow(/no such results directory/);
    writeFileSync(join(base, 'file'), 'x');
    expect(() => loadResults(join(base, 'file'))).toThrow(/not a directory/);
    mkdirSync(join(base, 'empty'));
    expect(() => loadResults(join(base, 'empty'))).toThrow(/not a vtier results directory/);
    const w = ResultsWriter.create({ campaign: 'c', baseDir: base, machine: MACHINE });
    rmSync(join(w.dir, 'observations.csv'));
    expect(() => loadResults(w.dir)).toThrow(/observations.csv is missing/);
    writeFileSync(join(w.dir, 'observations.csv'), 'a,b\n1,2\n');
    expect(() => loadResults(w.dir)).toThrow(/not a vtier observations file/);
  });

  it('imports saved sim output and warns about unknown JSON', () => {
    const dir = tmp();
    const sim = {
      epochMs: 500,
      policies: [
        { policy: 'vtier', dramShare: 0.7, promotedBytes: 4096, precisionSteady: 0.9, timeline: { precision: [0.5, 0.9], recall: [0.4, 0.8], dramShare: [0.1, 0.2] } },
        { policy: 'static', dramShare: 0.2, promotedBytes: 0 },
      ],
    };
    writeFileSync(join(dir, 'hotspot.json'), JSON.stringify(sim));
    writeFileSync(join(dir, 'other.json'), JSON.stringify({ hello: 1 }));
    const loaded = loadResults(dir);
    expect(loaded.complete).toBe(true);
    expect(loaded.warnings).toEqual(['other.json: not a shape vtier report knows; ignored']);
    const find = (system: string, metric: string, timeS?: number) =>
      loaded.observations.find((o) => o.system === system && o.metric === metric && o.timeS === timeS)?.value;
    expect(find('vtier', 'dram_served_share')).toBe(0.7);
    expect(find('static', 'promoted_bytes')).toBe(0);
    expect(find('vtier', 'precision_steady')).toBe(0.9);
    expect(find('vtier', 'recall', 1)).toBe(0.8);
    expect(find('vtier', 'precision', 0.5)).toBe(0.5);
    expect(loaded.observations.every((o) => o.workload === 'hotspot')).toBe(true);
    expect(simObservations({ policies: [] })).toBeNull();
    expect(simObservations([1, 2])).toBeNull();
  });

  it('imports a sim sweep by the swept parameter, though every point carries both', () => {
    const point = (dramBytes: number, share: number) => ({
      value: dramBytes, dramBytes, samplePeriod: 10000, workload: { name: 'hotspot' }, epochMs: 1000,
      policies: [{ policy: 'vtier', dramShare: share }],
    });
    const obs = simObservations({ parameter: 'dram', workload: { name: 'hotspot' }, points: [point(2 ** 30, 0.4), point(2 ** 31, 0.7)] });
    expect(obs?.filter((o) => o.metric === 'dram_served_share')).toEqual([
      { system: 'vtier', workload: 'hotspot', run: 0, metric: 'dram_served_share', value: 0.4, unit: 'fraction', param: 'dram_bytes', paramValue: 2 ** 30 },
      { system: 'vtier', workload: 'hotspot', run: 0, metric: 'dram_served_share', value: 0.7, unit: 'fraction', param: 'dram_bytes', paramValue: 2 ** 31 },
    ]);
    const periods = simObservations({ parameter: 'period', points: [{ ...point(2 ** 30, 0.4), samplePeriod: 100 }] });
    expect(periods?.[0]).toMatchObject({ param: 'period', paramValue: 100 });
  });

  it('names directories by UTC time', () => {
    expect(timestampForName(new Date('2026-01-02T03:04:05.678Z'))).toBe('20260102T030405Z');
  });
});
