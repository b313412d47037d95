// The run-length rule shared by vtier demo and eval accuracy (pure: no sampler, no workload).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ADVISED_BATCHES, assessRunLength, batchCadence, checkRunLength, MIN_BATCHES } from '../eval/run-length.js';
import { InputError } from '../src/util/units.js';

const observed = { source: 'damon', damonMode: 'observe' as const, observed: { aggrUs: 5_000_000 } };

describe('batch cadence', () => {
  it('is the observed owner’s aggregation, our own kdamond’s, or the epoch', () => {
    expect(batchCadence(observed, 500)).toEqual({ ms: 5000, unit: "DAMON aggregation (the observed kdamond's interval, set by its owner)" });
    expect(batchCadence({ source: 'damon', damonMode: 'own' }, 50, 200_000)).toEqual({ ms: 200, unit: 'DAMON aggregation (our own kdamond)' });
    // Our own DAMON aggregates every 100 ms: the classifier still scores once an epoch.
    expect(batchCadence({ source: 'damon', damonMode: 'own' }, 500).ms).toBe(500);
    expect(batchCadence({ source: 'faults' }, 500)).toEqual({ ms: 500, unit: 'classifier epoch (--epoch)' });
  });
});

describe('run length', () => {
  it('warns about the issue’s run: 10 s under a 5 s observed aggregation is two batches', () => {
    const r = checkRunLength('--duration', '10s', 10_000, batchCadence(observed, 500));
    expect(r.batches).toBe(2);
    expect(r.warning).toBe(
      "--duration 10s holds only 2 batches, one per DAMON aggregation (the observed kdamond's interval, set by its owner) of 5 s: " +
        'the classifier has barely started and its scores are an early look, not a result; --duration 50s or more gives 10',
    );
    expect(checkRunLength('--duration', '60s', 60_000, batchCadence(observed, 500)).warning).toBeNull();
  });

  it('refuses fewer than two batches with a usage error', () => {
    expect(() => checkRunLength('--duration', '7s', 7000, batchCadence(observed, 500))).toThrow(InputError);
    expect(() => checkRunLength('--duration', '1s', 1000, { ms: 1000, unit: 'classifier epoch (--epoch)' })).toThrow(/^--duration: 1s holds 1 batch\(es\), one per classifier epoch \(--epoch\) of 1 s; at least 2/);
    expect(assessRunLength('--duration', '1s', 1000, { ms: 1000, unit: 'epoch' })).toMatchObject({ batches: 1, warning: null, refusal: expect.stringMatching(/at least 2/) });
  });

  it('refuses below MIN_BATCHES, warns below ADVISED_BATCHES, is silent above', () => {
    fc.assert(
      fc.property(fc.integer({ min: 10, max: 600_000 }), fc.integer({ min: 1000, max: 3_600_000 }), (cadenceMs, durationMs) => {
        const r = assessRunLength('--duration', 'x', durationMs, { ms: cadenceMs, unit: 'u' });
        expect(r.batches).toBe(Math.floor(durationMs / cadenceMs));
        expect(r.refusal !== null).toBe(r.batches < MIN_BATCHES);
        expect(r.warning !== null).toBe(r.batches >= MIN_BATCHES && r.batches < ADVISED_BATCHES);
        // The advised duration really holds ADVISED_BATCHES.
        const advisedS = Number(/--duration (\d+)s or more/.exec(r.refusal ?? r.warning ?? `--duration ${Math.ceil((ADVISED_BATCHES * cadenceMs) / 1000)}s or more`)![1]);
        expect(Math.floor((advisedS * 1000) / cadenceMs)).toBeGreaterThanOrEqual(ADVISED_BATCHES);
      }),
    );
  });
});
