// `npm run bench:sim`: simulator speed (target >= 20 M simulated accesses/s).
//   generate   accesses/s each workload generator writes into a typed-array stream
//   engine     accesses/s of the whole loop (generate, score) with the `static` policy
//   compare    the default comparison (10 GiB hotspot, 7 policies): wall ms per simulated epoch
//              and each policy's own decision time per epoch
//   --targets  placement quality at equal tracking budget (issue 12's targets): every workload x
//              DRAM 5/10/20/40% x 3 seeds, random first touch; vtier vs oracle, every baseline and
//              static; re-convergence after shifts; migration traffic vs the oracle's.
//              --size-gib (default 1) and --epochs (default 40) scale it; --case a,b picks cases.
// Seeded, so runs are comparable. --json prints one object. --quick shortens everything.
import { performance } from 'node:perf_hooks';
import {
  DEFAULT_POLICY_SETTINGS,
  DEFAULT_SIM,
  makePolicy,
  makeWorkload,
  meanOverSeeds,
  runSimulation,
  type HotLayout,
  type PolicyName,
  type PolicyResult,
  type SeedSpread,
  type WorkloadKind,
} from '../src/sim/index.js';

const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const PAGES = (10 * 2 ** 30) / 4096;
const DRAM = Math.round(PAGES * 0.2);

function generate(kind: WorkloadKind): number {
  const w = makeWorkload({ kind, pages: PAGES, seed: 1 });
  const out = new Uint32Array(4_000_000);
  w.fill(out, 0); // warm-up (JIT, caches)
  const rounds = quick ? 2 : 8;
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) w.fill(out, i);
  return (rounds * out.length) / ((performance.now() - t0) / 1000);
}

function engine(): { accessesPerSec: number; epochs: number; accessesPerEpoch: number } {
  const epochs = quick ? 3 : 10;
  const accessesPerEpoch = 4_000_000;
  const w = makeWorkload({ kind: 'hotspot', pages: PAGES, seed: 1 });
  const r = runSimulation({ ...DEFAULT_SIM, pages: PAGES, dramPages: DRAM, epochs, accessesPerEpoch }, w, [makePolicy('static', DEFAULT_POLICY_SETTINGS)]);
  return { accessesPerSec: r.simulatedAccesses / (r.wallMs / 1000), epochs, accessesPerEpoch };
}

function compare() {
  const names: PolicyName[] = ['vtier', 'vtier-thp', 'autonuma', 'vtmm', 'memtis', 'lru', 'damon', 'static', 'oracle'];
  const epochs = quick ? 3 : 10;
  const w = makeWorkload({ kind: 'hotspot', pages: PAGES, seed: 1 });
  const r = runSimulation(
    { ...DEFAULT_SIM, pages: PAGES, dramPages: DRAM, epochs },
    w,
    names.map((n) => makePolicy(n, DEFAULT_POLICY_SETTINGS)),
  );
  return {
    epochs,
    wallMsPerEpoch: r.wallMs / epochs,
    projectedDefaultRunSec: (r.wallMs / epochs) * 60 / 1000,
    accessesPerSec: r.simulatedAccesses / (r.wallMs / 1000),
    policyMsPerEpoch: Object.fromEntries(r.policies.map((p) => [p.policy, p.policyCpuMs / epochs])),
  };
}

function argValue(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  if (at < 0) return fallback;
  const v = Number(process.argv[at + 1]);
  if (!(v > 0)) throw new RangeError(`${name} needs a positive number`);
  return v;
}

const TARGET_POLICIES: PolicyName[] = ['vtier', 'memtis', 'damon', 'vtmm', 'autonuma', 'lru', 'static', 'oracle'];
const BASELINES = ['memtis', 'damon', 'vtmm', 'autonuma', 'lru', 'static'];
const CASES: Array<{ name: string; kind: WorkloadKind; layout?: HotLayout }> = [
  { name: 'hotspot-contiguous', kind: 'hotspot', layout: 'contiguous' },
  { name: 'hotspot-scattered', kind: 'hotspot', layout: 'scattered' },
  { name: 'zipf', kind: 'zipf' },
  { name: 'kv', kind: 'kv' },
  { name: 'graph', kind: 'graph' },
  { name: 'shifting', kind: 'shift' },
];

