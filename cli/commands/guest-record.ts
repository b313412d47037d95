// `vtier guest record`: samples page accesses from one source for a while and writes a
// trace (docs/trace-format.md). The target is a pid, a command started paused (so its
// first faults are seen), or the built-in hotspot workload with its ground truth.
import { Command } from 'commander';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { release } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import { action, examples } from '../command.js';
import { addOptions, cpuBudgetOption, DEFAULTS, epochOption, outOption, samplePeriodOption, sizeOption, thpOptions } from '../options.js';
import { parseCpuBudget } from '../../src/sampling/period.js';
import { printResult, UserError, type OutputOptions } from '../output.js';
import { formatBytes, InputError, parseDurationMs, parsePositiveInt, parseSizeBytes } from '../../src/util/units.js';
import { summarizeTrace } from '../../src/trace/index.js';
import { readTraceFile, traceLine } from '../trace-file.js';
import type { PageRuns, PageSamples } from '../../src/samples.js';
import type { Scalar, TraceHeader } from '../../src/trace/index.js';
import { TraceWriteError, TraceWriter } from '../../guest-agent/trace-writer.js';
import { startWorkload, workloadArgs, workloadBinary, WorkloadError, WORKLOAD_PATTERNS, type RunningWorkload, type WorkloadPattern } from '../../guest-agent/workload.js';
import { parseWorkloadOptions, workloadCliOptions } from './workload.js';
import { withVtierOnPath } from '../../eval/children.js';
import { btfFact, hostFact, thpFact } from '../../guest-agent/facts.js';
import { detectPmu } from '../../guest-agent/perf-attr.js';
import { processAlive } from '../../guest-agent/pagemap.js';
import { busyMessage, damonStatus } from '../../guest-agent/damon.js';
import { Sampler, recommendSource } from '../../guest-agent/sampler.js';
import { EARLY_DRAIN_FILL } from '../../guest-agent/sources/pages.js';
import type { PerfCpuStats, PeriodStats } from '../../guest-agent/sources/common.js';

export const SOURCES = ['auto', 'damon', 'faults', 'pebs', 'ibs'] as const;
export type SourceChoice = (typeof SOURCES)[number];
export const DAMON_MODE_CHOICES = ['auto', 'own', 'observe'] as const;

/** CLOCK_MONOTONIC nanoseconds: the clock sampler batches are stamped with. */
export function monotonicNs(): number {
  return Number(process.hrtime.bigint());
}

export interface SamplerSetup {
  source: SourceChoice;
  damonMode: (typeof DAMON_MODE_CHOICES)[number];
  epochMs: number;
  samplePeriod?: number;
  /** Perf sources: CPU share of one core the sampling may use (the period adapts); null/absent = fixed. */
  cpuBudget?: number | null;
  /** Page sources: aggregation map capacity in pages. */
  maxPages?: number;
  verbose?: boolean;
}

/** Bounds of --max-pages (the BPF map is allocated up front: 2^22 pages ~ 256 MiB kernel memory). */
export const MAX_PAGES_RANGE = { min: 16, max: 1 << 22 } as const;

/** --max-pages, bounded; undefined when not given. */
export function parseMaxPages(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const maxPages = parsePositiveInt(value, '--max-pages');
  if (maxPages < MAX_PAGES_RANGE.min || maxPages > MAX_PAGES_RANGE.max) {
    throw new InputError(`--max-pages: must be between ${MAX_PAGES_RANGE.min} and ${MAX_PAGES_RANGE.max}`);
  }
  return maxPages;
}

