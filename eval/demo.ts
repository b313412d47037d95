// `vtier demo`: the whole pipeline on one machine. This machine plays guest and host: the
// built-in hotspot workload is the "VM", its physical frames are the "guest frames", and
// the host agent's local-process target maps them back to the workload's pages (pagemap)
// and moves them with move_pages. Everything shown is computed while it runs: sample rate
// and hot-set size from the guest agent, precision/recall from the workload's ground truth,
// moves (or why none are possible) from the host agent's reports.
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseHostConfig } from '../host-agent/config.js';
import { HostServer } from '../host-agent/server.js';
import { GuestAgent, type GuestStatus } from '../guest-agent/run.js';
import type { GuestSampleSource } from '../guest-agent/replay-source.js';
import { Sampler, type SourceName } from '../guest-agent/sampler.js';
import { observeKdamond } from '../guest-agent/damon.js';
import { readSystemRam } from '../guest-agent/iomem.js';
import { startWorkload, type RunningWorkload, type Truth, type WorkloadSummary } from '../guest-agent/workload.js';
import { DEFAULT_LIMITS, PAGE_SIZE } from '../src/protocol/index.js';
import { framesToRuns, timeToConverge, type HotSetScore, type ScorePoint } from '../src/accuracy/index.js';
import type { PageRuns, PageSamples } from '../src/samples.js';
import type { Classifier } from '../src/classifier/index.js';
import { decodePagemap } from '../src/pagemap.js';
import { nodePhysRange } from './damos-tiering.js';
import { METRICS, type Observation, type ResultsWriter } from './results.js';
import { TruthScorer } from './truth-scorer.js';
import { Aborted, abortableSleep, runAll } from './abort.js';
import { moveRegion, queryHotPlacement, type HotPlacement } from './placement.js';
import { defaultTierNodes, readNumaTopology } from '../host-agent/numa.js';

export interface DemoOptions {
  source: SourceName | 'auto';
  sizeBytes: number;
  hotFrac: number;
  hotProb: number;
  durationMs: number;
  epochMs: number;
  thp: boolean;
  seed: number;
  /** Where the workload's first touch lands on a tiered machine: `cxl` (the default) starts
   *  the whole region on the CXL node, as memory a VM got when DRAM was full, so the hot set
   *  has to be promoted into the DRAM budget; `interleave` spreads it over every node (half the
   *  hot set starts on DRAM, and DRAM starts fuller than the budget); `local` leaves it to the
   *  kernel (node 0 while it has room: nothing to promote). Ignored on one tier. */
  firstTouch?: FirstTouch;
  /** The built-in workload's pattern (default hotspot); shift moves the hot set every shiftEveryMs. */
  pattern?: 'hotspot' | 'shift' | 'zipf';
  shiftEveryMs?: number;
  /** The `system` label of the observations (default vtier-<source>). */
  system?: string;
  results: ResultsWriter;
  signal: AbortSignal;
  /** Called about once a second, and after each scored epoch. */
  onTick?: (tick: DemoTick) => void;
  /** Called once per phase change (workload ready, host ready, ...). */
  onStep?: (line: string) => void;
  /** Called with each placement query's result (seconds since the workload was ready), the
   *  workload's pid and its truth as last read (for queries of one's own). */
  onPlacement?: (timeS: number, placement: HotPlacement, workload: { pid: number; truth: Truth }) => void;
  /** Called with the sampler's kdamond CPU seconds (own DAMON) just before it stops. */
  onKdamondCpu?: (seconds: number) => void;
}

export type FirstTouch = 'cxl' | 'interleave' | 'local';
export const FIRST_TOUCH: readonly FirstTouch[] = ['cxl', 'interleave', 'local'];

/** numactl options that put the first touch where `how` says (null: the kernel's default;
 *  `cxl` touches locally and moves the region afterwards, see moveRegion). */
