import { describe, expect, it } from 'vitest';
import { AliasTable } from '../src/sim/alias.js';
import { makeWorkload, PAGE_MASK, WRITE_BIT, Prng, topKMask } from '../src/sim/index.js';

const N = 20_000;

function draw(kind: Parameters<typeof makeWorkload>[0]['kind'], extra: Record<string, unknown> = {}, n = 400_000, epoch = 0) {
  const w = makeWorkload({ kind, pages: N, seed: 7, ...extra });
  const out = new Uint32Array(n);
  w.fill(out, epoch);
  return { w, out };
}

describe('sim workloads produce their declared distribution', () => {
  it('hotspot 90/10 puts ~90% of accesses on the hot 10% of pages', () => {
    for (const layout of ['contiguous', 'scattered'] as const) {
      const { w, out } = draw('hotspot', { hotFrac: 0.1, hotProb: 0.9, layout });
      const hot = topKMask(w.pmf(0), N * 0.1);
      let onHot = 0;
      for (const a of out) onHot += hot[a & PAGE_MASK];
      expect(onHot / out.length).toBeGreaterThan(0.895);
      expect(onHot / out.length).toBeLessThan(0.905);
      let sum = 0;
      for (const p of w.pmf(0)) sum += p;
      expect(sum).toBeCloseTo(1, 9);
    }
  });

  it('hotspot 80/20 by default; uniform spreads evenly', () => {
    const { w, out } = draw('hotspot');
    const hot = topKMask(w.pmf(0), N * 0.2);
    let onHot = 0;
    for (const a of out) onHot += hot[a];
    expect(onHot / out.length).toBeCloseTo(0.8, 2);
    const u = draw('uniform').out;
    const deciles = new Array(10).fill(0);
    for (const a of u) deciles[Math.floor((a * 10) / N)]++;
    for (const d of deciles) expect(Math.abs(d / u.length - 0.1)).toBeLessThan(0.004);
  });

  it('zipf follows its pmf (head page frequency and top-1% share)', () => {
    const { w, out } = draw('zipf', { theta: 0.99 });
    const pmf = w.pmf(0);
    const counts = new Uint32Array(N);
    for (const a of out) counts[a]++;
    let head = 0;
    for (let p = 1; p < N; p++) if (pmf[p] > pmf[head]) head = p;
    expect(counts[head] / out.length).toBeCloseTo(pmf[head], 2);
    const top = topKMask(pmf, N / 100);
    let expected = 0;
    let seen = 0;
    for (let p = 0; p < N; p++) if (top[p]) {
      expected += pmf[p];
      seen += counts[p];
    }
    expect(Math.abs(seen / out.length - expected)).toBeLessThan(0.005);
    expect(expected).toBeGreaterThan(0.3);
  });

  it('kv: half the accesses are index reads, value accesses 50/50 read/update, 80% of ops on 20% of keys', () => {
    const { w, out } = draw('kv');
    const indexPages = Math.round(N * 0.02);
    let index = 0;
    let writes = 0;
    let values = 0;
    let hotOps = 0;
    const pmf = w.pmf(0);
    const hotP = Math.max(...Array.from(pmf.subarray(indexPages)));
    for (const a of out) {
      const p = a & PAGE_MASK;
      if (p < indexPages) index++;
      else {
        values++;
        if (a & WRITE_BIT) writes++;
        if (pmf[p] === hotP) hotOps++;
      }
    }
    expect(index / out.length).toBeCloseTo(0.5, 2);
    expect(writes / values).toBeCloseTo(0.5, 2);
    expect(hotOps / values).toBeCloseTo(0.8, 2);
  });

  it('shifting moves the hot set to disjoint pages at the shift epoch', () => {
    const w = makeWorkload({ kind: 'shifting', pages: N, seed: 3, shiftEveryEpochs: 5 });
    expect(w.phaseOf(4)).toBe(0);
    expect(w.phaseOf(5)).toBe(1);
    const a = topKMask(w.pmf(0), N * 0.2);
    const b = topKMask(w.pmf(5), N * 0.2);
    let overlap = 0;
    for (let p = 0; p < N; p++) overlap += a[p] & b[p];
    expect(overlap).toBe(0);
    // Stream of epoch 5 follows the new set.
    const out = new Uint32Array(100_000);
    w.fill(out, 5);
    let onNew = 0;
    for (const x of out) onNew += b[x];
    expect(onNew / out.length).toBeCloseTo(0.8, 1);
  });

  it('graph: half the accesses stream through the edge pages in order', () => {
    const { w, out } = draw('graph', {}, 200_000);
    const vertexPages = Number(w.describe().vertexPages);
    let edge = 0;
    let sequential = 0;
    let last = -1;
    for (const a of out) {
      if (a >= vertexPages) {
        edge++;
        if (last >= 0 && (a === last || a === last + 1)) sequential++;
        last = a;
      }
    }
    expect(edge / out.length).toBeCloseTo(0.5, 2);
    expect(sequential / edge).toBeGreaterThan(0.99);
  });

  it('the alias table draws from its weights', () => {
    const weights = Float64Array.from([1, 2, 3, 0, 4]);
    const t = new AliasTable(weights);
    const rng = new Prng(1);
    const counts = new Array(5).fill(0);
    for (let i = 0; i < 200_000; i++) counts[t.draw(rng)]++;
    expect(counts[3]).toBe(0);
    for (let i = 0; i < 5; i++) expect(counts[i] / 200_000).toBeCloseTo(weights[i] / 10, 2);
  });

  it('is reproducible for a seed and differs across seeds', () => {
    const a = draw('zipf', {}, 1000).out;
    const b = draw('zipf', {}, 1000).out;
    expect(Array.from(a)).toEqual(Array.from(b));
    const w = makeWorkload({ kind: 'zipf', pages: N, seed: 8 });
    const c = new Uint32Array(1000);
    w.fill(c, 0);
    expect(Array.from(c)).not.toEqual(Array.from(a));
  });

  it('rejects bad parameters', () => {
    expect(() => makeWorkload({ kind: 'hotspot', pages: N, seed: 1, hotFrac: 1.5 })).toThrow(RangeError);
    expect(() => makeWorkload({ kind: 'nope' as never, pages: N, seed: 1 })).toThrow(/unknown workload/);
    expect(() => makeWorkload({ kind: 'uniform', pages: 1, seed: 1 })).toThrow(RangeError);
  });
});
