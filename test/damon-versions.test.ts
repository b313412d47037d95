// DAMON's sysfs layout across kernel versions (6.1, 6.6, 6.12, 6.18; fake trees under
// test/fixtures/damon/): observe reads what each version has (addr_unit scaling,
// intervals_goal), own mode writes only files that exist in that version and restores
// everything.
import { describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { adminDir, damonStatus, DamonError, describeSession, observeKdamond, startOwnKdamond } from '../guest-agent/damon.js';
import { KernelStateJournal } from '../guest-agent/kernel-state.js';
import { runsFrom } from '../src/samples.js';

const FIXTURES = join(__dirname, 'fixtures', 'damon');
const VERSIONS = ['6.1', '6.6', '6.12', '6.18'] as const;
const RAM = runsFrom([
  [0x100, 0xbff00],
  [0x100000, 0x540000],
]);

/** A writable copy of a version's tree. */
function copyOf(version: string): string {
  const root = mkdtempSync(join(tmpdir(), `vtier-damon-${version}-`));
  cpSync(join(FIXTURES, version), root, { recursive: true });
  return root;
}

function files(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else out[relative(root, path)] = readFileSync(path, 'utf8').trim();
    }
  };
  walk(root);
  return out;
}

const ctxPath = (root: string, p = '') => join(adminDir(root), 'kdamonds/0/contexts/0', p);
const put = (path: string, value: string | number) => writeFileSync(path, `${value}\n`);

describe.each(VERSIONS)('DAMON sysfs of Linux %s', (version) => {
  const hasAddrUnit = version === '6.18';
  const hasIntervalsGoal = version === '6.18';

  it('the tree has the files of that version only', () => {
    const root = join(FIXTURES, version);
    expect(existsSync(ctxPath(root, 'addr_unit'))).toBe(hasAddrUnit);
    expect(existsSync(ctxPath(root, 'monitoring_attrs/intervals/intervals_goal/access_bp'))).toBe(hasIntervalsGoal);
    expect(existsSync(ctxPath(root, 'avail_operations'))).toBe(true);
    expect(existsSync(ctxPath(root, 'schemes/0/filters/nr_filters'))).toBe(version !== '6.1');
    expect(existsSync(ctxPath(root, 'schemes/0/quotas/goals/nr_goals'))).toBe(version === '6.12' || version === '6.18');
  });

  it('observe reads the running kdamond without writing', () => {
    const root = copyOf(version);
    const before = files(root);
    const status = damonStatus(root);
    expect(status).toMatchObject({ available: true, busy: true, paddr: true, running: [{ index: 0, pid: 4242, ops: 'paddr', sampleUs: 5000, aggrUs: 100000 }] });
    const info = observeKdamond(root);
    expect(info).toMatchObject({ mode: 'observe', kdamondPid: 4242, addrUnit: 1, updateUs: 1_000_000, minRegions: 10, maxRegions: 1000 });
    expect(info.targetRanges).toEqual([
      { start: 1 << 20, end: 0xbff00000 },
      { start: 2 ** 32, end: 2 ** 32 + 0x540000 * 4096 },
    ]);
    expect(info.intervalsGoal).toEqual(hasIntervalsGoal ? { accessBp: 0, aggrs: 0, minSampleUs: 0, maxSampleUs: 0 } : null);
    expect(files(root)).toEqual(before);
  });

  it('own mode writes only files this version has, and restores all of them', async () => {
    const root = copyOf(version);
    // No kdamond yet (the fake kernel keeps the directories the counts would create).
    put(join(adminDir(root), 'kdamonds/nr_kdamonds'), 0);
    put(join(adminDir(root), 'kdamonds/0/state'), 'off');
    put(join(adminDir(root), 'kdamonds/0/pid'), 777); // what the kernel shows once it starts
    // Leftovers the writer must override where they exist: addresses in bytes, fixed intervals.
    if (hasAddrUnit) put(ctxPath(root, 'addr_unit'), 4096);
    if (hasIntervalsGoal) put(ctxPath(root, 'monitoring_attrs/intervals/intervals_goal/access_bp'), 40);
    const before = files(root);
    const journal = await KernelStateJournal.open(join(mkdtempSync(join(tmpdir(), 'vtier-j-')), 'journal-versions.json'), { handleSignals: false });
    let info;
    try {
      info = startOwnKdamond(journal, RAM, { sampleUs: 1000, aggrUs: 20_000 }, root);
      const after = files(root);
      // the same files as before: nothing created that this version lacks
      expect(Object.keys(after)).toEqual(Object.keys(before));
      const c = (p: string) => after[relative(root, ctxPath(root, p))];
      expect(c('operations')).toBe('paddr');
      expect(c('monitoring_attrs/intervals/sample_us')).toBe('1000');
      expect(c('targets/0/regions/nr_regions')).toBe('2');
      expect(c('targets/0/regions/1/end')).toBe(String((0x100000 + 0x540000) * 4096));
      if (hasAddrUnit) expect(c('addr_unit')).toBe('1');
      if (hasIntervalsGoal) expect(c('monitoring_attrs/intervals/intervals_goal/access_bp')).toBe('0');
      const written = journal.entries.map((e) => relative(ctxPath(root), e.path));
      expect(written.includes('addr_unit')).toBe(hasAddrUnit);
      expect(written.some((p) => p.includes('intervals_goal'))).toBe(hasIntervalsGoal);
      expect(info).toMatchObject({ mode: 'own', kdamondPid: 777, addrUnit: 1 });
      expect(info.intervalsGoal === null).toBe(!hasIntervalsGoal);
    } finally {
      expect(journal.restoreAll().cleared).toBe(true);
    }
    expect(files(root)).toEqual(before);
  });
});

