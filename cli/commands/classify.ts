// `vtier classify TRACE --dram 2G`: replays a trace recorded by `vtier guest record`
// through the classifier, one decision per epoch, and prints the decisions and the
// hot-set timeline. Offline and deterministic: the same trace gives the same output.
import type { Command } from 'commander';
import { action, examples } from '../command.js';
import { printResult, UserError, type OutputOptions } from '../output.js';
import { Classifier, ClassifierConfigError, type ClassifierOptions, type EpochDecision } from '../../src/classifier/index.js';
import { summarizeTrace, type DecodedTrace, type TraceSummary } from '../../src/trace/index.js';
import { readTraceFile as readTrace, traceLine } from '../trace-file.js';
import { dramOption, epochOption, parseDramBytes } from '../options.js';
import { timeToConverge, type HotSetScore } from '../../src/accuracy/index.js';
import type { PageSamples } from '../../src/samples.js';
import { TruthScorer } from '../../eval/truth-scorer.js';
import { formatBytes, InputError, parseDurationMs, parsePositiveInt, parseSizeBytes } from '../../src/util/units.js';
import type { PageRuns } from '../../src/samples.js';

/** More epochs than this means --epoch is far too small for the trace's length. */
const MAX_EPOCHS = 1_000_000;

interface ClassifyOptions extends OutputOptions {
  dram?: string;
  truth?: string;
  epoch?: string;
  huge?: boolean;
  runs?: boolean;
  coolEpochs?: string;
  coolSamples?: string;
  idleEpochs?: string;
  migrateLimit?: string;
  unknown?: string;
}

export interface ClassifyEpoch {
  epoch: number;
  /** Epoch start, milliseconds after the trace start. */
  startMs: number;
  batches: number;
  pageSamples: number;
  stats: EpochDecision['stats'];
  promote: Array<[gpaPfn: number, pages: number]>;
  demote: Array<[gpaPfn: number, pages: number]>;
  /** With --truth: the classified hot set against the workload's true hot set after this epoch. */
  score?: HotSetScore;
}

/** Scoring against a workload truth file (`--truth`): what classifyTrace needs of it. */
export interface TruthInput {
  path: string;
  /** Keeps the part of a batch on the workload's own frames (only those have a known truth). */
  clip(batch: PageSamples): PageSamples;
  score(hot: PageRuns): HotSetScore;
  truthHotPages: number;
  generation: number;
}

export interface ClassifyAccuracy {
  truthPath: string;
  truthHotPages: number;
  /** F1 that counts as converged once reached and kept. */
  level: number;
  /** Seconds from the trace start until F1 reached `level` and stayed; null = never. */
  convergeS: number | null;
  final: HotSetScore;
  /** Mean precision / recall / F1 over the last third of the epochs. */
  steady: { precision: number; recall: number; f1: number };
}

export interface ClassifyResult {
  trace: { path: string; source: string; pageSize: number; ramPages: number; batches: number; truncated: boolean; truncatedReason?: string; summary: TraceSummary };
  options: { dramBudgetPages: number; epochMs: number; hugePages: boolean };
  epochs: ClassifyEpoch[];
  summary: {
    epochs: number;
    pageSamples: number;
    promotedPages: number;
    demotedPages: number;
    promotedBytes: number;
    demotedBytes: number;
    finalHotPages: number;
    finalDramPages: number;
    maxDeferredPages: number;
    rejectedRuns: number;
  };
  accuracy?: ClassifyAccuracy;
  warning?: string;
}

/** F1 level `classify --truth` calls converged (as eval accuracy's default). */
export const CONVERGE_F1 = 0.9;

function pairs(runs: PageRuns): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < runs.count; i++) out.push([runs.gpaPfn[i], runs.pages[i]]);
  return out;
}

