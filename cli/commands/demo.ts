// `vtier demo`: the main job. Doctor, then the whole loop on this machine for about a
// minute: built-in hotspot workload -> best sample source -> guest agent (classifier) ->
// host agent (unix socket, local-process target, move_pages) -> reports back; live
// samples/s, hot-set size, precision/recall against the workload's truth, decisions and
// moves. Ends with a summary, a results directory and an HTML report.
import type { Command } from 'commander';
import { action, examples } from '../command.js';
import { printResult, UserError, type OutputOptions } from '../output.js';
import { withInterrupt } from '../interrupt.js';
import { formatDoctor, gatherDoctor } from './doctor.js';
import { parseDurationMs, parseFraction, parseSizeBytes } from '../../src/util/units.js';
import { compact } from '../../guest-agent/run.js';
import { FAILURE_REASONS } from '../../src/protocol/index.js';
import { basicMachineFacts, ResultsWriter } from '../../eval/results.js';
import { resolveSource, type ResolvedSource } from '../../eval/accuracy.js';
import { assessRunLength, batchCadence, checkRunLength } from '../../eval/run-length.js';
import { InputError } from '../../src/util/units.js';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { writeReportFile } from '../../eval/report.js';
import { DEMO_CONVERGED_RECALL, DemoSamplerFailed, FIRST_TOUCH, runDemo, type DemoSummary, type DemoTick, type FirstTouch } from '../../eval/demo.js';
import { chooseDemoPlace, DEMO_PLACES, runDemoInLab, type DemoPlace } from '../../eval/demo-lab.js';
import { SOURCE_NAMES, SamplerError, type SourceName } from '../../guest-agent/sampler.js';
import { WorkloadError } from '../../guest-agent/workload.js';
import { DEFAULTS, epochOption, hotFracOption, hotProbOption, outOption, sizeOption, thpOptions } from '../options.js';

interface DemoCliOptions extends OutputOptions {
  source: string;
  size: string;
  hotFrac: string;
  hotProb: string;
  duration: string;
  epoch: string;
  thp: boolean;
  seed: string;
  out?: string;
  resultsDir: string;
  on: string;
  firstTouch: string;
}


/** What the host did with the decisions, in words. */
function movesText(tick: DemoTick): string {
  const s = tick.status;
  const failed = FAILURE_REASONS.reduce((n, r) => n + s.failed[r], 0);
  const moved = s.moved.promote + s.moved.demote;
  if (s.crossNodeMoves === false) return `moved ${compact(moved)}: single NUMA node: moves not possible here`;
  if (s.reports === 0) return 'no report yet';
  return `moved ${compact(moved)} failed ${compact(failed)}`;
}

/** The kernel's placement of the true hot set, in words. */
function placementText(tick: DemoTick): string | null {
  const p = tick.placement;
  return p && p.dramShare !== null ? `hot on DRAM ${(p.dramShare * 100).toFixed(1)}%` : null;
}

export function formatTick(tick: DemoTick): string {
  const s = tick.status;
  const ceiling = tick.monitoredHotShare === null ? '' : ` (of ${tick.monitoredHotShare.toFixed(3)} monitored)`;
  const score = tick.score ? `precision ${tick.score.precision.toFixed(3)} recall ${tick.score.recall.toFixed(3)}${ceiling}` : 'precision/recall: waiting for samples';
  return [`${tick.elapsedS.toFixed(0).padStart(3)}s`, `${compact(tick.samplesPerSec)} samples/s`, `hot ${compact(s.hotPages)}`, score, `decisions ${s.decisionsSent}`, movesText(tick), placementText(tick)].filter(Boolean).join(' | ');
}

