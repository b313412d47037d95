// `vtier eval compare`: the same workload under AutoNUMA tiering, vtier and no migration, on a
// host or guest with a CPU-less (CXL-like) memory node. Every global setting goes through the
// kernel-state journal first (original recorded on disk before the write), so it is restored
// after the campaign, on Ctrl-C, and after a crash by the next start (recoverLeftover).
//
// All paths hang off injectable roots (/sys, /proc/sys, /proc) so the setting, restore and
// vmstat-delta logic is tested on a fake tree on machines with one node.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { defaultTierNodes, readNumaTopology } from '../host-agent/numa.js';
import { KernelStateJournal, recoverLeftover, describeRecovery, DEFAULT_JOURNAL_DIR, type RestoreReport } from '../guest-agent/kernel-state.js';
import { captureTail, spawnStopped, stopChild, waitExit, sleep } from './children.js';
import { METRICS, type Observation, type ResultsWriter } from './results.js';
import { CampaignAborted } from './overhead.js';
import type { PreparedWorkload, Throughput } from './presets/types.js';

export const SYSTEMS = ['vtier', 'autonuma', 'static'] as const;
export type SystemName = (typeof SYSTEMS)[number];

export interface Roots {
  /** sysfs root, default /sys. */
  sys: string;
  /** sysctl root, default /proc/sys. */
  procSys: string;
  /** procfs root for vmstat, default /proc. */
  proc: string;
}

export const REAL_ROOTS: Roots = { sys: '/sys', procSys: '/proc/sys', proc: '/proc' };

export const SIM_HINT = 'vtier sim --workload hotspot --size 10G --dram 2G --policy vtier,autonuma,static';

export interface TopologyCheck {
  ok: boolean;
  reason: string;
  dramNodes: number[];
  cxlNodes: number[];
}

const settingPaths = (roots: Roots) => ({
  numaBalancing: join(roots.procSys, 'kernel/numa_balancing'),
  promoteRateLimit: join(roots.procSys, 'kernel/numa_balancing_promote_rate_limit_MBps'),
  demotionEnabled: join(roots.sys, 'kernel/mm/numa/demotion_enabled'),
});

/** Can this machine run the comparison? Needs a DRAM node and a CPU-less memory node plus the tiering knobs. */
export function checkTieredMachine(roots: Roots = REAL_ROOTS): TopologyCheck {
  const topology = readNumaTopology(roots.sys);
  const split = defaultTierNodes(topology);
  const base = { dramNodes: split.dramNodes, cxlNodes: split.cxlNodes };
  if (topology.nodes.length < 2 || split.cxlNodes.length === 0) {
    const nodes = topology.nodes.map((n) => `node${n.id}${n.cpuless ? ' (CPU-less)' : ' (with CPUs)'}`).join(', ') || 'no NUMA nodes';
    return {
      ...base,
      ok: false,
      reason:
        `eval compare needs >= 2 NUMA nodes with one CPU-less memory node (a CXL expander); this machine has ${topology.nodes.length} node(s): ${nodes}. ` +
        `For the modelled comparison run: ${SIM_HINT}`,
    };
  }
  const paths = settingPaths(roots);
  const missing = Object.values(paths).filter((p) => !existsSync(p));
  if (missing.length > 0) {
    return { ...base, ok: false, reason: `the kernel lacks memory-tiering controls (${missing.join(', ')} missing); AutoNUMA tiering needs Linux >= 6.1` };
  }
  return { ...base, ok: true, reason: '' };
}

/** The global settings each system runs under. */
export function systemSettings(system: SystemName, roots: Roots, promoteRateLimitMBps: number): Array<{ path: string; value: string }> {
  const p = settingPaths(roots);
  if (system === 'autonuma') {
    return [
      { path: p.numaBalancing, value: '2' },
      { path: p.demotionEnabled, value: 'true' },
      { path: p.promoteRateLimit, value: String(promoteRateLimitMBps) },
    ];
  }
  // vtier places pages itself; static is first-touch with no migration at all.
  return [
    { path: p.numaBalancing, value: '0' },
    { path: p.demotionEnabled, value: 'false' },
  ];
}

/** Counters that tell what the kernel migrated. */
export const VMSTAT_PATTERN = /^(pgpromote_|pgdemote_|numa_hint_faults|numa_pages_migrated|numa_pte_updates|pgmigrate_)/;

