import { afterEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { decodeTruth, readTruth, startWorkload, workloadArgs, WorkloadError, type RunningWorkload } from '../guest-agent/workload.js';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const dir = mkdtempSync(join(tmpdir(), 'vtier-workload-'));
const running: RunningWorkload[] = [];

afterEach(async () => {
  for (const w of running.splice(0)) await w.stop().catch(() => {});
});

/** Every present frame of the child's large anonymous mappings, read from its pagemap. */
function childFrames(pid: number, minBytes: number): Set<number> {
  const frames = new Set<number>();
  const fd = openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) rw-p 00000000 00:00 0\s*$/.exec(line);
      if (!m) continue;
      const start = parseInt(m[1], 16);
      const end = parseInt(m[2], 16);
      if (end - start < minBytes) continue;
      const pages = (end - start) / 4096;
      const buf = Buffer.alloc(pages * 8);
      readSync(fd, buf, 0, buf.length, (start / 4096) * 8);
      for (let i = 0; i < pages; i++) {
        const entry = buf.readBigUInt64LE(i * 8);
        if (entry >> 63n) frames.add(Number(entry & ((1n << 55n) - 1n)));
      }
    }
  } finally {
    closeSync(fd);
  }
  return frames;
}

describe('vtier-workload', () => {
  it.skipIf(!isRoot)('writes a truth file whose frames are the child\'s own pages (root)', async () => {
    const truthPath = join(dir, 'hot.truth');
    const w = await startWorkload({ pattern: 'hotspot', sizeBytes: 64 << 20, hotFrac: 0.1, hotProb: 0.9, truthPath, reportMs: 0 });
    running.push(w);
    const truth = readTruth(truthPath);
    expect(truth.pid).toBe(w.pid);
    expect(truth.pages).toBe((64 << 20) / 4096);
    expect(truth.pfnKnown).toBe(true);
    const frames = childFrames(w.pid, 64 << 20);
    let matched = 0;
    for (const pfn of truth.gpaPfn) if (frames.has(pfn)) matched++;
    // Compaction may move a handful of frames between the two reads.
    expect(matched / truth.pages).toBeGreaterThan(0.99);
    expect(new Set(truth.gpaPfn).size).toBe(truth.pages);

    // Hot set size and shares follow --hot-frac / --hot-prob.
    expect(truth.hotPages).toBe(Math.round(0.1 * truth.pages));
    expect(truth.hotPfns.length).toBe(truth.hotPages);
    const hot = new Set(truth.hotPfns);
    let hotShare = 0;
    let total = 0;
    truth.gpaPfn.forEach((pfn, i) => {
      total += truth.share[i];
      if (hot.has(pfn)) hotShare += truth.share[i];
    });
    expect(total).toBeCloseTo(1, 9);
    expect(hotShare).toBeCloseTo(0.9, 9);
    for (let i = 1; i < truth.hotPfns.length; i++) expect(truth.hotPfns[i]).toBeGreaterThan(truth.hotPfns[i - 1]);

    const summary = await w.stop();
    expect(summary.exitCode).toBe(0);
    expect(summary.accesses).toBeGreaterThan(0);
  });

  it('shift moves the hot set and bumps the generation in the truth file', async () => {
    const truthPath = join(dir, 'shift.truth');
    const w = await startWorkload({ pattern: 'shift', sizeBytes: 16 << 20, hotFrac: 0.25, shiftEveryMs: 300, truthPath, reportMs: 0 });
    running.push(w);
    const first = readTruth(truthPath);
    expect(first.generation).toBe(1);
    await new Promise((r) => setTimeout(r, 800));
    const later = readTruth(truthPath);
    expect(later.generation).toBeGreaterThan(1);
    expect(later.hotFirstPage).toBe((first.hotFirstPage + first.hotPages * (later.generation - 1)) % first.pages);
    if (later.generation === 2) {
      const before = new Set(first.hotPfns);
      expect(Array.from(later.hotPfns).filter((p) => before.has(p)).length).toBe(0);
    }
    const summary = await w.stop();
    expect(summary.generation).toBeGreaterThanOrEqual(later.generation);
  });

  it('zipf shares follow the rank law and the run ends at --duration', async () => {
    const truthPath = join(dir, 'zipf.truth');
    const w = await startWorkload({ pattern: 'zipf', sizeBytes: 8 << 20, zipfS: 1, durationMs: 300, truthPath, reportMs: 0 });
    const truth = readTruth(truthPath);
    const sorted = Array.from(truth.share).sort((a, b) => b - a);
    expect(sorted[0] / sorted[1]).toBeCloseTo(2, 6);
    expect(sorted[0] / sorted[9]).toBeCloseTo(10, 6);
    // The top page is the first page of the hot block.
    expect(truth.share[truth.hotFirstPage]).toBe(sorted[0]);
    const summary = await w.done;
    expect(summary.exitCode).toBe(0);
    expect(summary.seconds).toBeGreaterThanOrEqual(0.3);
    expect(summary.seconds).toBeLessThan(5);
  });

  it('rewrites the truth file atomically (no tmp file left behind)', async () => {
    const truthPath = join(dir, 'atomic.truth');
    const w = await startWorkload({ pattern: 'shift', sizeBytes: 4 << 20, shiftEveryMs: 50, durationMs: 400, truthPath, reportMs: 0 });
    for (let i = 0; i < 20; i++) {
      expect(() => readTruth(truthPath)).not.toThrow();
      await new Promise((r) => setTimeout(r, 10));
    }
    await w.done;
    expect(statSync(truthPath).size).toBeGreaterThan(0);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp.'))).toEqual([]);
  });

  it('waits for beforeTouch before touching any page', async () => {
    let seen = 0;
    const w = await startWorkload({
      pattern: 'uniform',
      sizeBytes: 8 << 20,
      durationMs: 200,
      reportMs: 0,
      beforeTouch: async (pid) => {
        seen = pid;
        // Nothing is touched yet: the region's pages are not resident.
        const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
        expect(rss).toBeLessThan(8 * 1024);
        await new Promise((r) => setTimeout(r, 50));
      },
    });
    expect(seen).toBe(w.pid);
    expect((await w.done).exitCode).toBe(0);
  });

  it('validates options before spawning', () => {
    expect(() => workloadArgs({ pattern: 'hotspot', sizeBytes: 100 })).toThrow(WorkloadError);
    expect(() => workloadArgs({ pattern: 'nope' as never, sizeBytes: 1 << 20 })).toThrow(/unknown pattern/);
    expect(() => workloadArgs({ pattern: 'hotspot', sizeBytes: 1 << 20, hotFrac: 0 })).toThrow(/hot-frac/);
    expect(() => workloadArgs({ pattern: 'hotspot', sizeBytes: 1 << 20, threads: 0 })).toThrow(/threads/);
  });

  it('decodeTruth throws only WorkloadError on corrupt or cut files', async () => {
    const truthPath = join(dir, 'fuzz.truth');
    const w = await startWorkload({ pattern: 'hotspot', sizeBytes: 64 << 10, durationMs: 1, truthPath, reportMs: 0 });
    await w.done;
    const good = new Uint8Array(readFileSync(truthPath));
    expect(decodeTruth(good).pages).toBe(16);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(good.length - 1), fc.nat(255)), { maxLength: 6 }), fc.nat(good.length), (flips, cut) => {
        const bytes = good.slice(0, cut);
        for (const [at, v] of flips) if (at < bytes.length) bytes[at] = v;
        try {
          const t = decodeTruth(bytes);
          expect(t.gpaPfn.length).toBe(t.pages);
        } catch (err) {
          if (!(err instanceof WorkloadError)) throw err;
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('rejects a corrupt truth file with a clear error', () => {
    const path = join(dir, 'bad.truth');
    writeFileSync(path, Buffer.from('VTIERTRU\x01\x00\x00\x00\xff\xff\x00\x00'));
    expect(() => readTruth(path)).toThrow(/bad header length/);
  });
});

describe('vtier workload (CLI)', () => {
  const cli = (...args: string[]) => run('node', ['bin/vtier.js', 'workload', ...args]).then(
    (r) => ({ code: 0, ...r }),
    (e) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }),
  );

  it('runs, stops at --duration and reports a JSON summary', async () => {
    const r = await cli('hotspot', '--size', '32M', '--duration', '1s', '--json');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.pages).toBe(8192);
    expect(summary.hotPages).toBe(819);
    expect(summary.accessesPerSec).toBeGreaterThan(1e5);
    expect(summary.seconds).toBeGreaterThanOrEqual(1);
  });

  it('exits cleanly on SIGTERM forwarded to the child', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn('node', ['bin/vtier.js', 'workload', 'uniform', '--size', '16M', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    let err = '';
    await new Promise<void>((resolve) => {
      child.stderr.on('data', (d) => {
        err += d;
        if (/accesses\/s/.test(err)) resolve();
      });
      child.on('close', () => resolve());
    });
    child.kill('SIGTERM');
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(JSON.parse(out).accesses).toBeGreaterThan(0);
  });

  it('bad arguments give one line and a non-zero exit', async () => {
    for (const args of [['nope', '--size', '1G'], ['hotspot', '--size', '1Q'], ['hotspot', '--size', '1G', '--hot-frac', '2'], ['hotspot']]) {
      const r = await cli(...args);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^vtier: error: /);
    }
    const r = await cli('zipf', '--size', '1G', '--threads', '0', '--json');
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error.kind).toBe('usage');
  });
});

process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
