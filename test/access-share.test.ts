// The access-weighted DRAM share of the lab arms (eval/access-share.ts): placement weighted by
// the truth's expected per-page shares. For zipf it is not the hot set's share on DRAM.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { accessSharePlan, accessWeightedDramShare } from '../eval/access-share.js';

const split = { dramNodes: [0], cxlNodes: [1] };

/** A truth as the C workload writes it for zipf: rank r at region page (offset + r) % pages. */
function zipfTruth(pages: number, offset: number, hotFrac: number, s = 0.99) {
  const share = new Float64Array(pages);
  let sum = 0;
  for (let r = 0; r < pages; r++) sum += (r + 1) ** -s;
  for (let r = 0; r < pages; r++) share[(offset + r) % pages] = (r + 1) ** -s / sum;
  return { pages, share, hotFirstPage: offset, hotPages: Math.round(pages * hotFrac) };
}

/** Brute force: every page asked, weighted by its own share. */
function exact(truth: { share: Float64Array }, nodeOf: (page: number) => number): number | null {
  let dram = 0;
  let placed = 0;
  truth.share.forEach((w, page) => {
    const node = nodeOf(page);
    if (node === 0) dram += w;
    if (node === 0 || node === 1) placed += w;
  });
  return placed > 0 ? dram / placed : null;
}

describe('access-weighted DRAM share', () => {
  it('zipf: the whole hot block on DRAM serves its share of the accesses, not 100%', () => {
    const truth = zipfTruth(4096, 1000, 0.1);
    const plan = accessSharePlan(truth);
    const hot = new Set(Array.from({ length: truth.hotPages }, (_, k) => (truth.hotFirstPage + k) % truth.pages));
    const status = Array.from(plan.pages, (page) => (hot.has(page) ? 0 : 1));
    const share = accessWeightedDramShare(plan, status, split)!;
    let hotShare = 0;
    for (const page of hot) hotShare += truth.share[page];
    // The hot set's share on DRAM is 1 here; the accesses it serves are the top ranks' share.
    expect(share).toBeCloseTo(hotShare, 12);
    expect(share).toBeGreaterThan(0.6);
    expect(share).toBeLessThan(0.9);
    // Rank 0 alone (the block's first page) carries more than the last 1000 ranks together.
    const onlyRank0 = accessWeightedDramShare(plan, Array.from(plan.pages, (p) => (p === truth.hotFirstPage ? 0 : 1)), split)!;
    expect(onlyRank0).toBeCloseTo(truth.share[truth.hotFirstPage], 12);
    expect(onlyRank0).toBeGreaterThan(0.05);
  });

  it('hotspot with every access on the hot set: equals the hot set share on DRAM, tail never asked', () => {
    const pages = 2000;
    const share = new Float64Array(pages);
    for (let k = 0; k < 200; k++) share[(1900 + k) % pages] = 1 / 200;
    const truth = { pages, share, hotFirstPage: 1900, hotPages: 200 };
    const plan = accessSharePlan(truth);
    expect(plan.pages.length).toBe(200);
    // 50 of 200 hot pages on DRAM: 25% of the accesses.
    expect(accessWeightedDramShare(plan, Array.from(plan.pages, (_, i) => (i < 50 ? 0 : 1)), split)).toBeCloseTo(0.25, 12);
    // Nothing placed (not present everywhere): no share rather than 0.
    expect(accessWeightedDramShare(plan, Array.from(plan.pages, () => -14), split)).toBeNull();
  });

  it('equals the page-by-page sum when the tail fits, and stays close when the tail is grouped', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 600 }),
        fc.integer({ min: 0, max: 10_000 }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.double({ min: 0.2, max: 2, noNaN: true }),
        fc.array(fc.integer({ min: -2, max: 2 }), { minLength: 600, maxLength: 600 }),
        (pages, offsetSeed, hotFrac, s, nodes) => {
          const truth = zipfTruth(pages, offsetSeed % pages, hotFrac, s);
          const nodeOf = (page: number) => nodes[page];
          const plan = accessSharePlan(truth, pages);
          expect(plan.pages.length).toBe(pages);
          const got = accessWeightedDramShare(plan, Array.from(plan.pages, nodeOf), split);
          const want = exact(truth, nodeOf);
          if (want === null) expect(got).toBeNull();
          else expect(got).toBeCloseTo(want, 9);
          // Grouped tail: every share is still counted once (weights sum to 1).
          const grouped = accessSharePlan(truth, 7);
          expect(grouped.pages.length).toBeLessThanOrEqual(truth.hotPages + 7);
          expect(grouped.weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
        },
      ),
      { numRuns: 200 },
    );
  });
});
