// The state journal: originals on disk before any change, restore on exit, on error,
// on signals, and after SIGKILL by recoverLeftover(). One real sysctl, the rest on files.
// The real sysctl is fs.lease-break-time (seconds a file lease holder gets before the
// lease is broken): nothing on this machine or in the other tests takes file leases, and
// it moves by one second only. BPF run-time stats are not flipped here: they come from a
// held BPF_ENABLE_STATS fd (refcounted by the kernel), never from the sysctl.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { KernelStateJournal, recoverLeftover, sysctlPath } from '../guest-agent/kernel-state.js';

const DIST_JOURNAL = resolve('dist/guest-agent/kernel-state.js');
const SYSCTL = 'fs.lease-break-time';
const SYSCTL_PATH = '/proc/sys/fs/lease-break-time';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'vtier-journal-'));
}

/** Runs an ES module snippet in a child node with the compiled journal imported as J. */
function childScript(body: string): string {
  return `import * as J from ${JSON.stringify(DIST_JOURNAL)};\n${body}`;
}

const initialSysctl = readFileSync(SYSCTL_PATH, 'utf8').trim();
/** A value that differs from the current one by a second. */
function otherValue(current: string): string {
  return String(Number(current) + 1);
}

afterEach(() => {
  // Whatever a test did, the real sysctl must be back: put it back ourselves if a failed
  // test left it changed, then fail that test.
  const now = readFileSync(SYSCTL_PATH, 'utf8').trim();
  if (now !== initialSysctl) writeFileSync(SYSCTL_PATH, initialSysctl);
  expect(now, `${SYSCTL} was left at ${now}`).toBe(initialSysctl);
});

