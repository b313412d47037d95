// Own-mode DAMON setup on a fake sysfs tree (injectable root): a setup that fails part
// way leaves the tree exactly as it was; a crashed owner's changes come back through
// recoverLeftover(); a configured-but-off kdamond of someone else is never replaced.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { adminDir, damonStatus, DamonError, observeKdamond, resolveDamonMode, startOwnKdamond } from '../guest-agent/damon.js';
import { KernelStateJournal, recoverLeftover } from '../guest-agent/kernel-state.js';
import { runsFrom } from '../src/samples.js';

const RAM = runsFrom([
  [1, 158],
  [0x100, 0xbff00],
  [0x100000, 0x540000],
]);

/** A fake /sys with DAMON's admin tree as the kernel lays it out after creating kdamond 0. */
function fakeSys(opts: { nrKdamonds?: number; state?: string; pid?: number } = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'vtier-fakesys-'));
  const file = (path: string, text: string | number) => {
    const full = join(adminDir(root), path);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, `${text}\n`);
  };
  file('kdamonds/nr_kdamonds', opts.nrKdamonds ?? 0);
  file('kdamonds/0/state', opts.state ?? 'off');
  file('kdamonds/0/pid', opts.pid ?? -1);
  file('kdamonds/0/contexts/nr_contexts', 0);
  const ctx = 'kdamonds/0/contexts/0';
  file(`${ctx}/avail_operations`, 'paddr');
  file(`${ctx}/operations`, 'vaddr');
  file(`${ctx}/monitoring_attrs/intervals/sample_us`, 5000);
  file(`${ctx}/monitoring_attrs/intervals/aggr_us`, 100000);
  file(`${ctx}/monitoring_attrs/intervals/update_us`, 1000000);
  file(`${ctx}/monitoring_attrs/nr_regions/min`, 10);
  file(`${ctx}/monitoring_attrs/nr_regions/max`, 1000);
  file(`${ctx}/targets/nr_targets`, 0);
  file(`${ctx}/targets/0/regions/nr_regions`, 0);
  for (let r = 0; r < 3; r++) {
    file(`${ctx}/targets/0/regions/${r}/start`, 0);
    file(`${ctx}/targets/0/regions/${r}/end`, 0);
  }
  return root;
}

/** Every file under a tree with its content (and directories as such). */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) {
        out[`${path}/`] = 'dir';
        walk(path);
      } else out[path] = readFileSync(path, 'utf8').trim(); // sysfs prints its own newline
    }
  };
  walk(root);
  return out;
}

function journalIn(dir: string): Promise<KernelStateJournal> {
  return KernelStateJournal.open(join(dir, 'journal-damon.json'), { handleSignals: false });
}

