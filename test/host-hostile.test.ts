// Hostile guests against the real host server (real QEMU targets, real unix sockets,
// real move_pages): each attack is rejected or throttled, the attacking VM's connection
// is closed where appropriate, and a second VM's connection keeps working throughout.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseHostConfig } from '../host-agent/config.js';
import { HostServer } from '../host-agent/server.js';
import { fetchStatus, serveStatus, type StatusEndpoints } from '../host-agent/status.js';
import { runsFrom } from '../src/samples.js';
import { isError, isType, TestGuest } from './helpers/host-guest-client.js';
import { qemuAvailable, startQemu, type QemuVm } from './helpers/qemu.js';

const missing = qemuAvailable();
if (missing && process.env.CI === 'true') throw new Error(`CI: ${missing}`);
if (missing) console.warn(`skipping hostile-guest tests: ${missing}`);

describe.skipIf(Boolean(missing))('host server vs hostile guests (two real QEMU VMs)', () => {
  let vm1: QemuVm;
  let vm2: QemuVm;
  let dir: string;
  let server: HostServer;
  let status: StatusEndpoints;
  let sock1: string;
  let sock2: string;
  let good: TestGuest;
  const openGuests: TestGuest[] = [];

  async function guest(path: string): Promise<TestGuest> {
    const g = await TestGuest.connect(path);
    openGuests.push(g);
    return g;
  }

  /** The second VM still gets answers. */
  async function vm2StillServed(seq: number): Promise<void> {
    good.send({ type: 'heartbeat', seq, tMs: 1 });
    await good.waitFor((m): m is Extract<typeof m, { type: 'heartbeat' }> => m.type === 'heartbeat' && m.seq === seq);
    expect(good.closed).toBe(false);
  }

  beforeAll(async () => {
    [vm1, vm2] = await Promise.all([startQemu({ ramMiB: 512, name: 'h1' }), startQemu({ ramMiB: 512, name: 'h2' })]);
    dir = mkdtempSync(join(tmpdir(), 'vtier-host-'));
    sock1 = join(dir, 'vm1.sock');
    sock2 = join(dir, 'vm2.sock');
    const config = parseHostConfig({
      vms: [
        { name: 'vm1', identity: { listen: `unix:${sock1}` }, qmp: vm1.qmpPath, pidfile: vm1.pidfile, dramBudget: '256M' },
        { name: 'vm2', identity: { listen: `unix:${sock2}` }, qmp: vm2.qmpPath, pidfile: vm2.pidfile, dramBudget: '256M' },
      ],
      statusSocket: join(dir, 'status.sock'),
      limits: { readTimeoutMs: 300, maxDecisionsPerSec: 20, maxThrottledBeforeClose: 20, helloTimeoutMs: 2000 },
    });
    server = new HostServer({ config, reattachMs: 200 });
    await server.start();
    status = await serveStatus(() => server.status(), config.statusSocket);
    await Promise.all([server.whenReady('vm1', 60_000), server.whenReady('vm2', 60_000)]);
    good = await guest(sock2);
    good.hello('vm2');
    await good.waitFor(isType('welcome'));
  }, 120_000);

  afterAll(async () => {
    for (const g of openGuests) g.close();
    status?.close();
    server?.stop();
    await Promise.all([vm1?.stop(), vm2?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves a well-behaved guest: welcome, budget, report with kernel placement', async () => {
    const g = await guest(sock1);
    g.hello('vm1');
    const welcome = await g.waitFor(isType('welcome'));
    expect(welcome.vmName).toBe('vm1');
    const budget = await g.waitFor(isType('budget'));
    expect(budget.dramBudgetPages).toBe(65536);
    g.send({ type: 'decisions', epoch: 1, promote: runsFrom([[0x100, 16]]), demote: runsFrom([[0x200, 8]]) });
    const report = await g.waitFor(isType('report'));
    expect(report.epoch).toBe(1);
    // This host has one NUMA node: nothing crosses tiers and the report says so.
    expect(report.crossNodeMoves).toBe(false);
    expect(report.notes.join('\n')).toMatch(/single NUMA node: cross-node moves not possible here/);
    expect(report.promote.moved).toBe(0);
    expect(report.dramPages).toBe((512 * 1024 * 1024 - 0x40000) / 4096); // all of RAM, preallocated on node 0
    g.close();
  });

  it('rejects GPAs outside guest RAM and runs that overflow its end, keeping the connection', async () => {
    const g = await guest(sock1);
    g.hello();
    await g.waitFor(isType('welcome'));
    // 0xc0 = ROM hole, 0x20000 = first frame past 512 MiB, last RAM frame + 0xffffffff pages.
    g.send({ type: 'decisions', epoch: 2, promote: runsFrom([[0xc0, 1], [0x20000, 4], [0x1ffff, 0xffffffff]]), demote: runsFrom([]) });
    const report = await g.waitFor(isType('report'));
    expect(report.promote.tried).toBe(0);
    // Refused pages are bounded by the VM's RAM (131008 pages): a claim of 2^32 pages in one
    // run cannot inflate the failure counters; the refused runs are counted as runs.
    const ramPages = (512 * 1024 * 1024 - 0x40000) / 4096;
    expect(report.promote.failed.other).toBe(ramPages);
    expect(server.status().vms.find((v) => v.name === 'vm1')!.refusedRuns).toBeGreaterThanOrEqual(3);
    expect(report.notes.join('\n')).toMatch(/outside-ram/);
    // A run overflowing 2^52 is refused by the protocol itself (crafted past the encoder).
    const bad = { gpaPfn: Buffer.alloc(8), pages: Buffer.alloc(4) };
    bad.gpaPfn.writeUInt32LE(0xffffffff, 0);
    bad.gpaPfn.writeUInt32LE(0xfffff, 4);
    bad.pages.writeUInt32LE(0xffffffff, 0);
    g.sendRaw({ type: 'decisions', epoch: 3, promote: bad, demote: { gpaPfn: Buffer.alloc(0), pages: Buffer.alloc(0) } });
    await g.waitFor(isError('invalid-field'));
    g.send({ type: 'heartbeat', seq: 9, tMs: 0 });
    await g.waitFor((m): m is Extract<typeof m, { type: 'heartbeat' }> => m.type === 'heartbeat' && m.seq === 9);
    expect(g.closed).toBe(false);
    await vm2StillServed(1);
    g.close();
  });

  it('closes on an oversized frame (length prefix alone)', async () => {
    const g = await guest(sock1);
    g.hello();
    await g.waitFor(isType('welcome'));
    g.socket.write(Buffer.from([0x7f, 0xff, 0xff, 0xff, 1, 2, 3]));
    await g.waitFor(isError('frame-too-large'));
    await g.waitClosed();
    await vm2StillServed(2);
  });

  it('answers a msgpack length bomb with an error and keeps decoding', async () => {
    const g = await guest(sock1);
    g.hello();
    await g.waitFor(isType('welcome'));
    // map32 claiming 2^32-1 entries, array32 claiming 2^32-1 elements, bin32 claiming 4 GiB.
    g.sendBody(Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61]));
    g.sendBody(Buffer.from([0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xdd, 0xff, 0xff, 0xff, 0xff]));
    g.sendBody(Buffer.from([0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]));
    g.send({ type: 'heartbeat', seq: 77, tMs: 0 });
    await g.waitFor((m): m is Extract<typeof m, { type: 'heartbeat' }> => m.type === 'heartbeat' && m.seq === 77);
    expect(g.messages.filter((m) => m.type === 'error' && m.code === 'bad-msgpack').length).toBe(3);
    expect(g.closed).toBe(false);
    await vm2StillServed(3);
    g.close();
  });

  it('disconnects a slow sender holding half a frame', async () => {
    const g = await guest(sock1);
    g.hello();
    await g.waitFor(isType('welcome'));
    g.socket.write(Buffer.from([0, 0, 0, 40, 0x81])); // promises 40 bytes, sends 1
    const t0 = Date.now();
    await g.waitFor(isError('read-timeout'), 5000);
    await g.waitClosed();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    await vm2StillServed(4);
  });

  it('throttles a flood of decisions, then closes that connection; the other VM keeps working', async () => {
    const g = await guest(sock1);
    g.hello();
    await g.waitFor(isType('welcome'));
    const before = server.status().vms.find((v) => v.name === 'vm1')!.throttled;
    const frames = [];
    for (let i = 0; i < 500; i++) frames.push(Buffer.from(new Uint8Array((await import('../src/protocol/index.js')).encodeMessage({ type: 'decisions', epoch: 100 + i, promote: runsFrom([[0x300 + i, 1]]), demote: runsFrom([]) }))));
    g.socket.write(Buffer.concat(frames));
    await g.waitFor(isError('throttled'));
    await g.waitFor(isError('flood'));
    await g.waitClosed();
    const s = server.status().vms.find((v) => v.name === 'vm1')!;
    expect(s.throttled - before).toBeGreaterThan(20);
    // vm2's guest sends decisions concurrently and gets its report.
    good.send({ type: 'decisions', epoch: 5, promote: runsFrom([[0x100, 4]]), demote: runsFrom([]) });
    const r = await good.waitFor((m): m is Extract<typeof m, { type: 'report' }> => m.type === 'report' && m.epoch === 5);
    expect(r.promote.failed.other).toBe(0);
  });

  it('refuses a hello that claims another VM, and anything before hello', async () => {
    const g = await guest(sock1);
    g.hello('vm2');
    await g.waitFor(isError('identity-mismatch'));
    await g.waitClosed();
    const h = await guest(sock1);
    h.send({ type: 'heartbeat', seq: 1, tMs: 0 });
    await h.waitFor(isError('hello-first'));
    await h.waitClosed();
    const st = await fetchStatus(join(dir, 'status.sock'));
    const v1 = st.vms.find((v) => v.name === 'vm1')!;
    expect(v1.refusedConnections).toBeGreaterThanOrEqual(1);
    // The scripted guests declared RAM frames [0, 1024): 0xc0-0xff is QEMU's ROM hole.
    expect(v1.ramMismatchPages).toBe(0x40);
    expect(v1.protocolErrors).toBeGreaterThanOrEqual(5);
    expect(st.notes).toContain('single NUMA node: cross-node moves not possible here');
    const v2 = st.vms.find((v) => v.name === 'vm2')!;
    expect(v2.connected).toBe(true);
    expect(v2.state).toBe('ready');
    await vm2StillServed(6);
  });
});
