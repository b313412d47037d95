// The migrator's logic on a simulated two-tier host, with faults injected at the one seam
// (the move_pages function): EBUSY (retried later), ENOMEM (make room by demoting first),
// ESRCH (QEMU died mid-batch: that VM is gone, another VM keeps migrating).
import { describe, expect, it } from 'vitest';
import type { MovePagesFn } from '../native/addon.js';
import { FixedBudget, hasCapSysNice, SharedPool, SINGLE_NODE_NOTE, TokenBucket, VmMigrator, EACCES_FIX } from '../host-agent/migrator.js';
import { RangeTranslator } from '../host-agent/translate.js';
import { runsFrom } from '../src/samples.js';

const PAGE = 4096;

/** A fake kernel: pages of one process, each on a node; node capacities; fault hooks. */
class FakeKernel {
  node = new Map<number, number>();
  capacity = new Map<number, number>();
  calls: Array<{ pid: number; n: number; query: boolean }> = [];
  busyOnce = new Set<number>();
  eaccess = new Set<number>();
  dieAfterCalls = Infinity;
  constructor(base: number, pages: number, startNode: number) {
    for (let i = 0; i < pages; i++) this.node.set(base + i * PAGE, startNode);
  }
  used(node: number): number {
    let n = 0;
    for (const v of this.node.values()) if (v === node) n++;
    return n;
  }
  fn: MovePagesFn = async (pid, addresses, nodes) => {
    this.calls.push({ pid, n: addresses.length, query: nodes === null });
    if (this.calls.length > this.dieAfterCalls) throw Object.assign(new Error('move_pages: No such process'), { code: 'ESRCH', syscall: 'move_pages' });
    const status = new Int32Array(addresses.length);
    for (let i = 0; i < addresses.length; i++) {
      const a = Number(addresses[i]);
      const cur = this.node.get(a);
      if (cur === undefined) status[i] = -14;
      else if (!nodes) status[i] = cur;
      else if (this.busyOnce.delete(a)) status[i] = -16;
      else if (this.eaccess.has(a)) status[i] = -13;
      else if (cur !== nodes[i] && this.used(nodes[i]) >= (this.capacity.get(nodes[i]) ?? Infinity)) status[i] = -12;
      else {
        this.node.set(a, nodes[i]);
        status[i] = nodes[i];
      }
    }
    return { result: 0, status };
  };
}

const HVA = 0x7f0000000000;
// One range: GPA pages [0x100, 0x100 + 64) at HVA.
function translator(pages = 64) {
  return new RangeTranslator([{ gpaStart: 0x100 * PAGE, gpaEnd: (0x100 + pages) * PAGE, hvaStart: HVA, memdev: 'mem0', backendOffset: 0 }]);
}

function migrator(kernel: FakeKernel, extra: Partial<ConstructorParameters<typeof VmMigrator>[0]> = {}) {
  return new VmMigrator({ name: 'vm1', pid: 4242, translator: translator(), dramNodes: [0], cxlNodes: [1], budget: new FixedBudget(64), movePages: kernel.fn, flags: 4, ...extra });
}

