// `vtier eval overhead`: alternating runs of a workload with and without the guest agent.
// Each pair gives one slowdown ratio; the campaign reports the mean ratio with a t interval
// and the agent's CPU time over each run (utime + stime from /proc/PID/stat).
//
// Both arms are treated alike: the workload starts stopped, the agent (or nothing) gets the
// same warm-up time, then the workload is continued and timed until it exits. Arms alternate
// order from pair to pair (AB, BA, ...) so drift on the machine cancels out.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { basename, join } from 'node:path';
import { captureTail, hasAttachedBpf, readProcCpu, sleep, spawnStopped, stopChild, waitExit, type ProcCpu } from './children.js';
import type { PreparedWorkload, Throughput } from './presets/types.js';
import { METRICS, vtierCommand, type Observation, type ResultsWriter } from './results.js';
import { meanInterval, pairedRatioInterval, mean, type Interval } from './stats.js';

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

/** A user command as a workload: timed by wall clock, no throughput figure. */
export function commandWorkload(argv: string[]): PreparedWorkload {
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
  /** CPU seconds the measured process (the workload, or the preset's server) spent in the
   *  timed window; on a shared machine this moves less than wall time. Sampled every 20 ms,
   *  so a workload's last < 20 ms may be missed. */
  workloadCpuS: number | null;
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
}

const live = new Set<ChildProcess>();

/** Stops every child the campaign started (used on Ctrl-C). */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...live].map((c) => stopChild(c, 'SIGTERM', 3000)));
}

function abortable(signal: AbortSignal | undefined, pairs: number): void {
  if (signal?.aborted) throw new CampaignAborted(pairs);
}

async function runArm(arm: ArmResult['arm'], run: number, opts: OverheadOptions, pairs: number): Promise<ArmResult> {
  const spec = opts.workload.run();
  const workload = await spawnStopped(spec.argv);
  live.add(workload.child);
  let agent: ChildProcess | null = null;
  let agentTail: (() => string) | null = null;
  let lastCpu: ProcCpu | null = null;
  let poll: NodeJS.Timeout | null = null;
  let workloadPoll: NodeJS.Timeout | null = null;
  try {
    const targetPid = opts.workload.targetPid ?? workload.pid;
    if (arm === 'agent') {
      const out = join(opts.results.dir, 'runs', `agent-run${run}.trace`);
      const argv = opts.agent.argv.map((a) => a.replaceAll('{pid}', String(targetPid)).replaceAll('{out}', out));
      agent = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
      live.add(agent);
      agentTail = captureTail(agent.stderr, 8192);
      const agentPid = agent.pid ?? -1;
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
    const measuredPid = opts.workload.targetPid ?? workload.pid;
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
    const workloadCpuS =
      workloadCpuAtStart && workloadCpuEnd ? workloadCpuEnd.selfS + workloadCpuEnd.childrenS - (workloadCpuAtStart.selfS + workloadCpuAtStart.childrenS) : null;
    let agentCpuS: number | null = null;
    let agentCpuTotalS: number | null = null;
    let agentExit: ArmResult['agentExit'] = null;
    if (agent) {
      const alive = agent.exitCode === null && agent.signalCode === null;
      const cpuAtEnd = (alive ? readProcCpu(agent.pid ?? -1) : null) ?? lastCpu;
      if (!alive) throw new Error(`the agent exited before the workload finished: ${agentTail?.().trim().split('\n').pop() ?? '(no message)'}`);
      agentCpuTotalS = cpuAtEnd ? cpuAtEnd.selfS + cpuAtEnd.childrenS : null;
      agentCpuS = cpuAtEnd && cpuAtStart ? cpuAtEnd.selfS + cpuAtEnd.childrenS - (cpuAtStart.selfS + cpuAtStart.childrenS) : null;
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
  }
}

function armObservations(r: ArmResult, workload: string): Observation[] {
  const out: Observation[] = [{ system: r.arm, workload, run: r.run, metric: METRICS.wallTime, value: r.wallS, unit: 's' }];
  if (r.workloadCpuS !== null) out.push({ system: r.arm, workload, run: r.run, metric: 'workload_cpu', value: r.workloadCpuS, unit: 's' });
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
  for (let run = 1; run <= opts.runs; run++) {
    const order: Array<ArmResult['arm']> = run % 2 === 1 ? ['baseline', 'agent'] : ['agent', 'baseline'];
    const pair: Partial<Record<ArmResult['arm'], ArmResult>> = {};
    for (const arm of order) {
      abortable(opts.signal, run - 1);
      opts.onProgress?.(baseline.length + treated.length, total, `run ${run} ${arm}`);
      const result = await runArm(arm, run, opts, run - 1);
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
    results.observe([{ system: 'agent', workload: workload.name, run, metric: METRICS.slowdown, value: s.value, unit: 'ratio' }]);
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
  return {
    workload: workload.name,
    pairs: slowdowns.length,
    basis,
    slowdown: interval,
    cpuSlowdown: cpuInterval,
    agentCpuS: mean(treated.map((r) => r.agentCpuS ?? NaN)),
    agentCpuShare: mean(treated.map((r) => (r.agentCpuS ?? NaN) / r.wallS)),
    agent: opts.agent,
  };
}
