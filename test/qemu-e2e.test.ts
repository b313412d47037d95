// End to end over a unix socket, all real processes: a paused q35 QEMU (3 GiB, RAM below
// 2 GiB and above 4 GiB), `vtier host run` serving it, and `vtier guest run` replaying a
// synthetic trace whose hot frames lie in both RAM ranges. The host translates, calls
// move_pages on the QEMU process and the report travels back to the guest.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeTraceBatch, encodeTraceEnd, encodeTraceHeader } from '../src/trace/index.js';
import { runsFrom, samplesFrom } from '../src/samples.js';
import { fetchStatus } from '../host-agent/status.js';
import { QmpClient } from '../host-agent/qmp.js';
import { discoverLayout } from '../host-agent/layout.js';
import { buildTable, PageBuffer, translateRuns } from '../host-agent/translate.js';
import { qemuAvailable, startQemu, type QemuVm } from './helpers/qemu.js';

const missing = qemuAvailable();
if (missing && process.env.CI === 'true') throw new Error(`CI: ${missing}`);
if (missing) console.warn(`skipping end-to-end test: ${missing}`);

const CLI = join(process.cwd(), 'bin/vtier.js');
const GiB = 1024 ** 3;

function run(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}

describe.skipIf(Boolean(missing))('guest run -> host run -> move_pages on QEMU, over a unix socket', () => {
  let vm: QemuVm;
  let dir: string;
  let host: ReturnType<typeof run> | undefined;

  beforeAll(async () => {
    // No prealloc: the pages the guest never touched are not present, so move_pages
    // answers -ENOENT for them; the pages we write below are present on node 0.
    vm = await startQemu({ ramMiB: 3072, name: 'e2e', prealloc: false });
    dir = mkdtempSync(join(tmpdir(), 'vtier-e2e-'));
  }, 120_000);

  afterAll(async () => {
    host?.child.kill('SIGKILL');
    await vm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs the loop end to end and the report reaches the guest', async () => {
    // Touch 64 pages in each RAM range through QEMU's own mapping, so they are resident.
    const qmp = await QmpClient.connect(vm.qmpPath, { timeoutMs: 60_000 });
    const layout = await discoverLayout(qmp, vm.pid);
    qmp.close();
    const table = buildTable(layout.ranges);
    const hotLow = 0x10000; // GPA 256 MiB
    const hotHigh = (4 * GiB) / 4096 + 0x8000; // GPA 4 GiB + 128 MiB
    const touched = new PageBuffer();
    translateRuns(table, runsFrom([[hotLow, 64], [hotHigh, 64]]), 0, touched);
    const mem = openSync(`/proc/${vm.pid}/mem`, 'r+');
    for (let i = 0; i < touched.count; i++) writeSync(mem, Buffer.from([1]), 0, 1, touched.hva[i]);
    closeSync(mem);

    // A trace: RAM as QEMU lays it out; hot frames in both ranges, cold frames elsewhere.
    const ram = runsFrom(layout.ranges.map((r) => [r.gpaStart / 4096, (r.gpaEnd - r.gpaStart) / 4096]));
    const startNs = 1_000_000_000;
    const parts = [
      encodeTraceHeader({ source: 'damon', pageSize: 4096, epochMs: 100, tunables: {}, ramRanges: ram, facts: {}, startTimeMs: Date.now(), startNs }),
    ];
    const batches = 8;
    for (let b = 0; b < batches; b++) {
      parts.push(
        encodeTraceBatch(
          startNs + (b + 1) * 100_000_000,
          samplesFrom([
            // Half of each hot run was touched (resident), half never was (not present).
            [hotLow, 128, 50, 10],
            [hotHigh, 128, 50, 10],
            [0x20000 + b * 16, 16, 1, 0],
            [(4 * GiB) / 4096 + 0x20000 + b * 16, 16, 1, 0],
          ]),
        ),
      );
    }
    parts.push(encodeTraceEnd({ samples: batches * 4, pagesSeen: batches * 288, drops: 0, untranslated: 0, batches, endNs: startNs + (batches + 1) * 100_000_000 }));
    const tracePath = join(dir, 'synthetic.trace');
    writeFileSync(tracePath, Buffer.concat(parts.map((p) => Buffer.from(p))));

    const sock = join(dir, 'vm1.sock');
    const statusSock = join(dir, 'status.sock');
    const configPath = join(dir, 'host.json');
    writeFileSync(
      configPath,
      JSON.stringify({ vms: [{ name: 'vm1', identity: { listen: `unix:${sock}` }, qmp: vm.qmpPath, pidfile: vm.pidfile, dramBudget: '1G' }], statusSocket: statusSock, migrationRateMBps: 4096 }),
    );
    host = run(['host', 'run', '--config', configPath, '--json']);
    // Wait for the agent to attach (layout + placement from the kernel).
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const st = await fetchStatus(statusSock);
        if (st.vms[0].state === 'ready') break;
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline) throw new Error(`host run did not attach: ${(await Promise.race([host.done, new Promise((r) => setTimeout(() => r({}), 10))])) && ''}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const before = await fetchStatus(statusSock);
    expect(before.vms[0].dramPages).toBeGreaterThanOrEqual(128);
    expect(before.vms[0].totalPages).toBe((3 * GiB - 0x40000) / 4096);

    const guest = run(['guest', 'run', '--connect', `unix:${sock}`, '--source', `replay:${tracePath}`, '--speed', '10', '--vm-name', 'vm1', '--json', '-q']);
    const g = await guest.done;
    expect(g.code, g.stderr).toBe(0);
    const gs = JSON.parse(g.stdout);
    expect(gs.reports).toBeGreaterThanOrEqual(1);
    expect(gs.hostVmName).toBe('vm1');
    expect(gs.crossNodeMoves).toBe(false);
    expect(gs.hostNotes.join('\n')).toMatch(/single NUMA node: cross-node moves not possible here/);
    expect(gs.hostDramPages).toBeGreaterThanOrEqual(128);
    expect(gs.moved.promote + gs.moved.demote).toBe(0); // one node: nothing crossed tiers
    // The never-touched hot pages went to move_pages and the kernel said -ENOENT.
    expect(gs.failed.ENOENT).toBeGreaterThanOrEqual(128);

    const st = await fetchStatus(statusSock);
    const v = st.vms[0];
    expect(v.decisions).toBeGreaterThanOrEqual(1);
    expect(v.source).toBe('replay');
    expect(v.queryCalls).toBeGreaterThanOrEqual(1); // placement read from the kernel
    expect(v.moveCalls).toBeGreaterThanOrEqual(1); // move_pages (move mode) on QEMU's pages
    expect(v.failures.ENOENT).toBeGreaterThanOrEqual(128);
    expect(v.pid).toBe(vm.pid);
    host.child.kill('SIGTERM');
    const h = await host.done;
    expect(h.code, h.stderr).toBe(0);
    const final = JSON.parse(h.stdout);
    expect(final.vms[0].decisions).toBe(v.decisions);
  }, 180_000);
});