/** Runs the classifier over a decoded trace; pure apart from the classifier itself. */
export function classifyTrace(trace: DecodedTrace, path: string, options: Omit<ClassifierOptions, 'ramRanges'>, epochMs: number, withRuns: boolean, truth?: TruthInput): ClassifyResult {
  const header = trace.header;
  const ramRanges = header.ramRanges.count > 0 ? header.ramRanges : undefined;
  let ramPages = 0;
  for (let i = 0; i < header.ramRanges.count; i++) ramPages += header.ramRanges.pages[i];
  const classifier = new Classifier({ ...options, ramRanges, pageSizeBytes: header.pageSize });
  const epochNs = epochMs * 1e6;
  const epochOf = (tNs: number): number => Math.max(0, Math.floor((tNs - header.startNs) / epochNs));
  const lastEpoch = trace.batches.reduce((last, b) => Math.max(last, epochOf(b.tNs)), 0);
  if (lastEpoch + 1 > MAX_EPOCHS) {
    throw new InputError(`--epoch ${epochMs}ms splits this trace into ${lastEpoch + 1} epochs (limit ${MAX_EPOCHS}); use a longer epoch`);
  }
  const epochs: ClassifyEpoch[] = [];
  let next = 0;
  let maxDeferred = 0;
  let pageSamplesTotal = 0;
  for (let epoch = 0; epoch <= lastEpoch; epoch++) {
    let batches = 0;
    let pageSamples = 0;
    // Batches are in file order; a batch stamped before its predecessor joins the current epoch.
    while (next < trace.batches.length && epochOf(trace.batches[next].tNs) <= epoch) {
      const raw = trace.batches[next++].samples;
      const samples = truth ? truth.clip(raw) : raw;
      classifier.ingest(samples);
      batches++;
      for (let i = 0; i < samples.count; i++) pageSamples += samples.pages[i];
    }
    const decision = classifier.decide();
    pageSamplesTotal += pageSamples;
    maxDeferred = Math.max(maxDeferred, decision.stats.deferredPages);
    epochs.push({
      epoch: decision.epoch,
      startMs: epoch * epochMs,
      batches,
      pageSamples,
      stats: decision.stats,
      promote: withRuns ? pairs(decision.promote) : [],
      demote: withRuns ? pairs(decision.demote) : [],
      ...(truth ? { score: truth.score(classifier.hotRuns()) } : {}),
    });
  }
  let accuracy: ClassifyAccuracy | undefined;
  if (truth && epochs.length > 0) {
    const scores = epochs.map((e) => e.score as HotSetScore);
    const series = epochs.map((e) => ({ t: (e.startMs + epochMs) / 1000, value: (e.score as HotSetScore).f1 }));
    const tail = scores.slice(Math.floor((scores.length * 2) / 3));
    const avg = (f: (s: HotSetScore) => number): number => tail.reduce((n, s) => n + f(s), 0) / tail.length;
    accuracy = {
      truthPath: truth.path,
      truthHotPages: truth.truthHotPages,
      level: CONVERGE_F1,
      convergeS: timeToConverge(series, CONVERGE_F1),
      final: scores[scores.length - 1],
      steady: { precision: avg((s) => s.precision), recall: avg((s) => s.recall), f1: avg((s) => s.f1) },
    };
  }
  const final = classifier.stats();
  const promotedPages = epochs.reduce((sum, e) => sum + e.stats.promotedPages, 0);
  const demotedPages = epochs.reduce((sum, e) => sum + e.stats.demotedPages, 0);
  return {
    trace: {
      path,
      source: header.source,
      pageSize: header.pageSize,
      ramPages,
      batches: trace.batches.length,
      summary: summarizeTrace(trace),
      truncated: trace.truncated,
      ...(trace.truncatedReason ? { truncatedReason: trace.truncatedReason } : {}),
    },
    options: { dramBudgetPages: options.dramBudgetPages, epochMs, hugePages: Boolean(options.hugePages) },
    epochs,
    summary: {
      epochs: epochs.length,
      pageSamples: pageSamplesTotal,
      promotedPages,
      demotedPages,
      promotedBytes: promotedPages * header.pageSize,
      demotedBytes: demotedPages * header.pageSize,
      finalHotPages: final.hotPages,
      finalDramPages: final.dramPages,
      maxDeferredPages: maxDeferred,
      rejectedRuns: final.rejectedRuns,
    },
    ...(accuracy ? { accuracy } : {}),
  };
}

function hexRange([gpaPfn, pages]: [number, number], pageSize: number): string {
  const hex = (pfn: number): string => `0x${(pfn * pageSize).toString(16)}`;
  return `${hex(gpaPfn)}-${hex(gpaPfn + pages)}`;
}

