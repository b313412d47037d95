// Averaging runs over seeds: a sweep point is the mean of several runs that differ only in the
// seed (workload draw, samplers, first-touch layout), so no single lucky layout decides it.
import type { PolicyResult, SimResult } from './engine.js';

const MEAN_FIELDS = [
  'dramShare',
  'dramShareSteady',
  'precisionSteady',
  'recallSteady',
  'f1Steady',
  'promotedBytes',
  'demotedBytes',
  'pingPongPages',
  'slowdown',
  'modelledSec',
  'migrationSec',
  'trackingCpuShare',
  'policyCpuMs',
] as const;

export interface SeedSpread {
  seeds: number;
  dramShareMin: number;
  dramShareMax: number;
}

/** The mean of runs over the same policies (same order). Converge and reconverge take the
 *  worst run (null if any run never converged); maxDramUsedPages the largest; counters the
 *  last run's. Each policy also gets the min/max DRAM share over the runs. */
export function meanOverSeeds(runs: SimResult[]): Omit<SimResult, 'policies'> & { policies: Array<PolicyResult & SeedSpread> } {
  if (runs.length === 0) throw new RangeError('no runs to average');
  const first = runs[0];
  const policies = first.policies.map((p0, i) => {
    const all = runs.map((r) => {
      const p = r.policies[i];
      if (!p || p.policy !== p0.policy) throw new RangeError('runs compare different policies');
      return p;
    });
    const out: PolicyResult & SeedSpread = { ...all[all.length - 1], seeds: all.length, dramShareMin: Infinity, dramShareMax: -Infinity };
    for (const f of MEAN_FIELDS) out[f] = all.reduce((s, p) => s + p[f], 0) / all.length;
    for (const p of all) {
      out.dramShareMin = Math.min(out.dramShareMin, p.dramShare);
      out.dramShareMax = Math.max(out.dramShareMax, p.dramShare);
    }
    const worst = (xs: Array<number | null>): number | null => (xs.some((x) => x === null) ? null : Math.max(...(xs as number[])));
    out.epochsToConverge = worst(all.map((p) => p.epochsToConverge));
    out.reconvergeEpochs = p0.reconvergeEpochs.map((_, k) => worst(all.map((p) => p.reconvergeEpochs[k] ?? null)));
    out.maxDramUsedPages = Math.max(...all.map((p) => p.maxDramUsedPages));
    delete out.timeline;
    return out;
  });
  return {
    ...first,
    simulatedAccesses: runs.reduce((s, r) => s + r.simulatedAccesses, 0),
    wallMs: runs.reduce((s, r) => s + r.wallMs, 0),
    policies,
  };
}