export function firstTouchLauncher(how: FirstTouch | 'single-tier', tiers: { dramNodes: readonly number[]; cxlNodes: readonly number[] }): string[] | null {
  if (how === 'interleave') return ['numactl', `--interleave=${[...tiers.dramNodes, ...tiers.cxlNodes].join(',')}`];
  return null;
}

export interface DemoTick {
  elapsedS: number;
  status: GuestStatus;
  /** Sample weight per second since the workload was ready (DAMON delivers in bursts). */
  samplesPerSec: number;
  score: HotSetScore | null;
  /** Observed kdamond only: share of the true hot set inside its target ranges (the ceiling on recall). */
  monitoredHotShare: number | null;
  /** Tiered machines: where the true hot set is now, by the kernel's placement query. */
  placement: HotPlacement | null;
}

export interface DemoSummary {
  source: string;
  sourceNotes: string[];
  workload: { pattern: 'hotspot' | 'shift' | 'zipf'; accessesPerSec: number | null; sizeBytes: number; hotFrac: number; hotProb: number; thp: boolean; pid: number; residentPages: number; hotPages: number };
  durationS: number;
  epochs: number;
  samples: number;
  /** Recall/precision/F1 of the last scored epoch. */
  final: HotSetScore | null;
  /** Best recall seen and when (s after the workload was ready). */
  bestRecall: { value: number; atS: number } | null;
  /** Seconds until recall reached 0.9 and stayed there; null if it did not. */
  recallConvergedS: number | null;
  /** Observed kdamond only: share of the true hot set inside its target ranges, last seen. */
  monitoredHotShare: number | null;
  decisionsSent: number;
  /** Reports received; fewer than decisionsSent when the host was still moving at the end. */
  reports: number;
  pagesRequested: { promote: number; demote: number };
  moved: { promote: number; demote: number };
  failed: GuestStatus['failed'];
  hostDramPages: number | null;
  hostCxlPages: number | null;
  crossNodeMoves: boolean | null;
  hostNotes: string[];
  /** The machine's tiers (host agent's split) and where the first touch went. */
  tiers: { dramNodes: number[]; cxlNodes: number[]; how: string; firstTouch: FirstTouch | 'single-tier'; firstTouchMovedPages: number };
  /** The true hot set's placement by the kernel: after the first touch, and at the end. */
  hotPlacement: { start: HotPlacement | null; end: HotPlacement | null };
  interrupted: boolean;
  /** The source the loop really ran (never "auto") and the intervals in force; null when the
   *  sampler never started. */
  sampling: DemoSampling | null;
}

/** What the sampler was, as it ran: the report's and the run-length check's view of it. */
export interface DemoSampling {
  source: string;
  damonMode: string | null;
  /** DAMON: the kdamond and whose it is. */
  kdamond: string | null;
  owner: string | null;
  sampleUs: number | null;
  aggrUs: number | null;
  /** Page sources: the event sampled and its period. */
  event: string | null;
  samplePeriod: number | null;
  epochMs: number;
  /** Batches the sampler delivered (one per DAMON aggregation, or per epoch). */
  batches: number;
}

/** The sampling facts of a started sampler (tunables as sources/damon.ts and pages.ts set them). */
export function demoSampling(described: { source: string; damonMode?: string; tunables: Record<string, unknown> }, epochMs: number, batches: number): DemoSampling {
  const t = described.tunables;
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  return {
    source: described.source,
    damonMode: described.damonMode ?? null,
    kdamond: str(t.kdamond),
    owner: str(t.kdamondOwner),
    sampleUs: num(t.sampleUs),
    aggrUs: num(t.aggrUs),
    event: str(t.event),
    samplePeriod: num(t.samplePeriod),
    epochMs,
    batches,
  };
}

export const DEMO_CONVERGED_RECALL = 0.9;

