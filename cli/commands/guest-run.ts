// `vtier guest run`: the guest agent. Samples (or replays a trace), classifies, sends
// decisions to the host agent and applies its budget and reports, with a live status line.
import type { Command } from 'commander';
import { action, examples } from '../command.js';
import { UserError, printResult, type OutputOptions } from '../output.js';
import type { ChildProcess } from 'node:child_process';
import { GuestAgent, NOT_MOVED_REASONS, classifierDefaultsFor, formatStatusLine, type GuestStatus } from '../../guest-agent/run.js';
import { ReplaySource, type GuestSampleSource } from '../../guest-agent/replay-source.js';
import { SOURCE_NAMES, Sampler, SamplerError, type SourceName } from '../../guest-agent/sampler.js';
import { parseTransportSpec } from '../../transport/spec.js';
import { InputError, parseDurationMs } from '../../src/util/units.js';
import { cpuBudgetOption, dramBudgetOption, parseDramBytes } from '../options.js';
import { parseCpuBudget } from '../../src/sampling/period.js';
import { totalPages } from '../../src/samples.js';
import { TraceFormatError } from '../../src/trace/index.js';
import type { PageRuns } from '../../src/samples.js';
import type { SourceStats } from '../../guest-agent/sources/common.js';
import { addTargetOptions, lossLines, periodLines, MAX_PAGES_RANGE, parseMaxPages, parseTarget, spawnPaused } from './guest-record.js';
import { processAlive } from '../../guest-agent/pagemap.js';

interface GuestRunOptions extends OutputOptions {
  connect: string;
  source: string;
  epoch?: string;
  dramBudget?: string;
  duration?: string;
  speed: string;
  vmName?: string;
  quiet?: boolean;
  statusEvery: string;
  maxPages?: string;
  cpuBudget: string;
  pid?: string;
}

interface OpenedSource {
  source: GuestSampleSource;
  name: string;
  ramRanges: PageRuns;
  epochMs?: number;
  replay?: ReplaySource;
  sampler?: Sampler;
}

function parseSpeed(text: string): number {
  if (text === 'max') return Infinity;
  const speed = Number(text);
  if (!(speed > 0) || !Number.isFinite(speed)) throw new InputError(`speed: expected a positive number or "max", got "${text}"`);
  return speed;
}

async function openSource(spec: string, speed: number, epochMs: number | undefined, maxPages?: number, pid?: number, cpuBudget?: number): Promise<OpenedSource> {
  if (spec.startsWith('replay:')) {
    if (pid !== undefined) throw new InputError('--pid and -- CMD need a live source: a replayed trace has no target process');
    const path = spec.slice('replay:'.length);
    if (!path) throw new InputError('source: replay needs a trace path (replay:PATH)');
    let replay: ReplaySource;
    try {
      replay = ReplaySource.open(path, { speed });
    } catch (err) {
      if (err instanceof TraceFormatError) throw new UserError(`${path}: ${err.message}`, 'bad-trace', 2);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`${path}: no such trace file`, 'bad-input', 2);
      throw err;
    }
    return { source: replay, name: 'replay', ramRanges: replay.ramRanges, epochMs: replay.epochMs, replay };
  }
  if (spec !== 'auto' && !SOURCE_NAMES.includes(spec as SourceName)) {
    throw new InputError(`source: expected auto, ${SOURCE_NAMES.join(', ')} or replay:TRACE, got "${spec}"`);
  }
  // Page sources drain once per classifier epoch; DAMON batches follow its aggregation interval.
  let sampler: Sampler;
  try {
    sampler = await Sampler.start({ source: spec as SourceName | 'auto', epochMs: Math.max(10, epochMs ?? 500), maxPages, pid, cpuBudget });
  } catch (err) {
    if (err instanceof SamplerError) throw new UserError(err.message, err.code, err.code === 'bad-input' ? 2 : 1);
    throw err;
  }
  const description = sampler.describe();
  return { source: sampler, name: description.source, ramRanges: description.ramRanges, sampler };
}

/** The summary's counters: one line each, the same numbers as the JSON (GuestStatus). */
export function counterLines(s: GuestStatus): string[] {
  const notMoved = NOT_MOVED_REASONS.filter((r) => s.failed[r] > 0).map((r) => `${r} ${s.failed[r]}`);
  return [
    `  decisions sent ${s.decisionsSent}, unsent ${s.decisionsUnsent}, deferred ${s.decisionsDeferred}, lost ${s.decisionsLost}; reports ${s.reports}`,
    `  pages requested: promote ${s.pagesRequested.promote}, demote ${s.pagesRequested.demote}`,
    `  pages moved: promote ${s.moved.promote}, demote ${s.moved.demote}`,
    `  pages already in place: promote ${s.alreadyInPlace.promote}, demote ${s.alreadyInPlace.demote}`,
    `  pages not moved: ${notMoved.length ? notMoved.join(', ') : 'none'}`,
    ...(s.notTargetPages ? [`  pages left out (not the target process's): ${s.notTargetPages}`] : []),
  ];
}