export function readVmstat(roots: Roots = REAL_ROOTS): Map<string, number> {
  const counters = new Map<string, number>();
  for (const line of readFileSync(join(roots.proc, 'vmstat'), 'utf8').split('\n')) {
    const [name, value] = line.trim().split(/\s+/);
    if (name && VMSTAT_PATTERN.test(name) && /^\d+$/.test(value ?? '')) counters.set(name, Number(value));
  }
  return counters;
}

/** after - before for every counter present in both (a counter that went down reads as 0). */
export function vmstatDelta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [name, value] of [...after].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const start = before.get(name);
    if (start !== undefined) delta[name] = Math.max(0, value - start);
  }
  return delta;
}

const PAGE_BYTES = 4096;

/** Bytes promoted and demoted from vmstat deltas (base pages). */
export function migrationBytes(delta: Record<string, number>): { promotedBytes: number; demotedBytes: number } {
  const demoted = Object.entries(delta)
    .filter(([name]) => name.startsWith('pgdemote_'))
    .reduce((sum, [, v]) => sum + v, 0);
  return { promotedBytes: (delta.pgpromote_success ?? 0) * PAGE_BYTES, demotedBytes: demoted * PAGE_BYTES };
}

export interface CompareOptions {
  systems: SystemName[];
  /** The workload: a command (argv) or a prepared preset (its runs and throughput parser). */
  workloadArgv?: string[];
  workload?: PreparedWorkload;
  workloadName: string;
  runs: number;
  roots: Roots;
  /** Directory of state journals (default /run/vtier): leftovers of crashed runs there are restored first. */
  journalDir?: string;
  promoteRateLimitMBps: number;
  /** argv of the vtier agent for the `vtier` system, with `{pid}`; required when systems include vtier. */
  vtierAgentArgv?: string[];
  warmupMs: number;
  results: ResultsWriter;
  onProgress?: (done: number, total: number, info: string) => void;
  signal?: AbortSignal;
  /** Install the journal's exit/signal handlers (default true; tests of the crash path turn them off). */
  handleSignals?: boolean;
}

export interface SystemRun {
  system: SystemName;
  run: number;
  wallS: number;
  throughput: Throughput | null;
  settings: Array<{ path: string; value: string }>;
  vmstatDelta: Record<string, number>;
  promotedBytes: number;
  demotedBytes: number;
  workloadStderrTail: string;
}

export interface CompareSummary {
  runs: number;
  systems: SystemName[];
  recovered: string[];
  restore: RestoreReport | null;
  meanWallS: Record<string, number>;
}

/** Restores settings left by a compare run that crashed; one line per journal. */
export function recoverCompareLeftovers(journalDir = DEFAULT_JOURNAL_DIR): string[] {
  return describeRecovery(recoverLeftover(journalDir));
}

async function runOne(system: SystemName, run: number, opts: CompareOptions, journal: KernelStateJournal, pairs: number): Promise<SystemRun> {
  const settings = systemSettings(system, opts.roots, opts.promoteRateLimitMBps);
  // Knobs an earlier system changed and this one does not name go back to their originals,
  // so each system runs on the machine's defaults plus its own settings.
  for (const entry of journal.entries) {
    if (!settings.some((s) => s.path === entry.path) && journal.get(entry.path) !== entry.original) journal.set(entry.path, entry.original);
  }
  for (const s of settings) journal.set(s.path, s.value);
  const spec = opts.workload ? opts.workload.run() : { argv: opts.workloadArgv ?? [], parse: () => null };
  const workload = await spawnStopped(spec.argv, { ...process.env, VTIER_COMPARE_SYSTEM: system });
  let agent: ChildProcess | null = null;
  try {
    if (system === 'vtier') {
      if (!opts.vtierAgentArgv) throw new Error('the vtier system needs an agent command');
      const targetPid = opts.workload?.targetPid ?? workload.pid;
      const argv = opts.vtierAgentArgv.map((a) => a.replaceAll('{pid}', String(targetPid)));
      agent = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
      const tail = captureTail(agent.stderr, 4096);
      await sleep(opts.warmupMs);
      if (agent.exitCode !== null) throw new Error(`the vtier agent exited during warm-up: ${tail().trim().split('\n').pop() ?? ''}`);
    } else {
      await sleep(opts.warmupMs);
    }
    if (opts.signal?.aborted) throw new CampaignAborted(pairs);
    const before = readVmstat(opts.roots);
    const startMs = workload.resume();
    const exit = await Promise.race([
      waitExit(workload.child),
      new Promise<never>((_, reject) => opts.signal?.addEventListener('abort', () => reject(new CampaignAborted(pairs)), { once: true })),
    ]);
    const wallS = (performance.now() - startMs) / 1000;
    const after = readVmstat(opts.roots);
    if (exit.code !== 0) {
      throw new Error(`workload exited with ${exit.code === null ? `signal ${exit.signal}` : `code ${exit.code}`} under ${system}: ${workload.stderr().trim().split('\n').pop() ?? ''}`);
    }
    const delta = vmstatDelta(before, after);
    return { system, run, wallS, throughput: spec.parse(workload.stdout(), workload.stderr()), settings, vmstatDelta: delta, ...migrationBytes(delta), workloadStderrTail: workload.stderr().slice(-2000) };
  } finally {
    if (agent) await stopChild(agent, 'SIGINT', 10_000);
    await stopChild(workload.child, 'SIGTERM', 3000);
  }
}

