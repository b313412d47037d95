// QEMU changes under a running host agent: a DIMM is hot-plugged (the layout is re-read
// and the new range translates), then QEMU dies (the VM is marked gone, decisions are
// answered with a note) and comes back with a new pid (the agent re-attaches by itself).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseHostConfig } from '../host-agent/config.js';
import { discoverLayout } from '../host-agent/layout.js';
import { QmpClient } from '../host-agent/qmp.js';
import { HostServer } from '../host-agent/server.js';
import { buildTable, PageBuffer, translateRuns } from '../host-agent/translate.js';
import { runsFrom } from '../src/samples.js';
import { isType, TestGuest } from './helpers/host-guest-client.js';
import { qemuAvailable, startQemu, type QemuVm } from './helpers/qemu.js';

const missing = qemuAvailable();
if (missing && process.env.CI === 'true') throw new Error(`CI: ${missing}`);
if (missing) console.warn(`skipping QEMU restart tests: ${missing}`);

async function until(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(Boolean(missing))('host agent follows QEMU hotplug and restarts', () => {
  let vm: QemuVm;
  let vm2: QemuVm | undefined;
  let dir: string;
  let server: HostServer;
  const dimmPath = `/dev/shm/vtier-test-${process.pid}-dimm`;

  beforeAll(async () => {
    vm = await startQemu({ ramMiB: 512, maxMemMiB: 2048, name: 'restart' });
    dir = mkdtempSync(join(tmpdir(), 'vtier-restart-'));
    server = new HostServer({
      config: parseHostConfig({
        vms: [{ name: 'vm1', identity: { listen: `unix:${join(dir, 'vm1.sock')}` }, qmp: vm.qmpPath, pidfile: vm.pidfile, dramBudget: '1G' }],
        statusSocket: join(dir, 'status.sock'),
      }),
      reattachMs: 200,
      layoutPollMs: 200,
    });
    await server.start();
    await server.whenReady('vm1', 60_000);
  }, 120_000);

  afterAll(async () => {
    server?.stop();
    await vm2?.stop();
    await vm?.stop();
    rmSync(dimmPath, { force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const status = () => server.status().vms[0];

  it('re-reads the layout after a DIMM is plugged, and the new range translates', async () => {
    const before = status().totalPages;
    expect(before).toBe((512 * 1024 * 1024 - 0x40000) / 4096);
    const qmp = await QmpClient.connect(vm.testQmpPath, { timeoutMs: 30_000 });
    try {
      await qmp.execute('object-add', { 'qom-type': 'memory-backend-file', id: 'mem1', size: 256 * 1024 * 1024, 'mem-path': dimmPath, share: true, prealloc: true });
      await qmp.execute('device_add', { driver: 'pc-dimm', id: 'dimm1', memdev: 'mem1' });
      await until(() => status().totalPages === before + 65536, 'the agent to see the DIMM');
      const layout = await discoverLayout(qmp, vm.pid);
      const dimm = layout.ranges.find((r) => r.memdev === 'mem1')!;
      expect(dimm.gpaEnd - dimm.gpaStart).toBe(256 * 1024 * 1024);
      expect(dimm.gpaStart).toBeGreaterThanOrEqual(4 * 1024 ** 3); // device memory sits above 4 GiB
      const out = new PageBuffer();
      translateRuns(buildTable(layout.ranges), runsFrom([[dimm.gpaStart / 4096 + 7, 1]]), 0, out);
      const fd = openSync(`/proc/${vm.pid}/mem`, 'r+');
      writeSync(fd, Buffer.from([0xd1, 0x33]), 0, 2, out.hva[0] + 8);
      closeSync(fd);
      const text = await qmp.hmp(`xp /2bx 0x${(dimm.gpaStart + 7 * 4096 + 8).toString(16)}`);
      expect([...text.matchAll(/0x([0-9a-f]{2})\b/g)].map((m) => m[1])).toEqual(['d1', '33']);
      expect(status().dramPages).toBe(before + 65536); // placement re-read from the kernel
    } finally {
      qmp.close();
    }
  });

  it('marks the VM gone when QEMU dies, and re-attaches to a restarted QEMU', async () => {
    const sock = join(dir, 'vm1.sock');
    const oldPid = vm.pid;
    await vm.kill();
    await until(() => status().state === 'gone', 'the agent to notice QEMU exited');
    const g = await TestGuest.connect(sock);
    g.hello('vm1');
    await g.waitFor(isType('welcome'));
    g.send({ type: 'decisions', epoch: 1, promote: runsFrom([[0x100, 4]]), demote: runsFrom([]) });
    const r = await g.waitFor(isType('report'));
    expect(r.promote.failed.other).toBe(4);
    expect(r.notes.join(' ')).toMatch(/not attached \(gone\)/);
    vm2 = await startQemu({ ramMiB: 512, maxMemMiB: 2048, reuse: { dir: vm.dir, memPath: vm.memPath } });
    expect(vm2.pid).not.toBe(oldPid);
    await until(() => status().state === 'ready' && status().pid === vm2!.pid, 'the agent to re-attach', 60_000);
    expect(status().totalPages).toBe((512 * 1024 * 1024 - 0x40000) / 4096);
    g.send({ type: 'decisions', epoch: 2, promote: runsFrom([[0x100, 4]]), demote: runsFrom([]) });
    const r2 = await g.waitFor((m): m is Extract<typeof m, { type: 'report' }> => m.type === 'report' && m.epoch === 2);
    expect(r2.promote.failed.other).toBe(0);
    expect(r2.dramPages).toBe((512 * 1024 * 1024 - 0x40000) / 4096); // the new QEMU's pages, from the kernel
    expect(r2.notes.join('\n')).toMatch(/already on target tier: promote 4/);
    g.close();
  });
});
