// A results directory built through the real writers and converters with fixed inputs, so
// the report it yields is deterministic: the overhead pairing, the compare vmstat deltas
// (read from a fake /proc), saved sim output (real simulator output captured in
// test/golden/report/sim-input.json) and a DRAM sweep.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ResultsWriter, type Observation } from '../../eval/results.js';
import { pairSlowdown, PAIR_ORDER_PARAM, type ArmResult } from '../../eval/overhead.js';
import { migrationBytes, readVmstat, vmstatDelta, type Roots } from '../../eval/compare.js';
import '../../eval/sim-import.js';

const GOLDEN = join(import.meta.dirname, '..', 'golden', 'report');

function arm(arm: ArmResult['arm'], run: number, wallS: number, opsPerSec: number): ArmResult {
  return {
    arm, run, wallS, throughput: { value: opsPerSec, unit: 'ops/s' }, workloadExit: 0, workloadCpuS: null,
    workloadMemoryPeakBytes: null, accounting: 'cgroup', first: run % 2 === 1 ? 'baseline' : 'agent',
    agentCpuS: arm === 'agent' ? 0.02 * run : null, agentCpuTotalS: null, agentExit: null, agentAttachS: null, agentStderrTail: null, workloadStdoutTail: '', workloadStderrTail: '',
  };
}

const vmstatText = (promote: number, demote: number, hint: number): string =>
  `nr_free_pages 100\npgpromote_success ${promote}\npgpromote_candidate ${promote * 2}\npgdemote_kswapd ${demote}\npgdemote_direct ${demote >> 1}\nnuma_hint_faults ${hint}\npgmigrate_success ${promote + demote}\n`;

/** Builds the fixture in `dir` (which must not exist yet) and returns it. */
export function buildReportFixture(dir: string, options: { complete?: boolean } = {}): string {
  const w = ResultsWriter.create({
    campaign: 'fixture',
    dir,
    argv: ['/usr/bin/node', '/work/main/bin/vtier.js', 'eval', 'overhead', '--preset', 'redis', '--runs', '3'],
    machine: { basic: { hostname: 'fixture-host', os: 'Debian GNU/Linux 12 (bookworm)', cpuCount: 2, memTotalBytes: 24 * 2 ** 30, numaNodes: [0] }, doctor: null, doctorError: 'vtier doctor is not built yet' },
    now: new Date('2026-11-22T04:31:00Z'),
    settings: { runs: 3, source: 'damon' },
    tools: { 'redis-server': 'Redis server v=7.0.15' },
  });
  // Overhead: three pairs on two workloads.
  const pairs: Array<[string, number, number, number]> = [
    ['redis-ycsb', 1, 15000, 14800], ['redis-ycsb', 2, 15200, 14950], ['redis-ycsb', 3, 14900, 14850],
    ['sysbench-memory', 1, 3500, 3490], ['sysbench-memory', 2, 3480, 3475], ['sysbench-memory', 3, 3510, 3470],
  ];
  const obs: Observation[] = [];
  for (const [workload, run, base, agent] of pairs) {
    const b = arm('baseline', run, 2, base);
    const a = arm('agent', run, 2, agent);
    obs.push({ system: 'agent', workload, run, metric: 'slowdown', value: pairSlowdown(b, a).value, unit: 'ratio', param: PAIR_ORDER_PARAM, paramValue: b.first === 'agent' ? 1 : 0 });
    obs.push({ system: 'agent', workload, run, metric: 'agent_cpu', value: a.agentCpuS ?? 0, unit: 's' });
  }
  // Compare: vmstat deltas read from a fake /proc.
  const proc = join(dir, 'fake-proc');
  mkdirSync(proc);
  const roots: Roots = { sys: join(dir, 'none'), procSys: join(dir, 'none'), proc };
  for (const [system, after] of [['autonuma', vmstatText(5000, 3000, 9000)], ['static', vmstatText(1000, 1000, 1000)]] as const) {
    writeFileSync(join(proc, 'vmstat'), vmstatText(1000, 1000, 1000));
    const before = readVmstat(roots);
    writeFileSync(join(proc, 'vmstat'), after);
    const delta = vmstatDelta(before, readVmstat(roots));
    const bytes = migrationBytes(delta);
    obs.push({ system, workload: 'hotspot-8g', run: 1, metric: 'promoted_bytes', value: bytes.promotedBytes, unit: 'bytes' });
    obs.push({ system, workload: 'hotspot-8g', run: 1, metric: 'demoted_bytes', value: bytes.demotedBytes, unit: 'bytes' });
    for (const [name, value] of Object.entries(delta)) obs.push({ system, workload: 'hotspot-8g', run: 1, metric: `vmstat:${name}`, value, unit: 'pages' });
  }
  w.observe(obs);
  // Saved `vtier sim --json` output, picked up by the report's importer.
  copyFileSync(join(GOLDEN, 'sim-input.json'), join(w.dir, 'shifting.json'));
  copyFileSync(join(GOLDEN, 'sim-sweep-input.json'), join(w.dir, 'sweep.json'));
  if (options.complete !== false) w.finish({ fixture: true });
  return w.dir;
}
