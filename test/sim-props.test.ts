// Properties of the fair simulator and of vtier in it (small memories: fast on 2 shared cores).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY_SETTINGS, DEFAULT_SIM, firstTouchLayout, makePolicy, makeWorkload, runSimulation, tieAwareTruth, type WorkloadKind } from '../src/sim/index.js';

const STABLE: Array<{ kind: WorkloadKind; layout?: 'contiguous' | 'scattered' }> = [
  { kind: 'hotspot', layout: 'contiguous' },
  { kind: 'hotspot', layout: 'scattered' },
  { kind: 'zipf' },
  { kind: 'kv' },
  { kind: 'uniform' },
];

describe('vtier in the simulator', () => {
  it('never loses to static on a stable workload (any layout, DRAM share, seed, first touch)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...STABLE),
        fc.double({ min: 0.05, max: 0.4, noNaN: true }),
        fc.integer({ min: 1, max: 1000 }),
        fc.constantFrom('address' as const, 'random' as const),
        (w, dramFrac, seed, firstTouch) => {
          const pages = 8192;
          const workload = makeWorkload({ kind: w.kind, layout: w.layout, pages, seed, hotFrac: 0.2, hotProb: 0.8 });
          const config = { ...DEFAULT_SIM, pages, dramPages: Math.round(pages * dramFrac), epochs: 10, accessesPerEpoch: 40_000, accessRatePerSec: 2e7, seed, firstTouch };
          const r = runSimulation(config, workload, [makePolicy('vtier', DEFAULT_POLICY_SETTINGS), makePolicy('static', DEFAULT_POLICY_SETTINGS)]);
          const [vtier, stat] = r.policies;
          // Same access stream for both: a placement that only moved on evidence serves at
          // least as much (0.5% for the sampling noise of 40 k scored accesses per epoch).
          expect(vtier.dramShare).toBeGreaterThanOrEqual(stat.dramShare - 0.005);
        },
      ),
      { numRuns: 12, seed: 12 },
    );
  });
});

describe('fair scoring', () => {
  it('tie-aware truth: pages as hot as the K-th are interchangeable', () => {
    const pmf = Float64Array.from([0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]);
    const t = tieAwareTruth(pmf, 3);
    expect(t.above).toBe(1);
    expect(Array.from(t.strict)).toEqual([1, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(t.tie)).toEqual([0, 1, 1, 1, 1, 1, 1]);
  });

  it('static on a uniform workload has recall 1 (every placement is as good), and never "converges"', () => {
    const pages = 4096;
    const w = makeWorkload({ kind: 'uniform', pages, seed: 3 });
    const r = runSimulation({ ...DEFAULT_SIM, pages, dramPages: 800, epochs: 4, accessesPerEpoch: 20_000 }, w, [makePolicy('static', DEFAULT_POLICY_SETTINGS)]);
    expect(r.policies[0].recallSteady).toBe(1);
    expect(r.policies[0].epochsToConverge).toBeNull();
  });

  it('random first touch fills exactly the DRAM capacity, differently per seed', () => {
    const a = firstTouchLayout(10_000, 3000, 'random', 1);
    const b = firstTouchLayout(10_000, 3000, 'random', 2);
    expect(a.reduce((s, x) => s + x, 0)).toBe(3000);
    expect(b.reduce((s, x) => s + x, 0)).toBe(3000);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
  });

  it('every policy stays within the tracking budget it was given (after adapting)', () => {
    const pages = 16_384;
    const w = makeWorkload({ kind: 'hotspot', pages, seed: 5, hotFrac: 0.2, hotProb: 0.8 });
    for (const budget of [0.003, 0.03]) {
      const settings = { ...DEFAULT_POLICY_SETTINGS, trackingBudget: budget };
      const names = ['vtier', 'memtis', 'damon', 'lru', 'vtmm'] as const;
      const r = runSimulation({ ...DEFAULT_SIM, pages, dramPages: 3000, epochs: 6, accessesPerEpoch: 50_000, accessRatePerSec: 2e7 }, w, names.map((n) => makePolicy(n, settings)));
      for (const p of r.policies) expect(p.trackingCpuShare, `${p.policy} at ${budget}`).toBeLessThanOrEqual(budget * 1.15);
    }
  });
});