function runObservations(r: SystemRun, workload: string): Observation[] {
  const out: Observation[] = [
    { system: r.system, workload, run: r.run, metric: METRICS.wallTime, value: r.wallS, unit: 's' },
    { system: r.system, workload, run: r.run, metric: METRICS.promotedBytes, value: r.promotedBytes, unit: 'bytes' },
    { system: r.system, workload, run: r.run, metric: METRICS.demotedBytes, value: r.demotedBytes, unit: 'bytes' },
  ];
  if (r.throughput) out.push({ system: r.system, workload, run: r.run, metric: METRICS.throughput, value: r.throughput.value, unit: r.throughput.unit });
  for (const [name, value] of Object.entries(r.vmstatDelta)) out.push({ system: r.system, workload, run: r.run, metric: `vmstat:${name}`, value, unit: 'pages' });
  return out;
}

/**
 * Runs every system `runs` times (rotating the order each round). Settings are restored
 * when it returns or throws; the journal's handlers restore them on signals and exit.
 */
export async function runCompare(opts: CompareOptions): Promise<CompareSummary> {
  const check = checkTieredMachine(opts.roots);
  if (!check.ok) throw new Error(check.reason);
  if (opts.systems.includes('vtier') && !opts.vtierAgentArgv) throw new Error('the vtier system needs an agent command');
  if (!opts.workload && !(opts.workloadArgv && opts.workloadArgv.length > 0)) throw new Error('no workload to run');
  const journalDir = opts.journalDir ?? DEFAULT_JOURNAL_DIR;
  const recovered = describeRecovery(recoverLeftover(journalDir));
  const journal = KernelStateJournal.openSync(join(journalDir, `journal-${process.pid}.json`), { handleSignals: opts.handleSignals });
  recovered.push(...describeRecovery(journal.recovered));
  opts.results.note('setting', 'journal', journal.path);
  const wall: Record<string, number[]> = {};
  let restore: RestoreReport | null = null;
  const total = opts.runs * opts.systems.length;
  let done = 0;
  try {
    for (let run = 1; run <= opts.runs; run++) {
      // Rotate so no system always runs first (page cache, THP pool, thermal state).
      const shift = (run - 1) % opts.systems.length;
      const order = [...opts.systems.slice(shift), ...opts.systems.slice(0, shift)];
      const byRun: Partial<Record<SystemName, SystemRun>> = {};
      for (const system of order) {
        if (opts.signal?.aborted) throw new CampaignAborted(run - 1);
        opts.onProgress?.(done, total, `run ${run} ${system}`);
        const r = await runOne(system, run, opts, journal, run - 1);
        byRun[system] = r;
        (wall[system] ??= []).push(r.wallS);
        opts.results.writeRaw(`run${run}-${system}`, r);
        opts.results.observe(runObservations(r, opts.workloadName));
        done++;
      }
      const reference = byRun.static;
      if (reference) {
        for (const system of opts.systems) {
          if (system === 'static') continue;
          const r = byRun[system] as SystemRun;
          // Throughput ratio when the workload reports one, else the wall-time ratio.
          const value = r.throughput && reference.throughput && r.throughput.value > 0 ? reference.throughput.value / r.throughput.value : r.wallS / reference.wallS;
          opts.results.observe([{ system, workload: opts.workloadName, run, metric: METRICS.slowdown, value, unit: 'ratio' }]);
        }
      }
      opts.onProgress?.(done, total, `round ${run} done`);
    }
  } finally {
    restore = journal.restoreAll();
  }
  const meanWallS: Record<string, number> = {};
  for (const [system, values] of Object.entries(wall)) meanWallS[system] = values.reduce((a, b) => a + b, 0) / values.length;
  return { runs: opts.runs, systems: opts.systems, recovered, restore, meanWallS };
}
