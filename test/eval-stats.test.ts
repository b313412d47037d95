// Reference values computed independently with SciPy 1.17 (stats.t.ppf, numpy std ddof=1).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { meanInterval, pairedRatioInterval, sampleStddev, studentTCdf, studentTQuantile } from '../eval/stats.js';

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
});
