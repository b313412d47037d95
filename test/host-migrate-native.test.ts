// The move_pages(2) binding: argument validation, errors with .code/.syscall, query mode
// and a real move of this process's own pages (to node 0: this host may have one node).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, movePages, movePagesSync } from '../native/addon.js';
import { parseProcMaps } from '../host-agent/layout.js';

function ownHeapPages(n: number): Float64Array {
  const maps = parseProcMaps(readFileSync('/proc/self/maps', 'utf8'));
  const heap = maps.find((m) => m.path === '[heap]') ?? maps.find((m) => m.perms.startsWith('rw') && m.end - m.start >= n * 4096)!;
  return Float64Array.from({ length: n }, (_, i) => heap.start + i * 4096);
}

describe('movePages (native)', () => {
  it('exports the flag values of <numaif.h>', () => {
    expect(MPOL_MF_MOVE).toBe(2);
    expect(MPOL_MF_MOVE_ALL).toBe(4);
  });

  it('queries and moves this process\'s pages to node 0', async () => {
    const pages = ownHeapPages(8);
    const q = await movePages(0, pages, null, 0);
    expect(q.result).toBe(0);
    expect(q.status.length).toBe(8);
    for (const s of q.status) expect(s === 0 || s === -2).toBe(true); // node 0 or not present
    const m = await movePages(process.pid, pages, new Int32Array(8), MPOL_MF_MOVE);
    expect(m.result).toBeGreaterThanOrEqual(0);
    for (const s of m.status) expect(s === 0 || s === -2 || s === -14).toBe(true);
    const big = movePagesSync(0, BigUint64Array.from(pages, (p) => BigInt(p)), null, 0);
    expect(big.status.length).toBe(8);
  });

  it('reports -EFAULT per page for unmapped addresses', () => {
    const r = movePagesSync(0, new Float64Array([4096, 8192]), null, 0);
    expect([...r.status]).toEqual([-14, -14]);
  });

  it('rejects with ESRCH for a process that does not exist, ENODEV for a node that does not', async () => {
    await expect(movePages(2 ** 22 + 12345, new Float64Array([4096]), null, 0)).rejects.toMatchObject({ code: 'ESRCH', syscall: 'move_pages' });
    await expect(movePages(0, ownHeapPages(1), new Int32Array([1000]), MPOL_MF_MOVE)).rejects.toMatchObject({ syscall: 'move_pages' });
  });

  it('validates its arguments with TypeErrors naming the field', () => {
    const call = (...args: unknown[]) => (movePagesSync as unknown as (...a: unknown[]) => unknown)(...args);
    expect(() => call(-1, new Float64Array(1), null, 0)).toThrow(/pid/);
    // NaN/Infinity/fractions used to become pid 0 (this process): refused, sync and async.
    for (const bad of [NaN, Infinity, -Infinity, 1.5, 2 ** 31]) {
      expect(() => call(bad, new Float64Array(1), null, 0)).toThrow(/pid/);
      expect(() => (movePages as unknown as (...a: unknown[]) => unknown)(bad, new Float64Array(1), null, 0)).toThrow(/pid/);
    }
    expect(() => call(0, [4096], null, 0)).toThrow(/addresses/);
    expect(() => call(0, new Float64Array([-1]), null, 0)).toThrow(/addresses/);
    expect(() => call(0, new Float64Array(2), new Int32Array(1), 0)).toThrow(/nodes/);
    expect(() => call(0, new Float64Array(1), new Uint32Array(1), 0)).toThrow(/nodes/);
    expect(() => call(0, new Float64Array(1), null, 8)).toThrow(/flags/);
  });
});
