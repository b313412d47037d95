// Golden sweep: a small budget sweep (2 seeds averaged, random first touch) whose per-policy
// results are recorded in test/golden/sim/sweep.json. A change to any policy, sampler or score
// shows up here; when intended, the failure prints the command that accepts the new output.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY_SETTINGS, DEFAULT_SIM, makePolicy, makeWorkload, meanOverSeeds, runSimulation, type PolicyName } from '../src/sim/index.js';

const FILE = join(import.meta.dirname, 'golden', 'sim', 'sweep.json');
const UPDATE = process.env.VTIER_UPDATE_GOLDEN === '1';
const ACCEPT = 'VTIER_UPDATE_GOLDEN=1 npx vitest run test/sim-golden.test.ts';
const POLICIES: PolicyName[] = ['vtier', 'memtis', 'damon', 'lru', 'static', 'oracle'];

function sweep() {
  const pages = 8192;
  return [0.003, 0.01, 0.03].map((trackingBudget) => {
    const runs = [1, 2].map((seed) => {
      const w = makeWorkload({ kind: 'hotspot', layout: 'scattered', pages, seed, hotFrac: 0.2, hotProb: 0.8 });
      const config = { ...DEFAULT_SIM, pages, dramPages: 1638, epochs: 8, accessesPerEpoch: 20_000, accessRatePerSec: 2e7, seed, firstTouch: 'random' as const };
      return runSimulation(config, w, POLICIES.map((n) => makePolicy(n, { ...DEFAULT_POLICY_SETTINGS, trackingBudget })));
    });
    const mean = meanOverSeeds(runs);
    const round = (x: number) => Math.round(x * 1e4) / 1e4;
    return {
      trackingBudget,
      policies: mean.policies.map((p) => ({
        policy: p.policy,
        dramShare: round(p.dramShare),
        recall: round(p.recallSteady),
        trackingCpu: round(p.trackingCpuShare),
        movedPages: (p.promotedBytes + p.demotedBytes) / 4096,
        converge: p.epochsToConverge,
      })),
    };
  });
}

describe('simulator golden sweep', () => {
  it('sweep over tracking budget (hotspot scattered, 32 MiB, 2 seeds)', () => {
    const actual = JSON.parse(JSON.stringify(sweep()));
    if (UPDATE) {
      writeFileSync(FILE, `${JSON.stringify(actual, null, 1)}\n`);
      return;
    }
    expect(existsSync(FILE), `no golden sweep yet; accept it with: ${ACCEPT}`).toBe(true);
    const golden = JSON.parse(readFileSync(FILE, 'utf8'));
    expect(actual, `the sweep differs from the golden output. If the change is intended, accept it with: ${ACCEPT}`).toEqual(golden);
  });
});
