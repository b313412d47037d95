// `vtier workload <pattern>`: the built-in memory workload with a known hot set.
import { Option, type Command } from 'commander';
import { resolve } from 'node:path';
import { action, examples } from '../command.js';
import { addOptions, hotFracOption, hotProbOption, shiftEveryOption, sizeOption, thpOptions } from '../options.js';
import { printResult, UserError, type OutputOptions } from '../output.js';
import { formatBytes, InputError, parseDurationMs, parseFraction, parsePositiveInt, parseSizeBytes } from '../../src/util/units.js';
import { startWorkload, WORKLOAD_PATTERNS, WorkloadError, type WorkloadOptions, type WorkloadPattern } from '../../guest-agent/workload.js';

interface WorkloadCliOptions extends OutputOptions {
  size: string;
  hotFrac?: string;
  hotProb?: string;
  writeFrac?: string;
  zipfS?: string;
  duration?: string;
  thp?: boolean;
  truth?: string;
  seed?: string;
  shiftEvery?: string;
  threads?: string;
}

/** Turns the command-line options into WorkloadOptions (throws InputError on bad input). */
export function parseWorkloadOptions(pattern: string, o: WorkloadCliOptions): WorkloadOptions {
  if (!WORKLOAD_PATTERNS.includes(pattern as WorkloadPattern)) {
    throw new InputError(`unknown pattern "${pattern}" (uniform, hotspot, zipf, shift)`);
  }
  const sizeBytes = parseSizeBytes(o.size, '--size');
  if (sizeBytes < 8192) throw new InputError('--size: must be at least 8K');
  const opts: WorkloadOptions = { pattern: pattern as WorkloadPattern, sizeBytes };
  if (o.hotFrac !== undefined) {
    opts.hotFrac = parseFraction(o.hotFrac, '--hot-frac');
    if (opts.hotFrac === 0) throw new InputError('--hot-frac: must be above 0');
  }
  if (o.hotProb !== undefined) opts.hotProb = parseFraction(o.hotProb, '--hot-prob');
  if (o.writeFrac !== undefined) opts.writeFrac = parseFraction(o.writeFrac, '--write-frac');
  if (o.zipfS !== undefined) {
    opts.zipfS = Number(o.zipfS);
    if (!/^\s*\d*\.?\d+\s*$/.test(o.zipfS) || !(opts.zipfS > 0 && opts.zipfS <= 5)) throw new InputError(`--zipf-s: "${o.zipfS}" is not in (0, 5]`);
  }
  if (o.duration !== undefined) opts.durationMs = parseDurationMs(o.duration, '--duration');
  if (o.shiftEvery !== undefined) {
    opts.shiftEveryMs = parseDurationMs(o.shiftEvery, '--shift-every');
    if (opts.shiftEveryMs < 1) throw new InputError('--shift-every: must be at least 1ms');
  }
  if (o.threads !== undefined) {
    opts.threads = parsePositiveInt(o.threads, '--threads');
    if (opts.threads > 256) throw new InputError('--threads: at most 256');
  }
  if (o.seed !== undefined) {
    opts.seed = Number(o.seed);
    if (!/^\s*\d+\s*$/.test(o.seed) || !Number.isSafeInteger(opts.seed)) throw new InputError(`--seed: "${o.seed}" is not a non-negative integer`);
  }
  if (o.truth !== undefined) opts.truthPath = resolve(o.truth);
  if (o.thp) opts.thp = true;
  return opts;
}

/** The options of `vtier workload` (also parsed by guest record/run for a `-- vtier workload` target). */
export function workloadCliOptions(): Option[] {
  return [
    sizeOption('region size (512M, 2G)').makeOptionMandatory(), hotFracOption('fraction of the region that is hot (hotspot, shift; zipf: top ranks counted as hot)'), hotProbOption(),
    ...thpOptions('the region'), shiftEveryOption('shift pattern: move the hot set this often'),
    new Option('--write-frac <fraction>', 'fraction of accesses that are writes').default('0.3'),
    new Option('--zipf-s <exponent>', 'zipf exponent').default('0.99'),
    new Option('--duration <time>', 'stop after this long (20s, 2m); default: until interrupted'),
    new Option('--truth <file>', 'write the ground truth (page frames and access shares), rewritten when the hot set moves'),
    new Option('--seed <n>', 'random seed (hot block position, access stream)').default('1'),
    new Option('--threads <n>', 'worker threads').default('1'),
  ];
}

export function registerWorkload(program: Command): void {
  const cmd = addOptions(program
    .command('workload')
    .description('run the built-in memory workload with a known access distribution (ground truth for samplers)')
    .argument('<pattern>', 'uniform | hotspot | zipf | shift'),
    workloadCliOptions());
  examples(cmd, [
    'vtier workload hotspot --size 2G --hot-frac 0.1 --hot-prob 0.9 --duration 20s',
    'vtier workload zipf --size 1G --thp --truth /tmp/zipf.truth --duration 30s',
    'vtier workload shift --size 1G --shift-every 5s --truth /tmp/shift.truth --json',
  ]);
  action<WorkloadCliOptions>(cmd, async (args, options) => {
    const opts = parseWorkloadOptions(String(args[0]), options);
    opts.onProgress = (line) => process.stderr.write(`${line}\n`);
    let running;
    try {
      running = await startWorkload(opts);
    } catch (err) {
      if (err instanceof WorkloadError) throw new UserError(err.message, 'workload-failed');
      throw err;
    }
    const forward = (signal: NodeJS.Signals) => () => void running.stop(signal);
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    let summary;
    try {
      summary = await running.done;
    } catch (err) {
      throw new UserError((err as Error).message, 'workload-failed');
    } finally {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    }
    const data = {
      pattern: opts.pattern,
      sizeBytes: opts.sizeBytes,
      thp: Boolean(opts.thp),
      pid: running.pid,
      pages: running.ready.pages,
      hotPages: running.ready.hotPages,
      touchMs: summary.touchMs,
      accesses: summary.accesses,
      seconds: summary.seconds,
      accessesPerSec: summary.accessesPerSec,
      generation: summary.generation,
      threads: summary.threads,
      truthPath: opts.truthPath ?? null,
    };
    printResult(options, data, () =>
      `${opts.pattern} over ${formatBytes(opts.sizeBytes)}${opts.thp ? ' (THP)' : ''}: ${(summary.accesses / 1e6).toFixed(1)} M accesses in ` +
        `${summary.seconds.toFixed(1)} s = ${(summary.accessesPerSec / 1e6).toFixed(2)} M accesses/s; first touch ${summary.touchMs} ms` +
        `${opts.truthPath ? `; truth ${opts.truthPath} (generation ${summary.generation})` : ''}`,
    );
  });
}