// On a tiered machine the demo's "guest frames" are the machine's own: a move gives the page a
// frame on the other node. The host's report names the frames the decision named (the old
// ones), so the classifier would keep the old frame marked DRAM while the page sits on a new
// frame it takes for CXL: once the DRAM budget is full of such stale marks every demotion names
// frames the workload no longer has (nothing moves) and a hot set that moves (workload shift)
// is never followed. After each report the demo therefore reads the workload's frames again and
// rebuilds the classifier's placement from the node each frame is on.

/** Tells the shift workload its hot set lives a whole period from now (SIGUSR2). */
export function restartShiftClock(pid: number): void {
  process.kill(pid, 'SIGUSR2');
}

/** Frames (-1 = absent) whose address lies in one of `ranges` ([start, end) in bytes), as runs. */
export function framesInRanges(gpaPfn: ArrayLike<number>, ranges: ReadonlyArray<{ start: number; end: number }>): PageRuns {
  const inside: number[] = [];
  for (let i = 0; i < gpaPfn.length; i++) {
    const pfn = gpaPfn[i];
    if (!(pfn >= 0)) continue;
    const addr = pfn * PAGE_SIZE;
    if (ranges.some((r) => addr >= r.start && addr < r.end)) inside.push(pfn);
  }
  return framesToRuns(Float64Array.from(inside).sort());
}

/** The classifier's placement made what the kernel says: the workload's frames on a DRAM node
 *  (`dramFrames`) are DRAM, every other frame of guest RAM (`ram`) CXL, whatever reports said
 *  about frames the workload has since left. */
export function resyncPlacement(classifier: Pick<Classifier, 'setPlacement'>, ram: PageRuns, dramFrames: PageRuns): void {
  classifier.setPlacement(ram, 'cxl');
  classifier.setPlacement(dramFrames, 'dram');
}

/** The frames behind the workload region's pages now, from its pagemap (root: frames are
 *  hidden otherwise, then null), in the truth's page order. */
export function readRegionFrames(pid: number, truth: Truth, procRoot = '/proc'): Float64Array | null {
  const base = truth.meta.regionAddr;
  if (typeof base !== 'number' || !Number.isSafeInteger(base) || base <= 0 || truth.pageSize !== PAGE_SIZE) return null;
  const bytes = Buffer.alloc(truth.pages * 8);
  const fd = openSync(`${procRoot}/${pid}/pagemap`, 'r');
  try {
    let got = 0;
    while (got < bytes.length) {
      const n = readSync(fd, bytes, got, bytes.length - got, (base / PAGE_SIZE) * 8 + got);
      if (n <= 0) break;
      got += n;
    }
    if (got !== bytes.length) return null;
  } finally {
    closeSync(fd);
  }
  const frames = decodePagemap(bytes);
  return frames.some((f) => f >= 0) ? frames : null;
}

/** The sampler stopped on its own mid-run (e.g. the observed kdamond went away). */
export class DemoSamplerFailed extends Error {}

/** A sample source restricted to the workload's frames; batches before the truth is known wait. */
class WorkloadFramesSource implements GuestSampleSource {
  private listener: ((tNs: number, samples: PageSamples) => void) | null = null;
  private pending: Array<[number, PageSamples]> = [];
  private scorer: TruthScorer | null = null;

  constructor(private readonly sampler: Sampler) {
    sampler.onBatch((tNs, batch) => {
      this.batches += 1;
      if (!this.scorer || !this.listener) this.pending.push([tNs, batch]);
      else this.deliver(tNs, batch);
    });
  }

  private deliver(tNs: number, batch: PageSamples): void {
    this.scorer!.refresh();
    const clipped = this.scorer!.clip(batch);
    if (clipped.count > 0) this.listener!(tNs, clipped);
  }

  attach(scorer: TruthScorer): void {
    this.scorer = scorer;
  }

