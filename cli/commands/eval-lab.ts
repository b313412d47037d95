// `vtier eval compare --lab` (each system in a fresh two-node lab VM) and `vtier eval arm`, the
// one-system run the lab VM executes. The host-side comparison (a tiered host, a workload
// command) stays in eval.ts; this file holds the lab's.
import type { Command } from 'commander';
import { action, examples } from '../command.js';
import { printResult, UserError, type OutputOptions } from '../output.js';
import { withInterrupt } from '../interrupt.js';
import { createProgress } from '../progress.js';
import { parseDurationMs, parseFraction, parsePositiveInt, parseSizeBytes } from '../../src/util/units.js';
import { ResultsWriter } from '../../eval/results.js';
import { writeReportFile } from '../../eval/report.js';
import { LAB_SYSTEMS, LAB_WORKLOADS, runArm, type LabSystem, type LabWorkload, type LabWorkloadSpec } from '../../eval/lab-arm.js';
import { pct, runLabCompare, TCG_LABEL, type LabCompareSummary } from '../../eval/compare-lab.js';
import { labMissing } from '../../lab/cache.js';
import { checkTieredMachine, REAL_ROOTS } from '../../eval/compare.js';
import { hotFracOption, shiftEveryOption, sizeOption } from '../options.js';

/** The workload options `eval compare --lab` and `eval arm` share, as commander hands them over. */
interface LabWorkloadCliOptions {
  workload?: string;
  size?: string;
  hotFrac?: string;
  duration?: string;
  shiftEvery?: string;
  seed?: string;
  promoteRate?: string;
}

export interface LabCompareCliOptions extends OutputOptions, LabWorkloadCliOptions {
  systems?: string;
  runs?: string;
  lab?: boolean;
  mem?: string;
  cxl?: string;
  out?: string;
  resultsDir?: string;
}

/** Declares the workload options; `scope` prefixes their help ("with --lab: ") on the command
 *  where they only apply to one mode. */
function addLabWorkloadOptions(cmd: Command, scope: string): Command {
  return cmd
    .option('--workload <name>', `${scope}the built-in workload with truth: ${LAB_WORKLOADS.join(', ')}`, 'hotspot')
    // 512M, not DEFAULTS.workloadSize: the workload must fit the lab VM's 2 GiB node 1 with room
    .addOption(sizeOption(`${scope}workload memory (512M, 1G)`, '512M'))
    .addOption(hotFracOption(`${scope}fraction of the workload that is hot`))
    .option('--duration <duration>', `${scope}how long each system runs after the first touch`, '60s')
    .addOption(shiftEveryOption(`${scope}with --workload shift: how often the hot set moves`))
    .option('--seed <n>', `${scope}workload seed (compare: run r uses seed + r - 1)`, '1')
    .option('--promote-rate <MBps>', `autonuma's numa_balancing_promote_rate_limit_MBps (${scope ? 'with --lab default: the kernel\'s; without: 65536; --rate-limit is the same setting' : 'default: the kernel\'s'})`);
}

/** The workload spec from those options (usage errors name the option). */
function parseLabWorkload(options: LabWorkloadCliOptions): LabWorkloadSpec & { promoteRateMBps?: number } {
  const workload = options.workload ?? 'hotspot';
  if (!(LAB_WORKLOADS as readonly string[]).includes(workload)) throw new UserError(`--workload: "${workload}" is not one of ${LAB_WORKLOADS.join(', ')}`, 'usage', 2);
  return {
    workload: workload as LabWorkload,
    sizeBytes: parseSizeBytes(options.size ?? '512M', '--size'),
    hotFrac: parseFraction(options.hotFrac ?? '0.1', '--hot-frac'),
    durationMs: parseDurationMs(options.duration ?? '60s', '--duration'),
    shiftEveryMs: parseDurationMs(options.shiftEvery ?? '20s', '--shift-every'),
    seed: parsePositiveInt(options.seed ?? '1', '--seed'),
    promoteRateMBps: options.promoteRate === undefined ? undefined : parsePositiveInt(options.promoteRate, '--promote-rate'),
  };
}

/**
 * `eval compare` has two names for one kernel setting (numa_balancing_promote_rate_limit_MBps):
 * `--rate-limit` from the host comparison and `--promote-rate` from the lab's. Either works in
 * both modes; both given with different values is a usage error. Returns the rate asked for,
 * or undefined when neither was given (the lab then leaves the kernel's value, the host
 * comparison uses its 65536 default).
 */