/** Refuses what cannot work here before touching the kernel, each with one clear line. */
export function precheckSource(source: SourceChoice): void {
  if (!btfFact().present) {
    throw new UserError('no kernel BTF (/sys/kernel/btf/vmlinux): the CO-RE sampler cannot load (kernel needs CONFIG_DEBUG_INFO_BTF)', 'no-btf');
  }
  if (source === 'pebs' || source === 'ibs') {
    const pmu = detectPmu();
    const wanted = source === 'pebs' ? 'intel' : 'amd-ibs';
    if (pmu.kind !== wanted) {
      throw new UserError(
        `source ${source} needs ${source === 'pebs' ? 'an Intel PMU with PEBS' : 'AMD IBS (ibs_op PMU)'}, this machine has ${pmu.kind === 'none' ? 'none' : pmu.kind}: ${pmu.detail} (try --source faults or damon)`,
        'no-pmu',
      );
    }
  }
  if (process.getuid?.() !== 0 && !hasBpfCapabilities()) {
    throw new UserError('permission denied: recording needs root (or CAP_BPF + CAP_PERFMON)', 'permission');
  }
}

function hasBpfCapabilities(): boolean {
  try {
    const hex = /CapEff:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
    const caps = BigInt(`0x${hex}`);
    const has = (bit: number) => ((caps >> BigInt(bit)) & 1n) === 1n;
    return has(21) || (has(38) && has(39)); // CAP_SYS_ADMIN, or CAP_PERFMON + CAP_BPF
  } catch {
    return false;
  }
}

/** Turns the sampler's and the kernel's errors into one line with a kind. */
export function explainError(err: unknown): unknown {
  if (err instanceof UserError || err instanceof InputError) return err;
  const e = err as { code?: string; message?: string; name?: string; syscall?: string };
  const message = e?.message ?? String(err);
  if (e?.code === 'damon-busy') return new UserError(message, 'damon-busy');
  if (e?.code === 'damon-unavailable') return new UserError(message, 'no-damon');
  if (e?.code === 'source-unavailable') return new UserError(message, /pmu|pebs|ibs/i.test(message) ? 'no-pmu' : 'source-unavailable');
  if (e?.code === 'target-gone') return new UserError(message, 'target-gone');
  if (e?.code === 'EPERM' || e?.code === 'EACCES') {
    return new UserError(`permission denied${e.syscall ? ` in ${e.syscall}` : ''}: recording needs root (or CAP_BPF + CAP_PERFMON): ${message}`, 'permission');
  }
  return err;
}

export interface StartedSampler {
  sampler: Sampler;
  source: Exclude<SourceChoice, 'auto'>;
  why?: string;
}

/** Resolves 'auto', checks what this machine can do, starts the sampler. */
export async function startSampler(setup: SamplerSetup, pid: number | undefined): Promise<StartedSampler> {
  let source = setup.source;
  let why: string | undefined;
  let damonMode = setup.damonMode;
  if (source === 'auto') {
    const pick = recommendSource();
    source = pick.source as SourceChoice;
    why = pick.why;
    if (pick.damonMode && damonMode === 'auto') damonMode = pick.damonMode;
  }
  precheckSource(source);
  try {
    const sampler = await Sampler.start({
      source: source as Exclude<SourceChoice, 'auto'>,
      pid,
      samplePeriod: setup.samplePeriod,
      cpuBudget: setup.cpuBudget ?? undefined,
      damon: { mode: damonMode },
      epochMs: setup.epochMs,
      maxPages: setup.maxPages,
      verbose: setup.verbose,
    });
    return { sampler, source: source as Exclude<SourceChoice, 'auto'>, why };
  } catch (err) {
    throw explainError(err);
  }
}

/** The process page sources follow: `--pid PID`, or a command given after `--`. */
export interface TargetChoice {
  pid?: number;
  command: string[];
}

/** Declares the target of guest record and guest run: `[command...]` after `--`, and `--pid`. */
export function addTargetOptions(cmd: Command, verb: string): Command {
  return cmd
    .argument('[command...]', `command to start (paused until the sampler is attached) and ${verb}, after --; page sources follow that process, not its children (vtier workload runs the workload binary in that process); vtier on PATH is this CLI`)
    .option('--pid <pid>', `${verb} an existing process`);
}