function formatSummary(summary: DemoSummary & { warnings?: string[] }, dir: string, report: string | null): string {
  const f = summary.final;
  const lines = [
    '',
    `demo ${summary.interrupted ? 'interrupted' : 'finished'} after ${summary.durationS.toFixed(0)} s: source ${summary.source}${samplingText(summary)}, ${summary.epochs} epochs, ${compact(summary.samples)} sample weight`,
    f
      ? `hot set ${f.hotPages} pages vs true ${f.truthPages}: precision ${f.precision.toFixed(3)}, recall ${f.recall.toFixed(3)}, F1 ${f.f1.toFixed(3)} (last epoch)`
      : 'no epoch was scored (no samples reached the classifier)',
    summary.monitoredHotShare !== null
      ? `the observed kdamond's target ranges (set by its owner) hold ${(summary.monitoredHotShare * 100).toFixed(1)}% of the true hot set: recall cannot exceed that${summary.final && summary.monitoredHotShare > 0 ? `; recall within them ${(summary.final.recall / summary.monitoredHotShare).toFixed(3)}` : ''}`
      : '',
    summary.bestRecall ? `best recall ${summary.bestRecall.value.toFixed(3)} at ${summary.bestRecall.atS.toFixed(0)} s; recall >= ${DEMO_CONVERGED_RECALL} from ${summary.recallConvergedS === null ? 'never (not within this run)' : `${summary.recallConvergedS} s`}` : '',
    `decisions sent ${summary.decisionsSent}: promote ${summary.pagesRequested.promote} pages, demote ${summary.pagesRequested.demote} pages requested; moved: ${summary.moved.promote} promoted to DRAM, ${summary.moved.demote} demoted to CXL`,
    summary.reports < summary.decisionsSent
      ? `${summary.decisionsSent - summary.reports} decision(s) still unanswered when the run ended (the host was still moving them): "moved" counts reported pages only; the kernel's placement below shows where the pages are`
      : '',
    placementSummary(summary),
    summary.crossNodeMoves === false
      ? `single NUMA node: moves not possible here (the host agent translated and queried every page; nothing was pretended${summary.pagesRequested.demote > 0 ? '; demotions it could not make are proposed again each epoch, as they would be retried on a tiered host' : ''})`
      : '',
    ...summary.hostNotes.map((n) => `host: ${n}`),
    ...(summary.warnings ?? []).map((w) => `warning: ${w}`),
    `results: ${dir}`,
    report ? `report: ${report}` : `report: not written (vtier report ${dir})`,
  ];
  return lines.filter(Boolean).join('\n');
}

/** The intervals the source ran with: " (observe, sampling 500 ms, aggregation 5000 ms, 3 aggregations)". */
function samplingText(summary: DemoSummary): string {
  const p = summary.sampling;
  if (!p) return '';
  if (p.source === 'damon' && p.aggrUs !== null) return ` (${p.damonMode ?? '?'}, sampling ${(p.sampleUs ?? 0) / 1000} ms, aggregation ${p.aggrUs / 1000} ms, ${p.batches} aggregations)`;
  return ` (epoch ${p.epochMs} ms, ${p.batches} batches)`;
}

/** Start and end share of the true hot set on DRAM, as the kernel placed it. */
export function placementSummary(summary: DemoSummary): string {
  const { start, end } = summary.hotPlacement ?? { start: null, end: null };
  if (!summary.tiers || summary.tiers.cxlNodes.length === 0) return '';
  const pct = (p: typeof start) => (p && p.dramShare !== null ? `${(p.dramShare * 100).toFixed(1)}%` : 'unknown');
  return `true hot set on DRAM (kernel's placement, move_pages query on ${end?.queried ?? start?.queried ?? 0} pages): ${pct(start)} after the first touch (${summary.tiers.firstTouch}), ${pct(end)} at the end; DRAM nodes ${summary.tiers.dramNodes.join(',')}, CXL nodes ${summary.tiers.cxlNodes.join(',')}`;
}

