// `vtier eval ...`: evaluation campaigns. Each writes a results directory (raw JSON, tidy CSV,
// command and machine facts, DONE marker last) and an HTML report inside it.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { action, examples } from '../command.js';
import { addOptions, DEFAULTS, dramOption, epochOption, hotFracOption, hotProbOption, outOption, parseDramBytes, samplePeriodOption, shiftEveryOption, sizeOption, thpOptions } from '../options.js';
import { printResult, UserError, type OutputOptions } from '../output.js';
import { createProgress, PROGRESS_ENV, type Progress } from '../progress.js';
import { withInterrupt } from '../interrupt.js';
import { InputError, parseDurationMs, parseFraction, parsePositiveInt, parseSizeBytes } from '../../src/util/units.js';
import { ResultsWriter, vtierCommand } from '../../eval/results.js';
import { writeReportFile } from '../../eval/report.js';
import { CampaignAborted, commandWorkload, resolveAgent, runOverhead, stopAllChildren, type OverheadSummary } from '../../eval/overhead.js';
import { checkTieredMachine, REAL_ROOTS, runCompare, SYSTEMS, type SystemName } from '../../eval/compare.js';
import { PRESETS } from '../../eval/presets/index.js';
import { ensureInstalled } from '../../eval/presets/install.js';
import { simObservations } from '../../eval/sim-import.js';
import { captureTail, waitExit } from '../../eval/children.js';
import {
  ACCURACY_PATTERNS,
  AccuracyInterrupted,
  batchCadenceMs,
  DEFAULT_CONVERGE_LEVEL,
  resolvePeriods,
  resolveSource,
  runAccuracyCampaign,
  systemLabel,
  type AccuracyCampaignSummary,
  type AccuracyPattern,
  type ResolvedSource,
} from '../../eval/accuracy.js';
import { SamplerError } from '../../guest-agent/sampler.js';
import { WorkloadError } from '../../guest-agent/workload.js';
import { addLabCompareOptions, registerEvalArm, resolvePromoteRate, runLabCompareCommand, wantsLab, type LabCompareCliOptions } from './eval-lab.js';
import { checkRunLength } from '../../eval/run-length.js';

interface CampaignOptions extends OutputOptions {
  out?: string;
  resultsDir?: string;
  runs?: string;
  warmup?: string;
}

function createResults(campaign: string, options: CampaignOptions, settings: Record<string, unknown>, tools: Record<string, string> = {}): ResultsWriter {
  try {
    return ResultsWriter.create({ campaign, dir: options.out, baseDir: options.resultsDir ?? 'results', settings, tools });
  } catch (err) {
    throw new UserError(`cannot create the results directory: ${(err as Error).message}`, 'io');
  }
}

/** Writes <dir>/report.html; a failure here must not lose the campaign, so it only warns. */
async function writeReport(dir: string, progress: Progress | null): Promise<string | null> {
  try {
    return await writeReportFile(dir);
  } catch (err) {
    progress?.log(`warning: report not written: ${(err as Error).message}`);
    return null;
  }
}


function interrupted(err: unknown, dir: string, unit: string, results?: ResultsWriter): never {
  const pairs = err instanceof CampaignAborted ? err.completedPairs : 0;
  if (results?.discardIfEmpty()) throw new UserError(`interrupted before any run completed; nothing kept (${dir} removed)`, 'interrupted', 130);
  throw new UserError(`interrupted after ${pairs} complete ${unit}; results so far kept in ${dir} (no DONE marker; vtier report ${dir} shows them)`, 'interrupted', 130);
}

function fmtNum(v: number, digits = 3): string {
  return Number.isFinite(v) ? v.toFixed(digits) : 'n/a';
}

interface OverheadCliOptions extends CampaignOptions {
  source?: string;
  preset?: string;
  agentCmd?: string;
}