export function resolvePromoteRate(rateLimit: string | undefined, rateLimitGiven: boolean, promoteRate: string | undefined): number | undefined {
  const fromRateLimit = rateLimitGiven && rateLimit !== undefined ? parsePositiveInt(rateLimit, '--rate-limit') : undefined;
  const fromPromote = promoteRate !== undefined ? parsePositiveInt(promoteRate, '--promote-rate') : undefined;
  if (fromRateLimit !== undefined && fromPromote !== undefined && fromRateLimit !== fromPromote) {
    throw new UserError(`--rate-limit ${fromRateLimit} and --promote-rate ${fromPromote} set the same thing (numa_balancing_promote_rate_limit_MBps): give one`, 'usage', 2);
  }
  return fromPromote ?? fromRateLimit;
}

/** The options `eval compare` takes for the lab (added to the host comparison's). */
export function addLabCompareOptions(cmd: Command): Command {
  return addLabWorkloadOptions(cmd.option('--lab', 'run each system in a fresh two-node lab VM (default when this host has no CPU-less node and the lab is ready)'), 'with --lab: ')
    .option('--mem <size>', 'with --lab: node 0 (DRAM) of each VM', '2G')
    .option('--cxl <size>', 'with --lab: node 1 (CXL stand-in) of each VM', '2G');
}

/** Whether `eval compare` should run in the lab: asked for, or the host cannot and the lab can. */
export function wantsLab(options: LabCompareCliOptions, hasCommand: boolean): boolean {
  if (options.lab) return true;
  if (hasCommand || process.env.VTIER_LAB) return false;
  return !checkTieredMachine(REAL_ROOTS).ok && labMissing().length === 0;
}

