// `npm run bench:sim`: simulator speed (target >= 20 M simulated accesses/s).
//   generate   accesses/s each workload generator writes into a typed-array stream
//   engine     accesses/s of the whole loop (generate, score) with the `static` policy
//   compare    the default comparison (10 GiB hotspot, 7 policies): wall ms per simulated epoch
//              and each policy's own decision time per epoch
// Seeded, so runs are comparable. --json prints one object. --quick shortens everything.
import { performance } from 'node:perf_hooks';
import { DEFAULT_POLICY_SETTINGS, DEFAULT_SIM, makePolicy, makeWorkload, runSimulation, type PolicyName, type WorkloadKind } from '../src/sim/index.js';

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
  const names: PolicyName[] = ['vtier', 'vtier-thp', 'autonuma', 'vtmm', 'memtis', 'lru', 'oracle'];
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
  console.log(`  default comparison, 7 policies: ${cmp.wallMsPerEpoch.toFixed(0)} ms per epoch (60 s default run ~ ${cmp.projectedDefaultRunSec.toFixed(0)} s), ${m(cmp.accessesPerSec)} overall`);
  for (const [p, ms] of Object.entries(cmp.policyMsPerEpoch)) console.log(`    ${p.padEnd(10)} ${ms.toFixed(1)} ms/epoch`);
}
