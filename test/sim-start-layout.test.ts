// The simulator's `cxl` starting layout (`--first-touch cxl`): every page on the slow tier and
// DRAM empty, as the lab VM starts its arms (the region moved to the CXL node after the first
// touch). The floor then scores 0 and a policy has to promote its way up.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY_SETTINGS, DEFAULT_SIM, firstTouchLayout, makePolicy, makeWorkload, runSimulation } from '../src/sim/index.js';
import { repoRoot } from '../eval/results.js';

const pages = 16_384;
const dramPages = 1_638;

function run(firstTouch: 'cxl' | 'address' | 'random') {
  // 10% of the accesses spread over every page: any page left on DRAM would serve some.
  const workload = makeWorkload({ kind: 'hotspot', pages, seed: 3, hotFrac: 0.1, hotProb: 0.9 });
  return runSimulation(
    { ...DEFAULT_SIM, pages, dramPages, epochs: 12, accessesPerEpoch: 50_000, seed: 3, firstTouch, timeline: true },
    workload,
    ['static', 'oracle', 'autonuma'].map((p) => makePolicy(p as 'static', DEFAULT_POLICY_SETTINGS)),
  );
}

describe('sim starting layout cxl', () => {
  it('leaves DRAM empty', () => {
    expect(firstTouchLayout(pages, dramPages, 'cxl', 1).reduce((a, b) => a + b, 0)).toBe(0);
    expect(firstTouchLayout(pages, dramPages, 'random', 1).reduce((a, b) => a + b, 0)).toBe(dramPages);
  });

  it('static serves nothing from DRAM; the oracle and autonuma promote their way up', () => {
    const byName = (r: ReturnType<typeof run>, name: string) => r.policies.find((p) => p.policy === name)!;
    const cxl = run('cxl');
    const floor = byName(cxl, 'static');
    expect(floor.dramShare).toBe(0);
    expect(floor.maxDramUsedPages).toBe(0);
    expect(floor.promotedBytes + floor.demotedBytes).toBe(0);
    for (const name of ['oracle', 'autonuma']) {
      const p = byName(cxl, name);
      // Epoch 0 is served from the starting layout: nothing on DRAM yet.
      expect(p.timeline!.dramShare[0], name).toBe(0);
      expect(p.timeline!.dramShare.at(-1), name).toBeGreaterThan(0);
      // DRAM starts empty: it fills by promotion, never beyond its size.
      expect(p.promotedBytes, name).toBeGreaterThanOrEqual(dramPages * 4096 * 0.9);
      expect(p.maxDramUsedPages, name).toBe(dramPages);
    }
    // The oracle knows the hot set: it serves ~0.9 + 0.1 x 10% from DRAM once it has moved it.
    expect(byName(cxl, 'oracle').timeline!.dramShare.at(-1)).toBeGreaterThan(0.85);
    // The old default still fills DRAM at first touch: static then scores its luck, not 0.
    const filled = byName(run('address'), 'static');
    expect(filled.maxDramUsedPages).toBe(dramPages);
  });

  it('vtier sim --first-touch cxl', () => {
    const out = execFileSync(process.execPath, ['bin/vtier.js', 'sim', '--workload', 'hotspot', '--size', '64M', '--dram', '10%', '--policy', 'static,oracle', '--duration', '5s', '--accesses-per-epoch', '20000', '--first-touch', 'cxl', '--json'], { cwd: repoRoot(), encoding: 'utf8' });
    const json = JSON.parse(out) as { firstTouch: string; policies: Array<{ policy: string; dramShare: number }> };
    expect(json.firstTouch).toBe('cxl');
    expect(json.policies.find((p) => p.policy === 'static')?.dramShare).toBe(0);
    expect(json.policies.find((p) => p.policy === 'oracle')?.dramShare).toBeGreaterThan(0.5);
    let err = '';
    try {
      execFileSync(process.execPath, ['bin/vtier.js', 'sim', '--size', '64M', '--first-touch', 'dram', '--json'], { cwd: repoRoot(), encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      err = String((e as { stdout: string }).stdout);
    }
    expect(err).toMatch(/--first-touch: \\?"dram\\?" is not one of address, random, cxl/);
  });
});