export function registerGuestRun(guest: Command): void {
  const cmd = addTargetOptions(guest
    .command('run')
    .description('run the guest agent: sample, classify, send decisions to the host agent, apply its budget and reports'), 'follow')
    .requiredOption('--connect <spec>', 'host agent address: vsock:2:PORT, unix:PATH, tcp:HOST:PORT or serial:/dev/virtio-ports/NAME')
    .option('--source <source>', 'sample source: auto, damon, faults, pebs, ibs, or replay:TRACE', 'auto')
    .option('--epoch <duration>', 'classifier epoch (default 500ms, or the trace epoch in replay mode)')
    .addOption(dramBudgetOption('--dram-budget', 'DRAM to plan for until the host grants a budget (share: of the guest RAM)'))
    .option('--duration <duration>', 'stop after this long (default: until SIGINT/SIGTERM, or the end of a replayed trace)')
    .option('--speed <factor>', 'replay pace: 1 = as recorded, 10 = ten times faster, max = no waiting (playback starts once a budget is known)', '1')
    .option('--vm-name <name>', 'name this guest claims (the host checks it against the transport identity)')
    .option('--status-every <duration>', 'status line period when stderr is not a terminal', '5s')
    .option('--max-pages <n>', `page sources: aggregation map capacity in pages (${MAX_PAGES_RANGE.min}-${MAX_PAGES_RANGE.max}, default 262144); refused samples are counted and reported`)
    .addOption(cpuBudgetOption())
    .option('-q, --quiet', 'no live status line');
  examples(cmd, [
    'vtier guest run --connect vsock:2:7070 --source damon',
    'vtier guest run --connect serial:/dev/virtio-ports/vtier --epoch 1s --dram-budget 2G',
    'vtier guest run --connect unix:/tmp/vtier-vm1.sock --source replay:run.trace --speed 10 --json',
    'vtier guest run --connect unix:/tmp/vtier-local.sock --source faults --duration 30s -- vtier workload hotspot --size 1G',
  ]);
  action<GuestRunOptions>(cmd, async (args, options) => {
    const connect = parseTransportSpec(options.connect);
    const speed = parseSpeed(options.speed);
    const requestedEpochMs = options.epoch ? parseDurationMs(options.epoch, 'epoch') : undefined;
    if (requestedEpochMs !== undefined && requestedEpochMs < 1) throw new InputError('epoch: must be at least 1ms');
    // A share needs the guest RAM, known once the source is open: check the value now.
    const budgetOf = (ramBytes: number | null) => (options.dramBudget ? Math.floor(parseDramBytes(options.dramBudget, ramBytes, '--dram-budget') / 4096) : undefined);
    const budgetIsShare = options.dramBudget?.includes('%') ?? false;
    const earlyBudget = budgetOf(budgetIsShare ? 1 << 30 : null); // a share: its range only
    if (earlyBudget === 0 && !budgetIsShare) throw new InputError('--dram-budget: must be at least one page (4K)');
    const durationMs = options.duration ? parseDurationMs(options.duration, 'duration') : undefined;
    const statusEveryMs = parseDurationMs(options.statusEvery, 'status period');
    const maxPages = parseMaxPages(options.maxPages);
    const cpuBudget = parseCpuBudget(options.cpuBudget) ?? undefined;
    const target = parseTarget(options.pid, (args[0] as string[] | undefined) ?? []);
    if (target.command.length && options.source.startsWith('replay:')) throw new InputError('--pid and -- CMD need a live source: a replayed trace has no target process');
    // Last: a live source changes kernel state, so every argument is checked before it starts.
    // A command starts paused, so the sampler sees its first touches.
    let child: ChildProcess | undefined;
    const killChild = () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGTERM');
      }
    };
    let opened: OpenedSource;
    try {
      if (target.command.length) child = await spawnPaused(target.command);
      opened = await openSource(options.source, speed, requestedEpochMs, maxPages, target.pid ?? child?.pid, cpuBudget);
    } catch (err) {
      killChild();
      throw err;
    }
    const epochMs = requestedEpochMs ?? opened.epochMs ?? 500;
    const dramBudgetPages = budgetOf(totalPages(opened.ramRanges) * 4096);
    if (dramBudgetPages === 0) {
      await opened.source.stop();
      killChild();
      throw new InputError('--dram-budget: must be at least one page (4K)');
    }

    let agent: GuestAgent;
    try {
      agent = new GuestAgent({
        connect,
        source: opened.source,
        sourceName: opened.name,
        ramRanges: opened.ramRanges,
        epochMs,
        dramBudgetPages,
        vmName: options.vmName,
        sampledFramesOnly: target.pid !== undefined || target.command.length > 0,
        // A replayed trace is classified as its recorded source would be (DAMON: per-aggregation cooling).
        ...(opened.replay ? { classifier: classifierDefaultsFor(opened.replay.recordedSource) } : {}),
      });
    } catch (err) {
      await opened.source.stop();
      killChild();
      throw err;
    }

    const tty = process.stderr.isTTY;
    const showStatus = !options.quiet;
    const printStatus = (final = false) => {
      if (!showStatus) return;
      const line = formatStatusLine(agent.status());
      if (tty) process.stderr.write(`\r\x1b[K${line}${final ? '\n' : ''}`);
      else process.stderr.write(`${line}\n`);
    };

    const finalStatus = await new Promise<GuestStatus>((resolve) => {
      let stopping = false;
      const timers: NodeJS.Timeout[] = [];
      const stop = async (reason: string) => {
        if (stopping) return;
        stopping = true;
        timers.forEach((t) => clearTimeout(t));
        clearInterval(statusTimer);
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        const status = await agent.stop(2000);
        printStatus(true);
        resolve({ ...status, stopReason: reason } as GuestStatus);
      };
      const onSignal = (signal: NodeJS.Signals) => void stop(signal);
      // The target's end ends the run (its last batch is still decided on).
      let targetDone = false;
      child?.on('exit', () => {
        targetDone = true;
        void stop('command-exited');
      });
      if (target.pid !== undefined) {
        const watch = setInterval(() => {
          if (processAlive(target.pid!)) return;
          targetDone = true;
          void stop('target-exited');
        }, 200);
        timers.push(watch);
      }
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const statusTimer = setInterval(() => printStatus(), tty ? 1000 : statusEveryMs);
      if (durationMs !== undefined) timers.push(setTimeout(() => void stop('duration'), durationMs));
      if (opened.replay && durationMs === undefined) {
        opened.replay.onEnd(async () => {
          // Decide on the last batches, then give the host a moment to report.
          agent.runEpoch();
          await agent.drain(2000);
          void stop('trace-end');
        });
      }
      opened.sampler?.onError((err) => {
        if (targetDone || ((err as { code?: string }).code === 'target-gone' && (child || target.pid !== undefined))) {
          void stop(child ? 'command-exited' : 'target-exited');
          return;
        }
        if (showStatus) process.stderr.write(`${tty ? '\n' : ''}vtier: sampler stopped: ${err.message}\n`);
        void stop('sampler-error');
      });
      agent.start();
      // A replay waits for its budget (host grant or --dram-budget) so a run against a host
      // is reproducible: no batch is classified before the grant is known.
      if (opened.replay && dramBudgetPages === undefined) agent.once('budget', () => opened.replay!.start());
      else opened.replay?.start();
      child?.kill('SIGCONT');
    });
    killChild();

    if ((finalStatus as GuestStatus & { stopReason: string }).stopReason === 'sampler-error') process.exitCode = 1;
    const targetInfo = { pid: target.pid ?? child?.pid ?? null, command: target.command.length ? target.command : null };
    const notes = opened.sampler?.describe().notes ?? [];
    printResult(options, { source: opened.source.describe(), sourceStats: opened.source.stats(), target: targetInfo, ...finalStatus }, () => {
      const s = finalStatus;
      const lines = [
        `guest agent stopped (${(s as GuestStatus & { stopReason: string }).stopReason})`,
        ...(targetInfo.pid !== null ? [`  target ${targetInfo.command ? `${targetInfo.command.join(' ')} (pid ${targetInfo.pid})` : `pid ${targetInfo.pid}`}`] : []),
        `  epochs ${s.epoch}, samples ${s.samples} in ${s.sampleRuns} runs`,
        ...counterLines(s),
        `  budget ${s.budgetPages ?? 'none'} pages (${s.budgetFrom}); host connects ${s.connects}`,
      ];
      lines.push(...lossLines(opened.source.stats() as SourceStats, opened.sampler?.describe().tunables ?? {}));
      lines.push(...periodLines(opened.source.stats() as SourceStats));
      for (const note of notes) lines.push(`  note: ${note}`);
      for (const note of s.hostNotes) lines.push(`  host: ${note}`);
      return lines.join('\n');
    });
  });
}
