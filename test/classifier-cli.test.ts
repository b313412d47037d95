// `vtier classify` on traces built with the trace encoders: the decisions and timeline,
// --json, truncated traces (warning), and bad input (one-line errors, non-zero exit).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeTraceBatch, encodeTraceEnd, encodeTraceHeader, encodeTraceTruncated, type TraceHeader } from '../src/trace/index.js';
import { runsFrom, samplesFrom } from '../src/samples.js';

const ROOT = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'vtier-classify-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MS = 1_000_000;
const header: TraceHeader = {
  source: 'faults',
  pageSize: 4096,
  epochMs: 500,
  tunables: {},
  ramRanges: runsFrom([[0, 4096], [0x100000, 4096]]), // 32 MiB with a hole
  facts: { kernel: 'test' },
  startTimeMs: 1_700_000_000_000,
  startNs: 1_000 * MS,
};

/** Four 500 ms epochs: hot pages 0-15 for two epochs, then 0x100000-0x10000f. */
function batches(): Uint8Array[] {
  const hotA = samplesFrom(Array.from({ length: 16 }, (_, i) => [i, 1, 5, 1] as [number, number, number, number]));
  const hotB = samplesFrom(Array.from({ length: 16 }, (_, i) => [0x100000 + i, 1, 9, 0] as [number, number, number, number]));
  const cold = samplesFrom([[2000, 1, 1, 0], [3000, 1, 1, 0], [0x100800, 8, 1, 0]]);
  return [
    encodeTraceBatch(1_000 * MS + 100 * MS, hotA),
    encodeTraceBatch(1_000 * MS + 300 * MS, cold),
    encodeTraceBatch(1_000 * MS + 600 * MS, hotA),
    encodeTraceBatch(1_000 * MS + 1_100 * MS, hotB),
    encodeTraceBatch(1_000 * MS + 1_600 * MS, hotB),
  ];
}

function writeTrace(name: string, parts: Uint8Array[]): string {
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat(parts));
  return path;
}

const end = encodeTraceEnd({ samples: 100, pagesSeen: 40, drops: 0, untranslated: 0, batches: 5, endNs: 3_000 * MS });
const good = writeTrace('good.trace', [encodeTraceHeader(header), ...batches(), end]);

