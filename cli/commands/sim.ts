// `vtier sim`: the tiered-memory simulator. One run compares policies on one workload
// (a table, one row per policy); `vtier sim sweep` repeats it over DRAM sizes, sample periods
// or tracking budgets, each point averaged over several seeds with random first touch.
// All simulation is in src/sim (pure); this file parses options, reads a trace, prints.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { action, examples } from '../command.js';
import { DEFAULTS, dramOption, epochOption, hotFracOption, hotProbOption, samplePeriodOption, shiftEveryOption, sizeOption } from '../options.js';
import { printResult, UserError, type OutputOptions } from '../output.js';
import { createProgress } from '../progress.js';
import { formatBytes, InputError, parseDurationMs, parseFraction, parsePositiveInt, parseSizeBytes } from '../../src/util/units.js';
import {
  DEFAULT_POLICY_SETTINGS,
  DEFAULT_SIM,
  FIRST_TOUCH_MODES,
  isPolicyName,
  makePolicy,
  meanOverSeeds,
  makeWorkload,
  MAX_SIM_PAGES,
  POLICY_NAMES,
  replayFromTrace,
  runSimulation,
  WORKLOAD_KINDS,
  DEPRECATED_WORKLOAD_NAMES,
  type FirstTouchMode,
  type PolicyName,
  type PolicyResult,
  type SimConfig,
  type SimResult,
  type Workload,
  type WorkloadKind,
} from '../../src/sim/index.js';
import { summarizeTrace, type TraceSummary } from '../../src/trace/index.js';
import { readTraceFile, traceLine } from '../trace-file.js';

const PAGE_BYTES = 4096;
/** Deprecated names already warned about in this process (a sweep prepares many runs). */
const warnedRenames = new Set<string>();
const DEFAULT_POLICIES = 'vtier,vtier-thp,autonuma,vtmm,memtis,lru,damon,static,oracle';
const SAMPLERS = ['pebs', 'damon', 'faults', 'abit'] as const;

interface SimCliOptions extends OutputOptions {
  workload: string;
  size: string;
  dram: string;
  policy: string;
  duration?: string;
  epoch: string;
  samplePeriod?: string;
  trackingBudget: string;
  firstTouch?: string;
  seed: string;
  accessRate: string;
  accessesPerEpoch: string;
  hotFrac?: string;
  hotProb?: string;
  theta?: string;
  shiftEvery: string;
  layout?: string;
  sampler: string;
  migrationBudget: string;
  trace?: string;
  timeline?: boolean;
  csv?: boolean;
}

interface SweepCliOptions extends SimCliOptions {
  over?: string;
  values?: string;
  seeds?: string;
}

/** `1%` or `0.01` -> a CPU share in (0, 1]. */
function parseBudget(text: string, what = '--tracking-budget'): number {
  const pct = /^\s*(\d*\.?\d+)\s*%\s*$/.exec(String(text));
  const value = pct ? Number(pct[1]) / 100 : parseFraction(text, what);
  if (!(value > 0 && value <= 1)) throw new InputError(`${what}: "${text}" must be a CPU share above 0 and at most 100% (e.g. 1% or 0.01)`);
  return value;
}