function formatLabCompare(s: LabCompareSummary, dir: string, report: string | null): string {
  const rows = [['SYSTEM', 'RUNS', 'HOT ON DRAM (mean)', 'AT END', '>=90% AFTER', 'MIGRATED MiB', 'UP MiB', 'DOWN MiB', 'TRACKING CPU s']];
  for (const x of s.systems) {
    rows.push([
      x.system,
      String(x.runs),
      pct(x.hotDramShareMean),
      pct(x.hotDramShareEnd),
      x.reach90S === null ? 'never' : `${x.reach90S.toFixed(0)} s`,
      (x.migratedBytes / 2 ** 20).toFixed(1),
      (x.promotedBytes / 2 ** 20).toFixed(1),
      (x.demotedBytes / 2 ** 20).toFixed(1),
      x.trackingCpuS === null ? 'in workload' : x.trackingCpuS.toFixed(2),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const lines = rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd());
  lines.push('', 'simulator on the same configuration (DRAM = the true hot set, every page starting on the CXL tier):');
  const mib = (v: number | null) => (v === null ? '-' : `${(v / 2 ** 20).toFixed(1)} MiB`);
  for (const c of s.calibration) {
    lines.push(
      `  ${c.flagged ? '!' : ' '} ${c.system} (sim ${c.simPolicy}): DRAM-served real ${pct(c.realDramServedShare)}, sim ${pct(c.simDramServedShare)}; ` +
        `migrated real ${mib(c.realMigratedBytes)}, sim ${mib(c.simMigratedBytes)}${c.remark ? ` — ${c.remark}` : ''}`,
    );
  }
  for (const x of s.systems) for (const n of x.notes) lines.push(`${x.system}: ${n}`);
  for (const f of s.failedArms) lines.push(`run ${f.run} ${f.system} FAILED: ${f.why}`);
  lines.push(`note: ${TCG_LABEL}`, `results: ${dir}`, report ? `report: ${report}` : '');
  return lines.filter((l, i) => l !== '' || i > 0).join('\n');
}

export async function runLabCompareCommand(options: LabCompareCliOptions): Promise<void> {
  const systems = (options.systems ?? LAB_SYSTEMS.join(',')).split(',').map((x) => x.trim()).filter(Boolean);
  for (const x of systems) if (!(LAB_SYSTEMS as readonly string[]).includes(x)) throw new UserError(`--systems: unknown system "${x}" with --lab (known: ${LAB_SYSTEMS.join(', ')})`, 'usage', 2);
  if (systems.length === 0) throw new UserError('--systems: empty list', 'usage', 2);
  const spec = parseLabWorkload(options);
  const runs = parsePositiveInt(options.runs ?? '1', '--runs');
  const memBytes = parseSizeBytes(options.mem ?? '2G', '--mem');
  const cxlBytes = parseSizeBytes(options.cxl ?? '2G', '--cxl');
  if (spec.sizeBytes * 1.2 > cxlBytes) throw new UserError(`--size ${options.size}: the first touch goes to node 1, which has ${options.cxl}; give --cxl at least 1.2x the workload`, 'usage', 2);
  const missing = labMissing();
  if (missing.length > 0) throw new UserError(`--lab: lab not ready: ${missing.join('; ')}`, 'lab-not-ready');
  let results: ResultsWriter;
  try {
    results = ResultsWriter.create({
      campaign: 'compare-lab',
      dir: options.out,
      baseDir: options.resultsDir ?? 'results',
      settings: { systems, runs, ...spec, promoteRateMBps: spec.promoteRateMBps ?? 'kernel default', memBytes, cxlBytes, label: TCG_LABEL },
    });
  } catch (err) {
    throw new UserError(`cannot create the results directory: ${(err as Error).message}`, 'io');
  }
  const progress = createProgress({ label: 'compare', total: runs * systems.length, json: Boolean(options.json) });
  let summary: LabCompareSummary;
  try {
    summary = await withInterrupt((signal) =>
      runLabCompare({
        ...spec,
        systems: systems as LabSystem[],
        runs,
        memBytes,
        cxlBytes,
        results,
        signal,
        onProgress: (done, _t, info) => progress.update(done, info),
        onLine: (line) => progress.log(line),
      }),
    );
  } finally {
    progress.stop();
  }
  if (summary.systems.every((x) => x.runs === 0)) throw new UserError(`no arm finished (${summary.failedArms.map((f) => `${f.system}: ${f.why}`).join('; ')}); kept in ${results.dir}`, 'campaign-failed');
  results.finish(summary);
  let report: string | null = null;
  try {
    report = await writeReportFile(results.dir);
  } catch (err) {
    progress.log(`warning: report not written: ${(err as Error).message}`);
  }
  printResult(options, { dir: results.dir, report, ...summary }, () => formatLabCompare(summary, results.dir, report));
}

interface ArmCliOptions extends OutputOptions, LabWorkloadCliOptions {
  system: string;
  out?: string;
}

export function registerEvalArm(evalCmd: Command): void {
  const cmd = addLabWorkloadOptions(
    evalCmd
      .command('arm')
      .description('one system of `eval compare --lab`, inside a two-node lab VM: workload with truth (first touch on the CXL node), the system, placement of the hot set each second, vmstat, tracking CPU')
      .requiredOption('--system <name>', LAB_SYSTEMS.join(', ')),
    '',
  ).option('-o, --out <dir>', 'results directory');
  examples(cmd, ['vtier lab run --nodes 2 -- vtier eval arm --system autonuma --out $VTIER_RESULTS/arm', 'vtier eval compare --lab --systems vtier,autonuma --duration 30s']);
  action<ArmCliOptions>(cmd, async (_args, options) => {
    if (!(LAB_SYSTEMS as readonly string[]).includes(options.system)) throw new UserError(`--system: "${options.system}" is not one of ${LAB_SYSTEMS.join(', ')}`, 'usage', 2);
    const spec = parseLabWorkload(options);
    if (process.getuid?.() !== 0) throw new UserError('eval arm needs root (sysctls, DAMON, move_pages)', 'permission');
    const results = ResultsWriter.create({ campaign: `arm-${options.system}`, dir: options.out, baseDir: 'results', settings: { ...options } });
    const say = (line: string) => {
      if (!options.json) process.stderr.write(`${line}\n`);
    };
    const summary = await withInterrupt((signal) =>
      runArm({ ...spec, system: options.system as LabSystem, results, signal, onStep: say }),
    );
    results.finish(summary);
    printResult(options, summary, () =>
      [`${summary.system}: hot set on DRAM ${pct(summary.hotDramShare.start)} -> ${pct(summary.hotDramShare.end)} (mean ${pct(summary.hotDramShare.mean)}), migrated ${(summary.migratedBytes / 2 ** 20).toFixed(1)} MiB`, ...summary.notes, `settings restored: ${summary.settingsRestored ? 'yes' : 'NO'}`].join('\n'),
    );
  });
}
