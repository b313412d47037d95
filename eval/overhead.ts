// `vtier eval overhead`: alternating runs of a workload with and without the guest agent.
// Each pair gives one slowdown ratio; the campaign reports the mean ratio with a t interval
// and the CPU time of both sides. Each arm's workload (and the agent) runs in its own cgroup v2,
// so cpu.stat counts every descendant, also children that exit before the parent or are never
// waited for; without cgroup v2 the campaign falls back to /proc/PID/stat and says so.
//
// Both arms are treated alike: the workload starts stopped, the agent (or nothing) gets the
// same warm-up time, then the workload is continued and timed until it exits. Arms alternate
// order from pair to pair (AB, BA, ...) so drift on the machine cancels out.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { basename, join } from 'node:path';
import { ArmCgroup, captureTail, cgroupOf, hasAttachedBpf, probeCgroups, readProcCpu, resolveCommand, sleep, spawnStopped, stopChild, waitExit, withVtierOnPath, type CgroupProbe, type ProcCpu } from './children.js';
import type { PreparedWorkload, Throughput } from './presets/types.js';
import { METRICS, vtierCommand, type Observation, type ResultsWriter } from './results.js';
import { intervalWarnings, meanInterval, pairedRatioInterval, mean, type Interval } from './stats.js';

export interface AgentSpec {
  /** `vtier guest record` (the default) or a user command. */
  kind: 'vtier-guest-record' | 'custom';
  /** argv with `{pid}` (the process to watch) and `{out}` (a file path in the results dir). */
  argv: string[];
}

export class CampaignAborted extends Error {
  constructor(readonly completedPairs: number) {
    super(`interrupted after ${completedPairs} complete pair(s)`);
    this.name = 'CampaignAborted';
  }
}

/** Finds the agent to measure: `vtier guest record` when this build has it, else a clear error.
 *  A custom command may name the workload with {pid}; system-wide agents need not. */
export function resolveAgent(source: string, customCommand?: string): AgentSpec {
  if (customCommand) {
    return { kind: 'custom', argv: ['/bin/sh', '-c', `exec ${customCommand}`] };
  }
  const [node, bin] = vtierCommand();
  const help = spawnSync(node, [bin, 'guest', 'record', '--help'], { encoding: 'utf8', timeout: 30_000 });
  if (help.status !== 0 || !/--pid/.test(help.stdout ?? '')) {
    throw new Error('vtier guest record is not available in this build; pass --agent-cmd "CMD ... {pid}" to measure another agent');
  }
  // Records until stopped: the campaign ends it with SIGINT when the workload exits.
  return { kind: 'vtier-guest-record', argv: [node, bin, 'guest', 'record', '--source', source, '--pid', '{pid}', '--duration', '24h', '--out', '{out}'] };
}

/** A user command as a workload: timed by wall clock, no throughput figure. Throws when the
 *  command is not found (as the shell would with exit 127), before anything is written. */
export function commandWorkload(argv: string[]): PreparedWorkload {
  if (argv.length === 0 || resolveCommand(argv[0]) === null) throw new Error(`workload command not found: ${argv[0] ?? '(empty)'} (not an executable path, not on PATH)`);
  return {
    name: basename(argv[0] ?? 'command'),
    tools: {},
    settings: { argv },
    run: () => ({ argv, parse: () => null }),
    async stop() {},
  };
}

export interface ArmResult {
  arm: 'baseline' | 'agent';
  run: number;
  wallS: number;
  throughput: Throughput | null;
  workloadExit: number | null;
  /** Agent CPU seconds during the timed window (null for the baseline arm). */
  agentCpuS: number | null;
  /** CPU seconds the workload (with every process it forked, and the preset's server while the
   *  run lasted) spent in the timed window; on a shared machine this moves less than wall time.
   *  From the arm's cgroup v2 cpu.stat; without cgroups from /proc (sampled every 20 ms, the
   *  measured process and the children it waited for only). */
  workloadCpuS: number | null;
  /** memory.peak of the arm's cgroup (bytes); null without the cgroup v2 memory controller. */
  workloadMemoryPeakBytes: number | null;
  /** How CPU time was counted: `cgroup` (cpu.stat, all descendants) or `proc` (fallback). */
  accounting: 'cgroup' | 'proc';
  /** Which arm of this run's pair ran first. */
  first: ArmResult['arm'];
  /** Agent CPU seconds from its start (includes loading BPF programs, node start-up). */
  agentCpuTotalS: number | null;
  agentExit: { code: number | null; signal: string | null } | null;
  /** Seconds from starting the agent until its BPF programs were attached (vtier agents only). */
  agentAttachS: number | null;
  agentStderrTail: string | null;
  workloadStdoutTail: string;
  workloadStderrTail: string;
}

