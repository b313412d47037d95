// `vtier guest run`: the guest agent. Samples (or replays a trace), classifies, sends
// decisions to the host agent and applies its budget and reports, with a live status line.
import type { Command } from 'commander';
import { action, examples } from '../command.js';
import { UserError, printResult, type OutputOptions } from '../output.js';
import { GuestAgent, classifierDefaultsFor, formatStatusLine, type GuestStatus } from '../../guest-agent/run.js';
import { ReplaySource, type GuestSampleSource } from '../../guest-agent/replay-source.js';
import { SOURCE_NAMES, Sampler, SamplerError, type SourceName } from '../../guest-agent/sampler.js';
import { parseTransportSpec } from '../../transport/spec.js';
import { InputError, parseDurationMs, parseSizeBytes } from '../../src/util/units.js';
import { TraceFormatError } from '../../src/trace/index.js';
import type { PageRuns } from '../../src/samples.js';
import type { SourceStats } from '../../guest-agent/sources/common.js';
import { lossLines, MAX_PAGES_RANGE, parseMaxPages } from './guest-record.js';

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

async function openSource(spec: string, speed: number, epochMs: number | undefined, maxPages?: number): Promise<OpenedSource> {
  if (spec.startsWith('replay:')) {
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
    sampler = await Sampler.start({ source: spec as SourceName | 'auto', epochMs: Math.max(10, epochMs ?? 500), maxPages });
  } catch (err) {
    if (err instanceof SamplerError) throw new UserError(err.message, err.code, err.code === 'bad-input' ? 2 : 1);
    throw err;
  }
  const description = sampler.describe();
  return { source: sampler, name: description.source, ramRanges: description.ramRanges, sampler };
}

export function registerGuestRun(guest: Command): void {
  const cmd = guest
    .command('run')
    .description('run the guest agent: sample, classify, send decisions to the host agent, apply its budget and reports')
    .requiredOption('--connect <spec>', 'host agent address: vsock:2:PORT, unix:PATH, tcp:HOST:PORT or serial:/dev/virtio-ports/NAME')
    .option('--source <source>', 'sample source: auto, damon, faults, pebs, ibs, or replay:TRACE', 'auto')
    .option('--epoch <duration>', 'classifier epoch (default 500ms, or the trace epoch in replay mode)')
    .option('--dram-budget <size>', 'DRAM to plan for until the host grants a budget (e.g. 2G)')
    .option('--duration <duration>', 'stop after this long (default: until SIGINT/SIGTERM, or the end of a replayed trace)')
    .option('--speed <factor>', 'replay pace: 1 = as recorded, 10 = ten times faster, max = no waiting (playback starts once a budget is known)', '1')
    .option('--vm-name <name>', 'name this guest claims (the host checks it against the transport identity)')
    .option('--status-every <duration>', 'status line period when stderr is not a terminal', '5s')
    .option('--max-pages <n>', `page sources: aggregation map capacity in pages (${MAX_PAGES_RANGE.min}-${MAX_PAGES_RANGE.max}, default 262144); refused samples are counted and reported`)
    .option('-q, --quiet', 'no live status line');
  examples(cmd, [
    'vtier guest run --connect vsock:2:7070 --source damon',
    'vtier guest run --connect serial:/dev/virtio-ports/vtier --epoch 1s --dram-budget 2G',
    'vtier guest run --connect unix:/tmp/vtier-vm1.sock --source replay:run.trace --speed 10 --json',
  ]);
  action<GuestRunOptions>(cmd, async (_args, options) => {
    const connect = parseTransportSpec(options.connect);
    const speed = parseSpeed(options.speed);
    const requestedEpochMs = options.epoch ? parseDurationMs(options.epoch, 'epoch') : undefined;
    if (requestedEpochMs !== undefined && requestedEpochMs < 1) throw new InputError('epoch: must be at least 1ms');
    const dramBudgetPages = options.dramBudget ? Math.floor(parseSizeBytes(options.dramBudget, 'dram budget') / 4096) : undefined;
    if (dramBudgetPages === 0) throw new InputError('dram budget: must be at least one page (4K)');
    const durationMs = options.duration ? parseDurationMs(options.duration, 'duration') : undefined;
    const statusEveryMs = parseDurationMs(options.statusEvery, 'status period');
    const maxPages = parseMaxPages(options.maxPages);
    // Last: a live source changes kernel state, so every argument is checked before it starts.
    const opened = await openSource(options.source, speed, requestedEpochMs, maxPages);
    const epochMs = requestedEpochMs ?? opened.epochMs ?? 500;

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
        // A replayed trace is classified as its recorded source would be (DAMON: per-aggregation cooling).
        ...(opened.replay ? { classifier: classifierDefaultsFor(opened.replay.recordedSource) } : {}),
      });
    } catch (err) {
      await opened.source.stop();
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
        const status = await agent.stop();
        printStatus(true);
        resolve({ ...status, stopReason: reason } as GuestStatus);
      };
      const onSignal = (signal: NodeJS.Signals) => void stop(signal);
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
        if (showStatus) process.stderr.write(`${tty ? '\n' : ''}vtier: sampler stopped: ${err.message}\n`);
        void stop('sampler-error');
      });
      agent.start();
      // A replay waits for its budget (host grant or --dram-budget) so a run against a host
      // is reproducible: no batch is classified before the grant is known.
      if (opened.replay && dramBudgetPages === undefined) agent.once('budget', () => opened.replay!.start());
      else opened.replay?.start();
    });

    if ((finalStatus as GuestStatus & { stopReason: string }).stopReason === 'sampler-error') process.exitCode = 1;
    printResult(options, { source: opened.source.describe(), sourceStats: opened.source.stats(), ...finalStatus }, () => {
      const s = finalStatus;
      const lines = [
        `guest agent stopped (${(s as GuestStatus & { stopReason: string }).stopReason})`,
        `  epochs ${s.epoch}, samples ${s.samples} in ${s.sampleRuns} runs`,
        `  decisions sent ${s.decisionsSent}, unsent ${s.decisionsUnsent}; pages requested: promote ${s.pagesRequested.promote}, demote ${s.pagesRequested.demote}`,
        `  reports ${s.reports}: moved promote ${s.moved.promote}, demote ${s.moved.demote}; failed ${JSON.stringify(s.failed)}`,
        `  budget ${s.budgetPages ?? 'none'} pages (${s.budgetFrom}); host connects ${s.connects}`,
      ];
      lines.push(...lossLines(opened.source.stats() as SourceStats, opened.sampler?.describe().tunables ?? {}));
      for (const note of s.hostNotes) lines.push(`  host: ${note}`);
      return lines.join('\n');
    });
  });
}