  onBatch(listener: (tNs: number, samples: PageSamples) => void): void {
    this.listener = listener;
    // Batches from before the truth file existed cover the first touch. A fault source sees
    // nothing else, so they are kept. DAMON's show the touch sweeping the region: a page
    // written once then looks as hot as the hot set, and a first decision built from them
    // fills the DRAM budget with cold pages; they are dropped (counted in droppedFirstTouch).
    const pending = this.pending.splice(0);
    if (this.sampler.describe().source === 'damon') this.droppedFirstTouch = pending.length;
    else for (const [tNs, batch] of pending) this.deliver(tNs, batch);
  }

  /** DAMON batches from the first touch that were not given to the classifier. */
  droppedFirstTouch = 0;
  /** Batches the sampler delivered, the first touch's included. */
  batches = 0;

  describe(): object {
    return this.sampler.describe();
  }

  stats(): object {
    return this.sampler.stats();
  }

  stop(): Promise<void> {
    return this.sampler.stop();
  }
}

/** Mean precision/recall/F1 over the last third of the scored epochs (after convergence). */
function steadyObservations(series: readonly Observation[]): Observation[] {
  const out: Observation[] = [];
  for (const metric of [METRICS.precision, METRICS.recall, METRICS.f1]) {
    const points = series.filter((o) => o.metric === metric);
    if (points.length === 0) continue;
    const tail = points.slice(Math.floor((points.length * 2) / 3));
    const value = tail.reduce((sum, o) => sum + o.value, 0) / tail.length;
    out.push({ system: points[0].system, workload: points[0].workload, run: 1, metric: `${metric}_steady`, value, unit: 'fraction' });
  }
  return out;
}

/** utime + stime of a process or kernel thread, in seconds; null when it is gone. */
export function threadCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