export function formatClassify(result: ClassifyResult, withRuns: boolean): string {
  const { trace, options, summary } = result;
  const pageSize = trace.pageSize;
  const lines = [
    traceLine(trace.path, trace.summary),
    `DRAM budget ${formatBytes(options.dramBudgetPages * pageSize)} (${options.dramBudgetPages} pages), epoch ${options.epochMs} ms${options.hugePages ? ', 2 MiB granularity' : ''}`,
    '',
    'hot-set timeline',
    `${'epoch'.padStart(5)}  ${'t(s)'.padStart(7)}  ${'samples'.padStart(9)}  ${'sampled'.padStart(8)}  ${'hot'.padStart(8)}  ${'thresh'.padStart(6)}  ${'promoted'.padStart(8)}  ${'demoted'.padStart(8)}  ${'deferred'.padStart(8)}  ${'DRAM'.padStart(8)}` +
      (result.accuracy ? `  ${'prec'.padStart(5)}  ${'recall'.padStart(6)}  ${'F1'.padStart(5)}` : ''),
  ];
  for (const e of result.epochs) {
    const s = e.stats;
    const threshold = s.thresholdCount > 65535 ? '-' : String(s.thresholdCount);
    lines.push(
      `${String(e.epoch).padStart(5)}  ${(e.startMs / 1000).toFixed(2).padStart(7)}  ${String(e.pageSamples).padStart(9)}  ${String(s.sampledPages).padStart(8)}  ${String(s.hotPages).padStart(8)}  ${threshold.padStart(6)}  ${String(s.promotedPages).padStart(8)}  ${String(s.demotedPages).padStart(8)}  ${String(s.deferredPages).padStart(8)}  ${String(s.dramPages).padStart(8)}` +
        (e.score ? `  ${e.score.precision.toFixed(3).padStart(5)}  ${e.score.recall.toFixed(3).padStart(6)}  ${e.score.f1.toFixed(3).padStart(5)}` : ''),
    );
    if (withRuns) {
      if (e.promote.length > 0) lines.push(`         promote ${e.promote.map((r) => hexRange(r, pageSize)).join(' ')}`);
      if (e.demote.length > 0) lines.push(`         demote  ${e.demote.map((r) => hexRange(r, pageSize)).join(' ')}`);
    }
  }
  lines.push(
    '',
    `summary: ${summary.epochs} epochs, ${summary.pageSamples} page samples; promoted ${summary.promotedPages} pages (${formatBytes(summary.promotedBytes)}), demoted ${summary.demotedPages} pages (${formatBytes(summary.demotedBytes)})`,
    `         final hot set ${summary.finalHotPages} pages, DRAM ${summary.finalDramPages} pages, most deferred in an epoch ${summary.maxDeferredPages}, rejected runs ${summary.rejectedRuns}`,
  );
  const a = result.accuracy;
  if (a) {
    lines.push(
      `accuracy against ${a.truthPath} (true hot set ${a.truthHotPages} pages): final precision ${a.final.precision.toFixed(3)}, recall ${a.final.recall.toFixed(3)}, F1 ${a.final.f1.toFixed(3)}; ` +
        `last third of the epochs P ${a.steady.precision.toFixed(3)} R ${a.steady.recall.toFixed(3)} F1 ${a.steady.f1.toFixed(3)}; ` +
        `converged (F1 >= ${a.level} and kept) ${a.convergeS === null ? 'never' : `after ${a.convergeS.toFixed(1)} s`}`,
    );
  }
  return lines.join('\n');
}