function targets() {
  const sizeGiB = argValue('--size-gib', 1);
  const pages = Math.round((sizeGiB * 2 ** 30) / 4096);
  const epochs = argValue('--epochs', quick ? 12 : 40);
  const seeds = quick ? [1] : [1, 2, 3];
  const drams = quick ? [0.2] : [0.05, 0.1, 0.2, 0.4];
  const rows = [];
  const only = process.argv.includes('--case') ? process.argv[process.argv.indexOf('--case') + 1].split(',') : null;
  for (const c of CASES.filter((x) => !only || only.includes(x.name))) {
    for (const frac of drams) {
      const runs = seeds.map((seed) => {
        const w = makeWorkload({ kind: c.kind, pages, seed, layout: c.layout, hotFrac: 0.2, hotProb: 0.8, shiftEveryEpochs: Math.max(1, Math.floor(epochs / 3)) });
        const config = { ...DEFAULT_SIM, pages, dramPages: Math.round(pages * frac), epochs, seed, firstTouch: 'random' as const };
        return runSimulation(config, w, TARGET_POLICIES.map((n) => makePolicy(n, DEFAULT_POLICY_SETTINGS)));
      });
      const mean = meanOverSeeds(runs);
      const by: Record<string, PolicyResult & SeedSpread> = Object.fromEntries(mean.policies.map((p) => [p.policy, p]));
      const vtier = by.vtier;
      const oracle = by.oracle;
      const best = BASELINES.map((b) => by[b]).reduce((a, b) => (b.dramShare > a.dramShare ? b : a));
      const moved = (p: typeof vtier) => p.promotedBytes + p.demotedBytes;
      const reconverge = vtier.reconvergeEpochs.length ? (vtier.reconvergeEpochs.some((x) => x === null) ? null : Math.max(...(vtier.reconvergeEpochs as number[]))) : undefined;
      rows.push({
        case: c.name,
        dramFrac: frac,
        vtier: vtier.dramShare,
        oracle: oracle.dramShare,
        ofOracle: vtier.dramShare / oracle.dramShare,
        bestBaseline: best.policy,
        bestBaselineShare: best.dramShare,
        static: by.static.dramShare,
        shares: Object.fromEntries(mean.policies.map((p) => [p.policy, p.dramShare])),
        trackingCpu: Object.fromEntries(mean.policies.map((p) => [p.policy, p.trackingCpuShare])),
        vtierMinOverSeeds: vtier.dramShareMin,
        reconvergeMax: reconverge,
        migrationVsOracle: moved(oracle) > 0 ? moved(vtier) / moved(oracle) : null,
        pingPongPages: vtier.pingPongPages,
        beatsEveryBaseline: vtier.dramShare >= best.dramShare,
      });
      if (!json) {
        const r = rows[rows.length - 1];
        const pc = (x: number) => `${(100 * x).toFixed(1)}%`;
        console.log(
          `${c.name.padEnd(19)} dram ${String(frac * 100).padStart(2)}%  vtier ${pc(r.vtier)} (min ${pc(r.vtierMinOverSeeds)})  oracle ${pc(r.oracle)} (x${r.ofOracle.toFixed(3)})  ` +
            `best baseline ${r.bestBaseline} ${pc(r.bestBaselineShare)}  static ${pc(r.static)}  ` +
            `migration x${r.migrationVsOracle === null ? '-' : r.migrationVsOracle.toFixed(2)} of oracle  ping-pong ${r.pingPongPages.toFixed(0)}` +
            (r.reconvergeMax !== undefined ? `  reconverge ${r.reconvergeMax ?? 'never'}` : '') +
            `  ${r.beatsEveryBaseline ? 'ok' : 'BELOW ' + r.bestBaseline}`,
        );
      }
    }
  }
  return { memoryPages: pages, epochs, seeds, trackingBudget: DEFAULT_POLICY_SETTINGS.trackingBudget, firstTouch: 'random', rows };
}

if (process.argv.includes('--targets')) {
  const t = targets();
  if (json) process.stdout.write(`${JSON.stringify(t, null, 2)}\n`);
  process.exit(0);
}

const kinds: WorkloadKind[] = ['uniform', 'hotspot', 'zipf', 'kv', 'graph'];
const generateRates = Object.fromEntries(kinds.map((k) => [k, generate(k)]));
const eng = engine();
const cmp = compare();
const result = { memoryPages: PAGES, generateAccessesPerSec: generateRates, engine: eng, compare: cmp, targetAccessesPerSec: 20e6 };
if (json) {
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} else {
  const m = (x: number) => `${(x / 1e6).toFixed(1)} M/s`;
  console.log(`simulator bench (10 GiB = ${PAGES} pages, DRAM 20%)`);
  for (const k of kinds) console.log(`  generate ${k.padEnd(8)} ${m(generateRates[k])}`);
  console.log(`  engine (generate + score, static policy): ${m(eng.accessesPerSec)}  [target >= 20 M/s: ${eng.accessesPerSec >= 20e6 ? 'met' : 'NOT met'}]`);
  console.log(`  default comparison, 9 policies: ${cmp.wallMsPerEpoch.toFixed(0)} ms per epoch (60 s default run ~ ${cmp.projectedDefaultRunSec.toFixed(0)} s), ${m(cmp.accessesPerSec)} overall`);
  for (const [p, ms] of Object.entries(cmp.policyMsPerEpoch)) console.log(`    ${p.padEnd(10)} ${ms.toFixed(1)} ms/epoch`);
}