describe('kernel state journal', () => {
  it('journals the original before writing, restores newest first, idempotently', async () => {
    const dir = tmp();
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    writeFileSync(a, 'one\n');
    writeFileSync(b, 'x\n');
    const journal = await KernelStateJournal.open(join(dir, 'journal-test.json'), { handleSignals: false });
    journal.set(a, 'two');
    const onDisk = JSON.parse(readFileSync(journal.path, 'utf8'));
    expect(onDisk.entries).toEqual([{ path: a, original: 'one', written: 'two' }]);
    journal.set(b, 'y');
    journal.set(a, 'three'); // a second change keeps the first original
    expect(readFileSync(a, 'utf8')).toBe('three');
    const report = journal.restoreAll();
    expect(report.results.map((r) => [r.path, r.action])).toEqual([
      [b, 'restored'],
      [a, 'restored'],
    ]);
    expect(readFileSync(a, 'utf8').trim()).toBe('one');
    expect(readFileSync(b, 'utf8').trim()).toBe('x');
    expect(existsSync(journal.path)).toBe(false);
    expect(journal.restoreAll().results).toEqual([]);
    expect(() => journal.set(a, 'z')).toThrow(/closed/);
  });

  it('sysctl names map to /proc/sys paths', () => {
    expect(sysctlPath('kernel.bpf_stats_enabled')).toBe('/proc/sys/kernel/bpf_stats_enabled');
    expect(sysctlPath(SYSCTL)).toBe(SYSCTL_PATH);
    expect(() => sysctlPath('../etc/passwd')).toThrow(TypeError);
  });

  it('a SIGKILLed process leaves a journal that recoverLeftover() restores', async () => {
    const dir = tmp();
    const setting = join(dir, 'setting');
    writeFileSync(setting, 'original\n');
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        childScript(`
          const j = J.KernelStateJournal.openSync(${JSON.stringify(join(dir, 'journal-child.json'))});
          j.set(${JSON.stringify(setting)}, 'changed');
          process.stdout.write('ready\\n');
          setInterval(() => {}, 1000);`),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((done) => child.stdout.once('data', () => done()));
    expect(readFileSync(setting, 'utf8')).toBe('changed');
    // A live owner's journal is left alone.
    expect(recoverLeftover(dir)).toEqual([]);
    child.kill('SIGKILL');
    await new Promise((done) => child.once('exit', done));
    expect(readFileSync(setting, 'utf8')).toBe('changed');
    const reports = recoverLeftover(dir);
    expect(reports).toHaveLength(1);
    expect(reports[0].pid).toBe(child.pid);
    expect(reports[0].results[0]).toMatchObject({ path: setting, action: 'restored', original: 'original', changedSince: false });
    expect(readFileSync(setting, 'utf8')).toBe('original');
    expect(readdirSync(dir).filter((f) => f.endsWith('.json'))).toEqual([]);
  });

  it('opening a journal restores leftovers first and reports them', async () => {
    const dir = tmp();
    const setting = join(dir, 'setting');
    writeFileSync(setting, '5');
    // A journal from a process that no longer exists (pid far beyond pid_max).
    writeFileSync(
      join(dir, 'journal-999999999-0.json'),
      JSON.stringify({ version: 1, pid: 999999999, startTime: '1', createdMs: 0, entries: [{ path: setting, original: '4', written: '5' }] }),
    );
    const journal = await KernelStateJournal.open(join(dir, 'journal-new.json'), { handleSignals: false });
    // Explicit path: only that file is recovered; the directory scan is the default mode.
    expect(journal.recovered).toEqual([]);
    journal.restoreAll();
    const reports = recoverLeftover(dir);
    expect(reports[0].results[0]).toMatchObject({ action: 'restored', original: '4' });
    expect(readFileSync(setting, 'utf8')).toBe('4');
  });

  it('rejects journals that are not ours without touching anything', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'journal-1-0.json'), JSON.stringify({ version: 1, pid: 999999998, entries: [{ path: 'relative', original: 1 }] }));
    const reports = recoverLeftover(dir);
    expect(reports[0].results[0].action).toBe('failed');
    expect(existsSync(join(dir, 'journal-1-0.json'))).toBe(true);
  });

  it('real sysctl: fs.lease-break-time changed through the journal comes back after an uncaught error', () => {
    const before = readFileSync(SYSCTL_PATH, 'utf8').trim();
    const target = otherValue(before);
    const dir = tmp();
    const result = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        childScript(`
          import { readFileSync } from 'node:fs';
          const j = await J.KernelStateJournal.open(${JSON.stringify(join(dir, 'journal-sysctl.json'))});
          j.setSysctl(${JSON.stringify(SYSCTL)}, ${target});
          process.stdout.write('during=' + readFileSync(${JSON.stringify(SYSCTL_PATH)}, 'utf8').trim() + '\\n');
          throw new Error('failing on purpose');`),
      ],
      { encoding: 'utf8' },
    );
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('failing on purpose');
    expect(result.stdout).toContain(`during=${target}`);
    expect(readFileSync(SYSCTL_PATH, 'utf8').trim()).toBe(before);
    expect(existsSync(join(dir, 'journal-sysctl.json'))).toBe(false);
  });

  it('real sysctl: restored when the process gets SIGTERM, and it still dies by the signal', async () => {
    const before = readFileSync(SYSCTL_PATH, 'utf8').trim();
    const target = otherValue(before);
    const dir = tmp();
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        childScript(`
          const j = await J.KernelStateJournal.open(${JSON.stringify(join(dir, 'journal-term.json'))});
          j.setSysctl(${JSON.stringify(SYSCTL)}, ${target});
          process.stdout.write('ready\\n');
          setInterval(() => {}, 1000);`),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((done) => child.stdout.once('data', () => done()));
    expect(readFileSync(SYSCTL_PATH, 'utf8').trim()).toBe(target);
    child.kill('SIGTERM');
    const guard = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const [code, signal] = await new Promise<[number | null, string | null]>((done) => child.once('exit', (c, s) => done([c, s])));
    clearTimeout(guard);
    expect(signal).toBe('SIGTERM');
    expect(code).toBeNull();
    expect(readFileSync(SYSCTL_PATH, 'utf8').trim()).toBe(before);
  });

  it('real sysctl: a test that fails on purpose after setting it still restores it (in process)', async () => {
    const before = readFileSync(SYSCTL_PATH, 'utf8').trim();
    const journal = await KernelStateJournal.open(join(tmp(), 'journal-inproc.json'));
    const failingTest = () => {
      try {
        journal.setSysctl(SYSCTL, otherValue(before));
        expect(readFileSync(SYSCTL_PATH, 'utf8').trim()).not.toBe(before);
        throw new Error('failing on purpose');
      } finally {
        journal.restoreAll();
      }
    };
    expect(failingTest).toThrow('failing on purpose');
    expect(readFileSync(SYSCTL_PATH, 'utf8').trim()).toBe(before);
  });
});