describe('VmMigrator on a simulated DRAM + CXL host', () => {
  it('rebuilds placement from the kernel, demotes then promotes, and reports moved runs', async () => {
    const k = new FakeKernel(HVA, 64, 1); // everything starts on CXL
    for (let i = 0; i < 8; i++) k.node.set(HVA + i * PAGE, 0);
    const m = migrator(k);
    expect(await m.refreshPlacement()).toEqual({ dramPages: 8, cxlPages: 56, absentPages: 0, otherPages: 0 });
    const r = await m.apply(7, runsFrom([[0x110, 4], [0x101, 2]]), runsFrom([[0x100, 1]]));
    expect(r.demote).toMatchObject({ tried: 1, moved: 1, already: 0 });
    // 0x101-0x102 were on DRAM already; 0x110-0x113 move.
    expect(r.promote).toMatchObject({ tried: 4, moved: 4, already: 2 });
    expect([...r.promoted.gpaPfn.subarray(0, r.promoted.count)]).toEqual([0x110]);
    expect(r.promoted.pages[0]).toBe(4);
    // The pages found in place are listed too, so the guest stops proposing them.
    expect([r.alreadyDram.count, r.alreadyDram.gpaPfn[0], r.alreadyDram.pages[0], r.alreadyCxl.count]).toEqual([1, 0x101, 2, 0]);
    expect(r.dramPages).toBe(11);
    expect(r.cxlPages).toBe(53);
    expect(r.crossNodeMoves).toBe(true);
    // Demotion call came before the promotion call.
    expect(k.calls.filter((c) => !c.query).map((c) => c.n)).toEqual([1, 4]);
    expect(k.calls.every((c) => c.pid === 4242)).toBe(true);
  });

  it('retries EBUSY pages on the next round, not forever', async () => {
    const k = new FakeKernel(HVA, 64, 1);
    k.busyOnce.add(HVA + 0x10 * PAGE);
    const m = migrator(k);
    await m.refreshPlacement();
    const r1 = await m.apply(1, runsFrom([[0x110, 2]]), runsFrom([]));
    expect(r1.promote.moved).toBe(1);
    expect(r1.promote.failed.EBUSY).toBe(1);
    expect(r1.retryPending).toBe(1);
    expect(k.node.get(HVA + 0x10 * PAGE)).toBe(1);
    const r2 = await m.apply(2, runsFrom([]), runsFrom([]));
    expect(r2.promote.moved).toBe(1);
    expect(r2.retryPending).toBe(0);
    expect(k.node.get(HVA + 0x10 * PAGE)).toBe(0);
    // A page that stays busy is dropped after maxAttempts.
    const k2 = new FakeKernel(HVA, 64, 1);
    const m2 = migrator(k2, { maxAttempts: 2 });
    await m2.refreshPlacement();
    const busy = HVA + 0x20 * PAGE;
    k2.busyOnce.add(busy);
    await m2.apply(1, runsFrom([[0x120, 1]]), runsFrom([]));
    k2.busyOnce.add(busy);
    await m2.apply(2, runsFrom([]), runsFrom([]));
    k2.busyOnce.add(busy);
    const r3 = await m2.apply(3, runsFrom([]), runsFrom([]));
    expect(r3.retryPending).toBe(0);
    expect(k2.node.get(busy)).toBe(1);
  });

  it('on ENOMEM demotes the oldest promoted pages to make room, then promotes', async () => {
    const k = new FakeKernel(HVA, 64, 1);
    k.capacity.set(0, 4);
    const m = migrator(k);
    await m.refreshPlacement();
    const r1 = await m.apply(1, runsFrom([[0x100, 4]]), runsFrom([]));
    expect(r1.promote.moved).toBe(4);
    const r2 = await m.apply(2, runsFrom([[0x130, 2]]), runsFrom([]));
    expect(r2.promote.moved).toBe(2);
    expect(r2.promote.failed.ENOMEM).toBe(0);
    expect(r2.notes.some((n) => /ENOMEM/.test(n))).toBe(true);
    // The two oldest promoted pages went back to CXL.
    expect(k.node.get(HVA)).toBe(1);
    expect(k.node.get(HVA + PAGE)).toBe(1);
    expect(k.node.get(HVA + 0x30 * PAGE)).toBe(0);
    expect(k.used(0)).toBe(4);
    expect(m.dramPages).toBe(4);
  });

  it('ESRCH mid-batch marks that VM gone; another VM is unaffected', async () => {
    const k1 = new FakeKernel(HVA, 64, 1);
    const k2 = new FakeKernel(HVA, 64, 1);
    const m1 = migrator(k1, { batchPages: 4 });
    const m2 = new VmMigrator({ name: 'vm2', pid: 5151, translator: translator(), dramNodes: [0], cxlNodes: [1], budget: new FixedBudget(64), movePages: k2.fn, flags: 4 });
    await m1.refreshPlacement();
    await m2.refreshPlacement();
    let goneError: Error | undefined;
    m1.on('gone', (e) => (goneError = e));
    k1.dieAfterCalls = k1.calls.length + 4; // 3 placement queries (batches of 4) and the first move work, the second move dies
    const [r1, r2] = await Promise.all([m1.apply(1, runsFrom([[0x100, 12]]), runsFrom([])), m2.apply(1, runsFrom([[0x100, 12]]), runsFrom([]))]);
    expect(m1.gone).toBe(true);
    expect(goneError?.message).toMatch(/ESRCH/);
    expect(r1.promote.moved).toBe(4);
    expect(r1.promote.failed['vm-gone']).toBe(8);
    expect(r2.promote.moved).toBe(12);
    const r3 = await m1.apply(2, runsFrom([[0x120, 1]]), runsFrom([]));
    expect(r3.promote.failed['vm-gone']).toBe(1);
    expect(r3.notes.join(' ')).toMatch(/gone/);
  });

  it('enforces the DRAM budget (fixed and shared pool) and the rate limit', async () => {
    const k = new FakeKernel(HVA, 64, 1);
    const m = migrator(k, { budget: new FixedBudget(5) });
    await m.refreshPlacement();
    const r = await m.apply(1, runsFrom([[0x100, 8]]), runsFrom([]));
    expect(r.promote.moved).toBe(5);
    expect(r.promote.failed.budget).toBe(3);

    const pool = new SharedPool(6);
    const ka = new FakeKernel(HVA, 64, 1);
    const kb = new FakeKernel(HVA, 64, 1);
    const a = migrator(ka, { budget: pool });
    const b = migrator(kb, { budget: pool, name: 'vm2' });
    await a.refreshPlacement();
    await b.refreshPlacement();
    expect(pool.grantPages()).toBe(3);
    expect((await a.apply(1, runsFrom([[0x100, 4]]), runsFrom([]))).promote.moved).toBe(4);
    const rb = await b.apply(1, runsFrom([[0x100, 4]]), runsFrom([]));
    expect(rb.promote.moved).toBe(2);
    expect(rb.promote.failed.budget).toBe(2);

    let t = 0;
    const bucket = new TokenBucket(4 * PAGE, () => t); // 4 pages per second
    const kr = new FakeKernel(HVA, 64, 1);
    const rl = migrator(kr, { rateLimiter: bucket });
    await rl.refreshPlacement();
    const x = await rl.apply(1, runsFrom([[0x100, 6]]), runsFrom([]));
    expect(x.promote.moved).toBe(4);
    expect(x.promote.failed['rate-limited']).toBe(2);
    t = 500;
    const y = await rl.apply(2, runsFrom([[0x104, 6]]), runsFrom([]));
    expect(y.promote.moved).toBe(2);
  });

  it('reports EACCES with the fix, rejects runs outside RAM, ignores duplicates', async () => {
    const k = new FakeKernel(HVA, 64, 1);
    k.eaccess.add(HVA + 3 * PAGE);
    const m = migrator(k);
    await m.refreshPlacement();
    const r = await m.apply(1, runsFrom([[0x102, 2], [0x102, 2], [0x0, 4], [0x13f, 2]]), runsFrom([]));
    expect(r.promote.failed.EACCES).toBe(1);
    expect(r.promote.moved).toBe(1);
    expect(r.promote.tried).toBe(2);
    expect(r.promote.failed['outside-ram']).toBe(6);
    expect(r.notes.join('\n')).toContain(EACCES_FIX);
  });

  it('on one node: places nothing across tiers and says so', async () => {
    const k = new FakeKernel(HVA, 64, 0);
    const m = new VmMigrator({ name: 'vm1', pid: 1, translator: translator(), dramNodes: [0], cxlNodes: [], budget: new FixedBudget(8), movePages: k.fn, flags: 4 });
    await m.refreshPlacement();
    const r = await m.apply(1, runsFrom([[0x100, 4]]), runsFrom([[0x120, 4]]));
    expect(r.crossNodeMoves).toBe(false);
    expect(r.notes).toContain(SINGLE_NODE_NOTE);
    expect(r.promote.moved).toBe(0);
    expect(r.promote.already).toBe(4);
    expect(r.demote.moved).toBe(0);
    expect(r.demote.failed['no-target-node']).toBe(4);
  });

  it('re-reads placement before each decision: a page the kernel demoted behind its back is promoted again', async () => {
    const k = new FakeKernel(HVA, 64, 1);
    const m = migrator(k);
    await m.refreshPlacement();
    expect((await m.apply(1, runsFrom([[0x105, 1]]), runsFrom([]))).promote.moved).toBe(1);
    k.node.set(HVA + 5 * PAGE, 1); // kernel reclaim demoted it
    const r = await m.apply(2, runsFrom([[0x105, 1]]), runsFrom([]));
    expect(r.promote).toMatchObject({ moved: 1, already: 0 });
    expect(k.node.get(HVA + 5 * PAGE)).toBe(0);
    expect(r.dramPages).toBe(1);
  });

  it('reads CAP_SYS_NICE from CapEff', () => {
    expect(hasCapSysNice('CapEff:\t000001ffffffffff\n')).toBe(true);
    expect(hasCapSysNice('CapEff:\t0000000000000000\n')).toBe(false);
    expect(hasCapSysNice('CapEff:\t0000000000800000\n')).toBe(true);
  });
});