function vtier(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('node', [join(ROOT, 'bin', 'vtier.js'), ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('vtier classify', () => {
  it('prints the hot-set timeline, the decisions and a summary', () => {
    const r = vtier('classify', good, '--dram', '64K', '--runs', '--cool-epochs', '1');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('hot-set timeline');
    expect(r.stdout).toContain('DRAM budget 64.0 KiB (16 pages), epoch 500 ms');
    // Epoch 1 promotes pages 0-15 (GPA 0x0-0x10000); once hot set B has taken over,
    // they are demoted for 0x100000000-0x100010000.
    expect(r.stdout).toMatch(/promote 0x0-0x10000\n/);
    expect(r.stdout).toContain('promote 0x100000000-0x100010000');
    expect(r.stdout).toContain('demote  0x0-0x10000');
    expect(r.stdout).toMatch(/summary: 4 epochs/);
  });

  it('--json gives the same as one object, runs included', () => {
    const r = vtier('classify', good, '--dram', '64K', '--json', '--cool-epochs', '1');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.trace).toMatchObject({ source: 'faults', ramPages: 8192, batches: 5, truncated: false });
    expect(result.epochs).toHaveLength(4);
    expect(result.epochs.map((e: { batches: number }) => e.batches)).toEqual([2, 1, 1, 1]);
    expect(result.epochs[0].promote).toEqual([[0, 16]]);
    for (const e of result.epochs) expect(e.stats.dramPages).toBeLessThanOrEqual(16);
    const promoted = result.epochs.flatMap((e: { promote: unknown[] }) => e.promote);
    expect(promoted).toContainEqual([0x100000, 16]);
    expect(result.summary).toMatchObject({ epochs: 4, promotedPages: 32, demotedPages: 16, rejectedRuns: 0 });
  });

  it('--epoch regroups batches, --huge decides per 2 MiB chunk', () => {
    const r = vtier('classify', good, '--dram', '4M', '--epoch', '2s', '--huge', '--json');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.epochs).toHaveLength(1);
    expect(result.options).toMatchObject({ epochMs: 2000, hugePages: true, dramBudgetPages: 1024 });
    for (const [gpaPfn, pages] of result.epochs[0].promote) {
      expect(gpaPfn % 512).toBe(0);
      expect(pages % 512).toBe(0);
    }
  });

  it('warns once about a truncated trace and classifies what is there', () => {
    const truncated = writeTrace('cut.trace', [encodeTraceHeader(header), ...batches().slice(0, 3), encodeTraceTruncated(3, 'disk full')]);
    const r = vtier('classify', truncated, '--dram', '64K');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('vtier: warning: trace is truncated (disk full); classified the 3 batches present\n');
    expect(r.stdout).toMatch(/summary: 2 epochs/);
    const cutBytes = readFileSync(good).subarray(0, readFileSync(good).length - 30);
    const cut = writeTrace('cut2.trace', [cutBytes]);
    const j = vtier('classify', cut, '--dram', '64K', '--json');
    // A file cut mid-record is either truncated (warning) or corrupt (error); never a crash.
    if (j.code === 0) expect(JSON.parse(j.stdout).warning).toMatch(/truncated/);
    else expect(JSON.parse(j.stdout).error.kind).toBe('usage');
  });

  it('bad input: one line, non-zero exit', () => {
    const corrupt = writeTrace('corrupt.trace', [Buffer.from('VTIERTRX'), Buffer.alloc(64)]);
    const cases: Array<[string[], RegExp]> = [
      [['classify', corrupt, '--dram', '1M'], /is not a valid trace: trace: /],
      [['classify', join(dir, 'missing.trace'), '--dram', '1M'], /cannot read trace .*: no such file/],
      [['classify', good, '--dram', '0'], /--dram: "0" is less than one 4096-byte page/],
      [['classify', good, '--dram', '1G'], /--dram 1G is larger than the trace's guest RAM \(32.0 MiB\)/],
      [['classify', good, '--dram', 'lots'], /--dram: "lots" is not a size/],
      [['classify', good, '--dram', '1M', '--epoch', '0ms'], /--epoch must be longer than 0/],
      [['classify', good, '--dram', '1M', '--epoch', '1us'], /epochs \(limit 1000000\); use a longer epoch/],
      [['classify', good, '--dram', '1M', '--unknown', 'nvm'], /--unknown: "nvm" is not cxl or dram/],
      [['classify', good], /required option '--dram <size|pct>' not specified/],
    ];
    for (const [args, message] of cases) {
      const r = vtier(...args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const j = vtier('classify', corrupt, '--dram', '1M', '--json');
    expect(j.code).not.toBe(0);
    expect(JSON.parse(j.stdout).error.kind).toBe('usage');
  });

  it('--help teaches with examples', () => {
    const r = vtier('classify', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('vtier classify run.trace --dram 2G');
  });
});

describe('vtier classify --truth (offline accuracy)', () => {
  it('scores a trace against the workload truth file: perfect on the hot pages, zero elsewhere', async () => {
    const { readTruth } = await import('../guest-agent/workload.js');
    const truthPath = join(dir, 'w.truth');
    const w = spawnSync('node', [join(ROOT, 'bin', 'vtier.js'), 'workload', 'hotspot', '--size', '16M', '--no-thp', '--duration', '300ms', '--truth', truthPath], { encoding: 'utf8' });
    expect(w.status, w.stderr).toBe(0);
    const truth = readTruth(truthPath);
    expect(truth.pfnKnown, 'the workload reads its frames from pagemap (root)').toBe(true);
    const hot = [...truth.hotPfns];
    const cold = [...truth.gpaPfn].filter((p) => p >= 0 && !truth.hotPfns.includes(p)).slice(0, hot.length);
    const make = (name: string, pfns: number[]) => {
      const rows = pfns.map((p) => [p, 1, 8, 0] as [number, number, number, number]);
      const parts = [encodeTraceHeader({ ...header, ramRanges: runsFrom([]) })];
      for (let i = 0; i < 4; i++) parts.push(encodeTraceBatch(1_000 * MS + (i * 500 + 100) * MS, samplesFrom(rows)));
      parts.push(encodeTraceEnd({ samples: 4 * rows.length, pagesSeen: rows.length, drops: 0, untranslated: 0, batches: 4, endNs: 3_000 * MS }));
      return writeTrace(name, parts);
    };
    const right = vtier('classify', make('right.trace', hot), '--truth', truthPath, '--json');
    expect(right.code, right.stderr).toBe(0);
    const a = JSON.parse(right.stdout).accuracy;
    expect(a).toMatchObject({ truthHotPages: hot.length, final: { precision: 1, recall: 1, f1: 1 } });
    expect(a.convergeS).toBeCloseTo(0.5, 9);
    const wrong = JSON.parse(vtier('classify', make('wrong.trace', cold), '--truth', truthPath, '--json').stdout).accuracy;
    expect(wrong.final.f1).toBe(0);
    expect(wrong.convergeS).toBeNull();
    const text = vtier('classify', make('right2.trace', hot), '--truth', truthPath);
    expect(text.stdout).toMatch(/accuracy against .*final precision 1\.000, recall 1\.000, F1 1\.000.*converged \(F1 >= 0\.9 and kept\) after 0\.5 s/);
    const missing = vtier('classify', make('right3.trace', hot), '--truth', join(dir, 'none.truth'), '--json');
    expect(missing.code).toBe(2);
    expect(JSON.parse(missing.stdout).error).toMatchObject({ kind: 'usage', message: expect.stringMatching(/--truth: cannot read/) });
  });
});