export interface OverheadOptions {
  workload: PreparedWorkload;
  runs: number;
  agent: AgentSpec;
  /** Fixed wait before each run (custom agents: their whole warm-up; both arms wait it). */
  warmupMs: number;
  /** vtier agents: longest wait for the agent's BPF programs to attach (default 60 s). */
  attachTimeoutMs?: number;
  results: ResultsWriter;
  onProgress?: (done: number, total: number, info: string) => void;
  signal?: AbortSignal;
  /** Per-arm cgroups; default probes this machine (`probeCgroups()`). */
  cgroups?: CgroupProbe;
}

export interface OverheadSummary {
  workload: string;
  pairs: number;
  basis: 'throughput' | 'wall_time';
  slowdown: Interval;
  /** Slowdown measured on the workload's own CPU time (agent arm / baseline), when available. */
  cpuSlowdown: Interval | null;
  agentCpuS: number;
  /** Agent CPU time / workload wall time: share of one CPU. */
  agentCpuShare: number;
  agent: AgentSpec;
  /** `cgroup` when cpu.stat of per-arm cgroups counted CPU time, else `proc` with the reason. */
  accounting: { method: 'cgroup' | 'proc'; note: string | null };
  /** Mean memory.peak of the workload per arm (bytes), when the memory controller is on. */
  memoryPeakBytes: { baseline: number; agent: number } | null;
  /** Which arm ran first in each pair (pair 1 first). */
  order: Array<ArmResult['arm']>;
  /** Why cpuSlowdown is null, when it is. */
  cpuSlowdownNote: string | null;
  /** Things a reader must know before trusting the numbers (wide CI, zero CPU readings). */
  warnings: string[];
}

const live = new Set<ChildProcess>();

/** Stops every child the campaign started (used on Ctrl-C). */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...live].map((c) => stopChild(c, 'SIGTERM', 3000)));
}

function abortable(signal: AbortSignal | undefined, pairs: number): void {
  if (signal?.aborted) throw new CampaignAborted(pairs);
}

