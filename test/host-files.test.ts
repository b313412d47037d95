// Hostile files around the host agent (issue 13 item 2): a FIFO pidfile must not freeze the
// agent (it used to block the event loop and ignore SIGTERM), a symlink to /dev/zero must not
// be read without bound, a config that is not a regular file is one clear error. The running
// agent (`vtier host run`, a real process) keeps serving a real QEMU VM beside the bad one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSmallFile } from '../host-agent/safe-read.js';
import type { HostStatus } from '../host-agent/server.js';
import { fetchStatus } from '../host-agent/status.js';
import { qemuAvailable, startQemu, type QemuVm } from './helpers/qemu.js';

const CLI = join(process.cwd(), 'bin/vtier.js');
const missing = qemuAvailable();
if (missing && process.env.CI === 'true') throw new Error(`CI: ${missing}`);

function mkfifo(path: string): void {
  const r = spawnSync('mkfifo', [path]);
  if (r.status !== 0) throw new Error(`mkfifo ${path}: ${r.stderr}`);
}

describe('readSmallFile', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vtier-files-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a small regular file', () => {
    writeFileSync(join(dir, 'ok.pid'), '1234\n');
    expect(readSmallFile(join(dir, 'ok.pid'), { maxBytes: 32, what: 'pidfile' })).toBe('1234\n');
  });

  it('refuses a FIFO without blocking, a device, a symlink (noFollow), a directory and an oversized file', () => {
    mkfifo(join(dir, 'fifo'));
    const t0 = performance.now();
    expect(() => readSmallFile(join(dir, 'fifo'), { maxBytes: 32, what: 'pidfile' })).toThrow(/a FIFO, expected a regular file/);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(() => readSmallFile('/dev/zero', { maxBytes: 32, what: 'config' })).toThrow(/character device/);
    symlinkSync('/dev/zero', join(dir, 'zero.pid'));
    expect(() => readSmallFile(join(dir, 'zero.pid'), { maxBytes: 32, noFollow: true, what: 'pidfile' })).toThrow(/is a symlink/);
    expect(() => readSmallFile(join(dir, 'zero.pid'), { maxBytes: 32, what: 'config' })).toThrow(/character device/);
    expect(() => readSmallFile(dir, { maxBytes: 32, what: 'config' })).toThrow(/directory/);
    writeFileSync(join(dir, 'big'), 'x'.repeat(33));
    expect(() => readSmallFile(join(dir, 'big'), { maxBytes: 32, what: 'pidfile' })).toThrow(/33 bytes, more than the 32/);
    expect(() => readSmallFile(join(dir, 'nope'), { maxBytes: 32, what: 'pidfile' })).toThrow(/pidfile .*nope: ENOENT/);
  });

  it('`host run --config /dev/zero` is one clear error', () => {
    const r = spawnSync(process.execPath, [CLI, 'host', 'run', '--config', '/dev/zero', '--json'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).not.toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(r.stdout).error.message).toMatch(/config \/dev\/zero: a character device/);
  });
});

describe.skipIf(Boolean(missing))('vtier host run with a FIFO pidfile beside a real QEMU VM', () => {
  let vm: QemuVm;
  let dir: string;
  let agent: ChildProcess | undefined;

  beforeAll(async () => {
    vm = await startQemu({ ramMiB: 256, name: 'files' });
    dir = mkdtempSync(join(tmpdir(), 'vtier-files-run-'));
  }, 60_000);

  afterAll(async () => {
    if (agent && agent.exitCode === null) agent.kill('SIGKILL');
    await vm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('stays responsive, serves the good VM, reports the FIFO and exits on SIGTERM', async () => {
    mkfifo(join(dir, 'fifo.pid'));
    symlinkSync('/dev/zero', join(dir, 'zero.pid'));
    const statusSocket = join(dir, 'status.sock');
    writeFileSync(
      join(dir, 'host.json'),
      JSON.stringify({
        vms: [
          { name: 'good', identity: { listen: `unix:${join(dir, 'good.sock')}` }, qmp: vm.qmpPath, pidfile: vm.pidfile, dramBudget: '128M' },
          { name: 'fifo', identity: { listen: `unix:${join(dir, 'fifo.sock')}` }, localPidfile: join(dir, 'fifo.pid'), dramBudget: '128M' },
          { name: 'zero', identity: { listen: `unix:${join(dir, 'zero.sock')}` }, localPidfile: join(dir, 'zero.pid'), dramBudget: '128M' },
        ],
        statusSocket,
      }),
    );
    agent = spawn(process.execPath, [CLI, 'host', 'run', '--config', join(dir, 'host.json'), '--quiet'], { stdio: 'ignore' });
    let exited = false;
    agent.on('exit', () => (exited = true));
    const deadline = Date.now() + 30_000;
    let st: HostStatus | undefined;
    for (;;) {
      st = await fetchStatus(statusSocket, 1000).catch(() => undefined);
      const by = (n: string) => st?.vms.find((v) => v.name === n);
      if (by('good')?.state === 'ready' && /FIFO/.test(by('fifo')?.lastError ?? '') && /symlink/.test(by('zero')?.lastError ?? '')) break;
      if (Date.now() > deadline || exited) throw new Error(`agent not serving as expected: ${JSON.stringify(st?.vms.map((v) => [v.name, v.state, v.lastError]))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    agent.kill('SIGTERM');
    const t0 = Date.now();
    while (!exited && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    expect(exited).toBe(true);
  }, 60_000);
});
