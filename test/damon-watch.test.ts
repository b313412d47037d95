// Observe mode when the observed kdamond restarts, stops, disappears or goes silent.
// The detection (KdamondWatch) runs on copies of the fake version trees; the re-attach runs
// for real: a DamonSource on a fake tree first bound to a stand-in process (a real pid
// that is no kdamond: nothing passes the BPF filter), then the tree names the host's real
// paddr kdamond and the source must reload its program for that pid and deliver its
// aggregations. The host's DAMON sysfs is only read, never written.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminDir, damonStatus, KdamondWatch, observeKdamond, readKdamond } from '../guest-agent/damon.js';
import { readSystemRam } from '../guest-agent/iomem.js';
import { DamonSource } from '../guest-agent/sources/damon.js';
import { builtPath } from '../native/addon.js';

const FIXTURES = join(__dirname, 'fixtures', 'damon');

function copyOf(version: string): string {
  const root = mkdtempSync(join(tmpdir(), `vtier-damon-watch-${version}-`));
  cpSync(join(FIXTURES, version), root, { recursive: true });
  return root;
}
const k0 = (root: string, p: string) => join(adminDir(root), 'kdamonds/0', p);
const put = (path: string, value: string | number) => writeFileSync(path, `${value}\n`);

describe.each(['6.1', '6.18'])('kdamond watch on a fake %s tree', (version) => {
  it('a restart is a pid change; off and back on with a new pid is a stop then a restart', () => {
    const root = copyOf(version);
    const info = observeKdamond(root);
    const watch = new KdamondWatch(0, info, root, 0);
    expect(watch.check(0, 10)).toEqual([]);
    put(k0(root, 'pid'), 5151);
    const [restart, ...rest] = watch.check(10, 20);
    expect(rest).toEqual([]);
    expect(restart).toMatchObject({ kind: 'restarted', fromPid: 4242, toPid: 5151, snapshot: { state: 'on', pid: 5151, ops: 'paddr' } });
    expect(watch.check(20, 30)).toEqual([]);
    put(k0(root, 'state'), 'off');
    put(k0(root, 'pid'), -1);
    expect(watch.check(30, 40)).toEqual([{ kind: 'stopped', pid: 5151, why: 'off' }]);
    expect(watch.check(30, 50)).toEqual([]); // said once
    put(k0(root, 'state'), 'on');
    put(k0(root, 'pid'), 6161);
    expect(watch.check(30, 60)).toMatchObject([{ kind: 'restarted', fromPid: 5151, toPid: 6161 }]);
  });

  it('a removed kdamond (directory gone, or nr_kdamonds below it) is a stop', () => {
    const root = copyOf(version);
    const watch = new KdamondWatch(0, observeKdamond(root), root, 0);
    put(join(adminDir(root), 'kdamonds/nr_kdamonds'), 0);
    expect(readKdamond(0, root).state).toBe('gone');
    expect(watch.check(0, 10)).toEqual([{ kind: 'stopped', pid: 4242, why: 'gone' }]);
    rmSync(join(adminDir(root), 'kdamonds/0'), { recursive: true });
    expect(watch.check(0, 20)).toEqual([]);
  });

  it('on but silent for three aggregations and a second is a stall, said once; an aggregation resumes it', () => {
    const root = copyOf(version);
    const watch = new KdamondWatch(0, observeKdamond(root), root, 0); // aggregation 100 ms
    expect(watch.stallAfterMs()).toBe(1300);
    expect(watch.check(undefined, 1200)).toEqual([]);
    expect(watch.check(undefined, 1400)).toEqual([{ kind: 'stalled', pid: 4242, silentMs: 1400, expectedMs: 100 }]);
    expect(watch.check(undefined, 2000)).toEqual([]);
    expect(watch.check(1900, 2000)).toEqual([{ kind: 'resumed', pid: 4242 }]);
    expect(watch.check(1900, 2100)).toEqual([]);
  });

  it('the stall bound follows the measured aggregation interval when it is longer (auto-tuned intervals)', () => {
    const root = copyOf(version);
    const watch = new KdamondWatch(0, observeKdamond(root), root, 0); // sysfs says 100 ms
    watch.measuredAggrUs = 2_000_000; // the kdamond really aggregates every 2 s
    expect(watch.stallAfterMs()).toBe(7000);
    expect(watch.check(0, 6000)).toEqual([]);
    expect(watch.check(0, 7100)).toEqual([{ kind: 'stalled', pid: 4242, silentMs: 7100, expectedMs: 2000 }]);
  });

  it('a kdamond that now monitors something else than physical memory is refused', () => {
    const root = copyOf(version);
    const watch = new KdamondWatch(0, observeKdamond(root), root, 0);
    put(join(adminDir(root), 'kdamonds/0/contexts/0/operations'), 'vaddr');
    expect(watch.check(0, 10)).toEqual([{ kind: 'not-paddr', ops: 'vaddr' }]);
  });

  it('changed intervals (intervals_goal tuning, or the owner) are seen at the next look', () => {
    const root = copyOf(version);
    const watch = new KdamondWatch(0, observeKdamond(root), root, 0);
    put(join(adminDir(root), 'kdamonds/0/contexts/0/monitoring_attrs/intervals/sample_us'), 10_000);
    put(join(adminDir(root), 'kdamonds/0/contexts/0/monitoring_attrs/intervals/aggr_us'), 200_000);
    expect(watch.check(0, 10)).toEqual([{ kind: 'intervals', sampleUs: 10_000, aggrUs: 200_000, fromSampleUs: 5000, fromAggrUs: 100_000 }]);
    expect(watch.stallAfterMs()).toBe(1600);
    expect(watch.check(0, 20)).toEqual([]);
  });
});

