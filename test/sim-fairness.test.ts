// Simulator fairness (issue 12): CXL bandwidth that binds (loaded latency), migration copies
// that compete with the workload, autonuma victims without address ties, DAMON at equal cost.
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY_SETTINGS, DEFAULT_SIM, DEFAULT_TIERS, epochServeNs, makePolicy, makeWorkload, runSimulation } from '../src/sim/index.js';
import type { Migrations, Policy, PolicyContext } from '../src/sim/policy.js';

const T = DEFAULT_TIERS;
const EPOCH_NS = 1e9;
/** 10^8 accesses of 64 B in a second: 6.4 GB/s of demand. */
const BYTES = 1e8 * 64;

describe('epoch time model', () => {
  it('all-DRAM service takes the base time; with no queueing and no copies it is the idle-latency model', () => {
    expect(epochServeNs(T, EPOCH_NS, 1, BYTES)).toBe(EPOCH_NS);
    const idle = { ...T, cxlQueueFactor: 0 };
    for (const share of [0, 0.3, 0.8]) {
      const latency = EPOCH_NS * ((share * T.dramLatencyNs + (1 - share) * T.cxlLatencyNs) / T.dramLatencyNs);
      const bw = (((1 - share) * BYTES) / T.cxlBytesPerSec) * 1e9;
      expect(epochServeNs(idle, EPOCH_NS, share, BYTES)).toBeCloseTo(Math.max(latency, bw, EPOCH_NS), -1);
    }
  });

  it('CXL latency rises with its load: more CXL traffic costs more than the idle latency says', () => {
    const idle = { ...T, cxlQueueFactor: 0 };
    for (const share of [0.2, 0.5]) {
      const loaded = epochServeNs(T, EPOCH_NS, share, BYTES);
      const unloaded = epochServeNs(idle, EPOCH_NS, share, BYTES);
      expect(loaded).toBeGreaterThan(unloaded * 1.02);
    }
    // Light load: nearly the idle latency.
    const light = epochServeNs(T, EPOCH_NS, 0.5, BYTES / 100);
    expect(light / epochServeNs(idle, EPOCH_NS, 0.5, BYTES / 100)).toBeLessThan(1.01);
  });

  it('bandwidth binds: demand beyond 17.6 GB/s takes at least bytes / bandwidth', () => {
    const heavy = 40e9; // 40 GB in one second, all from CXL
    expect(epochServeNs(T, EPOCH_NS, 0, heavy)).toBeGreaterThanOrEqual((heavy / T.cxlBytesPerSec) * 1e9);
  });

  it('migration copies compete: they cost more on a busy CXL link than on an idle one', () => {
    const copy = 2e9; // ~0.5 M pages
    const busy = epochServeNs(T, EPOCH_NS, 0.2, BYTES, copy) - epochServeNs(T, EPOCH_NS, 0.2, BYTES);
    const quiet = epochServeNs(T, EPOCH_NS, 1, BYTES, copy) - epochServeNs(T, EPOCH_NS, 1, BYTES);
    expect(busy).toBeGreaterThan(0);
    expect(busy).toBeGreaterThan(quiet);
  });

  it("a run's migration time is the fixed per-page cost plus the time copies added", () => {
    const pages = 8192;
    const w = makeWorkload({ kind: 'hotspot', pages, seed: 2, hotFrac: 0.2, hotProb: 0.8 });
    const r = runSimulation({ ...DEFAULT_SIM, pages, dramPages: 1638, epochs: 4, accessesPerEpoch: 20_000, seed: 2, firstTouch: 'random' }, w, [makePolicy('oracle', DEFAULT_POLICY_SETTINGS)]);
    const o = r.policies[0];
    const moved = (o.promotedBytes + o.demotedBytes) / 4096;
    expect(moved).toBeGreaterThan(0);
    expect(o.migrationSec).toBeGreaterThan((moved * T.migrationPerPageNs) / 1e9);
    expect(o.migrationSec).toBeLessThan((moved * (T.migrationPerPageNs + 2 * (4096 / T.cxlBytesPerSec) * 1e9)) / 1e9 + 0.01);
  });
});

/** Wraps a policy and keeps what it demoted, epoch by epoch. */
function recording(inner: Policy): Policy & { demoted: number[][] } {
  const demoted: number[][] = [];
  return {
    name: inner.name,
    demoted,
    onEpoch(ctx: PolicyContext): Migrations {
      const m = inner.onEpoch(ctx);
      demoted.push(Array.from(m.demote.pages.subarray(0, m.demote.count)));
      return m;
    },
    overhead: () => inner.overhead(),
    counters: () => inner.counters?.() ?? {},
  };
}

describe('baselines at equal footing', () => {
  it('autonuma: victims tied in LRU age are not taken in address order', () => {
    // Uniform load: every DRAM page's accessed bit is set at each aging, so all tie; DRAM is
    // the first pages by address. Address ties would demote 0, 1, 2, ... in order.
    const pages = 16_384;
    const w = makeWorkload({ kind: 'uniform', pages, seed: 4 });
    const auto = recording(makePolicy('autonuma', DEFAULT_POLICY_SETTINGS));
    runSimulation({ ...DEFAULT_SIM, pages, dramPages: 4096, epochs: 4, accessesPerEpoch: 100_000, seed: 4, firstTouch: 'address' }, w, [auto]);
    const victims = auto.demoted.flat();
    expect(victims.length).toBeGreaterThan(100);
    let descents = 0;
    for (let i = 1; i < victims.length; i++) if (victims[i] < victims[i - 1]) descents++;
    // A random order descends about half the time; address order never.
    expect(descents / (victims.length - 1)).toBeGreaterThan(0.3);
  });

  it('damon spends the tracking budget it is given (regions sized from it), not a sliver of it', () => {
    const pages = 40_000;
    const w = makeWorkload({ kind: 'hotspot', pages, seed: 7, layout: 'contiguous' });
    for (const budget of [0.003, 0.01]) {
      const settings = { ...DEFAULT_POLICY_SETTINGS, trackingBudget: budget };
      const damon = makePolicy('damon', settings);
      const r = runSimulation({ ...DEFAULT_SIM, pages, dramPages: 8000, epochs: 4, accessesPerEpoch: 50_000, seed: 7 }, w, [damon]);
      const share = r.policies[0].trackingCpuShare;
      // (A share of the modelled run, which the slowdown makes longer than the wall seconds
      // the budget is counted in: vtier and memtis show 0.6-0.7% for 1%.)
      expect(share, `damon at ${budget}`).toBeGreaterThan(budget * 0.3);
      expect(share, `damon at ${budget}`).toBeLessThanOrEqual(budget * 1.15);
    }
  });
});
