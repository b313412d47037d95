// The CPU-budget period controller (src/sampling/period.ts): properties over random costs
// (never leaves its clamp, converges and then holds under a constant cost per sample, a
// higher cost never gives a lower period) and the --cpu-budget parser.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseCpuBudget, PeriodController } from '../src/sampling/period.js';

const EPOCH_NS = 500e6;

/** The cost of an epoch at `period` when `events` events happen and each sample costs
 *  `nsPerSample` (the expected sample count: a constant cost per sample). */
function costAt(period: number, events: number, nsPerSample: number): { epochNs: number; bpfNs: number; samples: number } {
  const samples = events / period;
  return { epochNs: EPOCH_NS, bpfNs: samples * nsPerSample, samples };
}

const controllerArb = fc.record({
  budget: fc.double({ min: 1e-4, max: 1, noNaN: true }),
  min: fc.integer({ min: 1, max: 1 << 20 }),
  span: fc.integer({ min: 0, max: 20 }),
  maxStep: fc.constantFrom(2, 4, 8, 16),
});

describe('PeriodController', () => {
  it('never leaves [min, max], whatever the costs', () => {
    fc.assert(
      fc.property(
        controllerArb,
        fc.array(fc.record({ bpfNs: fc.double({ min: 0, max: 1e12, noNaN: true }), samples: fc.nat(), agentNs: fc.option(fc.double({ min: 0, max: 1e10, noNaN: true }), { nil: undefined }) }), { maxLength: 60 }),
        (c, epochs) => {
          const max = Math.min(2 ** 32, c.min * 2 ** c.span);
          const ctl = new PeriodController({ budget: c.budget, initial: c.min, min: c.min, max, maxStep: c.maxStep });
          for (const e of epochs) {
            const step = ctl.step({ epochNs: EPOCH_NS, ...e });
            expect(step.period).toBeGreaterThanOrEqual(c.min);
            expect(step.period).toBeLessThanOrEqual(max);
            expect(Number.isSafeInteger(step.period)).toBe(true);
            // moves by a bounded factor
            expect(step.period / step.previous).toBeLessThanOrEqual(c.maxStep);
            expect(step.previous / step.period).toBeLessThanOrEqual(2.0001 + 1 / step.period);
          }
          const r = ctl.report();
          expect(r.minSeen).toBeGreaterThanOrEqual(c.min);
          expect(r.maxSeen).toBeLessThanOrEqual(max);
        },
      ),
    );
  });

  it('converges under a constant cost per sample: within budget (or at max), then holds', () => {
    fc.assert(
      fc.property(
        controllerArb,
        fc.double({ min: 1e3, max: 1e10, noNaN: true }), // events per epoch
        fc.double({ min: 50, max: 1e5, noNaN: true }), // ns per sample
        (c, events, nsPerSample) => {
          const max = Math.min(2 ** 32, c.min * 2 ** c.span);
          const ctl = new PeriodController({ budget: c.budget, initial: c.min, min: c.min, max, maxStep: c.maxStep });
          const periods: number[] = [];
          for (let i = 0; i < 80; i++) periods.push(ctl.step(costAt(ctl.period, events, nsPerSample)).period);
          const last = periods.slice(-10);
          // no oscillation at the end: one period held
          expect(new Set(last).size).toBe(1);
          const p = last[0];
          const share = costAt(p, events, nsPerSample).bpfNs / EPOCH_NS;
          if (p < max) expect(share).toBeLessThanOrEqual(c.budget);
          // not needlessly high: halving would exceed the low-water mark
          if (p > c.min) expect(costAt(Math.floor(p / 2), events, nsPerSample).bpfNs / EPOCH_NS).toBeGreaterThanOrEqual(c.budget * ctl.lowWater * 0.99);
        },
      ),
    );
  });

  it('responds monotonically: a higher cost never gives a lower next period', () => {
    fc.assert(
      fc.property(
        controllerArb,
        fc.integer({ min: 0, max: 20 }),
        fc.double({ min: 0, max: 1e10, noNaN: true }),
        fc.double({ min: 0, max: 1e10, noNaN: true }),
        (c, at, a, b) => {
          const max = Math.min(2 ** 32, c.min * 2 ** c.span);
          const initial = Math.min(max, c.min * 2 ** Math.min(at, c.span));
          const lo = new PeriodController({ budget: c.budget, initial, min: c.min, max, maxStep: c.maxStep });
          const hi = new PeriodController({ budget: c.budget, initial, min: c.min, max, maxStep: c.maxStep });
          const p1 = lo.step({ epochNs: EPOCH_NS, bpfNs: Math.min(a, b), samples: 1 }).period;
          const p2 = hi.step({ epochNs: EPOCH_NS, bpfNs: Math.max(a, b), samples: 1 }).period;
          expect(p2).toBeGreaterThanOrEqual(p1);
        },
      ),
    );
  });

  it('doubles over budget like Memtis, halves well under it, holds in between, and counts changes', () => {
    const ctl = new PeriodController({ budget: 0.01, initial: 1024, min: 1024, max: 1 << 20 });
    expect(ctl.step({ epochNs: 1e9, bpfNs: 15e6, samples: 100 })).toMatchObject({ period: 2048, reason: 'over' });
    expect(ctl.step({ epochNs: 1e9, bpfNs: 7e6, samples: 100 })).toMatchObject({ period: 2048, reason: 'hold' });
    expect(ctl.step({ epochNs: 1e9, bpfNs: 1e6, samples: 100 })).toMatchObject({ period: 1024, reason: 'under' });
    expect(ctl.step({ epochNs: 1e9, bpfNs: 0, samples: 0 })).toMatchObject({ period: 1024, reason: 'clamped' });
    expect(ctl.step({ epochNs: 1e9, bpfNs: 1e9, samples: 100 })).toMatchObject({ period: 8192, reason: 'over' });
    expect(ctl.report()).toMatchObject({ current: 8192, minSeen: 1024, maxSeen: 8192, changes: 3 });
  });

  it('refuses bad options and costs', () => {
    expect(() => new PeriodController({ budget: 0, initial: 1 })).toThrow(/budget/);
    expect(() => new PeriodController({ budget: 0.01, initial: 0 })).toThrow(/initial/);
    expect(() => new PeriodController({ budget: 0.01, initial: 8, max: 4 })).toThrow(/max/);
    expect(() => new PeriodController({ budget: 0.01, initial: 8, maxStep: 3 })).toThrow(/maxStep/);
    const ctl = new PeriodController({ budget: 0.01, initial: 8 });
    expect(() => ctl.step({ epochNs: 0, bpfNs: 0, samples: 0 })).toThrow(/epochNs/);
    expect(() => ctl.step({ epochNs: 1, bpfNs: NaN, samples: 0 })).toThrow(/bpfNs/);
  });
});

describe('parseCpuBudget', () => {
  it('reads shares and percentages, off and 0 mean a fixed period', () => {
    expect(parseCpuBudget('1%')).toBeCloseTo(0.01);
    expect(parseCpuBudget('0.5%')).toBeCloseTo(0.005);
    expect(parseCpuBudget('0.02')).toBeCloseTo(0.02);
    expect(parseCpuBudget('100%')).toBe(1);
    expect(parseCpuBudget('off')).toBeNull();
    expect(parseCpuBudget('0')).toBeNull();
    expect(parseCpuBudget('0%')).toBeNull();
    for (const bad of ['', 'x', '101%', '2', '-1%', '1e-2', '%']) expect(() => parseCpuBudget(bad)).toThrow(/--cpu-budget/);
  });

  it('never throws anything but its one-line error on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        try {
          const v = parseCpuBudget(text);
          expect(v === null || (v > 0 && v <= 1)).toBe(true);
        } catch (err) {
          expect((err as Error).name).toBe('InputError');
          expect((err as Error).message).not.toContain('\n');
        }
      }),
    );
  });
});