/** Checks `--pid` / `-- CMD` (one of them at most; the pid must be alive). */
export function parseTarget(pidText: string | undefined, command: string[]): TargetChoice {
  if (pidText === undefined) return { command };
  if (command.length) throw new InputError('give either --pid or a command after --, not both');
  const pid = parsePositiveInt(pidText, '--pid');
  if (!processAlive(pid)) throw new UserError(`no process with pid ${pid}`, 'target-gone');
  return { pid, command };
}

/**
 * What to exec for `command` so that its pid is the process touching memory: `vtier workload
 * ARGS` is the workload binary with the same options (the CLI would run it as a child, whose
 * page accesses a pid filter does not see); anything else as given.
 */
export function targetArgv(command: string[]): string[] {
  if (command.length >= 2 && basename(command[0]) === 'vtier' && command[1] === 'workload') {
    const parsed = new Command('workload').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
    parsed.argument('<pattern>').option('--json');
    addOptions(parsed, workloadCliOptions());
    parsed.allowExcessArguments(false).action(() => {});
    try {
      parsed.parse(command.slice(2), { from: 'user' });
    } catch (err) {
      throw new InputError(`${command.join(' ')}: ${(err as Error).message.replace(/^error: /, '')}`);
    }
    const opts = parseWorkloadOptions(String(parsed.args[0]), parsed.opts() as Parameters<typeof parseWorkloadOptions>[1]);
    return [workloadBinary(), ...workloadArgs(opts)];
  }
  return command;
}

/** Starts `command` stopped (sh stops itself, then execs: the pid stays the same), with
 *  `vtier` on its PATH (the shim eval campaigns use). */
export async function spawnPaused(command: string[]): Promise<ChildProcess> {
  const argv = targetArgv(command);
  // The workload binary's stdout is its event stream for startWorkload(), not for people.
  const stdout = argv[0] === workloadBinary() && argv !== command ? 'ignore' : 2;
  const child = spawn('sh', ['-c', 'kill -STOP $$ && exec "$@"', 'vtier-target', ...argv], { stdio: ['ignore', stdout, 2], env: withVtierOnPath() });
  const pid = child.pid;
  if (pid === undefined) throw new UserError(`cannot start ${command[0]}`, 'target-failed');
  for (let i = 0; i < 500; i++) {
    let state = '';
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    } catch {
      break;
    }
    if (state === 'T') return child;
    await new Promise((r) => setTimeout(r, 2));
  }
  child.kill('SIGKILL');
  throw new UserError(`cannot start ${command[0]} paused`, 'target-failed');
}

/** mkdir -p without Node's recursive mode, which spins forever under /proc. */
function makeDirs(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d); d = dirname(d)) {
    missing.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing) {
    try {
      mkdirSync(d);
    } catch (err) {
      throw new UserError(`cannot create ${dir}: ${(err as Error).message}`, 'io');
    }
  }
}

interface RecordCliOptions extends OutputOptions {
  source: string;
  damonMode: string;
  pid?: string;
  duration: string;
  out: string;
  epoch: string;
  samplePeriod?: string;
  cpuBudget?: string;
  maxPages?: string;
  workload: string;
  size: string;
  thp: boolean;
  truth?: string;
  verbose?: boolean;
}

export function parseSetup(o: { source: string; damonMode: string; epoch: string; samplePeriod?: string; cpuBudget?: string; maxPages?: string; verbose?: boolean }): SamplerSetup {
  if (!SOURCES.includes(o.source as SourceChoice)) {
    throw new UserError(`unknown source "${o.source}" (auto, damon, faults, pebs, ibs)`, 'bad-input', 2);
  }
  if (!DAMON_MODE_CHOICES.includes(o.damonMode as never)) {
    throw new UserError(`unknown --damon-mode "${o.damonMode}" (auto, own, observe)`, 'bad-input', 2);
  }
  const epochMs = parseDurationMs(o.epoch, '--epoch');
  if (epochMs < 10 || epochMs > 60_000) throw new InputError('--epoch: must be between 10ms and 60s');
  const maxPages = parseMaxPages(o.maxPages);
  return {
    source: o.source as SourceChoice,
    damonMode: o.damonMode as SamplerSetup['damonMode'],
    epochMs,
    samplePeriod: o.samplePeriod === undefined ? undefined : parsePositiveInt(o.samplePeriod, '--sample-period'),
    cpuBudget: o.cpuBudget === undefined ? undefined : parseCpuBudget(o.cpuBudget),
    maxPages,
    verbose: o.verbose,
  };
}