export function registerDemo(program: Command): void {
  const [thpOn, thpOff] = thpOptions('the workload');
  const cmd = program
    .command('demo')
    .description('run the whole loop on this machine for about a minute: workload, sampler, classifier, host agent (move_pages), live accuracy, HTML report')
    .option('--source <source>', `sample source: auto, ${SOURCE_NAMES.join(', ')}`, 'auto')
    .addOption(sizeOption('workload memory (512M, 2G)', DEFAULTS.workloadSize))
    .addOption(hotFracOption('fraction of the workload memory that is hot'))
    .addOption(hotProbOption('fraction of accesses that go to the hot set (1: cold pages idle after the first touch; DAMON samples each region every 500 ms, so a page touched a few times a second already looks hot to it)'))
    .option('--duration <duration>', 'how long to run after the workload is ready', '60s')
    .addOption(epochOption('classifier epoch'))
    .addOption(thpOn)
    .addOption(thpOff)
    .option('--seed <n>', 'workload seed', '1')
    .addOption(outOption('results directory (default results/demo-<timestamp>)', 'dir'))
    .option('--results-dir <dir>', 'parent directory for results', 'results')
    .option('--on <where>', `where the loop runs: auto (the two-node lab VM when it is ready and this host has no CXL tier, else this machine), ${DEMO_PLACES.filter((p) => p !== 'auto').join(', ')}`, 'auto')
    .option('--first-touch <how>', `on a tiered machine, where the workload's first touch lands: ${FIRST_TOUCH.join(', ')} (cxl: all of it starts on the CXL node and the hot set must be promoted; interleave: half on each; local: the kernel's choice, DRAM while it has room)`, 'cxl');
  examples(cmd, ['vtier demo', 'vtier demo --on host', 'vtier demo --first-touch local', 'vtier demo --duration 30s --size 2G', 'vtier demo --source faults --no-thp', 'vtier demo --json | jq .final']);
  action<DemoCliOptions>(cmd, async (_args, options) => {
    const source = options.source;
    if (source !== 'auto' && !SOURCE_NAMES.includes(source as SourceName)) {
      throw new UserError(`--source: "${source}" is not one of auto, ${SOURCE_NAMES.join(', ')}`, 'bad-input', 2);
    }
    const sizeBytes = parseSizeBytes(options.size, '--size');
    if (sizeBytes < 16 << 20) throw new UserError('--size: at least 16M (the hot set must span several huge pages)', 'bad-input', 2);
    const hotFrac = parseFraction(options.hotFrac, '--hot-frac');
    if (hotFrac === 0) throw new UserError('--hot-frac: must be above 0', 'bad-input', 2);
    const hotProb = parseFraction(options.hotProb, '--hot-prob');
    const durationMs = parseDurationMs(options.duration, '--duration');
    if (durationMs < 1000) throw new UserError('--duration: at least 1s', 'bad-input', 2);
    const epochMs = parseDurationMs(options.epoch, '--epoch');
    if (epochMs < 10) throw new UserError('--epoch: at least 10ms', 'bad-input', 2);
    const seed = Number(options.seed);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new UserError(`--seed: expected a non-negative integer, got "${options.seed}"`, 'bad-input', 2);
    if (!DEMO_PLACES.includes(options.on as DemoPlace)) throw new UserError(`--on: "${options.on}" is not one of ${DEMO_PLACES.join(', ')}`, 'usage', 2);
    if (!FIRST_TOUCH.includes(options.firstTouch as FirstTouch)) throw new UserError(`--first-touch: "${options.firstTouch}" is not one of ${FIRST_TOUCH.join(', ')}`, 'usage', 2);
    const firstTouch = options.firstTouch as FirstTouch;
    if (process.getuid?.() !== 0) {
      throw new UserError('vtier demo needs root: BPF/DAMON sampling, the workload\'s page frames (pagemap) and move_pages on it', 'permission');
    }

    const say = (line: string): void => {
      if (!options.json) process.stderr.write(`${line}\n`);
    };
    const place = await chooseDemoPlace(options.on as DemoPlace);
    if (place.where === 'lab') {
      say(`demo: ${place.why}`);
      const forwarded = ['--source', source, '--size', options.size, '--hot-frac', options.hotFrac, '--hot-prob', options.hotProb, '--duration', options.duration, '--epoch', options.epoch, '--seed', options.seed, '--first-touch', firstTouch, ...(options.thp ? [] : ['--no-thp'])];
      const lab = await withInterrupt((signal) => runDemoInLab({ forwarded, out: options.out, resultsDir: options.resultsDir, durationMs, signal, json: Boolean(options.json), onOutput: (chunk) => process.stderr.write(chunk) }));
      if (lab.summary === null) throw new UserError(lab.failure ?? 'the demo inside the lab VM did not finish', lab.end === 'interrupted' ? 'interrupted' : 'lab-demo-failed', lab.end === 'interrupted' ? 130 : 1);
      const data = { dir: lab.dir, report: lab.report, lab: lab.facts, ...lab.summary };
      printResult(options, data, () => `${formatSummary(lab.summary!, lab.dir, lab.report)}\n${lab.factsLine}`);
      return;
    }
    if (options.on === 'auto') say(`demo: ${place.why}`);
    // The source that will run, and its batch interval in force (an observed kdamond's is its
    // owner's): a run too short to hold two batches is refused before anything starts, one
    // too short to settle is warned about (the rule eval accuracy uses too).
    let resolved: ResolvedSource;
    try {
      resolved = resolveSource(source);
    } catch (err) {
      if (err instanceof InputError) throw err;
      throw new UserError((err as Error).message, err instanceof SamplerError ? err.code : 'no-source');
    }
    const runLength = checkRunLength('--duration', options.duration, durationMs, batchCadence(resolved, epochMs));
    if (runLength.warning) say(`warning: ${runLength.warning}`);
    const doctor = await gatherDoctor();
    say(formatDoctor(doctor));
    say('');

    let results: ResultsWriter;
    try {
      results = ResultsWriter.create({
        campaign: 'demo',
        dir: options.out,
        baseDir: options.resultsDir,
        settings: { source, sizeBytes, hotFrac, hotProb, durationMs, epochMs, thp: options.thp, seed },
        machine: { basic: basicMachineFacts(), doctor, doctorError: null },
      });
    } catch (err) {
      throw new UserError(`cannot create the results directory: ${(err as Error).message}`, 'io');
    }

    const tty = Boolean(process.stderr.isTTY) && !options.json;
    let lastPlain = -Infinity;
    const onTick = (tick: DemoTick): void => {
      if (options.json) return;
      if (tty) process.stderr.write(`\r\x1b[K${formatTick(tick)}`);
      else if (tick.elapsedS - lastPlain >= 5) {
        lastPlain = tick.elapsedS;
        process.stderr.write(`${formatTick(tick)}\n`);
      }
    };
    const onStep = (line: string): void => say(line);

    // Ctrl-C (or SIGTERM) ends the run early; everything started is stopped in order.
    let summary: DemoSummary;
    try {
      summary = await withInterrupt((signal) =>
        runDemo({ source: source as SourceName | 'auto', sizeBytes, hotFrac, hotProb, durationMs, epochMs, thp: options.thp, seed, firstTouch, results, signal, onTick, onStep }),
      );
    } catch (err) {
      if (tty) process.stderr.write('\n');
      if (err instanceof SamplerError) throw new UserError(err.message, err.code);
      if (err instanceof WorkloadError) throw new UserError(err.message, 'workload');
      if (err instanceof DemoSamplerFailed) throw new UserError(`sampler stopped mid-run: ${err.message}; everything else stopped, what was measured is kept in ${results.dir}`, 'sampler-failed');
      throw err;
    }
    if (tty) process.stderr.write('\n');
    // The warning as the sampler really ran (its intervals may differ from the ones foreseen).
    const ran = summary.sampling;
    const actual = ran ? assessRunLength('--duration', options.duration, durationMs, batchCadence({ source: ran.source, damonMode: ran.damonMode === 'observe' ? 'observe' : 'own', observed: ran.aggrUs === null ? undefined : { aggrUs: ran.aggrUs } }, epochMs, ran.aggrUs ?? undefined)) : { ...runLength, refusal: null };
    const warnings = [actual.refusal ?? actual.warning].filter((w): w is string => Boolean(w));
    const data: DemoSummary & { warnings: string[] } = { ...summary, warnings };
    results.writeRaw('demo', data);
    // An interrupted run keeps its summary and a report marked partial, without the DONE marker.
    if (summary.interrupted) writeFileSync(join(results.dir, 'summary.json'), `${JSON.stringify(data, null, 2)}\n`);
    else results.finish(data);
    let report: string | null = null;
    try {
      report = await writeReportFile(results.dir);
    } catch (err) {
      say(`warning: report not written: ${(err as Error).message}`);
    }
    if (summary.interrupted) {
      throw new UserError(`interrupted: workload, sampler and host agent stopped; what was measured is kept in ${results.dir} (no DONE marker)${report ? `; partial report: ${report}` : ''}`, 'interrupted', 130);
    }
    printResult(options, { dir: results.dir, report, ...data }, () => formatSummary(data, results.dir, report));
  });
}