function registerOverhead(evalCmd: Command): void {
  const cmd = evalCmd
    .command('overhead')
    .description('slowdown of a workload with vs without the guest agent (alternating paired runs, 95% t interval) and the agent CPU time')
    .argument('[command...]', 'the workload command (after --); or use --preset')
    .option('--source <source>', 'sample source for the agent (auto|damon|faults|pebs|ibs)', 'auto')
    .option('--runs <n>', 'paired runs (each = one run without and one with the agent)', '5')
    .option('--preset <name>', `built-in workload: ${Object.keys(PRESETS).join(', ')} (installed on demand)`)
    .option('--warmup <duration>', 'fixed wait before each run, both arms (vtier agents first wait until their BPF programs are attached; --agent-cmd agents get only this)', '500ms')
    .option('--agent-cmd <command>', 'measure another agent: a shell command; {pid} = the workload process, {out} = a file in the results dir')
    .option('-o, --out <dir>', 'results directory (default results/overhead-<timestamp>)')
    .option('--results-dir <dir>', 'parent directory for results', 'results');
  action<OverheadCliOptions>(cmd, async (args, options) => {
    const argv = (args[0] as string[] | undefined) ?? [];
    const runs = parsePositiveInt(options.runs ?? '5', '--runs');
    const warmupMs = parseDurationMs(options.warmup ?? '2s', '--warmup');
    if (options.preset && argv.length > 0) throw new UserError('give either --preset or a command after --, not both', 'bad-input', 2);
    if (!options.preset && argv.length === 0) throw new UserError(`nothing to run: give --preset (${Object.keys(PRESETS).join(', ')}) or -- CMD...`, 'bad-input', 2);
    const preset = options.preset ? PRESETS[options.preset] : undefined;
    if (options.preset && !preset) throw new UserError(`--preset: unknown preset "${options.preset}" (known: ${Object.keys(PRESETS).join(', ')})`, 'bad-input', 2);
    const source = options.source ?? 'auto';
    if (!/^(auto|damon|faults|pebs|ibs)$/.test(source)) throw new UserError(`--source: "${source}" is not one of auto, damon, faults, pebs, ibs`, 'bad-input', 2);
    let agent;
    try {
      agent = resolveAgent(source, options.agentCmd);
    } catch (err) {
      throw new UserError((err as Error).message, 'no-agent');
    }
    const say = (line: string): void => {
      if (!options.json) process.stderr.write(`${line}\n`);
    };
    const installed = preset ? ensureInstalled(preset, say) : [];
    let workload;
    try {
      workload = preset ? await preset.prepare() : commandWorkload(argv);
    } catch (err) {
      throw new UserError((err as Error).message, preset ? 'workload' : 'usage', preset ? 1 : 2);
    }
    const results = createResults(
      'overhead',
      options,
      { runs, warmupMs, source, preset: preset?.name ?? null, workload: workload.name, workloadSettings: workload.settings, agent, installedPackages: installed },
      workload.tools,
    );
    const progress = createProgress({ label: `overhead ${workload.name}`, total: runs * 2, json: options.json });
    let summary: OverheadSummary;
    try {
      summary = await withInterrupt((signal) =>
        runOverhead({ workload, runs, agent, warmupMs, results, signal, onProgress: (done, _total, info) => progress.update(done, info) }),
      );
    } catch (err) {
      progress.stop();
      await stopAllChildren();
      if (err instanceof CampaignAborted) interrupted(err, results.dir, 'pair(s)', results);
      if (results.discardIfEmpty()) throw new UserError(`${(err as Error).message} (no run completed; ${results.dir} removed)`, 'campaign-failed');
      throw new UserError(`${(err as Error).message} (completed runs kept in ${results.dir})`, 'campaign-failed');
    } finally {
      await workload.stop();
    }
    progress.stop();
    results.finish(summary);
    const report = await writeReport(results.dir, null);
    printResult(options, { dir: results.dir, report, ...summary }, () =>
      [
        `workload ${summary.workload}: ${summary.pairs} paired run(s), agent ${agent.kind === 'custom' ? options.agentCmd : `vtier guest record --source ${source}`}`,
        `slowdown ${fmtNum(summary.slowdown.mean)} (95% CI ${fmtNum(summary.slowdown.low)} – ${fmtNum(summary.slowdown.high)}), from ${summary.basis === 'throughput' ? 'throughput' : 'wall time'}`,
        ...(summary.cpuSlowdown
          ? [`workload CPU time per unit of work, agent / baseline: ${fmtNum(summary.cpuSlowdown.mean)} (95% CI ${fmtNum(summary.cpuSlowdown.low)} – ${fmtNum(summary.cpuSlowdown.high)}); steadier than wall clock on a shared machine`]
          : []),
        `agent CPU ${fmtNum(summary.agentCpuS, 3)} s per run = ${fmtNum(summary.agentCpuShare * 100, 2)}% of one CPU while the workload ran`,
        summary.accounting.method === 'cgroup'
          ? `CPU time from one cgroup v2 per arm (cpu.stat: the workload and every process it forked)${summary.memoryPeakBytes ? `; workload memory peak ${(summary.memoryPeakBytes.baseline / 2 ** 20).toFixed(1)} MiB baseline, ${(summary.memoryPeakBytes.agent / 2 ** 20).toFixed(1)} MiB with the agent` : ''}`
          : 'CPU time from /proc (cgroup v2 unavailable, see the warning)',
        `first arm per pair: ${summary.order.map((arm, i) => `${i + 1}:${arm}`).join(' ')}`,
        ...summary.warnings.map((w) => `warning: ${w}`),
        ...(summary.accounting.note && summary.accounting.method === 'cgroup' ? [`note: ${summary.accounting.note}`] : []),
        `results: ${results.dir}`,
        report ? `report: ${report}` : `report: vtier report ${results.dir}`,
      ].join('\n'),
    );
  });
  examples(cmd, [
    'vtier eval overhead --preset redis --runs 5 --source damon',
    'vtier eval overhead --preset sysbench --runs 3',
    'vtier eval overhead --runs 5 -- vtier workload hotspot --size 1G --duration 20s',
    'vtier eval overhead --runs 3 --agent-cmd "damo record {pid}" -- ./my-benchmark',
    'vtier eval overhead --preset redis --agent-cmd "vtier guest run --connect unix:/tmp/vtier-vm1.sock --source damon -q"',
  ]);
}