describe('DAMON own mode on a fake sysfs tree', () => {
  it('writes the whole configuration in order when it works', async () => {
    const root = fakeSys();
    const journal = await journalIn(mkdtempSync(join(tmpdir(), 'vtier-j-')));
    // The fake kernel "starts" the kdamond: give it a pid as the real one would.
    writeFileSync(join(adminDir(root), 'kdamonds/0/pid'), '4242\n');
    const info = startOwnKdamond(journal, RAM, { sampleUs: 1000, aggrUs: 20000, minRegions: 20, maxRegions: 2000 }, root);
    const ctx = join(adminDir(root), 'kdamonds/0/contexts/0');
    const read = (p: string) => readFileSync(join(ctx, p), 'utf8');
    expect(read('operations')).toBe('paddr');
    expect(read('monitoring_attrs/intervals/sample_us')).toBe('1000');
    expect(read('monitoring_attrs/nr_regions/max')).toBe('2000');
    expect(read('targets/0/regions/nr_regions')).toBe('3');
    expect(read('targets/0/regions/2/start')).toBe(String(0x100000 * 4096));
    expect(read('targets/0/regions/2/end')).toBe(String((0x100000 + 0x540000) * 4096));
    expect(readFileSync(join(adminDir(root), 'kdamonds/0/state'), 'utf8')).toBe('on');
    expect(info).toMatchObject({ mode: 'own', kdamondPid: 4242, sampleUs: 1000, aggrUs: 20000 });
    // The journal's last entry is state: restored first.
    expect(journal.entries.at(-1)?.path).toMatch(/kdamonds\/0\/state$/);
    journal.restoreAll();
  });

  it('a setup that fails mid-way (EISDIR on a region file) leaves the tree exactly as before', async () => {
    const root = fakeSys();
    const broken = join(adminDir(root), 'kdamonds/0/contexts/0/targets/0/regions/1/end');
    rmSync(broken);
    mkdirSync(broken);
    const before = snapshot(root);
    const journal = await journalIn(mkdtempSync(join(tmpdir(), 'vtier-j-')));
    let failure: unknown;
    try {
      startOwnKdamond(journal, RAM, {}, root);
    } catch (err) {
      failure = err;
    } finally {
      const report = journal.restoreAll();
      expect(report.cleared).toBe(true);
    }
    expect((failure as NodeJS.ErrnoException).code).toBe('EISDIR');
    expect(snapshot(root)).toEqual(before);
  });

  it('a kdamond that never starts (no pid) is an error and everything is restored', async () => {
    const root = fakeSys();
    const before = snapshot(root);
    const journal = await journalIn(mkdtempSync(join(tmpdir(), 'vtier-j-')));
    expect(() => startOwnKdamond(journal, RAM, {}, root)).toThrow(/did not start/);
    journal.restoreAll();
    expect(snapshot(root)).toEqual(before);
  });

  it('bad options are refused before any write', async () => {
    const root = fakeSys();
    const before = snapshot(root);
    const journal = await journalIn(mkdtempSync(join(tmpdir(), 'vtier-j-')));
    expect(() => startOwnKdamond(journal, RAM, { sampleUs: 10_000, aggrUs: 5_000 }, root)).toThrow(TypeError);
    expect(journal.entries).toEqual([]);
    expect(snapshot(root)).toEqual(before);
  });

  it('a crashed (SIGKILLed) own-mode session is restored by recoverLeftover()', async () => {
    const root = fakeSys();
    writeFileSync(join(adminDir(root), 'kdamonds/0/pid'), '777\n');
    const before = snapshot(root);
    const journalDir = mkdtempSync(join(tmpdir(), 'vtier-j-'));
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { KernelStateJournal } from ${JSON.stringify(resolve('dist/guest-agent/kernel-state.js'))};
         import { startOwnKdamond } from ${JSON.stringify(resolve('dist/guest-agent/damon.js'))};
         import { runsFrom } from ${JSON.stringify(resolve('dist/src/samples.js'))};
         const j = KernelStateJournal.openSync(${JSON.stringify(join(journalDir, 'journal-crash.json'))});
         startOwnKdamond(j, runsFrom([[256, 1000]]), {}, ${JSON.stringify(root)});
         process.stdout.write('on\\n');
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((done) => child.stdout.once('data', () => done()));
    expect(readFileSync(join(adminDir(root), 'kdamonds/0/state'), 'utf8')).toBe('on');
    child.kill('SIGKILL');
    await new Promise((done) => child.once('exit', done));
    const reports = recoverLeftover(journalDir);
    expect(reports).toHaveLength(1);
    expect(reports[0].cleared).toBe(true);
    expect(snapshot(root)).toEqual(before);
  });

  it('never replaces a configured-but-off kdamond of someone else', async () => {
    const root = fakeSys({ nrKdamonds: 1 });
    writeFileSync(join(adminDir(root), 'kdamonds/0/contexts/nr_contexts'), '1\n');
    const before = snapshot(root);
    const journal = await journalIn(mkdtempSync(join(tmpdir(), 'vtier-j-')));
    expect(() => startOwnKdamond(journal, RAM, {}, root)).toThrow(/configured \(off\) by someone else/);
    expect(journal.entries).toEqual([]);
    expect(snapshot(root)).toEqual(before);
    journal.restoreAll();
  });

  it('status, mode choice and observe read a running kdamond without writing', () => {
    const root = fakeSys({ nrKdamonds: 1, state: 'on', pid: 71 });
    const ctx = join(adminDir(root), 'kdamonds/0/contexts/0');
    writeFileSync(join(ctx, 'operations'), 'paddr\n');
    writeFileSync(join(ctx, 'targets/0/regions/0/start'), `${2 ** 32}\n`);
    writeFileSync(join(ctx, 'targets/0/regions/0/end'), `${2 ** 33}\n`);
    const before = snapshot(root);
    const status = damonStatus(root);
    expect(status).toMatchObject({ available: true, busy: true, paddr: true, running: [{ index: 0, pid: 71, ops: 'paddr', sampleUs: 5000, aggrUs: 100000 }] });
    expect(resolveDamonMode('auto', status)).toBe('observe');
    expect(() => resolveDamonMode('own', status)).toThrow(
      'DAMON busy: kdamond.0 (pid 71, paddr) is running; the kernel cannot add a kdamond while one runs (use --damon-mode observe)',
    );
    expect(observeKdamond(root)).toMatchObject({ mode: 'observe', kdamondPid: 71, targetRanges: [{ start: 2 ** 32, end: 2 ** 33 }] });
    expect(snapshot(root)).toEqual(before);
    expect(resolveDamonMode('auto', damonStatus(fakeSys()))).toBe('own');
    expect(() => observeKdamond(fakeSys())).toThrow(DamonError);
    expect(damonStatus(join(root, 'nowhere')).available).toBe(false);
  });
});
