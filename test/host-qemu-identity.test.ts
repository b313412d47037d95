// The third binding of a QEMU VM (issue 13 item 1): the process serving the VM's QMP socket
// and named by its pidfile must also have been started for this VM, i.e. its command line
// names the configured QMP socket. cmdlineNamesSocket() reads hostile input (any process's
// argv): unit and property tests; then a real process that is both the QMP peer and the
// pidfile pid, executable named like QEMU, but whose command line does not name the socket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cmdlineNamesSocket, readCmdline, verifyQemuProcess } from '../host-agent/qemu-identity.js';
import { parseHostConfig } from '../host-agent/config.js';
import { HostServer } from '../host-agent/server.js';
import { QmpClient } from '../host-agent/qmp.js';
import { fakeQemuAvailable, startFakeQemu, type FakeQemu } from './helpers/fake-qemu.js';

const SOCK = '/run/vtier/vm1/qmp.sock';

describe('cmdlineNamesSocket', () => {
  it('finds the socket in the forms QEMU takes it', () => {
    expect(cmdlineNamesSocket(['qemu-system-x86_64', '-qmp', `unix:${SOCK},server=on,wait=off`], SOCK)).toBe(true);
    expect(cmdlineNamesSocket(['qemu', '-chardev', `socket,id=mon0,path=${SOCK},server=on,wait=off`, '-mon', 'chardev=mon0,mode=control'], SOCK)).toBe(true);
    expect(cmdlineNamesSocket(['qemu', '-qmp', `unix:${SOCK}`], SOCK)).toBe(true);
    // Relative to the process's working directory, and written with dots.
    expect(cmdlineNamesSocket(['qemu', '-qmp', 'unix:qmp.sock,server=on'], SOCK, '/run/vtier/vm1')).toBe(true);
    expect(cmdlineNamesSocket(['qemu', '-qmp', 'unix:../vm1/./qmp.sock,server=on'], SOCK, '/run/vtier/vm1')).toBe(true);
  });

  it("refuses another VM's socket, look-alikes and the wrong working directory", () => {
    expect(cmdlineNamesSocket(['qemu', '-qmp', 'unix:/run/vtier/vm2/qmp.sock,server=on'], SOCK)).toBe(false);
    expect(cmdlineNamesSocket(['qemu', '-qmp', `unix:${SOCK}.old,server=on`], SOCK)).toBe(false);
    expect(cmdlineNamesSocket(['qemu', '-qmp', `unix:/x${SOCK},server=on`], SOCK)).toBe(false);
    expect(cmdlineNamesSocket(['qemu', '-qmp', `unix:${SOCK}2`], SOCK)).toBe(false);
    expect(cmdlineNamesSocket(['qemu', '-qmp', 'unix:qmp.sock,server=on'], SOCK, '/run/vtier/vm2')).toBe(false);
    expect(cmdlineNamesSocket(['qemu', '-name', 'vm1', `-qmp=unix:${SOCK}`], SOCK)).toBe(false); // one token: "-qmp=unix:..." is an option name
    expect(cmdlineNamesSocket([], SOCK)).toBe(false);
  });

  it('never throws on arbitrary argv, and is true exactly when a component names the socket', () => {
    const other = fc.string({ maxLength: 30 }).filter((s) => !s.includes('qmp.sock'));
    fc.assert(
      fc.property(fc.array(other, { maxLength: 12 }), fc.boolean(), fc.constantFrom('unix:', 'path=', 'socket=', ''), fc.array(other.map((s) => s.replace(/,/g, '')), { maxLength: 3 }), fc.nat(12), (argv, put, prefix, opts, at) => {
        const args = [...argv];
        if (put) args.splice(Math.min(at, args.length), 0, [`${prefix}${SOCK}`, ...opts.filter((o) => o !== '' && !o.startsWith('-'))].join(','));
        expect(cmdlineNamesSocket(args, SOCK, '/')).toBe(put);
      }),
      { numRuns: 500 },
    );
  });
});

const missing = fakeQemuAvailable();
if (missing && process.env.CI === 'true') throw new Error(`CI: ${missing}`);
if (missing) console.warn(`skipping the real-process identity test: ${missing}`);

describe.skipIf(Boolean(missing))('a QMP peer and pidfile process not started for this VM (real process)', () => {
  let dir: string;
  let fake: FakeQemu;
  const qmpPath = () => join(dir, 'qmp.sock');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vtier-ident-'));
    // Serves QMP at qmp.sock, writes the pidfile, its executable is qemu-system-fake: only
    // its command line does not carry the socket (it came through the environment).
    fake = await startFakeQemu({ dir, qmpPath: qmpPath(), pidfile: join(dir, 'qemu.pid'), memPath: join('/dev/shm', `vtier-test-${process.pid}-ident`), sizeBytes: 16 << 20, qmpOnCmdline: false });
  }, 30_000);

  afterAll(async () => {
    await fake?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('passes the peer and executable checks but is refused on its command line', async () => {
    const argv = readCmdline(fake.pid)!;
    expect(argv.join(' ')).not.toContain(qmpPath());
    const qmp = await QmpClient.connect(qmpPath());
    try {
      expect(qmp.peerPid).toBe(fake.pid);
      expect(() => verifyQemuProcess({ pid: fake.pid, qmpPath: qmpPath(), qmpPeerPid: qmp.peerPid })).toThrow(/command line does not name this VM's QMP socket/);
    } finally {
      qmp.close();
    }
    const server = new HostServer({
      config: parseHostConfig({ vms: [{ name: 'vm1', identity: { listen: `unix:${join(dir, 'vm1.sock')}` }, qmp: qmpPath(), pidfile: join(dir, 'qemu.pid'), dramBudget: '8M' }] }),
      reattachMs: 100,
    });
    try {
      await server.start();
      const st = () => server.status().vms[0];
      const deadline = Date.now() + 10_000;
      while (!/does not name this VM's QMP socket/.test(st().lastError ?? '') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(st().lastError).toMatch(/pid \d+ is a QEMU whose command line does not name this VM's QMP socket .*qmp\.sock/);
      expect(st().state).toBe('error');
      expect(st().pid).toBeUndefined();
    } finally {
      server.stop();
    }
  });
});