async function runArm(arm: ArmResult['arm'], run: number, first: ArmResult['arm'], opts: OverheadOptions, probe: CgroupProbe, pairs: number): Promise<ArmResult> {
  const spec = opts.workload.run();
  const workload = await spawnStopped(spec.argv, opts.workload.env ?? process.env);
  live.add(workload.child);
  const cgroups: ArmCgroup[] = [];
  const cgroupFor = (what: string): ArmCgroup | null => {
    if (!probe.ok) return null;
    const cg = ArmCgroup.create(probe, `vtier-${process.pid}-run${run}-${arm}-${what}`);
    cgroups.push(cg);
    return cg;
  };
  let server: { pid: number; home: string } | null = null;
  let workloadCg: ArmCgroup | null = null;
  let agentCg: ArmCgroup | null = null;
  let agent: ChildProcess | null = null;
  let agentTail: (() => string) | null = null;
  let lastCpu: ProcCpu | null = null;
  let poll: NodeJS.Timeout | null = null;
  let workloadPoll: NodeJS.Timeout | null = null;
  try {
    // Stopped before exec: everything the workload will ever fork is born inside.
    workloadCg = cgroupFor('workload');
    workloadCg?.add(workload.pid);
    const targetPid = opts.workload.targetPid ?? workload.pid;
    if (arm === 'agent') {
      const out = join(opts.results.dir, 'runs', `agent-run${run}.trace`);
      const argv = opts.agent.argv.map((a) => a.replaceAll('{pid}', String(targetPid)).replaceAll('{out}', out));
      agent = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: withVtierOnPath() });
      live.add(agent);
      agentTail = captureTail(agent.stderr, 8192);
      const agentPid = agent.pid ?? -1;
      agentCg = cgroupFor('agent');
      agentCg?.add(agentPid);
      poll = setInterval(() => {
        lastCpu = readProcCpu(agentPid) ?? lastCpu;
      }, 100);
    }
    let agentAttachS: number | null = null;
    if (agent && opts.agent.kind === 'vtier-guest-record') {
      // The workload stays stopped until the agent's programs are attached, however long
      // node start-up and BPF loading take on a loaded machine.
      const started = performance.now();
      const limitMs = opts.attachTimeoutMs ?? 60_000;
      while (!hasAttachedBpf(agent.pid ?? -1)) {
        abortable(opts.signal, pairs);
        if (agent.exitCode !== null || agent.signalCode !== null) break;
        if (performance.now() - started > limitMs) throw new Error(`the agent did not attach its BPF programs within ${limitMs / 1000} s`);
        await sleep(25);
      }
      agentAttachS = (performance.now() - started) / 1000;
    }
    // Same fixed wait in both arms.
    await sleep(opts.warmupMs);
    abortable(opts.signal, pairs);
    if (agent && (agent.exitCode !== null || agent.signalCode !== null)) {
      throw new Error(`the agent exited during warm-up: ${agentTail?.().trim().split('\n').pop() ?? '(no message)'}`);
    }
    const cpuAtStart = agent ? readProcCpu(agent.pid ?? -1) : null;
    const agentCgAtStart = agentCg?.usage().cpuS ?? null;
    const measuredPid = opts.workload.targetPid ?? workload.pid;
    if (workloadCg && probe.ok && opts.workload.targetPid !== undefined) {
      // A preset's server lives across runs: it is charged to this arm only while it runs.
      const home = cgroupOf(opts.workload.targetPid, probe.mount);
      if (!home) throw new Error(`cannot find the cgroup of the workload's server (pid ${opts.workload.targetPid})`);
      workloadCg.add(opts.workload.targetPid);
      server = { pid: opts.workload.targetPid, home };
    }
    const workloadCgAtStart = workloadCg?.usage().cpuS ?? null;
    const workloadCpuAtStart = readProcCpu(measuredPid);
    let workloadCpuLast = workloadCpuAtStart;
    workloadPoll = setInterval(() => {
      workloadCpuLast = readProcCpu(measuredPid) ?? workloadCpuLast;
    }, 20);
    const startMs = workload.resume();
    const exit = await Promise.race([
      waitExit(workload.child),
      new Promise<never>((_, reject) => opts.signal?.addEventListener('abort', () => reject(new CampaignAborted(pairs)), { once: true })),
    ]);
    const wallS = (performance.now() - startMs) / 1000;
    clearInterval(workloadPoll);
    const workloadCpuEnd = readProcCpu(measuredPid) ?? workloadCpuLast;
    let workloadCpuS =
      workloadCpuAtStart && workloadCpuEnd ? workloadCpuEnd.selfS + workloadCpuEnd.childrenS - (workloadCpuAtStart.selfS + workloadCpuAtStart.childrenS) : null;
    let workloadMemoryPeakBytes: number | null = null;
    if (workloadCg && workloadCgAtStart !== null) {
      if (server) {
        workloadCg.release(server.pid, server.home);
        server = null;
      }
      const end = workloadCg.usage();
      workloadCpuS = end.cpuS - workloadCgAtStart;
      workloadMemoryPeakBytes = end.memoryPeakBytes;
    }
    let agentCpuS: number | null = null;
    let agentCpuTotalS: number | null = null;
    let agentExit: ArmResult['agentExit'] = null;
    if (agent) {
      const alive = agent.exitCode === null && agent.signalCode === null;
      const cpuAtEnd = (alive ? readProcCpu(agent.pid ?? -1) : null) ?? lastCpu;
      if (!alive) throw new Error(`the agent exited before the workload finished: ${agentTail?.().trim().split('\n').pop() ?? '(no message)'}`);
      agentCpuTotalS = cpuAtEnd ? cpuAtEnd.selfS + cpuAtEnd.childrenS : null;
      agentCpuS = cpuAtEnd && cpuAtStart ? cpuAtEnd.selfS + cpuAtEnd.childrenS - (cpuAtStart.selfS + cpuAtStart.childrenS) : null;
      if (agentCg && agentCgAtStart !== null) {
        agentCpuTotalS = agentCg.usage().cpuS;
        agentCpuS = agentCpuTotalS - agentCgAtStart;
      }
      // SIGINT: the agent's normal stop (finishes its trace, restores kernel state). An agent
      // watching a pid may see the workload exit first and stop on its own, reporting that
      // the target is gone: a normal end here too, since its CPU time was read above.
      const stopped = await stopChild(agent, 'SIGINT', 10_000);
      agentExit = { code: stopped.code, signal: stopped.signal };
      const targetGone = /target process \d+ exited|exited during|target[- ]gone/i.test(agentTail?.() ?? '');
      // Only vtier's own agent promises a clean exit; other agents may simply die of SIGINT.
      if (opts.agent.kind === 'vtier-guest-record' && stopped.code !== 0 && !(stopped.code === 1 && targetGone)) {
        throw new Error(`the agent failed when stopped (exit ${stopped.code ?? stopped.signal}): ${agentTail?.().trim().split('\n').pop() ?? ''}`);
      }
    }
    if (exit.code !== 0) {
      throw new Error(`workload exited with ${exit.code === null ? `signal ${exit.signal}` : `code ${exit.code}`}: ${workload.stderr().trim().split('\n').pop() ?? ''}`);
    }
    return {
      arm,
      run,
      wallS,
      throughput: spec.parse(workload.stdout(), workload.stderr()),
      workloadExit: exit.code,
      workloadCpuS,
      workloadMemoryPeakBytes,
      accounting: workloadCg ? 'cgroup' : 'proc',
      first,
      agentCpuS,
      agentCpuTotalS,
      agentExit,
      agentAttachS,
      agentStderrTail: agentTail ? agentTail().slice(-2000) : null,
      workloadStdoutTail: workload.stdout().slice(-2000),
      workloadStderrTail: workload.stderr().slice(-2000),
    };
  } finally {
    if (poll) clearInterval(poll);
    if (workloadPoll) clearInterval(workloadPoll);
    if (agent) {
      await stopChild(agent, 'SIGINT', 10_000);
      live.delete(agent);
    }
    await stopChild(workload.child, 'SIGTERM', 3000);
    live.delete(workload.child);
    if (server && workloadCg) {
      try {
        workloadCg.release(server.pid, server.home);
      } catch {
        /* the server is gone; removing the cgroup below is what matters */
      }
    }
    // Also on failure and Ctrl-C: kills stragglers the workload left behind, then rmdir.
    for (const cg of cgroups) await cg.remove();
  }
}