interface CompareCliOptions extends CampaignOptions {
  systems?: string;
  preset?: string;
  rateLimit?: string;
  vtierCmd?: string;
}

function registerCompare(evalCmd: Command): void {
  const cmd = evalCmd
    .command('compare')
    .description('run a workload under AutoNUMA tiering, vtier and no migration (needs a CPU-less memory node); workload time and /proc/vmstat migration deltas')
    .argument('[command...]', 'the workload command (after --)')
    .option('--systems <list>', `comma-separated: ${SYSTEMS.join(',')}`, SYSTEMS.join(','))
    .option('--runs <n>', 'rounds (each runs every system once, order rotated)', '3')
    .option('--preset <name>', `built-in workload instead of a command: ${Object.keys(PRESETS).join(', ')}`)
    .option('--rate-limit <MBps>', 'kernel.numa_balancing_promote_rate_limit_MBps for autonuma (--promote-rate is the same setting; with --lab the default is the kernel\'s)', '65536')
    .option('--vtier-cmd <command>', 'the vtier agent for the vtier system: a shell command ({pid} = the workload process)')
    .option('--warmup <duration>', 'time given to the agent to attach before the workload starts', '2s')
    .option('-o, --out <dir>', 'results directory (default results/compare-<timestamp>)')
    .option('--results-dir <dir>', 'parent directory for results', 'results');
  addLabCompareOptions(cmd);
  action<CompareCliOptions & LabCompareCliOptions>(cmd, async (args, options, self) => {
    const argv = (args[0] as string[] | undefined) ?? [];
    // --rate-limit and --promote-rate: one setting under two names, either in both modes.
    const promoteRate = resolvePromoteRate(options.rateLimit, self.getOptionValueSource('rateLimit') === 'cli', options.promoteRate);
    if (wantsLab(options, argv.length > 0 || options.preset !== undefined)) {
      options.promoteRate = promoteRate === undefined ? undefined : String(promoteRate);
      if (argv.length > 0 || options.preset) throw new UserError('--lab runs the built-in workloads (--workload hotspot|shift), not a command or --preset', 'usage', 2);
      // In the lab the kernel's DAMOS tiering is one more system, on by default.
      if (self.getOptionValueSource('systems') === 'default') options.systems = 'vtier,autonuma,damos,static';
      await runLabCompareCommand(options);
      return;
    }
    const systems = (options.systems ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    for (const s of systems) if (!(SYSTEMS as readonly string[]).includes(s)) throw new UserError(`--systems: unknown system "${s}" (known: ${SYSTEMS.join(', ')})`, 'bad-input', 2);
    if (systems.length === 0) throw new UserError('--systems: empty list', 'bad-input', 2);
    const runs = parsePositiveInt(options.runs ?? '3', '--runs');
    const rateLimit = promoteRate ?? parsePositiveInt(options.rateLimit ?? '65536', '--rate-limit');
    const warmupMs = parseDurationMs(options.warmup ?? '2s', '--warmup');
    // Refuse before anything is written or changed.
    const check = checkTieredMachine(REAL_ROOTS);
    if (!check.ok) throw new UserError(check.reason, 'single-node');
    if (options.preset && argv.length > 0) throw new UserError('give either --preset or a command after --, not both', 'bad-input', 2);
    const preset = options.preset ? PRESETS[options.preset] : undefined;
    if (options.preset && !preset) throw new UserError(`--preset: unknown preset "${options.preset}" (known: ${Object.keys(PRESETS).join(', ')})`, 'bad-input', 2);
    if (!preset && argv.length === 0) throw new UserError('nothing to run: give the workload after -- (or --preset)', 'bad-input', 2);
    let vtierAgentArgv: string[] | undefined;
    if (systems.includes('vtier')) {
      if (!options.vtierCmd) {
        throw new UserError('the vtier system needs --vtier-cmd "CMD" (the guest agent connected to its host agent, e.g. vtier guest run --connect vsock:2:7070 --source damon; {pid} = the workload)', 'no-agent');
      }
      vtierAgentArgv = ['/bin/sh', '-c', `exec ${options.vtierCmd}`];
    }
    const say = (line: string): void => {
      if (!options.json) process.stderr.write(`${line}\n`);
    };
    const installed = preset ? ensureInstalled(preset, say) : [];
    const workload = preset ? await preset.prepare() : undefined;
    const results = createResults(
      'compare',
      options,
      { systems, runs, rateLimitMBps: rateLimit, warmupMs, dramNodes: check.dramNodes, cxlNodes: check.cxlNodes, vtierAgentArgv: vtierAgentArgv ?? null, preset: preset?.name ?? null, workloadSettings: workload?.settings ?? { argv }, installedPackages: installed },
      workload?.tools ?? {},
    );
    const progress = createProgress({ label: 'compare', total: runs * systems.length, json: options.json });
    let summary;
    try {
      summary = await withInterrupt((signal) =>
        runCompare({
          systems: systems as SystemName[],
          workloadArgv: argv,
          workload,
          workloadName: workload?.name ?? argv[0].split('/').pop() ?? 'workload',
          runs,
          roots: REAL_ROOTS,
          promoteRateLimitMBps: rateLimit,
          vtierAgentArgv,
          warmupMs,
          results,
          signal,
          onProgress: (done, _t, info) => progress.update(done, info),
        }),
      );
    } catch (err) {
      progress.stop();
      if (err instanceof CampaignAborted) interrupted(err, results.dir, 'round(s)');
      throw new UserError(`${(err as Error).message} (completed runs kept in ${results.dir}; kernel settings restored)`, 'campaign-failed');
    } finally {
      await workload?.stop();
    }
    progress.stop();
    results.finish(summary);
    const report = await writeReport(results.dir, null);
    printResult(options, { dir: results.dir, report, ...summary }, () =>
      [
        ...summary.recovered,
        ...Object.entries(summary.meanWallS).map(([s, t]) => `${s}: mean wall time ${fmtNum(t)} s`),
        `kernel settings restored: ${summary.restore?.cleared ? 'yes' : 'NO, see the journal'}`,
        `results: ${results.dir}`,
        report ? `report: ${report}` : '',
      ].filter(Boolean).join('\n'),
    );
  });
  examples(cmd, [
    'vtier eval compare --lab --systems vtier,autonuma,damos,static --runs 3 --workload hotspot',
    'vtier eval compare --lab --systems vtier,autonuma --runs 1 --duration 30s --workload shift',
    'vtier eval compare --systems autonuma,static --runs 3 -- vtier workload hotspot --size 8G --duration 60s',
    'vtier eval compare --vtier-cmd "vtier guest run --connect vsock:2:7070 --source damon" -- ./bench',
    'vtier sim --workload hotspot --size 10G --dram 2G --policy vtier,autonuma,static   # on one NUMA node',
  ]);
}

function registerSimCampaign(evalCmd: Command): void {
  const cmd = evalCmd
    .command('sim')
    .description('run `vtier sim ... --json` and keep its output as a results directory with a report')
    .argument('<sim-args...>', 'arguments for vtier sim (after --), e.g. -- --workload hotspot --size 10G --dram 2G --policy vtier,autonuma')
    .option('-o, --out <dir>', 'results directory (default results/sim-<timestamp>)')
    .option('--results-dir <dir>', 'parent directory for results', 'results');
  action<CampaignOptions>(cmd, async (args, options) => {
    const simArgs = (args[0] as string[]).filter((a) => a !== '--json');
    const [node, bin] = vtierCommand();
    const results = createResults('sim', options, { simArgs });
    // The child's progress (as `vtier sim` draws it) is relayed to our stderr; its JSON stays ours.
    const env = options.json ? process.env : { ...process.env, [PROGRESS_ENV]: process.stderr.isTTY ? 'tty' : 'plain' };
    const child = spawn(node, [bin, 'sim', ...simArgs, '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env });
    const stdout = captureTail(child.stdout, 64 * 1024 * 1024);
    const stderr = captureTail(child.stderr);
    if (!options.json) child.stderr?.on('data', (chunk: string) => process.stderr.write(chunk));
    const exit = await waitExit(child);
    let data: unknown;
    try {
      data = JSON.parse(stdout());
    } catch {
      results.discardIfEmpty();
      throw new UserError(`vtier sim printed no JSON (exit ${exit.code}): ${stderr().trim().split('\n').pop() ?? ''}`, 'sim-failed');
    }
    const error = (data as { error?: { message?: string } }).error;
    if (exit.code !== 0 || error) {
      results.discardIfEmpty();
      const usage = exit.code === 2;
      throw new UserError(`vtier sim failed: ${error?.message ?? stderr().trim().split('\n').pop() ?? `exit ${exit.code}`}`, usage ? 'usage' : 'sim-failed', usage ? 2 : 1);
    }
    results.writeRaw('sim', data);
    const workloadArg = simArgs.indexOf('--workload');
    const observations = simObservations(data, `${workloadArg >= 0 ? simArgs[workloadArg + 1] : 'sim'}.json`);
    if (!observations) throw new UserError('vtier sim output has a shape the report does not know (kept in runs/)', 'sim-shape');
    results.observe(observations);
    results.finish({ observations: observations.length });
    const report = await writeReport(results.dir, null);
    printResult(options, { dir: results.dir, report, observations: observations.length }, () => `results: ${results.dir}\nreport: ${report ?? '(not written)'}`);
  });
  examples(cmd, ['vtier eval sim -- --workload hotspot --size 10G --dram 2G --policy vtier,autonuma,static', 'vtier eval sim -- sweep --workload hotspot --size 10G']);
}

interface AccuracyCliOptions extends CampaignOptions {
  source: string;
  workload: string;
  size: string;
  hotFrac: string;
  hotProb: string;
  thp: boolean;
  samplePeriod?: string;
  sweep?: boolean;
  duration: string;
  shiftEvery?: string;
  epoch: string;
  seed: string;
  dram?: string;
  convergeLevel: string;
  coolEpochs?: string;
  coolSamples?: string;
}

/** MemAvailable from /proc/meminfo in bytes, or null when unreadable. */
function memAvailableBytes(): number | null {
  try {
    const kib = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
    return kib === undefined ? null : Number(kib) * 1024;
  } catch {
    return null;
  }
}

function fmtSeconds(v: number | null): string {
  return v === null ? 'never' : `${v.toFixed(1)} s`;
}

/** The human summary: one row per run (per period in a sweep). */
function accuracyTable(summary: AccuracyCampaignSummary): string {
  const level = summary.convergeLevel;
  const columns = ['run', `converge (F1>=${level})`, 'precision', 'recall', 'F1', 'DRAM P/R', 're-converge after shifts', 'hot seen', 'epochs', 'page samples'];
  const rows = summary.runs.map((r) => {
    const a = r.analysis;
    const f = (v: number | null) => (v === null ? (r.noHotSet ? 'undef' : 'n/a') : v.toFixed(3));
    const re = a.reconvergences.length ? a.reconvergences.map((rc) => (rc.reconvergeS === null ? 'never' : `${rc.reconvergeS.toFixed(1)}s`)).join(' ') : '-';
    const placement = r.noHotSet ? 'undef' : `${f(a.steady.placementPrecision)}/${f(a.steady.placementRecall)}`;
    return [r.system, r.noHotSet ? 'undef' : fmtSeconds(a.convergeS), f(a.steady.precision), f(a.steady.recall), f(a.steady.f1), placement, re, f(a.steady.hotSeenShare), String(r.epochs), String(r.pageSamples)];
  });
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(columns), ...rows.map(line)].join('\n');
}

function registerAccuracy(evalCmd: Command): void {
  const cmd = evalCmd
    .command('accuracy')
    .description('the real sampler on the built-in workload: precision, recall and F1 of the classified hot set against the ground truth over time, time to (re-)converge; --sweep repeats it per sampling period')
    .option('--source <source>', 'sample source (auto|damon|faults|pebs|ibs); auto = the best this machine offers', 'auto')
    .option('--workload <pattern>', `access pattern: ${ACCURACY_PATTERNS.join(', ')}`, 'hotspot')
    .addOption(sizeOption('workload region (512M, 2G)', DEFAULTS.workloadSize))
    .addOption(hotFracOption('fraction of the region that is hot (hotspot, shift; uniform: the DRAM budget)'))
    .addOption(hotProbOption('probability an access hits the hot set (hotspot, shift); 1 = the other pages stay idle after the first touch, a crisp truth'))
    .addOption(thpOptions('the region')[0]).addOption(thpOptions('the region')[1])
    .addOption(samplePeriodOption('sampling period: DAMON sampling interval (5ms; own kdamond only) or events per sample (faults/pebs/ibs: 1, 100); a list with --sweep').argParser((v: string) => v))
    .option('--sweep', 'one run per --sample-period value (default list per source: damon 1ms,5ms,20ms; faults 1,10,100)')
    .option('--duration <time>', 'scored time per run, from the end of the first touch', '60s')
    .addOption(shiftEveryOption())
    .addOption(epochOption('classifier epoch (DAMON: at least one aggregation)'))
    .option('--seed <n>', 'workload seed (hot block position, access stream)', '1')
    .addOption(dramOption('DRAM budget of the classifier (default: the true hot-set size, so precision and recall measure the same set)'))
    .option('--cool-epochs <n>', 'classifier: halve all counts every n epochs (default: 32, as the guest agent; damon: off, counts are halved once per aggregation instead)')
    .option('--cool-samples <n>', 'classifier: halve all counts every n page samples (default: off, as the guest agent)')
    .option('--converge-level <f1>', 'F1 that counts as converged once reached and kept', String(DEFAULT_CONVERGE_LEVEL))
    .option('-o, --out <dir>', 'results directory (default results/accuracy-<timestamp>)')
    .option('--results-dir <dir>', 'parent directory for results', 'results');
  action<AccuracyCliOptions>(cmd, async (_args, options) => {
    // Everything is validated before a process starts or the kernel is touched.
    const pattern = options.workload as AccuracyPattern;
    if (!(ACCURACY_PATTERNS as readonly string[]).includes(pattern)) throw new InputError(`--workload: "${options.workload}" is not one of ${ACCURACY_PATTERNS.join(', ')}`);
    const sizeBytes = parseSizeBytes(options.size, '--size');
    if (sizeBytes < 2 * 2 ** 20) throw new InputError(`--size: "${options.size}" is below 2M (one huge page)`);
    const available = memAvailableBytes();
    if (available !== null && sizeBytes > available / 2) {
      throw new InputError(`--size: ${options.size} is more than half of the available memory (${(available / 2 ** 30).toFixed(1)} GiB)`);
    }
    const hotFrac = parseFraction(options.hotFrac, '--hot-frac');
    if (hotFrac === 0) throw new InputError('--hot-frac: must be above 0');
    const hotProb = parseFraction(options.hotProb, '--hot-prob');
    const durationMs = parseDurationMs(options.duration, '--duration');
    if (durationMs < 1000) throw new InputError(`--duration: "${options.duration}" is below 1s`);
    const epochMs = parseDurationMs(options.epoch, '--epoch');
    if (!(epochMs >= 10 && epochMs <= 3_600_000)) throw new InputError(`--epoch: "${options.epoch}" is outside 10ms..1h`);
    const seed = Number(options.seed);
    if (!/^\d+$/.test(options.seed) || !Number.isSafeInteger(seed)) throw new InputError(`--seed: "${options.seed}" is not a non-negative integer`);
    const convergeLevel = Number(options.convergeLevel);
    if (!/^\s*\d*\.?\d+\s*$/.test(options.convergeLevel) || !(convergeLevel > 0 && convergeLevel <= 1)) {
      throw new InputError(`--converge-level: "${options.convergeLevel}" is not a fraction in (0, 1]`);
    }
    const classifier = {
      ...(options.coolEpochs !== undefined ? { coolEveryEpochs: parsePositiveInt(options.coolEpochs, '--cool-epochs') } : {}),
      ...(options.coolSamples !== undefined ? { coolEverySamples: parsePositiveInt(options.coolSamples, '--cool-samples') } : {}),
    };
    const shiftGiven = cmd.getOptionValueSource('shiftEvery') === 'cli';
    if (shiftGiven && pattern !== 'shift') throw new InputError('--shift-every: applies to --workload shift only');
    const shiftEveryMs = pattern === 'shift' ? parseDurationMs(options.shiftEvery ?? '20s', '--shift-every') : undefined;
    if (shiftEveryMs !== undefined && !(shiftEveryMs >= 1000 && shiftEveryMs < durationMs)) {
      throw new InputError(`--shift-every: ${options.shiftEvery} must be at least 1s and shorter than --duration ${options.duration} (else no shift happens)`);
    }
    let dramPages: number | undefined;
    if (options.dram !== undefined) {
      const bytes = parseDramBytes(options.dram, sizeBytes);
      if (bytes < 4096 || bytes > sizeBytes) throw new InputError(`--dram: "${options.dram}" must be between 4K and --size (${options.size})`);
      dramPages = Math.floor(bytes / 4096);
    }
    let resolved: ResolvedSource;
    try {
      resolved = resolveSource(options.source);
    } catch (err) {
      if (err instanceof InputError) throw err;
      throw new UserError((err as Error).message, err instanceof SamplerError ? err.code : 'no-source');
    }
    const periods = resolvePeriods(options.samplePeriod, Boolean(options.sweep), resolved);
    const epochS = Math.max(epochMs, ...periods.map((p) => batchCadenceMs(resolved, p, epochMs))) / 1000;
    // The run-length rule vtier demo applies too: refused below 2 batches, warned below 10.
    const runLength = checkRunLength('--duration', options.duration, durationMs, {
      ms: epochS * 1000,
      unit: resolved.source === 'damon' && epochS * 1000 > epochMs ? `DAMON aggregation${resolved.damonMode === 'observe' ? " (the observed kdamond's, set by its owner)" : ''}` : 'classifier epoch (--epoch)',
    });
    const workloadLabel = `${pattern}-${options.size.toLowerCase()}`;
    const settings = {
      source: resolved.source,
      damonMode: resolved.damonMode ?? null,
      sourceWhy: resolved.why,
      observedKdamond: resolved.observed ?? null,
      periods: periods.map((p) => p ?? 'default'),
      pattern,
      sizeBytes,
      hotFrac,
      hotProb,
      thp: options.thp,
      seed,
      durationMs,
      shiftEveryMs: shiftEveryMs ?? null,
      epochMs,
      dramPages: dramPages ?? 'true hot-set size',
      convergeLevel,
      classifier,
    };
    const results = createResults('accuracy', options, settings);
    const progress = createProgress({ label: `accuracy ${pattern}`, total: Math.round((periods.length * durationMs) / 1000), json: options.json });
    const say = (line: string) => progress.log(line);
    say(`source ${resolved.source}${resolved.damonMode ? ` (${resolved.damonMode})` : ''}: ${resolved.why}`);
    if (runLength.warning) say(`warning: ${runLength.warning}`);
    let summary: AccuracyCampaignSummary;
    try {
      summary = await withInterrupt((signal) =>
        runAccuracyCampaign({
          resolved,
          periods,
          pattern,
          sizeBytes,
          hotFrac,
          hotProb,
          thp: options.thp,
          seed,
          durationMs,
          shiftEveryMs,
          epochMs,
          dramPages,
          convergeLevel,
          classifier,
          workloadLabel,
          results,
          signal,
          onStep: say,
          onTick: (i, tick) => {
            const last = tick.last;
            const score = last?.f1 != null ? `P ${last.precision!.toFixed(2)} R ${last.recall!.toFixed(2)} F1 ${last.f1.toFixed(2)}` : last ? `hot ${last.hotPages}` : 'waiting for samples';
            const label = periods.length > 1 ? `${systemLabel(resolved, periods[i])}: ` : '';
            progress.update(Math.min(Math.round((i * durationMs) / 1000 + tick.elapsedS), Math.round((periods.length * durationMs) / 1000)), `${label}${score}, ${tick.epochs} epochs`);
          },
        }),
      );
    } catch (err) {
      progress.stop();
      if (err instanceof AccuracyInterrupted) {
        const report = await writeReport(results.dir, null);
        throw new UserError(
          `interrupted after ${err.completedRuns} complete run(s); what was recorded is kept in ${results.dir} (no DONE marker${report ? `; partial report ${report}` : ''})`,
          'interrupted',
          130,
        );
      }
      const kind = err instanceof SamplerError ? err.code : err instanceof WorkloadError ? 'workload' : 'campaign-failed';
      throw new UserError(`${(err as Error).message} (what was recorded is kept in ${results.dir})`, kind);
    }
    progress.stop();
    results.finish(summary);
    const report = await writeReport(results.dir, null);
    const first = summary.runs[0];
    printResult(options, { dir: results.dir, report, ...summary }, () =>
      [
        `source ${summary.source}${summary.damonMode ? ` (${summary.damonMode})` : ''}; workload ${pattern} ${options.size}${options.thp ? ' THP' : ''}, ` +
          (first?.noHotSet ? 'no hot set' : `true hot set ${first?.workload.truthHotPages} pages (${hotProb * 100}% of accesses)`) +
          `, DRAM budget ${first?.dramBudgetPages} pages`,
        accuracyTable(summary),
        `converge = F1 >= ${convergeLevel} reached and kept (re-converge: after each hot-set shift); precision/recall/F1 of the classified hot set = mean over the last third of each hot-set period; ` +
          'DRAM P/R = the same for the DRAM placement (hot set + warm pages filling free DRAM); hot seen = share of the true hot set the source reported at all',
        ...[...new Set(summary.runs.flatMap((r) => r.remarks))].map((r) => `note: ${r}`),
        `results: ${results.dir}`,
        report ? `report: ${report}` : `report: vtier report ${results.dir}`,
      ].join('\n'),
    );
  });
  examples(cmd, [
    'vtier eval accuracy',
    'vtier eval accuracy --workload shift --shift-every 20s --duration 60s',
    'vtier eval accuracy --source faults --sweep --sample-period 1,10,100 --duration 20s',
    'vtier eval accuracy --source damon --sweep --sample-period 1ms,5ms,20ms',
    'vtier eval accuracy --workload uniform --size 2G --json',
  ]);
}

export function registerEval(program: Command): void {
  const evalCmd = program.command('eval').description('evaluation campaigns: overhead, compare (AutoNUMA), sim, accuracy; each writes a results directory and a report');
  registerOverhead(evalCmd);
  registerCompare(evalCmd);
  registerEvalArm(evalCmd);
  registerSimCampaign(evalCmd);
  registerAccuracy(evalCmd);
  examples(evalCmd, ['vtier eval overhead --preset redis --runs 5', 'vtier eval compare -- ./bench', 'vtier report results/overhead-<timestamp>']);
}
