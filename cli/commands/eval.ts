// `vtier eval ...`: evaluation campaigns. Each writes a results directory (raw JSON, tidy CSV,
// command and machine facts, DONE marker last) and an HTML report inside it.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { action, examples } from '../command.js';
import { printResult, UserError, type OutputOptions } from '../output.js';
import { createProgress, type Progress } from '../progress.js';
import { parseDurationMs, parsePositiveInt } from '../../src/util/units.js';
import { loadResults, ResultsWriter, vtierCommand } from '../../eval/results.js';
import { buildReport, renderHtml } from '../../eval/report.js';
import { CampaignAborted, commandWorkload, resolveAgent, runOverhead, stopAllChildren, type OverheadSummary } from '../../eval/overhead.js';
import { checkTieredMachine, REAL_ROOTS, runCompare, SYSTEMS, type SystemName } from '../../eval/compare.js';
import { PRESETS } from '../../eval/presets/index.js';
import { ensureInstalled } from '../../eval/presets/install.js';
import { simObservations } from '../../eval/sim-import.js';
import { captureTail, waitExit } from '../../eval/children.js';

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
    const model = await buildReport(loadResults(dir));
    const path = join(dir, 'report.html');
    writeFileSync(path, renderHtml(model));
    return path;
  } catch (err) {
    progress?.log(`warning: report not written: ${(err as Error).message}`);
    return null;
  }
}

/** Runs `body` with Ctrl-C turned into an abort of the campaign. */
async function withInterrupt<T>(body: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await body(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function interrupted(err: unknown, dir: string, unit: string): never {
  const pairs = err instanceof CampaignAborted ? err.completedPairs : 0;
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
    const workload = preset ? await preset.prepare() : commandWorkload(argv);
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
      if (err instanceof CampaignAborted) interrupted(err, results.dir, 'pair(s)');
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
    .option('--rate-limit <MBps>', 'kernel.numa_balancing_promote_rate_limit_MBps for autonuma', '65536')
    .option('--vtier-cmd <command>', 'the vtier agent for the vtier system: a shell command ({pid} = the workload process)')
    .option('--warmup <duration>', 'time given to the agent to attach before the workload starts', '2s')
    .option('-o, --out <dir>', 'results directory (default results/compare-<timestamp>)')
    .option('--results-dir <dir>', 'parent directory for results', 'results');
  action<CompareCliOptions>(cmd, async (args, options) => {
    const argv = (args[0] as string[] | undefined) ?? [];
    const systems = (options.systems ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    for (const s of systems) if (!(SYSTEMS as readonly string[]).includes(s)) throw new UserError(`--systems: unknown system "${s}" (known: ${SYSTEMS.join(', ')})`, 'bad-input', 2);
    if (systems.length === 0) throw new UserError('--systems: empty list', 'bad-input', 2);
    const runs = parsePositiveInt(options.runs ?? '3', '--runs');
    const rateLimit = parsePositiveInt(options.rateLimit ?? '65536', '--rate-limit');
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
    'vtier eval compare --systems autonuma,static --runs 3 -- vtier workload hotspot --size 8G --duration 60s',
    'vtier eval compare --vtier-cmd "vtier guest run --connect vsock:2:7070 --source damon" -- ./bench',
    `(on one NUMA node) ${'vtier sim --workload hotspot --size 10G --dram 2G --policy vtier,autonuma,static'}`,
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
    const child = spawn(node, [bin, 'sim', ...simArgs, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout = captureTail(child.stdout, 64 * 1024 * 1024);
    const stderr = captureTail(child.stderr);
    const exit = await waitExit(child);
    let data: unknown;
    try {
      data = JSON.parse(stdout());
    } catch {
      throw new UserError(`vtier sim printed no JSON (exit ${exit.code}): ${stderr().trim().split('\n').pop() ?? ''}`, 'sim-failed');
    }
    const error = (data as { error?: { message?: string } }).error;
    if (exit.code !== 0 || error) throw new UserError(`vtier sim failed: ${error?.message ?? stderr().trim().split('\n').pop() ?? `exit ${exit.code}`}`, 'sim-failed');
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

export function registerEval(program: Command): void {
  const evalCmd = program.command('eval').description('evaluation campaigns: overhead, compare (AutoNUMA), sim; each writes a results directory and a report');
  registerOverhead(evalCmd);
  registerCompare(evalCmd);
  registerSimCampaign(evalCmd);
  examples(evalCmd, ['vtier eval overhead --preset redis --runs 5', 'vtier eval compare -- ./bench', 'vtier report results/overhead-<timestamp>']);
}