function armObservations(r: ArmResult, workload: string): Observation[] {
  const out: Observation[] = [{ system: r.arm, workload, run: r.run, metric: METRICS.wallTime, value: r.wallS, unit: 's' }];
  if (r.workloadCpuS !== null) out.push({ system: r.arm, workload, run: r.run, metric: 'workload_cpu', value: r.workloadCpuS, unit: 's' });
  if (r.workloadMemoryPeakBytes !== null) out.push({ system: r.arm, workload, run: r.run, metric: 'workload_memory_peak', value: r.workloadMemoryPeakBytes, unit: 'bytes' });
  if (r.throughput) out.push({ system: r.arm, workload, run: r.run, metric: METRICS.throughput, value: r.throughput.value, unit: r.throughput.unit });
  if (r.agentCpuS !== null) {
    out.push({ system: r.arm, workload, run: r.run, metric: METRICS.agentCpu, value: r.agentCpuS, unit: 's' });
    out.push({ system: r.arm, workload, run: r.run, metric: METRICS.agentCpuShare, value: r.agentCpuS / r.wallS, unit: 'fraction' });
  }
  if (r.agentAttachS !== null) out.push({ system: r.arm, workload, run: r.run, metric: 'agent_attach_time', value: r.agentAttachS, unit: 's' });
  if (r.agentCpuTotalS !== null) out.push({ system: r.arm, workload, run: r.run, metric: 'agent_cpu_total', value: r.agentCpuTotalS, unit: 's' });
  return out;
}

/** Slowdown of one pair: throughput ratio when both arms printed one, else wall-time ratio. */
export function pairSlowdown(baseline: ArmResult, agent: ArmResult): { value: number; basis: OverheadSummary['basis'] } {
  if (baseline.throughput && agent.throughput && agent.throughput.value > 0) {
    return { value: baseline.throughput.value / agent.throughput.value, basis: 'throughput' };
  }
  return { value: agent.wallS / baseline.wallS, basis: 'wall_time' };
}

/**
 * Slowdown on CPU time: the workload's CPU seconds per unit of work, agent arm / baseline.
 * Work is the run's own count when it reports one (fixed-time workloads), else the same in
 * both arms (fixed-work commands). Null without CPU times.
 */
export function cpuSlowdown(baseline: ArmResult, agent: ArmResult): number | null {
  if (!baseline.workloadCpuS || !agent.workloadCpuS) return null;
  const workB = baseline.throughput?.work;
  const workA = agent.throughput?.work;
  if (workB && workA) return agent.workloadCpuS / workA / (baseline.workloadCpuS / workB);
  return agent.workloadCpuS / baseline.workloadCpuS;
}

