// Reference values computed independently with SciPy 1.17 (stats.t.ppf, numpy std ddof=1).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { intervalWarnings, MAX_RELATIVE_HALF_WIDTH, meanInterval, pairedRatioInterval, sampleStddev, studentTCdf, studentTQuantile } from '../eval/stats.js';

describe('eval/stats', () => {
  it('matches SciPy t quantiles', () => {
    const table: Array<[number, number, number]> = [
      [1, 12.706204736174694, 6.313751514675037],
      [2, 4.302652729749462, 2.9199855803537242],
      [4, 2.7764451051977934, 2.1318467863266495],
      [9, 2.262157162798205, 1.833112932656237],
      [30, 2.0422724563012378, 1.697260886593957],
    ];
    for (const [df, q975, q95] of table) {
      expect(studentTQuantile(0.975, df)).toBeCloseTo(q975, 9);
      expect(studentTQuantile(0.95, df)).toBeCloseTo(q95, 9);
      expect(studentTQuantile(0.025, df)).toBeCloseTo(-q975, 9);
    }
  });

  it('computes a mean interval like SciPy', () => {
    const ci = meanInterval([1.02, 1.05, 0.99, 1.03, 1.01]);
    expect(ci.mean).toBeCloseTo(1.02, 12);
    expect(ci.stddev).toBeCloseTo(0.022360679774997918, 12);
    expect(ci.low).toBeCloseTo(0.992235548948022, 9);
    expect(ci.high).toBeCloseTo(1.047764451051978, 9);
  });

  it('computes a paired ratio interval like SciPy', () => {
    const ci = pairedRatioInterval([10.2, 11.0, 9.8, 10.5], [10.0, 10.6, 9.9, 10.1]);
    expect(ci.ratios[1]).toBeCloseTo(1.0377358490566038, 12);
    expect(ci.mean).toBeCloseTo(1.0218096998379083, 12);
    expect(ci.halfWidth).toBeCloseTo(0.03665397136491146, 9);
    expect(() => pairedRatioInterval([1], [1, 2])).toThrow(RangeError);
  });

  it('has no interval from one observation', () => {
    const ci = meanInterval([3]);
    expect(ci.mean).toBe(3);
    expect(Number.isNaN(ci.halfWidth)).toBe(true);
    expect(Number.isNaN(sampleStddev([]))).toBe(true);
  });

  it('inverts its own CDF', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.001, max: 0.999, noNaN: true }), fc.integer({ min: 1, max: 200 }), (p, df) => {
        expect(studentTCdf(studentTQuantile(p, df), df)).toBeCloseTo(p, 8);
      }),
    );
  });

  describe('intervalWarnings', () => {
    it('is silent for a CI within ±10% of the mean', () => {
      // Half-width 0.0367 of mean 1.02: 3.6%.
      const ci = pairedRatioInterval([10.2, 11.0, 9.8, 10.5], [10.0, 10.6, 9.9, 10.1]);
      expect(intervalWarnings('slowdown', ci, 4)).toEqual([]);
      // Exactly at the bound is still inside.
      expect(intervalWarnings('slowdown', { mean: 1, halfWidth: MAX_RELATIVE_HALF_WIDTH }, 3)).toEqual([]);
    });

    it('warns for a CI wider than ±10% and suggests enough pairs', () => {
      // The overhead run: ratios 0.72, 0.93, 0.98 -> mean 0.876, half-width ~0.34 (39%).
      const ci = meanInterval([0.72, 0.93, 0.98]);
      const warnings = intervalWarnings('slowdown of vtier on stress-ng', ci, 3);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/^slowdown of vtier on stress-ng: the 95% CI is ±39% of the mean \(wider than ±10%\); run more pairs, e.g. --runs (\d+)$/);
      // Half-width shrinks as 1/sqrt(n): 3 pairs x (0.39/0.1)^2 -> about 46.
      const runs = Number(/--runs (\d+)/.exec(warnings[0])![1]);
      expect(runs).toBe(Math.ceil(3 * (ci.halfWidth / ci.mean / 0.1) ** 2));
      expect(runs).toBeGreaterThan(40);
    });

    it('always suggests more pairs than were run, and at most 1000', () => {
      expect(intervalWarnings('x', { mean: 1, halfWidth: 0.1001 }, 5)[0]).toMatch(/--runs 6$/);
      expect(intervalWarnings('x', { mean: 1, halfWidth: 50 }, 3)[0]).toMatch(/--runs 1000$/);
      // A negative mean (a metric that can go below zero) is measured by its size.
      expect(intervalWarnings('x', { mean: -1, halfWidth: 0.5 }, 3)[0]).toMatch(/±50% of the mean/);
    });

    it('says when there is no interval at all', () => {
      expect(intervalWarnings('slowdown', meanInterval([1.1]), 1)).toEqual(['slowdown: 1 pair(s) give no confidence interval; run at least 3 (--runs 3)']);
      expect(intervalWarnings('slowdown', { mean: 1, halfWidth: NaN }, 4)[0]).toMatch(/no confidence interval/);
    });

    it('warns exactly when the relative half-width exceeds the bound', () => {
      fc.assert(
        fc.property(fc.double({ min: 0.01, max: 100, noNaN: true }), fc.double({ min: 0, max: 10, noNaN: true }), fc.integer({ min: 2, max: 500 }), (m, rel, n) => {
          const w = intervalWarnings('m', { mean: m, halfWidth: rel * m }, n);
          expect(w.length).toBe((rel * m) / m > MAX_RELATIVE_HALF_WIDTH ? 1 : 0);
          if (w.length) expect(Number(/--runs (\d+)/.exec(w[0])![1])).toBeGreaterThan(n);
        }),
      );
    });
  });
});