const roundTo1 = (v: number | null): number | null => (v === null ? null : Number(v.toFixed(1)));

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const { results } = options;
  // Ends the run early: the caller's signal (Ctrl-C), or the sampler failing mid-run.
  const stopRun = new AbortController();
  const signal = stopRun.signal;
  if (options.signal.aborted) stopRun.abort();
  options.signal.addEventListener('abort', () => stopRun.abort(), { once: true });
  let samplerError: Error | null = null;
  const step = options.onStep ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'vtier-demo-'));
  const truthPath = join(dir, 'truth.bin');
  // What has been started so far, torn down in reverse order whatever happens.
  const parts: { workload?: RunningWorkload; sampler?: Sampler; source?: WorkloadFramesSource; scorer?: TruthScorer; server?: HostServer; agent?: GuestAgent } = {};
  let ticker: NodeJS.Timeout | null = null;
  const observations: Observation[] = [];
  const recallSeries: ScorePoint[] = [];
  let final: HotSetScore | null = null;
  let bestRecall: DemoSummary['bestRecall'] = null;
  let readyAtMs = 0;
  let monitoredHotShare: number | null = null;
  let interrupted = false;
  let status: GuestStatus | null = null;
  const tierNodes = defaultTierNodes(readNumaTopology());
  const tiered = tierNodes.cxlNodes.length > 0;
  const firstTouch = tiered ? options.firstTouch ?? 'cxl' : 'single-tier';
  let placement: HotPlacement | null = null;
  let startPlacement: HotPlacement | null = null;
  let placementError: string | null = null;
  let workloadSummary: WorkloadSummary | null = null;
  let firstTouchMovedPages = 0;
  const pattern = options.pattern ?? 'hotspot';
  try {
    // The sampler attaches before the workload touches its memory, so a fault source sees
    // the first touch too; DAMON does not mind either way.
    const workload = await startWorkload({
      pattern,
      shiftEveryMs: pattern === 'shift' ? options.shiftEveryMs : undefined,
      sizeBytes: options.sizeBytes,
      hotFrac: options.hotFrac,
      hotProb: options.hotProb,
      thp: options.thp,
      truthPath,
      seed: options.seed,
      reportMs: 0,
      launcher: firstTouchLauncher(firstTouch, tierNodes) ?? undefined,
      // Moves change frames, so the truth must follow them, but re-reading it is not free
      // (16 bytes a page, decoded and sorted: a second of CPU per refresh under TCG for 1 GiB).
      truthRefreshMs: tiered ? 3000 : undefined,
      beforeTouch: async (pid) => {
        parts.sampler = await Sampler.start({ source: options.source, pid, epochMs: options.epochMs });
        parts.sampler.onError((err) => {
          samplerError = err;
          stopRun.abort();
        });
        parts.source = new WorkloadFramesSource(parts.sampler);
      },
    });
    parts.workload = workload;
    if (signal.aborted) throw new Aborted();
    const scorer = (parts.scorer = new TruthScorer(truthPath));
    const source = parts.source!;
    source.attach(scorer);
    const described = parts.sampler!.describe();
    readyAtMs = performance.now();
    step(
      `workload pid ${workload.pid}: ${pattern} over ${(options.sizeBytes / 2 ** 30).toFixed(2)} GiB${options.thp ? ' (THP)' : ''}, ` +
        `${scorer.residentPages} pages resident, true hot set ${scorer.truthHotPages} pages (${(options.hotProb * 100).toFixed(0)}% of accesses)`,
    );
    const queryPlacement = async (): Promise<HotPlacement | null> => {
      if (!tiered || placementError) return placement;
      try {
        // Virtual addresses and the hot block: the truth as last read is enough (batches refresh it).
        return await queryHotPlacement(workload.pid, scorer.current, tierNodes);
      } catch (err) {
        placementError = (err as Error).message;
        step(`placement query failed, not shown from now on: ${placementError}`);
        return placement;
      }
    };
    if (firstTouch === 'cxl') {
      const moved = await moveRegion(workload.pid, scorer.current, tierNodes.cxlNodes[0]);
      firstTouchMovedPages = moved.onNode;
      // The run's clock starts once the starting layout is in place, the workload's shift clock
      // too (the move takes seconds under TCG: without this the first hot set has moved on
      // before the agents start).
      if (pattern === 'shift') restartShiftClock(workload.pid);
      readyAtMs = performance.now();
      step(`first touch: ${moved.onNode} of ${moved.pages} pages moved to the CXL node ${tierNodes.cxlNodes[0]} before the agents start`);
    }
    placement = startPlacement = await queryPlacement();
    if (tiered) {
      step(
        `tiers: DRAM nodes ${tierNodes.dramNodes.join(',')}, CXL nodes ${tierNodes.cxlNodes.join(',')} (${tierNodes.how}); first touch ${firstTouch}` +
          (startPlacement?.dramShare != null ? `: ${(startPlacement.dramShare * 100).toFixed(1)}% of the true hot set starts on DRAM` : ''),
      );
    }
    step(`sampler: ${described.source}${described.damonMode ? ` (${described.damonMode})` : ''}; ${described.notes.join('; ')}`);

    // The host agent, in this process, on a unix socket; it grants the true hot-set size
    // as DRAM budget so precision and recall measure the same set.
    const socket = join(dir, 'demo.sock');
    const budgetBytes = Math.max(1, scorer.truthHotPages) * PAGE_SIZE;
    const server = (parts.server = new HostServer({
      config: parseHostConfig({
        vms: [{ name: 'demo', identity: { listen: `unix:${socket}` }, localPid: workload.pid, dramBudget: budgetBytes }],
        statusSocket: join(dir, 'status.sock'),
      }),
    }));
    await server.start();
    await server.whenReady('demo', 30_000);
    step(`host agent: unix:${socket}, local-process target pid ${workload.pid}, DRAM budget ${scorer.truthHotPages} pages`);

    const agent = (parts.agent = new GuestAgent({
      connect: `unix:${socket}`,
      source,
      sourceName: described.source,
      // On one tier the workload's frames never change: they are the "guest RAM". On a tiered
      // machine every move gives a page a new frame (on the other node), so the guest's RAM is
      // the machine's System RAM, as in a VM; samples are still clipped to the workload's
      // current frames (the truth file is re-read), the only pages with a known truth.
      ramRanges: tiered ? readSystemRam() : scorer.ramRanges(DEFAULT_LIMITS.maxRamRanges),
      epochMs: options.epochMs,
      vmName: 'demo',
    }));
    if (tiered) {
      // Moves change frames here (see resyncPlacement): after each report, the workload's
      // frames as they are now, for the clip, the scoring and the classifier's placement.
      const ram = readSystemRam();
      let dramRanges: Array<{ start: number; end: number }> | null = null;
      try {
        dramRanges = tierNodes.dramNodes.map((n) => nodePhysRange(n));
      } catch (err) {
        step(`classifier placement not rebuilt after moves (no node memory ranges: ${(err as Error).message}): it keeps the frames the host reports`);
      }
      const resync = () => {
        const frames = dramRanges && readRegionFrames(workload.pid, scorer.current);
        if (!frames || !dramRanges) return;
        scorer.updateFrames(frames);
        resyncPlacement(agent.classifier, ram, framesInRanges(frames, dramRanges));
      };
      resync();
      agent.on('report', (report: { promote: { moved: number }; demote: { moved: number } }) => {
        if (report.promote.moved + report.demote.moved > 0) resync();
      });
    }
    // An observed kdamond watches the ranges its owner chose (and moves them): the hot
    // pages outside them cannot be found by anyone, so the ceiling is shown next to recall.
    const observing = described.damonMode === 'observe';
    const monitoredShare = (): number | null => {
      if (!observing) return null;
      try {
        return scorer.hotShareInside(observeKdamond().targetRanges);
      } catch {
        return monitoredHotShare;
      }
    };
    monitoredHotShare = monitoredShare();
    const tick = (s: HotSetScore | null): DemoTick => {
      const elapsedS = (performance.now() - readyAtMs) / 1000;
      const status = agent.status();
      return { elapsedS, status, samplesPerSec: elapsedS > 0 ? status.samples / elapsedS : 0, score: s, monitoredHotShare, placement };
    };
    const scoreEpoch = () => {
      const s = scorer.score(agent.classifier.hotRuns());
      const timeS = (performance.now() - readyAtMs) / 1000;
      monitoredHotShare = monitoredShare();
      final = s;
      recallSeries.push({ t: timeS, value: s.recall });
      if (!bestRecall || s.recall > bestRecall.value) bestRecall = { value: s.recall, atS: timeS };
      const system = options.system ?? `vtier-${described.source}`;
      const at = { system, workload: pattern, run: 1, unit: 'fraction', timeS: Number(timeS.toFixed(3)) };
      const epochObservations: Observation[] = [
        { ...at, metric: METRICS.precision, value: s.precision },
        { ...at, metric: METRICS.recall, value: s.recall },
        { ...at, metric: METRICS.f1, value: s.f1 },
      ];
      if (monitoredHotShare !== null) epochObservations.push({ ...at, metric: 'monitored_hot_share', value: monitoredHotShare });
      // Appended as they come, so a run that dies keeps its time series.
      results.observe(epochObservations);
      observations.push(...epochObservations);
      options.onTick?.(tick(s));
    };
    // Score after each epoch that saw new samples (DAMON delivers one batch per aggregation).
    let seenRuns = 0;
    agent.on('epoch', () => {
      const runs = agent.status().sampleRuns;
      if (runs !== seenRuns) {
        seenRuns = runs;
        scoreEpoch();
      }
    });
    agent.start();
    if (source.droppedFirstTouch > 0) step(`classifier: ${source.droppedFirstTouch} DAMON aggregations from the first touch left out (the touch sweeps the region: every page looks hot)`);
    // Once a second: the kernel's placement of the hot set (recorded), then the live line.
    let querying = false;
    ticker = setInterval(() => {
      if (querying) return;
      querying = true;
      void queryPlacement()
        .then((p) => {
          placement = p;
          if (p?.dramShare != null) {
            const timeS = Number(((performance.now() - readyAtMs) / 1000).toFixed(3));
            options.onPlacement?.(timeS, p, { pid: workload.pid, truth: scorer.current });
            const obs: Observation = { system: options.system ?? `vtier-${described.source}`, workload: pattern, run: 1, metric: 'hot_dram_share', value: p.dramShare, unit: 'fraction', timeS };
            results.observe([obs]);
          }
          options.onTick?.(tick(final));
        })
        .finally(() => (querying = false));
    }, 1000);
    try {
      await abortableSleep(signal, options.durationMs);
      // Moves under TCG take seconds: wait for the last report, or the summary undercounts what the host did.
      await agent.drain(tiered ? 15_000 : 2000);
      placement = await queryPlacement();
    } catch (err) {
      if (!(err instanceof Aborted)) throw err;
      interrupted = samplerError === null;
    }
  } catch (err) {
    if (err instanceof Aborted) interrupted = true;
    else throw err;
  } finally {
    // Tear down in reverse order; each step runs even if an earlier one failed.
    if (ticker) clearInterval(ticker);
    await runAll([
      async () => {
        const kdamondPid = parts.sampler?.describe().tunables.kdamondPid as number | undefined;
        if (options.onKdamondCpu && kdamondPid) options.onKdamondCpu(threadCpuSeconds(kdamondPid) ?? 0);
        if (parts.agent) status = await parts.agent.stop();
        else await parts.sampler?.stop();
      },
      () => parts.server?.stop(),
      async () => {
        if (parts.workload) workloadSummary = await parts.workload.stop();
      },
      () => rmSync(dir, { recursive: true, force: true }),
    ]);
    results.observe(steadyObservations(observations));
  }
  if (samplerError) throw new DemoSamplerFailed((samplerError as Error).message);
  const s = status as GuestStatus | null;
  const described = parts.sampler?.describe();
  const summary: DemoSummary = {
    source: described?.source ?? options.source,
    sourceNotes: described?.notes ?? [],
    workload: {
      pattern,
      accessesPerSec: (workloadSummary as WorkloadSummary | null)?.accessesPerSec ?? null,
      sizeBytes: options.sizeBytes,
      hotFrac: options.hotFrac,
      hotProb: options.hotProb,
      thp: options.thp,
      pid: parts.workload?.pid ?? 0,
      residentPages: parts.scorer?.residentPages ?? 0,
      hotPages: parts.scorer?.truthHotPages ?? 0,
    },
    durationS: readyAtMs ? (performance.now() - readyAtMs) / 1000 : 0,
    epochs: s?.epoch ?? 0,
    samples: s?.samples ?? 0,
    final,
    bestRecall,
    recallConvergedS: roundTo1(timeToConverge(recallSeries, DEMO_CONVERGED_RECALL)),
    monitoredHotShare,
    decisionsSent: s?.decisionsSent ?? 0,
    reports: s?.reports ?? 0,
    pagesRequested: s?.pagesRequested ?? { promote: 0, demote: 0 },
    moved: s?.moved ?? { promote: 0, demote: 0 },
    failed: s?.failed ?? ({} as GuestStatus['failed']),
    hostDramPages: s?.hostDramPages ?? null,
    hostCxlPages: s?.hostCxlPages ?? null,
    crossNodeMoves: s?.crossNodeMoves ?? null,
    hostNotes: s?.hostNotes ?? [],
    tiers: { dramNodes: tierNodes.dramNodes, cxlNodes: tierNodes.cxlNodes, how: tierNodes.how, firstTouch, firstTouchMovedPages },
    hotPlacement: { start: startPlacement, end: placement },
    interrupted,
    sampling: described ? demoSampling(described, options.epochMs, parts.source?.batches ?? 0) : null,
  };
  return summary;
}