/** Runs the campaign; observations and raw runs land in the results dir as each run ends. */
export async function runOverhead(opts: OverheadOptions): Promise<OverheadSummary> {
  const { workload, results } = opts;
  const baseline: ArmResult[] = [];
  const treated: ArmResult[] = [];
  const slowdowns: number[] = [];
  let basis: OverheadSummary['basis'] = 'wall_time';
  const total = opts.runs * 2;
  const probe = opts.cgroups ?? probeCgroups();
  const firsts: Array<ArmResult['arm']> = [];
  for (let run = 1; run <= opts.runs; run++) {
    const order: Array<ArmResult['arm']> = run % 2 === 1 ? ['baseline', 'agent'] : ['agent', 'baseline'];
    const pair: Partial<Record<ArmResult['arm'], ArmResult>> = {};
    for (const arm of order) {
      abortable(opts.signal, run - 1);
      opts.onProgress?.(baseline.length + treated.length, total, `run ${run} ${arm}`);
      const result = await runArm(arm, run, order[0], opts, probe, run - 1);
      pair[arm] = result;
      results.writeRaw(`run${run}-${arm}`, result);
      results.observe(armObservations(result, workload.name));
    }
    const b = pair.baseline as ArmResult;
    const a = pair.agent as ArmResult;
    baseline.push(b);
    treated.push(a);
    const s = pairSlowdown(b, a);
    basis = s.basis;
    slowdowns.push(s.value);
    firsts.push(order[0]);
    // param agent_first: 1 when the agent arm ran first in this pair (the report marks it).
    results.observe([{ system: 'agent', workload: workload.name, run, metric: METRICS.slowdown, value: s.value, unit: 'ratio', param: PAIR_ORDER_PARAM, paramValue: order[0] === 'agent' ? 1 : 0 }]);
    const cpuRatio = cpuSlowdown(b, a);
    if (cpuRatio !== null) {
      results.observe([{ system: 'agent', workload: workload.name, run, metric: 'cpu_slowdown', value: cpuRatio, unit: 'ratio' }]);
    }
    opts.onProgress?.(baseline.length + treated.length, total, `slowdown so far ${mean(slowdowns).toFixed(3)}`);
  }
  const slowdown =
    basis === 'throughput'
      ? pairedRatioInterval(baseline.map((r) => r.throughput?.value ?? NaN), treated.map((r) => r.throughput?.value ?? NaN))
      : pairedRatioInterval(treated.map((r) => r.wallS), baseline.map((r) => r.wallS));
  const { ratios: _ratios, ...interval } = slowdown;
  void _ratios;
  const cpuRatios = treated.map((a, i) => cpuSlowdown(baseline[i], a)).filter((v): v is number => v !== null);
  const cpuInterval = cpuRatios.length === treated.length && cpuRatios.length > 0 ? meanInterval(cpuRatios) : null;
  const warnings: string[] = [];
  const accounting = probe.ok
    ? { method: 'cgroup' as const, note: probe.memoryNote }
    : { method: 'proc' as const, note: `${probe.reason}: workload CPU counts only the measured process and the children it waited for` };
  if (!probe.ok) warnings.push(accounting.note ?? '');
  const zeroCpu = [...baseline, ...treated].filter((r) => r.workloadCpuS !== null && r.workloadCpuS <= 0);
  if (zeroCpu.length > 0) warnings.push(`workload CPU read 0 s in ${zeroCpu.map((r) => `run ${r.run} ${r.arm}`).join(', ')}: CPU figures are not usable`);
  let cpuSlowdownNote: string | null = null;
  if (!cpuInterval) {
    const missing = treated.map((a, i) => (cpuSlowdown(baseline[i], a) === null ? `pair ${a.run}` : null)).filter(Boolean);
    cpuSlowdownNote = `no CPU slowdown: workload CPU time missing or zero in ${missing.join(', ')}`;
    warnings.push(cpuSlowdownNote);
  }
  warnings.push(...intervalWarnings('slowdown', interval, slowdowns.length));
  const peaks = (arms: ArmResult[]): number => mean(arms.map((r) => r.workloadMemoryPeakBytes ?? NaN));
  const memoryPeakBytes = Number.isFinite(peaks(baseline)) && Number.isFinite(peaks(treated)) ? { baseline: peaks(baseline), agent: peaks(treated) } : null;
  return {
    workload: workload.name,
    pairs: slowdowns.length,
    basis,
    slowdown: interval,
    cpuSlowdown: cpuInterval,
    agentCpuS: mean(treated.map((r) => r.agentCpuS ?? NaN)),
    agentCpuShare: mean(treated.map((r) => (r.agentCpuS ?? NaN) / r.wallS)),
    agent: opts.agent,
    accounting,
    memoryPeakBytes,
    order: firsts,
    cpuSlowdownNote,
    warnings,
  };
}

/** The observation param that records, per pair, whether the agent arm ran first (1) or not (0). */
export const PAIR_ORDER_PARAM = 'agent_first';