describe('addr_unit and intervals_goal (6.18)', () => {
  it('observe scales region addresses by addr_unit', () => {
    const root = copyOf('6.18');
    put(ctxPath(root, 'addr_unit'), 4096);
    put(ctxPath(root, 'targets/0/regions/0/start'), 0x100);
    put(ctxPath(root, 'targets/0/regions/0/end'), 0xbff00);
    put(ctxPath(root, 'targets/0/regions/1/start'), 0x100000);
    put(ctxPath(root, 'targets/0/regions/1/end'), 0x640000);
    const info = observeKdamond(root);
    expect(info.addrUnit).toBe(4096);
    expect(info.targetRanges).toEqual([
      { start: 0x100 * 4096, end: 0xbff00 * 4096 },
      { start: 0x100000 * 4096, end: 0x640000 * 4096 },
    ]);
    expect(describeSession(info)).toContain('addr_unit 4096 (addresses scaled to bytes)');
  });

  it('refuses addresses that do not scale exactly, and an addr_unit that is not a unit', () => {
    const root = copyOf('6.18');
    put(ctxPath(root, 'addr_unit'), 2 ** 20);
    put(ctxPath(root, 'targets/0/regions/1/end'), 2 ** 40);
    expect(() => observeKdamond(root)).toThrow(/past 2\^53: vtier cannot scale its addresses exactly/);
    put(ctxPath(root, 'addr_unit'), 0);
    expect(() => observeKdamond(root)).toThrow(DamonError);
    expect(() => observeKdamond(root)).toThrow(/addr_unit reads 0, not a positive address unit/);
  });

  it('an active intervals goal is reported: DAMON tunes the intervals, re-read each epoch', () => {
    const root = copyOf('6.18');
    put(ctxPath(root, 'monitoring_attrs/intervals/intervals_goal/access_bp'), 40);
    put(ctxPath(root, 'monitoring_attrs/intervals/intervals_goal/aggrs'), 3);
    put(ctxPath(root, 'monitoring_attrs/intervals/intervals_goal/min_sample_us'), 5000);
    put(ctxPath(root, 'monitoring_attrs/intervals/intervals_goal/max_sample_us'), 10_000_000);
    const info = observeKdamond(root);
    expect(info.intervalsGoal).toEqual({ accessBp: 40, aggrs: 3, minSampleUs: 5000, maxSampleUs: 10_000_000 });
    expect(describeSession(info)).toContain('intervals auto-tuned by DAMON (access_bp 40: re-read each epoch)');
  });
});