/** What the summary says about samples the aggregation map could not take and CPUs not sampled. */
export function lossLines(stats: { samples: number; mapFull?: number; earlyDrains?: number; perfCpus?: PerfCpuStats }, tunables: Record<string, unknown>): string[] {
  const lines: string[] = [];
  const cap = typeof tunables.maxPages === 'number' ? tunables.maxPages : undefined;
  if (stats.mapFull) {
    const pct = stats.samples > 0 ? ` (${((100 * stats.mapFull) / stats.samples).toFixed(1)}% of samples)` : '';
    lines.push(`  LOST ${stats.mapFull} samples${pct}: the aggregation map (${cap ?? '?'} pages) was full; raise --max-pages or shorten --epoch`);
  }
  if (stats.earlyDrains) lines.push(`  the map filled past ${Math.round(EARLY_DRAIN_FILL * 100)}% ${stats.earlyDrains} time${stats.earlyDrains === 1 ? '' : 's'} and was drained before the epoch ended`);
  const cpus = stats.perfCpus;
  for (const f of cpus?.failed ?? []) lines.push(`  NOT SAMPLED cpu ${f.cpu}: ${f.message}`);
  if (cpus && (cpus.onlined || cpus.offlined)) {
    lines.push(`  CPU hotplug: ${cpus.onlined} CPU(s) attached as they came online, ${cpus.offlined} dropped going offline; sampling CPUs ${cpus.attached.join(',') || 'none'} at the end`);
  }
  return lines;
}

/** The sample period in force under --cpu-budget (perf sources), one summary line. */
export function periodLines(stats: { period?: PeriodStats }): string[] {
  const p = stats.period;
  if (!p) return [];
  const share = p.lastShare === null ? '' : `, last epoch ${(p.lastShare * 100).toFixed(3)}%`;
  return [
    `  sample period ${p.current} in force (${p.minSeen}-${p.maxSeen} seen, ${p.changes} change${p.changes === 1 ? '' : 's'}; budget ${+(p.budget * 100).toFixed(4)}% of one core${share}; bounds ${p.min}-${p.max})`,
  ];
}

function rate(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : `${Math.round(n)}`;
}

