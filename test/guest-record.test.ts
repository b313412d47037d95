import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decodeTrace } from '../src/trace/index.js';
import { readTruth } from '../guest-agent/workload.js';
import { detectPmu } from '../guest-agent/perf-attr.js';
import { damonStatus } from '../guest-agent/damon.js';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const inCi = process.env.CI === 'true';
const canRecord = isRoot && existsSync('/sys/kernel/btf/vmlinux');
if (!canRecord && !inCi) console.log('skipping recording tests: need root and kernel BTF');
const recordIt = it.skipIf(!canRecord && !inCi);

const dir = mkdtempSync(join(tmpdir(), 'vtier-record-'));
let tiny: string | undefined;

beforeAll(() => {
  if (!isRoot) return;
  tiny = join(dir, 'tiny');
  mkdirSync(tiny);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', tiny]);
});

afterAll(() => {
  if (tiny) execFileSync('umount', [tiny]);
  rmSync(dir, { recursive: true, force: true });
});

async function vtier(...args: string[]) {
  try {
    const r = await run('node', ['bin/vtier.js', ...args], { timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('vtier guest record', () => {
  recordIt('records the faults source on the built-in workload into a valid trace', async () => {
    const out = join(dir, 'faults.trace');
    // A short epoch: the workload's first touches span several drains, all of which must
    // reach the trace.
    const r = await vtier('guest', 'record', '--source', 'faults', '--duration', '1s', '--epoch', '20ms', '--size', '32M', '--no-thp', '--out', out, '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.source).toBe('faults');
    expect(summary.trace.path).toBe(out);
    const trace = decodeTrace(readFileSync(out));
    expect(trace.truncated).toBe(false);
    expect(trace.header.source).toBe('faults');
    expect(trace.header.target?.pid).toBe(summary.target.pid);
    expect(trace.header.ramRanges.count).toBeGreaterThan(0);
    expect(trace.batches.length).toBe(summary.batches);
    expect(trace.end?.samples).toBe(summary.samples);
    expect(trace.end?.pagesSeen).toBe(summary.pagesSeen);
    for (let i = 1; i < trace.batches.length; i++) expect(trace.batches[i].tNs).toBeGreaterThanOrEqual(trace.batches[i - 1].tNs);

    // The sampler attached before the workload's first touch: its fault samples cover the
    // pages the ground truth lists.
    const truth = readTruth(summary.truthPath);
    const seen = new Set<number>();
    for (const b of trace.batches) for (let i = 0; i < b.samples.count; i++) for (let p = 0; p < b.samples.pages[i]; p++) seen.add(b.samples.gpaPfn[i] + p);
    let covered = 0;
    for (const pfn of truth.gpaPfn) if (seen.has(pfn)) covered++;
    console.log(`faults record: ${summary.samples} samples, ${covered}/${truth.pages} workload pages seen`);
    expect(covered / truth.pages).toBeGreaterThan(0.9);
  });

  it('an unknown source is one line and a non-zero exit, or one JSON object', async () => {
    const r = await vtier('guest', 'record', '--source', 'magic', '--out', join(dir, 'x.trace'));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('vtier: error: unknown source "magic" (auto, damon, faults, pebs, ibs)\n');
    const j = await vtier('guest', 'record', '--source', 'magic', '--out', join(dir, 'x.trace'), '--json');
    expect(j.code).toBe(2);
    expect(JSON.parse(j.stdout).error.kind).toBe('usage');
    expect(existsSync(join(dir, 'x.trace'))).toBe(false);
  });

  it.skipIf(detectPmu().kind !== 'none')('pebs and ibs without a PMU are refused with one line', async () => {
    for (const source of ['pebs', 'ibs']) {
      const r = await vtier('guest', 'record', '--source', source, '--out', join(dir, 'p.trace'), '--json');
      expect(r.code).toBe(1);
      const { error } = JSON.parse(r.stdout);
      expect(error.kind).toBe('no-pmu');
      expect(error.message).toMatch(new RegExp(`^source ${source} needs`));
      const text = await vtier('guest', 'record', '--source', source, '--out', join(dir, 'p.trace'));
      expect(text.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('an output directory that cannot be created is one line, not a hang', async () => {
    const r = await vtier('guest', 'record', '--source', 'faults', '--pid', String(process.pid), '--out', '/proc/vtier-nope/x.trace', '--json');
    expect(r.code).toBe(1);
    const { error } = JSON.parse(r.stdout);
    expect(error.kind).toBe('io');
    expect(error.message).toMatch(/^cannot create \/proc\/vtier-nope/);
  });

  it('a pid that does not exist is refused', async () => {
    const r = await vtier('guest', 'record', '--source', 'faults', '--pid', '999999999', '--out', join(dir, 'n.trace'), '--json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error.kind).toBe('target-gone');
  });

  recordIt('a deliberately small map: the samples it refused are counted and reported, not lost silently', async () => {
    const out = join(dir, 'small-map.trace');
    const args = ['guest', 'record', '--source', 'faults', '--max-pages', '64', '--epoch', '1s', '--duration', '1500ms', '--size', '32M', '--no-thp', '--out', out];
    const r = await vtier(...args, '--json');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    // 32 MiB of first touches = 8192 faults into a 64-entry map (8 pages an entry) within one
    // epoch: most are refused, some room comes back from early drains at 75% fill (7,231
    // refused in one loaded run), and the sum below accounts for every sample either way
    expect(summary.mapFull).toBeGreaterThan(8192 / 2);
    expect(summary.drops).toBeGreaterThanOrEqual(summary.mapFull);
    const trace = decodeTrace(readFileSync(out));
    expect(trace.header.tunables?.maxPages).toBe(64);
    let weight = 0;
    for (const b of trace.batches) for (let i = 0; i < b.samples.count; i++) weight += b.samples.reads[i] + b.samples.writes[i];
    // every sample is either in the trace, refused by the full map, or untranslated
    expect(weight + summary.mapFull + summary.untranslated).toBe(summary.samples);
    expect(trace.end?.drops).toBe(summary.drops);
    const text = await vtier(...args);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/LOST \d+ samples \(\d+\.\d% of samples\): the aggregation map \(64 pages\) was full/);
    const bad = await vtier(...args.slice(0, 5), '8', '--out', out, '--json');
    expect(bad.code).not.toBe(0);
    expect(bad.stdout + bad.stderr).toMatch(/--max-pages: must be between 16/);
  });

  recordIt('a target that exits mid-run ends with one line and a marked trace', async () => {
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    const out = join(dir, 'gone.trace');
    const recorder = vtier('guest', 'record', '--source', 'faults', '--pid', String(sleeper.pid), '--duration', '50s', '--epoch', '200ms', '--out', out, '--json');
    // Kill the target once the recording is under way (the trace has its header).
    for (let i = 0; i < 400 && !existsSync(out); i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    sleeper.kill('SIGKILL');
    const r = await recorder;
    expect(r.code).toBe(1);
    const { error } = JSON.parse(r.stdout);
    expect(error.kind).toBe('target-gone');
    expect(error.message).toMatch(new RegExp(`${sleeper.pid}`));
    expect(error.message).toMatch(/trace truncated at batch \d+/);
    const trace = decodeTrace(readFileSync(out));
    expect(trace.truncated).toBe(true);
    expect(trace.truncatedReason).toMatch(new RegExp(`${sleeper.pid}`));
  });

  recordIt('disk full while writing gives "trace truncated at batch N" and a marked trace', async () => {
    if (!tiny) throw new Error('needs root to mount a tmpfs');
    const out = join(tiny, 'full.trace');
    const r = await vtier(
      'guest', 'record', '--source', 'faults', '--duration', '2s', '--epoch', '200ms', '--size', '64M', '--no-thp',
      '--truth', join(dir, 'full.truth'), '--out', out,
    );
    // On failure, show what was recorded: a run that fits in 64 KiB saw too few faults.
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(1);
    expect(r.stderr).toMatch(/^vtier: error: trace truncated at batch \d+: disk full \(ENOSPC\)\n$/);
    const trace = decodeTrace(readFileSync(out));
    expect(trace.truncated).toBe(true);
  });

  recordIt('Ctrl-C (SIGINT to the process group) ends the recording with a complete trace', async () => {
    const out = join(dir, 'int.trace');
    const child = spawn('node', ['bin/vtier.js', 'guest', 'record', '--source', 'faults', '--duration', '60s', '--epoch', '200ms', '--size', '16M', '--out', out, '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    // Wait until the trace has its header and a batch, then interrupt like a terminal does.
    for (let i = 0; i < 200 && !(existsSync(out) && readFileSync(out).length > 200); i++) await new Promise((r) => setTimeout(r, 50));
    process.kill(-child.pid!, 'SIGINT');
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(JSON.parse(stdout).stopped).toBe('interrupted');
    const trace = decodeTrace(readFileSync(out));
    expect(trace.truncated).toBe(false);
    expect(trace.end?.batches).toBe(trace.batches.length);
  });

  it.skipIf(!damonStatus().busy)('--damon-mode own while another kdamond runs is refused before anything starts', async () => {
    const out = join(dir, 'busy.trace');
    const r = await vtier('guest', 'record', '--source', 'damon', '--damon-mode', 'own', '--out', out, '--json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error.kind).toBe('damon-busy');
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.truth`)).toBe(false);
  });

  recordIt('records a command given after --', async () => {
    const out = join(dir, 'cmd.trace');
    const r = await vtier(
      'guest', 'record', '--source', 'faults', '--duration', '10s', '--epoch', '100ms', '--out', out, '--json', '--',
      'build/Release/vtier-workload', 'uniform', '--size-bytes', String(8 << 20), '--duration-ms', '300', '--report-ms', '0',
    );
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.stopped).toBe('command-exited');
    expect(summary.target.command[0]).toBe('build/Release/vtier-workload');
    // 2048 pages touched by a command that was paused until the sampler attached.
    expect(summary.samples).toBeGreaterThanOrEqual(2048 * 0.9);
    expect(decodeTrace(readFileSync(out)).truncated).toBe(false);
  });
});

describe('vtier guest top', () => {
  recordIt('prints a text block per refresh when stdout is not a terminal', async () => {
    const r = await vtier('guest', 'top', '--source', 'faults', '--epoch', '200ms', '--iterations', '2', '--count', '3');
    expect(r.code).toBe(0);
    const blocks = r.stdout.trim().split('\n\n');
    expect(blocks).toHaveLength(2);
    expect(blocks[0]).toMatch(/^vtier guest top: faults, refresh 1,/);
    expect(blocks[1]).toMatch(/^vtier guest top: faults, refresh 2,/);
    expect(r.stdout).not.toContain('\x1b[');
  });

  recordIt('prints one JSON object per refresh and stops after --iterations', async () => {
    const w = spawn('build/Release/vtier-workload', ['uniform', '--size-bytes', String(16 << 20), '--duration-ms', '5000', '--report-ms', '0'], { stdio: 'ignore' });
    try {
      const r = await vtier('guest', 'top', '--source', 'faults', '--epoch', '200ms', '--iterations', '2', '--count', '5', '--json');
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
      expect(lines).toHaveLength(2);
      expect(lines.map((l) => l.iteration)).toEqual([1, 2]);
      for (const l of lines) {
        expect(l.source).toBe('faults');
        expect(l.top.length).toBeLessThanOrEqual(5);
        for (let i = 1; i < l.top.length; i++) expect(l.top[i].weight).toBeLessThanOrEqual(l.top[i - 1].weight);
      }
    } finally {
      w.kill();
    }
  });
});