/** A count with an optional decimal suffix: 100M, 2.5G, 1e6. */
function parseCount(text: string, what: string): number {
  const match = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kKmMgG]?)\s*$/.exec(String(text));
  if (!match) throw new InputError(`${what}: "${text}" is not a number (examples: 1000000, 1M, 100M)`);
  const mult = { '': 1, k: 1e3, m: 1e6, g: 1e9 }[match[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  const value = Math.round(Number(match[1]) * mult);
  if (!Number.isSafeInteger(value) || value <= 0) throw new InputError(`${what}: "${text}" must be a positive number`);
  return value;
}

/** `2G` or `20%` (of the memory size) -> pages. */
function parseDramPages(text: string, memoryPages: number, what = '--dram'): number {
  const pct = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(String(text));
  const pages = pct ? Math.round((memoryPages * Number(pct[1])) / 100) : Math.floor(parseSizeBytes(text, what) / PAGE_BYTES);
  if (pages < 1) throw new InputError(`${what}: "${text}" is less than one 4 KiB page (DRAM must not be zero)`);
  if (pages >= memoryPages) throw new InputError(`${what}: "${text}" is not smaller than the memory size (nothing to tier)`);
  return pages;
}

interface Prepared {
  config: SimConfig;
  workload: Workload;
  policies: PolicyName[];
  describe: Record<string, unknown>;
}

function parsePolicies(text: string): PolicyName[] {
  const names = String(text)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new InputError('--policy: give at least one policy');
  for (const n of names) {
    if (!isPolicyName(n)) throw new UserError(`unknown policy "${n}" (known: ${POLICY_NAMES.join(', ')})`, 'bad-input', 2);
  }
  if (new Set(names).size !== names.length) throw new InputError('--policy: a policy is listed twice');
  return names as PolicyName[];
}

/** Everything a run needs, from the command line (throws InputError/UserError on bad input). */
function prepare(o: SimCliOptions, overrides: { dram?: string; samplePeriod?: number; trackingBudget?: number; seed?: number; firstTouch?: FirstTouchMode } = {}): Prepared {
  const policies = parsePolicies(o.policy);
  const epochMs = parseDurationMs(o.epoch, '--epoch');
  if (!(epochMs >= 10 && epochMs <= 600_000)) throw new InputError('--epoch: must be between 10ms and 10m');
  const samplePeriod = overrides.samplePeriod ?? (o.samplePeriod === undefined ? 0 : parsePositiveInt(o.samplePeriod, '--sample-period'));
  const trackingBudget = overrides.trackingBudget ?? parseBudget(o.trackingBudget);
  if (o.firstTouch !== undefined && !(FIRST_TOUCH_MODES as readonly string[]).includes(o.firstTouch)) {
    throw new InputError(`--first-touch: "${o.firstTouch}" is not one of ${FIRST_TOUCH_MODES.join(', ')}`);
  }
  const firstTouch = overrides.firstTouch ?? ((o.firstTouch as FirstTouchMode | undefined) ?? 'address');
  if (!/^\s*\d+\s*$/.test(o.seed) || !Number.isSafeInteger(Number(o.seed))) throw new InputError(`--seed: "${o.seed}" is not a non-negative integer`);
  const seed = overrides.seed ?? Number(o.seed);
  const accessRatePerSec = parseCount(o.accessRate, '--access-rate');
  const accessesPerEpoch = parseCount(o.accessesPerEpoch, '--accesses-per-epoch');
  if (accessesPerEpoch > 2 ** 26) throw new InputError('--accesses-per-epoch: at most 64M');
  if (!(SAMPLERS as readonly string[]).includes(o.sampler)) throw new InputError(`--sampler: "${o.sampler}" is not one of ${SAMPLERS.join(', ')}`);
  if (o.layout !== undefined && o.layout !== 'contiguous' && o.layout !== 'scattered') {
    throw new InputError(`--layout: "${o.layout}" is not contiguous or scattered`);
  }
  const migrationBudgetBytesPerEpoch = o.migrationBudget === 'none' ? Infinity : parseSizeBytes(o.migrationBudget, '--migration-budget');
  if (migrationBudgetBytesPerEpoch < PAGE_BYTES) throw new InputError('--migration-budget: at least one page (or "none")');

  let workload: Workload;
  let pages: number;
  let epochs: number;
  const describe: Record<string, unknown> = {};
  if (o.trace) {
    const decoded = readTraceFile(o.trace);
    let plan;
    try {
      plan = replayFromTrace(decoded, { epochMs, seed });
    } catch (err) {
      throw new UserError(`${o.trace}: ${(err as Error).message}`, 'bad-trace', 2);
    }
    workload = plan.workload;
    pages = plan.pages;
    epochs = o.duration ? Math.max(1, Math.round(parseDurationMs(o.duration, '--duration') / epochMs)) : plan.epochs;
    Object.assign(describe, { name: 'trace', file: o.trace, firstPfn: plan.firstPfn, traceEpochs: plan.epochs, samples: plan.samples, trace: summarizeTrace(decoded) });
  } else {
    // `shift` is the one name (vtier workload, eval accuracy, the lab); `shifting` was the
    // simulator's: still understood, with a warning on stderr (also under --json).
    const renamed = Object.hasOwn(DEPRECATED_WORKLOAD_NAMES, o.workload) ? DEPRECATED_WORKLOAD_NAMES[o.workload] : undefined;
    if (renamed) {
      if (!warnedRenames.has(o.workload)) process.stderr.write(`vtier: warning: --workload ${o.workload} is deprecated; use ${renamed}\n`);
      warnedRenames.add(o.workload);
      o.workload = renamed;
    }
    if (!(WORKLOAD_KINDS as readonly string[]).includes(o.workload)) {
      throw new UserError(`unknown workload "${o.workload}" (known: ${WORKLOAD_KINDS.join(', ')}, or --trace FILE)`, 'bad-input', 2);
    }
    const sizeBytes = parseSizeBytes(o.size, '--size');
    pages = Math.floor(sizeBytes / PAGE_BYTES);
    if (pages < 16) throw new InputError('--size: at least 64K');
    if (pages > MAX_SIM_PAGES) throw new InputError('--size: at most 8T');
    const durationMs = parseDurationMs(o.duration ?? '60s', '--duration');
    epochs = Math.round(durationMs / epochMs);
    if (epochs < 1) throw new InputError('--duration: shorter than one epoch');
    const shiftMs = parseDurationMs(o.shiftEvery, '--shift-every');
    const shiftEveryEpochs = Math.round(shiftMs / epochMs);
    if (o.workload === 'shift' && shiftEveryEpochs < 1) throw new InputError('--shift-every: shorter than one epoch');
    const hotFrac = o.hotFrac === undefined ? undefined : parseFraction(o.hotFrac, '--hot-frac');
    if (hotFrac !== undefined && (hotFrac <= 0 || hotFrac >= 1)) throw new InputError('--hot-frac: must be between 0 and 1 (exclusive)');
    const hotProb = o.hotProb === undefined ? undefined : parseFraction(o.hotProb, '--hot-prob');
    const theta = o.theta === undefined ? undefined : Number(o.theta);
    if (theta !== undefined && !(/^\s*\d*\.?\d+\s*$/.test(String(o.theta)) && theta <= 5)) throw new InputError(`--theta: "${o.theta}" is not in [0, 5]`);
    try {
      workload = makeWorkload({
        kind: o.workload as WorkloadKind,
        pages,
        seed,
        hotFrac,
        hotProb,
        theta,
        shiftEveryEpochs,
        layout: o.layout as 'contiguous' | 'scattered' | undefined,
      });
    } catch (err) {
      throw new InputError((err as Error).message);
    }
    Object.assign(describe, { name: o.workload, ...workload.describe() });
  }
  const dramPages = parseDramPages(overrides.dram ?? o.dram, pages);
  const config: SimConfig = {
    ...DEFAULT_SIM,
    pages,
    dramPages,
    epochs,
    epochMs,
    accessesPerEpoch,
    accessRatePerSec,
    seed,
    firstTouch,
    settings: { ...DEFAULT_POLICY_SETTINGS, samplePeriod, trackingBudget, vtierSampler: o.sampler as (typeof SAMPLERS)[number], migrationBudgetBytesPerEpoch },
    timeline: Boolean(o.timeline),
  };
  return { config, workload, policies, describe };
}

function run(p: Prepared, onEpoch?: (e: number, total: number) => void): SimResult {
  const policies = p.policies.map((name) => makePolicy(name, p.config.settings));
  return runSimulation(p.config, p.workload, policies, { onEpoch });
}

/** JSON view of one policy: the steady-state scores also under the plain names reports use. */
function policyJson(r: PolicyResult) {
  return { ...r, precision: r.precisionSteady, recall: r.recallSteady, f1: r.f1Steady };
}

function runJson(p: Prepared, result: SimResult) {
  const { policies, ...rest } = result;
  return {
    workload: p.describe,
    ...rest,
    memoryBytes: p.config.pages * PAGE_BYTES,
    dramBytes: p.config.dramPages * PAGE_BYTES,
    samplePeriod: p.config.settings.samplePeriod,
    trackingBudget: p.config.settings.trackingBudget,
    firstTouch: p.config.firstTouch,
    seed: p.config.seed,
    tiers: p.config.tiers,
    policies: policies.map(policyJson),
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const gb = (bytes: number) => (bytes / 2 ** 30).toFixed(2);
const epochsText = (n: number | null) => (n === null ? 'never' : String(n));
function reconvText(r: PolicyResult): string {
  if (r.reconvergeEpochs.length === 0) return '-';
  const known = r.reconvergeEpochs.filter((x): x is number => x !== null);
  const never = r.reconvergeEpochs.length - known.length;
  if (known.length === 0) return 'never';
  return `${Math.max(...known)}${never ? ` (${never} never)` : ''}`;
}

const COLUMNS: Array<[string, (r: PolicyResult) => string]> = [
  ['policy', (r) => r.policy],
  ['dram-share', (r) => pct(r.dramShare)],
  ['steady', (r) => pct(r.dramShareSteady)],
  ['precision', (r) => r.precisionSteady.toFixed(3)],
  ['recall', (r) => r.recallSteady.toFixed(3)],
  ['f1', (r) => r.f1Steady.toFixed(3)],
  ['converge', (r) => epochsText(r.epochsToConverge)],
  ['reconverge', reconvText],
  ['promoted-GiB', (r) => gb(r.promotedBytes)],
  ['demoted-GiB', (r) => gb(r.demotedBytes)],
  ['ping-pong', (r) => String(r.pingPongPages)],
  ['slowdown', (r) => `${r.slowdown.toFixed(3)}x`],
  ['tracking-cpu', (r) => pct(r.trackingCpuShare)],
  ['policy-cpu-ms', (r) => r.policyCpuMs.toFixed(0)],
];

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n');
}

function summaryLine(p: Prepared, r: SimResult): string {
  const w = p.describe;
  // A trace is described by the one trace summary; its epochs are phases, not hot-set moves.
  const trace = w.name === 'trace' ? (w.trace as TraceSummary) : null;
  const params = Object.entries(w)
    .filter(([k]) => k !== 'name' && k !== 'trace')
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return (
    (trace ? `${traceLine(String(w.file), trace)}\n` : '') +
    `workload ${w.name}${params ? ` (${params})` : ''}; memory ${formatBytes(r.pages * PAGE_BYTES)}, DRAM ${formatBytes(r.dramPages * PAGE_BYTES)}; ` +
    `${r.epochs} epochs x ${r.epochMs} ms; ${(r.accessesPerEpoch / 1e6).toFixed(1)} M simulated accesses/epoch standing for ` +
    `${(r.accessRatePerSec / 1e6).toFixed(0)} M real accesses/s; tracking budget ${pct(p.config.settings.trackingBudget)} of a core` +
    (p.config.settings.samplePeriod > 0 ? `, PEBS period ${p.config.settings.samplePeriod}` : '') +
    `; first touch ${p.config.firstTouch}; seed ${p.config.seed}` +
    (r.shiftEpochs.length && !trace ? `; hot set moves at epochs ${r.shiftEpochs.join(',')}` : '') +
    (trace ? `; each of the ${r.epochs} epochs replays that epoch of the trace` : '')
  );
}

function csv(rows: string[][]): string {
  return rows.map((r) => r.map((c) => (/[",\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(',')).join('\n');
}

function csvRows(results: Array<{ value?: string; policies: PolicyResult[] }>, valueHeader?: string): string[][] {
  const head = [
    ...(valueHeader ? [valueHeader] : []),
    'policy', 'dram_share', 'dram_share_steady', 'precision', 'recall', 'f1', 'epochs_to_converge', 'reconverge_epochs_max',
    'promoted_bytes', 'demoted_bytes', 'ping_pong_pages', 'slowdown', 'tracking_cpu_share', 'policy_cpu_ms',
  ];
  const rows = [head];
  for (const res of results) {
    for (const r of res.policies) {
      const known = r.reconvergeEpochs.filter((x): x is number => x !== null);
      rows.push([
        ...(valueHeader ? [res.value ?? ''] : []),
        r.policy,
        r.dramShare.toFixed(5),
        r.dramShareSteady.toFixed(5),
        r.precisionSteady.toFixed(5),
        r.recallSteady.toFixed(5),
        r.f1Steady.toFixed(5),
        r.epochsToConverge === null ? '' : String(r.epochsToConverge),
        r.reconvergeEpochs.length === 0 || known.length < r.reconvergeEpochs.length ? '' : String(Math.max(...known)),
        String(r.promotedBytes),
        String(r.demotedBytes),
        String(r.pingPongPages),
        r.slowdown.toFixed(5),
        r.trackingCpuShare.toFixed(5),
        r.policyCpuMs.toFixed(1),
      ]);
    }
  }
  return rows;
}

function addRunOptions(cmd: Command): Command {
  return cmd
    .option('--workload <name>', `access pattern: ${WORKLOAD_KINDS.join(', ')}`, 'hotspot')
    .addOption(sizeOption('simulated guest memory', DEFAULTS.simSize))
    .addOption(dramOption('DRAM tier size (the rest is CXL)', '20%'))
    .option('--policy <list>', `comma-separated policies: ${POLICY_NAMES.join(', ')}`, DEFAULT_POLICIES)
    .option('--duration <time>', 'simulated time (default 60s; a trace: its own length)')
    .addOption(epochOption('epoch (decision interval) length'))
    .option('--tracking-budget <share>', 'tracking CPU every policy may spend (1% or 0.01); each sizes its sampling or scanning from it', '1%')
    .addOption(samplePeriodOption('fixed PEBS-like sample period for vtier and memtis (default: sized from --tracking-budget)'))
    .option('--first-touch <how>', 'initial DRAM contents: address (first pages), random (random 2 MiB blocks; the sweep default) or cxl (DRAM empty, every page on the slow tier, as the lab VM starts)')
    .option('--seed <n>', 'seed for workload and samplers (same seed, same numbers)', '1')
    .option('--access-rate <n>', 'real memory accesses per simulated second (sets sample counts and accessed-bit odds)', '100M')
    .option('--accesses-per-epoch <n>', 'simulated accesses per epoch (the stream scored for DRAM share)', '1M')
    .addOption(hotFracOption('hotspot/shift/kv: share of pages that are hot'))
    .addOption(hotProbOption('hotspot/shift/kv: share of accesses to the hot pages'))
    .option('--theta <x>', 'zipf exponent (default 0.99; graph vertices 0.9)')
    .addOption(shiftEveryOption('shift: how often the hot set moves'))
    .option('--layout <kind>', 'hot set as one block (contiguous) or scattered pages (default: contiguous for hotspot/shift, scattered for zipf/kv)')
    .option('--sampler <kind>', `what feeds vtier's classifier: ${SAMPLERS.join(', ')}`, 'pebs')
    .option('--migration-budget <bytes>', 'per-epoch migration budget for vtier/vtmm/lru, or "none"', 'none')
    .option('--trace <file>', 'replay a trace recorded by `vtier guest record` instead of a synthetic workload')
    .option('--timeline', 'include per-epoch series in --json output')
    .option('--csv', 'print CSV instead of a table');
}

export function registerSim(program: Command): void {
  // `sim sweep` is a mode of the same command rather than a commander subcommand: the two
  // share every option, and commander would hand options given after `sweep` to the parent.
  const sim = addRunOptions(
    program
      .command('sim')
      .argument('[mode]', 'omit for one comparison; "sweep" to repeat it over --over values')
      .description('Simulate DRAM+CXL tiering and compare placement policies (one row per policy)')
      .option('--over <what>', 'sweep: dram, period or budget')
      .option('--values <list>', 'sweep: DRAM sizes/percentages (default 5%,10%,20%,40%), periods (default 100,1000,10000,100000) or budgets (default 0.1%,0.3%,1%,3%)')
      .option('--seeds <n>', 'sweep: seeds per point, averaged (seed, seed+1, ...; default 3)')
      .addHelpText(
        'after',
        `\nThe run is deterministic for a seed. Simulated time advances in epochs; each epoch scores
--accesses-per-epoch simulated accesses, each standing for (access-rate x epoch / accesses-per-epoch)
real ones. Policies: see docs/policies.md. Columns: dram-share = accesses served from DRAM (whole
run), steady = the same over the last quarter of each hot-set phase, precision/recall = the DRAM
contents serving an epoch vs its true top-K pages (K = DRAM pages, steady windows), converge =
epochs served before recall first reached 0.95, reconverge = worst number of epochs served with
recall < 0.95 after a hot-set shift (0: ready in advance), slowdown = modelled
time vs all-DRAM (latency/bandwidth, migrations and tracking cost included), policy-cpu-ms =
measured wall time of the policy's own code.
Every policy gets the same --tracking-budget: vtier and memtis size their PEBS period from it
(memtis never below its published 199), lru/vtmm their accessed-bit scan interval, damon its
sampling interval, autonuma its scan size (adapted each epoch); tracking-cpu shows what each spent.
\`vtier sim sweep --over dram|period|budget [--values ...] [--seeds N]\` repeats the comparison
for each value, averaging N seeds (random first touch unless --first-touch address); --over
budget gives the Pareto data (DRAM-served share vs tracking CPU).`,
      ),
  );
  examples(sim, [
    'vtier sim --workload hotspot --size 10G --dram 2G --policy vtier,autonuma,vtmm,lru,memtis,oracle',
    'vtier sim --workload shift --shift-every 15s --duration 60s --json --timeline',
    'vtier sim --workload kv --size 4G --dram 25% --policy vtier-thp,damon,oracle --csv',
    'vtier sim --trace run.trace --dram 512M --policy vtier,memtis,oracle',
    'vtier sim sweep --over dram --values 5%,10%,20%,40% --policy vtier-thp,autonuma,oracle',
    'vtier sim sweep --over period --values 1000,10000,100000 --policy vtier,vtier-thp --json',
    'vtier sim sweep --over budget --values 0.1%,1%,3% --seeds 3 --size 1G --csv',
  ]);
  action<SweepCliOptions>(sim, (args, o) => {
    const mode = args[0] as string | undefined;
    if (mode === 'sweep') return sweep(o);
    if (mode !== undefined) throw new InputError(`unknown mode "${mode}" (omit it, or "sweep")`);
    if (o.over !== undefined || o.values !== undefined) throw new InputError('--over/--values need the sweep mode: vtier sim sweep --over ...');
    single(o);
  });
}

function single(o: SimCliOptions): void {
  const p = prepare(o);
  const progress = createProgress({ label: 'simulating', total: p.config.epochs, json: o.json || o.csv });
  let result: SimResult;
  try {
    result = run(p, (e) => progress.update(e + 1));
  } finally {
    progress.stop();
  }
  if (o.csv && !o.json) {
    process.stdout.write(`${csv(csvRows([{ policies: result.policies }]))}\n`);
    return;
  }
  printResult(o, runJson(p, result), () => {
    const rows = [COLUMNS.map(([h]) => h), ...result.policies.map((r) => COLUMNS.map(([, f]) => f(r)))];
    return `${summaryLine(p, result)}\n\n${table(rows)}\n\nsimulated ${(result.simulatedAccesses / 1e6).toFixed(0)} M accesses in ${(result.wallMs / 1000).toFixed(1)} s`;
  });
}

const SWEEP_DEFAULTS = { dram: '5%,10%,20%,40%', period: '100,1000,10000,100000', budget: '0.1%,0.3%,1%,3%' } as const;

function sweep(o: SweepCliOptions): void {
  const over = o.over;
  if (over !== 'dram' && over !== 'period' && over !== 'budget') throw new InputError(`--over: "${over ?? ''}" is not dram, period or budget`);
  const values = String(o.values ?? SWEEP_DEFAULTS[over])
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
  if (values.length === 0) throw new InputError('--values: give at least one value');
  const seeds = o.seeds === undefined ? 3 : parsePositiveInt(o.seeds, '--seeds');
  if (seeds > 32) throw new InputError('--seeds: at most 32');
  const firstSeed = Number(o.seed);
  const firstTouch = (o.firstTouch as FirstTouchMode | undefined) ?? 'random';
  const override = (v: string) =>
    over === 'dram' ? { dram: v } : over === 'period' ? { samplePeriod: parsePositiveInt(v, '--values') } : { trackingBudget: parseBudget(v, '--values') };
  const prepared = values.map((v) => Array.from({ length: seeds }, (_, k) => prepare(o, { ...override(v), seed: firstSeed + k, firstTouch })));
  const total = prepared.reduce((n, ps) => n + ps.reduce((m, p) => m + p.config.epochs, 0), 0);
  const progress = createProgress({ label: `sweep over ${over}`, total, json: o.json || o.csv });
  const results: SimResult[] = [];
  let done = 0;
  try {
    prepared.forEach((ps, i) => {
      const runs = ps.map((p, k) => {
        const r = run(p, (e) => progress.update(done + e + 1, `${over}=${values[i]} seed ${firstSeed + k}`));
        done += p.config.epochs;
        return r;
      });
      results.push(meanOverSeeds(runs));
    });
  } finally {
    progress.stop();
  }
  const header = over;
  if (o.csv && !o.json) {
    process.stdout.write(`${csv(csvRows(results.map((r, i) => ({ value: values[i], policies: r.policies })), header))}\n`);
    return;
  }
  const valueOf = (r: SimResult, i: number) => {
    const s = prepared[i][0].config.settings;
    return over === 'dram' ? r.dramPages * PAGE_BYTES : over === 'period' ? s.samplePeriod : s.trackingBudget;
  };
  const data = {
    parameter: over,
    seeds,
    workload: prepared[0][0].describe,
    points: results.map((r, i) => ({
      value: valueOf(r, i),
      ...(over === 'dram' ? { dramBytes: r.dramPages * PAGE_BYTES } : over === 'period' ? { samplePeriod: valueOf(r, i) } : { trackingBudget: valueOf(r, i) }),
      ...runJson(prepared[i][0], r),
      seeds: prepared[i].map((p) => p.config.seed),
    })),
  };
  printResult(o, data, () => {
    const cols = COLUMNS.filter(([h]) => ['policy', 'dram-share', 'steady', 'precision', 'recall', 'converge', 'promoted-GiB', 'slowdown', 'tracking-cpu'].includes(h));
    const rows = [[header, ...cols.map(([h]) => h)]];
    results.forEach((r, i) => {
      const label = over === 'dram' ? `${values[i]} (${formatBytes(r.dramPages * PAGE_BYTES)})` : values[i];
      for (const pr of r.policies) rows.push([label, ...cols.map(([, f]) => f(pr))]);
    });
    return `${summaryLine(prepared[0][0], results[0])}\nmean of ${seeds} seed(s) per point (${firstSeed}..${firstSeed + seeds - 1}), first touch ${firstTouch}\n\n${table(rows)}`;
  });
}