async function record(command: string[], o: RecordCliOptions): Promise<void> {
  const setup = parseSetup(o);
  const durationMs = parseDurationMs(o.duration, '--duration');
  if (durationMs <= 0) throw new InputError('--duration: must be positive');
  const outPath = resolve(o.out);
  const { pid } = parseTarget(o.pid, command);
  if (!WORKLOAD_PATTERNS.includes(o.workload as WorkloadPattern)) throw new InputError(`--workload: unknown pattern "${o.workload}"`);
  const workloadSize = parseSizeBytes(o.size, '--size');
  if (setup.source !== 'auto') precheckSource(setup.source);
  if (setup.source === 'damon' && setup.damonMode === 'own') {
    // Refuse before starting a target: the kernel cannot add a kdamond while one runs.
    const status = damonStatus();
    if (status.busy) throw new UserError(busyMessage(status), 'damon-busy');
  }
  makeDirs(dirname(outPath));

  let started: StartedSampler | undefined;
  let workload: RunningWorkload | undefined;
  let child: ChildProcess | undefined;
  let writer: TraceWriter | undefined;
  let stopReason: 'duration' | 'interrupted' | 'command-exited' | undefined;
  let failure: unknown;
  let wake: () => void = () => {};
  const finishEarly = (err: unknown) => {
    failure ??= err;
    wake();
  };
  const targetLabel: { pid?: number; command?: string[]; workload?: string; truthPath?: string } = {};
  const onSignal = () => {
    stopReason ??= 'interrupted';
    wake();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const startNs = monotonicNs();
  const startTimeMs = Date.now();
  // Attach the writer the moment the sampler runs: page sources drain on their own timer,
  // and the first-touch faults of a target starting up must not go past unheard.
  let header: TraceHeader | undefined;
  const attach = (s: StartedSampler): void => {
    started = s;
    const { sampler, source } = s;
    const info = sampler.describe();
    const host = hostFact();
    const facts: Record<string, Scalar> = {
      kernel: release(),
      hostname: host.hostname,
      cpus: host.cpus,
      memTotalBytes: host.memTotalBytes,
      virtualized: host.virtualized,
      pmu: detectPmu().kind,
      thp: thpFact().enabled,
      vtier: process.env.npm_package_version ?? '0.1.0',
    };
    const tunables: Record<string, Scalar> = {};
    for (const [k, v] of Object.entries(info.tunables ?? {})) {
      if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) tunables[k] = v;
      else if (v !== undefined && v !== null) tunables[k] = JSON.stringify(v);
    }
    header = {
      source,
      damonMode: source === 'damon' ? (info.damonMode as TraceHeader['damonMode']) : undefined,
      pageSize: 4096,
      // DAMON batches follow its aggregation interval, not --epoch.
      epochMs: source === 'damon' && typeof info.tunables?.aggrUs === 'number' ? (info.tunables.aggrUs as number) / 1000 : setup.epochMs,
      tunables,
      ramRanges: info.ramRanges as PageRuns,
      facts,
      startTimeMs,
      startNs,
      target: {
        ...(targetLabel.pid !== undefined ? { pid: targetLabel.pid } : {}),
        ...(targetLabel.command ? { command: targetLabel.command } : {}),
        ...(targetLabel.truthPath ? { truthPath: targetLabel.truthPath } : {}),
      },
    };
    try {
      writer = TraceWriter.open(outPath, header);
    } catch (err) {
      throw new UserError((err as Error).message, 'io');
    }
    sampler.onBatch((tNs: number, samples: PageSamples) => {
      if (failure || !writer) return;
      try {
        writer.writeBatch(tNs, samples);
      } catch (err) {
        finishEarly(err);
      }
    });
    sampler.onError((err: Error) => {
      // A command we started may simply finish; an interrupted run ends as asked.
      if ((err as { code?: string }).code === 'target-gone' && (child || stopReason)) {
        stopReason ??= 'command-exited';
        wake();
      } else finishEarly(err);
    });
  };

  try {
    if (pid !== undefined) {
      targetLabel.pid = pid;
      attach(await startSampler(setup, pid));
    } else if (command.length) {
      child = await spawnPaused(command);
      targetLabel.pid = child.pid;
      targetLabel.command = command;
      attach(await startSampler(setup, child.pid));
      child.kill('SIGCONT');
    } else {
      const truthPath = o.truth ? resolve(o.truth) : `${outPath}.truth`;
      targetLabel.workload = `hotspot ${formatBytes(workloadSize)}${o.thp ? ' THP' : ''}`;
      targetLabel.truthPath = truthPath;
      try {
        workload = await startWorkload({
          pattern: o.workload as WorkloadPattern,
          sizeBytes: workloadSize,
          thp: o.thp,
          truthPath,
          reportMs: 0,
          beforeTouch: async (workloadPid) => {
            targetLabel.pid = workloadPid;
            attach(await startSampler(setup, workloadPid));
          },
        });
      } catch (err) {
        if (err instanceof WorkloadError) throw new UserError(err.message, 'workload-failed');
        throw err;
      }
      targetLabel.workload = `${o.workload} ${formatBytes(workloadSize)}${o.thp ? ' THP' : ''}`;
      targetLabel.pid = workload.pid;
    }
    const { sampler, source } = started!;
    const info = sampler.describe();
    const trace = writer!;
    const head = header!;
    child?.on('exit', () => {
      stopReason ??= 'command-exited';
      wake();
    });
    workload?.done.then(
      () => {
        if (!stopReason) finishEarly(new UserError(`the built-in workload (pid ${workload!.pid}) exited during the recording`, 'target-gone'));
      },
      (err) => finishEarly(new UserError(`the built-in workload failed: ${(err as Error).message}`, 'target-gone')),
    );

    // Wait for the duration, watching the target and printing progress.
    const tty = Boolean(process.stderr.isTTY) && !o.json;
    const progressEveryMs = tty ? 250 : 5000;
    let lastProgress = Date.now();
    let lastSamples = 0;
    const recordStartMs = Date.now();
    const deadline = recordStartMs + durationMs;
    while (!failure && !stopReason) {
      const now = Date.now();
      if (now >= deadline) {
        stopReason = 'duration';
        break;
      }
      if (o.pid !== undefined && pid !== undefined && !processAlive(pid)) {
        failure = new UserError(`target process ${pid} exited after ${((now - recordStartMs) / 1000).toFixed(1)} s`, 'target-gone');
        break;
      }
      if (now - lastProgress >= progressEveryMs) {
        const s = sampler.stats();
        const perSec = ((s.samples - lastSamples) * 1000) / (now - lastProgress);
        const elapsed = (now - recordStartMs) / 1000;
        const line = `recording ${source}: ${rate(perSec)} samples/s, ${s.pagesSeen} pages seen, ${s.drops} drops, ${elapsed.toFixed(1)}/${(durationMs / 1000).toFixed(1)} s`;
        process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
        lastProgress = now;
        lastSamples = s.samples;
      }
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, Math.min(100, Math.max(1, deadline - Date.now())));
      });
    }
    if (tty) process.stderr.write('\r\x1b[K');

    // Stop the sampler first: its final batch lands in the trace.
    await sampler.stop();
    const stats = sampler.stats();
    if (failure) throw failure;
    trace.finish({ samples: stats.samples, pagesSeen: stats.pagesSeen, drops: stats.drops, untranslated: stats.untranslated, endNs: monotonicNs() });
    const workloadSummary = workload ? await workload.stop() : undefined;
    const bytes = statSync(outPath).size;
    const batches = trace.batches;
    // The same description classify, sim --trace and report print for this file.
    const traceSummary = summarizeTrace(readTraceFile(outPath));
    const elapsedS = (Date.now() - recordStartMs) / 1000;
    const data = {
      source,
      damonMode: head.damonMode ?? null,
      why: started!.why ?? null,
      durationS: Number(elapsedS.toFixed(3)),
      stopped: stopReason,
      epochMs: head.epochMs,
      target: { pid: targetLabel.pid ?? null, command: targetLabel.command ?? null, workload: targetLabel.workload ?? null },
      samples: stats.samples,
      pagesSeen: stats.pagesSeen,
      drops: stats.drops,
      mapFull: stats.mapFull ?? 0,
      perfCpus: stats.perfCpus ?? null,
      cpuBudget: info.tunables.cpuBudget ?? null,
      period: stats.period ?? null,
      earlyDrains: stats.earlyDrains ?? 0,
      untranslated: stats.untranslated,
      batches,
      trace: { path: outPath, bytes, summary: traceSummary },
      truthPath: targetLabel.truthPath ?? null,
      workloadAccessesPerSec: workloadSummary?.accessesPerSec ?? null,
      notes: info.notes ?? [],
    };
    printResult(o, data, () =>
      [
        `recorded ${elapsedS.toFixed(1)} s of ${source}${head.damonMode ? ` (${head.damonMode})` : ''} samples from ${
          targetLabel.workload ? `the built-in ${targetLabel.workload} workload (pid ${targetLabel.pid})` : targetLabel.command ? `${targetLabel.command.join(' ')} (pid ${targetLabel.pid})` : `pid ${targetLabel.pid}`
        }${stopReason === 'interrupted' ? ', interrupted' : stopReason === 'command-exited' ? ', command exited' : ''}`,
        `  ${traceLine(outPath, traceSummary)}`,
        `  samples ${stats.samples}, pages seen ${stats.pagesSeen}, drops ${stats.drops}, untranslated ${stats.untranslated}, batches ${batches}; file ${formatBytes(bytes)}`,
        ...lossLines(stats, info.tunables),
        ...periodLines(stats),
        ...(targetLabel.truthPath ? [`  ground truth ${targetLabel.truthPath}`] : []),
        ...(info.notes ?? []).map((n: string) => `  note: ${n}`),
      ].join('\n'),
    );
  } catch (err) {
    // Leave no kernel state and no unmarked trace behind.
    await started?.sampler.stop().catch(() => {});
    let reported = explainError(err);
    if (writer && !writer.error) {
      const reason = reported instanceof Error ? reported.message : String(reported);
      const truncated = writer.abort(reason);
      if (!(reported instanceof UserError) || reported.kind !== 'trace-truncated') {
        reported = new UserError(`${reason}; trace truncated at batch ${truncated.batches}`, reported instanceof UserError ? reported.kind : 'error');
      }
    } else if (err instanceof TraceWriteError) {
      reported = new UserError(err.message, 'trace-truncated');
    }
    throw reported;
  } finally {
    // A truth file without a trace explains nothing: remove the built-in workload's.
    if (!writer && targetLabel.truthPath) rmSync(targetLabel.truthPath, { force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (workload) await workload.stop().catch(() => {});
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGTERM');
    }
  }
}