export function registerClassify(program: Command): void {
  const cmd = program
    .command('classify')
    .description('replay a recorded trace through the classifier: decisions per epoch and the hot-set timeline')
    .argument('<trace>', 'trace file written by `vtier guest record`')
    .addOption(dramOption('DRAM budget granted to the guest (512M, 2G; a share: of the trace\'s guest RAM); default with --truth: the true hot-set size'))
    .option('--truth <file>', 'score each epoch against the built-in workload\'s truth file (vtier workload --truth, guest record writes OUT.truth): precision, recall, F1, time to converge')
    .addOption(epochOption('decision epoch (default: the epoch the trace was recorded with)', false))
    .option('--huge', 'decide at 2 MiB granularity (THP-backed guests)')
    .option('--runs', 'print the promoted/demoted GPA ranges of every epoch (always in --json)')
    .option('--cool-epochs <n>', 'halve all counts every n epochs (default: 32; the threshold rule: off)')
    .option('--cool-samples <n>', 'halve all counts every n page samples (default: off; the threshold rule: 2000000)')
    .option('--idle-epochs <k>', 'threshold rule: a DRAM page idle for k epochs may be demoted (default: 8)')
    .option('--migrate-limit <size>', 'bytes moved per epoch, promotions plus demotions (default: unlimited)')
    .option('--unknown <tier>', 'where pages with no placement report are assumed to be: cxl or dram (default: cxl)');
  examples(cmd, [
    'vtier classify run.trace --dram 2G',
    'vtier classify run.trace --dram 512M --epoch 1s --runs',
    'vtier classify run.trace --dram 2G --huge --migrate-limit 256M --json',
    'vtier classify run.trace --truth run.trace.truth',
  ]);
  action<ClassifyOptions>(cmd, (args, options) => {
    const path = String(args[0]);
    const trace = readTrace(path);
    const pageSize = trace.header.pageSize;
    let truth: TruthInput | undefined;
    if (options.truth !== undefined) {
      let scorer: TruthScorer;
      try {
        scorer = new TruthScorer(options.truth);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new UserError(e.code === 'ENOENT' ? `--truth: cannot read ${options.truth}: no such file` : `--truth: ${e.message}`, 'usage', 2);
      }
      truth = { path: options.truth, clip: (b) => scorer.clip(b), score: (h) => scorer.score(h), truthHotPages: scorer.truthHotPages, generation: scorer.generation };
    }
    if (options.dram === undefined && !truth) throw new InputError("required option '--dram <size|pct>' not specified (or give --truth FILE: the budget is then the true hot-set size)");
    let ramBytesTotal = 0;
    for (let i = 0; i < trace.header.ramRanges.count; i++) ramBytesTotal += trace.header.ramRanges.pages[i] * pageSize;
    const dramBytes = options.dram === undefined ? (truth as TruthInput).truthHotPages * pageSize : parseDramBytes(options.dram, ramBytesTotal > 0 ? ramBytesTotal : null);
    const dramBudgetPages = Math.floor(dramBytes / pageSize);
    if (dramBudgetPages <= 0) throw new InputError(`--dram: "${options.dram}" is less than one ${pageSize}-byte page`);
    let ramPages = 0;
    for (let i = 0; i < trace.header.ramRanges.count; i++) ramPages += trace.header.ramRanges.pages[i];
    if (ramPages > 0 && dramBudgetPages > ramPages) {
      throw new InputError(`--dram ${options.dram} is larger than the trace's guest RAM (${formatBytes(ramPages * pageSize)})`);
    }
    const epochMs = options.epoch !== undefined ? parseDurationMs(options.epoch, '--epoch') : trace.header.epochMs;
    if (!(epochMs > 0)) throw new InputError(`--epoch must be longer than 0 (trace epoch: ${trace.header.epochMs} ms)`);
    const unknownTier = options.unknown ?? 'cxl';
    if (unknownTier !== 'cxl' && unknownTier !== 'dram') throw new InputError(`--unknown: "${unknownTier}" is not cxl or dram`);
    const classifierOptions: Omit<ClassifierOptions, 'ramRanges'> = {
      dramBudgetPages,
      hugePages: Boolean(options.huge),
      unknownTier,
      ...(options.coolEpochs !== undefined ? { coolEveryEpochs: parsePositiveInt(options.coolEpochs, '--cool-epochs') } : {}),
      ...(options.coolSamples !== undefined ? { coolEverySamples: parsePositiveInt(options.coolSamples, '--cool-samples') } : {}),
      ...(options.idleEpochs !== undefined ? { idleEpochsBeforeDemote: parsePositiveInt(options.idleEpochs, '--idle-epochs') } : {}),
      ...(options.migrateLimit !== undefined ? { migrationBudgetBytesPerEpoch: parseSizeBytes(options.migrateLimit, '--migrate-limit') } : {}),
    };
    let result: ClassifyResult;
    try {
      result = classifyTrace(trace, path, classifierOptions, epochMs, Boolean(options.json || options.runs), truth);
    } catch (err) {
      if (err instanceof ClassifierConfigError) throw new InputError(err.message);
      throw err;
    }
    if (truth && truth.generation > 1) {
      const note = `the truth file is generation ${truth.generation} (the hot set moved): it holds only the hot set after the last shift, so epochs before it score against that set`;
      result.warning = result.warning ? `${result.warning}; ${note}` : note;
      if (!options.json) process.stderr.write(`vtier: warning: ${note}\n`);
    }
    if (trace.truncated) {
      result.warning = `trace is truncated${trace.truncatedReason ? ` (${trace.truncatedReason})` : ''}; classified the ${trace.batches.length} batches present`;
      if (!options.json) process.stderr.write(`vtier: warning: ${result.warning}\n`);
    }
    printResult(options, result, () => formatClassify(result, Boolean(options.runs)));
  });
}