// ---- the re-attach, for real --------------------------------------------------------
const host = damonStatus();
const hostKdamond = host.running.find((r) => r.ops === 'paddr');
const built = existsSync(builtPath('bpf', 'sampler.bpf.o')) && existsSync(builtPath('Release', 'vtier_native.node'));
const canRun = Boolean(hostKdamond) && built && process.getuid?.() === 0;
if (!canRun) {
  console.log(`[damon-watch] re-attach test skipped: needs root, a build and a running paddr kdamond on this machine (${host.detail})`);
}

const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

async function until(what: string, timeoutMs: number, done: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!canRun)('observe mode follows a restarted kdamond (real BPF, host kdamond read only)', () => {
  it('re-attaches to the new pid and delivers its aggregations; says when it stops or changes ops', { timeout: 120_000 }, async () => {
    const real = hostKdamond!;
    const hostAggrMs = real.aggrUs / 1000;
    // a real process standing in for the kdamond before its "restart"
    const standIn = spawn('sleep', ['600'], { stdio: 'ignore' });
    children.push(standIn);
    const root = copyOf('6.18');
    put(k0(root, 'pid'), standIn.pid!);
    const source = await DamonSource.start({ mode: 'observe', sysRoot: root, ramRanges: readSystemRam(), watchMs: 100 });
    const fatal: Error[] = [];
    source.onFatal((err) => fatal.push(err));
    const notes: string[] = [];
    source.onNote((n) => notes.push(n));
    const batches: Array<{ count: number; minPfn: number; maxEndPfn: number }> = [];
    source.onBatch((_t, s) => {
      let minPfn = Infinity;
      let maxEndPfn = 0;
      for (let i = 0; i < s.count; i++) {
        minPfn = Math.min(minPfn, s.gpaPfn[i]);
        maxEndPfn = Math.max(maxEndPfn, s.gpaPfn[i] + s.pages[i]);
      }
      batches.push({ count: s.count, minPfn, maxEndPfn });
    });
    try {
      expect(source.info.kdamondPid).toBe(standIn.pid);
      // bound to the stand-in: the host kdamond's aggregations are filtered out...
      await new Promise((r) => setTimeout(r, hostAggrMs + 1500));
      expect(source.aggregationCount).toBe(0);
      expect(source.stats().samples).toBe(0);
      // ...and the silence is said (the fake tree's aggregation interval is 100 ms)
      expect(notes.some((n) => /is on but delivered no aggregation/.test(n)), notes.join('\n')).toBe(true);
      expect(source.stats().kdamond?.stalls).toBe(1);

      // the kdamond "restarts": its pid is now the host kdamond's
      put(k0(root, 'pid'), real.pid);
      await until('an aggregation of the real kdamond after the re-attach', 3 * hostAggrMs + 10_000, () => source.aggregationCount > 0);
      const stats = source.stats();
      expect(stats.kdamond).toMatchObject({ pid: real.pid, state: 'on', restarts: 1, reattached: 1 });
      expect(stats.samples).toBeGreaterThan(0);
      expect(source.info.kdamondPid).toBe(real.pid);
      expect(source.tunables.kdamondPid).toBe(real.pid);
      expect(notes.some((n) => n.startsWith(`kdamond.0 restarted (pid ${standIn.pid} -> ${real.pid}): re-attached to the new pid`)), notes.join('\n')).toBe(true);
      expect(source.notes).toEqual(expect.arrayContaining(notes));
      // the regions are the real kdamond's: inside its configured target ranges
      const ranges = observeKdamond().targetRanges;
      const lo = Math.min(...ranges.map((r) => r.start)) / 4096;
      const hi = Math.max(...ranges.map((r) => r.end)) / 4096;
      const real0 = batches.find((b) => b.count > 0)!;
      expect(real0.minPfn).toBeGreaterThanOrEqual(lo);
      expect(real0.maxEndPfn).toBeLessThanOrEqual(hi);

      // it stops: said once, counted
      put(k0(root, 'state'), 'off');
      await until('the stop to be noticed', 5000, () => source.stats().kdamond?.state === 'off');
      expect(source.stats().kdamond?.stops).toBe(1);
      expect(notes.some((n) => n === `kdamond.0 (pid ${real.pid}) stopped (state off): no aggregations until it runs again`)).toBe(true);

      // back on, but monitoring virtual addresses now: the source stops with one clear line
      put(join(adminDir(root), 'kdamonds/0/contexts/0/operations'), 'vaddr');
      put(k0(root, 'state'), 'on');
      await until('the fatal error', 5000, () => fatal.length > 0);
      expect(fatal[0].message).toBe('DAMON: kdamond.0 now monitors vaddr, not physical memory (paddr); stopped sampling it');
    } finally {
      await source.stop();
      standIn.kill('SIGKILL');
    }
  });
});
