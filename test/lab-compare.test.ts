// `vtier eval compare --lab` for real, short: vtier and AutoNUMA tiering, one run each, each in
// a fresh two-node lab VM. AutoNUMA must really promote (pgpromote_success > 0), or the run must
// say why it cannot; every arm restores its settings; the campaign writes its results directory,
// the calibration rows and a report.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { labTestFile, processesMentioning, runCli } from './helpers/lab.js';

const { skip, resultsDir } = labTestFile('lab-compare');


describe.skipIf(skip)('vtier eval compare --lab (vtier vs AutoNUMA, real kernels)', () => {
  it('runs each system in its own VM; AutoNUMA promotes (or says why not); settings restored; results and calibration written', async () => {
    const out = resultsDir('compare-lab');
    const r = await runCli(['eval', 'compare', '--lab', '--systems', 'vtier,autonuma', '--runs', '1', '--duration', '20s', '--size', '256M', '--out', out, '--json'], 900_000);
    expect(r.status, `${r.stdout.slice(0, 2000)}\n${r.stderr.slice(-3000)}`).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.failedArms).toEqual([]);
    expect(s.systems.map((x: { system: string }) => x.system)).toEqual(['vtier', 'autonuma']);
    for (const x of s.systems) expect(x.runs).toBe(1);

    const raw = readdirSync(join(out, 'runs')).map((f) => JSON.parse(readFileSync(join(out, 'runs', f), 'utf8')));
    const arm = (system: string) => raw.find((a) => a.system === system);
    const autonuma = arm('autonuma');
    const cannot = autonuma.notes.some((n: string) => /cannot promote/.test(n));
    if (!cannot) expect(autonuma.vmstat.pgpromote_success).toBeGreaterThan(0);
    expect(autonuma.vmstat.numa_pte_updates).toBeGreaterThan(0);
    for (const a of raw) {
      expect(a.settingsRestored).toBe(true);
      expect(a.hotDramShare.start).toBeLessThan(0.1);
    }
    // vtier moved pages for real and the kernel's placement shows it.
    expect(arm('vtier').vtierMoved.promote).toBeGreaterThan(0);
    expect(arm('vtier').hotDramShare.end).toBeGreaterThan(0.5);

    expect(s.calibration.map((c: { system: string }) => c.system)).toEqual(['vtier', 'autonuma']);
    const csv = readFileSync(join(out, 'observations.csv'), 'utf8');
    expect(csv).toMatch(/autonuma,hotspot,1,hot_dram_share,/);
    expect(csv).toMatch(/vtier,hotspot,1,hot_dram_share,/);
    expect(existsSync(join(out, 'DONE'))).toBe(true);
    expect(existsSync(join(out, 'report.html'))).toBe(true);
    console.log(
      `lab-compare: ${s.systems.map((x: { system: string; hotDramShareMean: number; migratedBytes: number }) => `${x.system} hot on DRAM mean ${(x.hotDramShareMean * 100).toFixed(1)}%, migrated ${(x.migratedBytes / 2 ** 20).toFixed(1)} MiB`).join('; ')}; autonuma pgpromote_success ${autonuma.vmstat.pgpromote_success}`,
    );
    expect(processesMentioning(out)).toEqual([]);
  }, 920_000);
});