export function registerGuestRecord(guest: Command): void {
  const cmd = addTargetOptions(guest
    .command('record')
    .description('record page-access samples to a trace file (default target: the built-in hotspot workload)'), 'record')
    .option('--source <source>', 'auto | damon | faults | pebs | ibs', 'auto')
    .option('--damon-mode <mode>', 'damon: auto | own (own kdamond) | observe (an existing kdamond)', 'auto')
    .option('--duration <time>', 'how long to record', '10s')
    .addOption(outOption('trace file to write (directories are created)', 'file').makeOptionMandatory())
    .addOption(epochOption('interval between sample batches'))
    .addOption(samplePeriodOption())
    .addOption(cpuBudgetOption())
    .option('--max-pages <n>', `page sources: aggregation map capacity in pages (${MAX_PAGES_RANGE.min}-${MAX_PAGES_RANGE.max}, default 262144); samples a full map refuses are counted and reported`)
    .option('--workload <pattern>', 'built-in workload when no --pid or command is given', 'hotspot')
    .addOption(sizeOption('built-in workload region size', DEFAULTS.workloadSize))
    .addOption(thpOptions('the built-in workload')[0]).addOption(thpOptions('the built-in workload')[1])
    .option('--truth <file>', 'built-in workload ground truth (default: OUT.truth)')
    .option('--verbose', "libbpf's log on stderr");
  examples(cmd, [
    'vtier guest record --duration 10s --out results/first-run.trace',
    'vtier guest record --source faults --duration 5s --out faults.trace -- sysbench memory --memory-block-size=1G --memory-total-size=20G run',
    'vtier guest record --source damon --damon-mode observe --pid 1234 --duration 30s --out app.trace --json',
    'vtier guest record --source faults --max-pages 1024 --epoch 100ms --duration 5s --out small-map.trace',
  ]);
  action<RecordCliOptions>(cmd, async (args, options) => {
    const command = (args[0] as string[] | undefined) ?? [];
    await record(command, options);
  });
}
