// The guest half of the mission-shaped lab run, as a program run inside the VM:
//
//   node dist/lab/mission-guest.js --connect serial:/dev/virtio-ports/vtier --size 256M \
//        --duration 40s --out RESULTS/mission.json
//
// Inside a real guest: the built-in hotspot workload (with its truth in guest-physical frames),
// DAMON in our own kdamond over the guest's System RAM, and the guest agent, whose decisions go
// over virtio-serial to `vtier host run` on the host (QEMU target). At the end it writes what a
// test needs: the agent's counters and the classified hot set scored against the truth, in GPA
// space (the guest's frames are GPAs). The hot set is scored inside the workload's frames: the
// rest of the guest (node, the kernel) has no known truth.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { GuestAgent, type GuestStatus } from '../guest-agent/run.js';
import { readSystemRam } from '../guest-agent/iomem.js';
import { Sampler } from '../guest-agent/sampler.js';
import { startWorkload } from '../guest-agent/workload.js';
import { clipSamples, scoreHotSet, type HotSetScore } from '../src/accuracy/index.js';
import { parseDurationMs, parseSizeBytes } from '../src/util/units.js';
import type { PageRuns } from '../src/samples.js';
import { TruthScorer } from '../eval/truth-scorer.js';

export interface MissionGuestResult {
  status: GuestStatus;
  source: object;
  /** Score of the hot set at the end. */
  score: HotSetScore;
  /** Mean recall and precision over the second half of the epochs that saw samples (the
   *  hot set flickers between epochs; the end alone can land on a flicker). */
  steady: { recall: number; precision: number; epochs: number; bestRecall: number };
  /** Every scored epoch, in order: [ms since start, hot pages in the workload, recall, precision,
   *  hot pages in the whole guest]. What a flickering hot set looks like, for whoever debugs it. */
  series: Array<[number, number, number, number, number]>;
  truthHotPages: number;
  residentPages: number;
  /** The whole classified hot set (the rest of the guest included). */
  hotPagesInGuest: number;
  /** The hot set restricted to the workload's frames, as [gpaPfn, pages] runs (first 64). */
  hotRunsInWorkload: Array<[number, number]>;
  durationS: number;
}

/** The part of `hot` that lies on `frames`. */
function runsInside(hot: PageRuns, frames: PageRuns): PageRuns {
  const asSamples = { gpaPfn: hot.gpaPfn, pages: hot.pages, reads: new Float64Array(hot.count).fill(1), writes: new Float64Array(hot.count), count: hot.count };
  const clipped = clipSamples(asSamples as never, frames);
  return { gpaPfn: clipped.gpaPfn, pages: clipped.pages, count: clipped.count };
}

function pagesOf(runs: PageRuns): number {
  let n = 0;
  for (let i = 0; i < runs.count; i++) n += runs.pages[i];
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      connect: { type: 'string' },
      size: { type: 'string', default: '256M' },
      duration: { type: 'string', default: '40s' },
      epoch: { type: 'string', default: '500ms' },
      out: { type: 'string' },
    },
  });
  if (!values.connect || !values.out) throw new Error('mission-guest: --connect and --out are required');
  const sizeBytes = parseSizeBytes(values.size!, '--size');
  const durationMs = parseDurationMs(values.duration!, '--duration');
  const epochMs = parseDurationMs(values.epoch!, '--epoch');
  const truthPath = join(tmpdir(), 'mission-truth.bin');
  let sampler: Sampler | null = null;
  const workload = await startWorkload({
    pattern: 'hotspot',
    sizeBytes,
    hotFrac: 0.1,
    hotProb: 1,
    thp: true,
    truthPath,
    seed: 1,
    reportMs: 0,
    beforeTouch: async (pid) => {
      sampler = await Sampler.start({ source: 'damon', pid, epochMs });
    },
  });
  const scorer = new TruthScorer(truthPath);
  const agent = new GuestAgent({
    connect: values.connect,
    source: sampler!,
    sourceName: 'damon',
    ramRanges: readSystemRam(),
    epochMs,
    vmName: 'lab',
  });
  const started = performance.now();
  const series: HotSetScore[] = [];
  const trace: MissionGuestResult['series'] = [];
  let seenRuns = 0;
  agent.on('epoch', () => {
    const runs = agent.status().sampleRuns;
    if (runs === seenRuns) return;
    seenRuns = runs;
    scorer.refresh();
    const allHot = agent.classifier.hotRuns();
    const inside = runsInside(allHot, scorer.frames);
    const s = scoreHotSet(inside, scorer.current.hotPfns);
    series.push(s);
    trace.push([Math.round(performance.now() - started), pagesOf(inside), +s.recall.toFixed(3), +s.precision.toFixed(3), pagesOf(allHot)]);
  });
  agent.start();
  try {
    await new Promise((r) => setTimeout(r, durationMs));
    await agent.drain(5000);
  } finally {
    scorer.refresh();
    const allHot = agent.classifier.hotRuns();
    const hot = runsInside(allHot, scorer.frames);
    const score = scoreHotSet(hot, scorer.current.hotPfns);
    const status = await agent.stop();
    await workload.stop();
    const rows: Array<[number, number]> = [];
    for (let i = 0; i < Math.min(64, hot.count); i++) rows.push([hot.gpaPfn[i], hot.pages[i]]);
    const tail = series.slice(Math.floor(series.length / 2));
    const meanOf = (f: (x: HotSetScore) => number) => (tail.length === 0 ? 0 : tail.reduce((a, x) => a + f(x), 0) / tail.length);
    const result: MissionGuestResult = {
      status,
      source: sampler!.describe(),
      score,
      steady: { recall: meanOf((x) => x.recall), precision: meanOf((x) => x.precision), epochs: tail.length, bestRecall: Math.max(0, ...series.map((x) => x.recall)) },
      truthHotPages: scorer.truthHotPages,
      residentPages: scorer.residentPages,
      series: trace,
      hotPagesInGuest: pagesOf(allHot),
      hotRunsInWorkload: rows,
      durationS: (performance.now() - started) / 1000,
    };
    writeFileSync(values.out!, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(
      `mission-guest: ${status.decisionsSent} decisions, ${status.reports} reports, host errors ${status.hostErrors}; ` +
        `hot set in the workload: precision ${score.precision.toFixed(3)}, recall ${score.recall.toFixed(3)} at the end, steady ${result.steady.precision.toFixed(3)} / ${result.steady.recall.toFixed(3)} over ${result.steady.epochs} epochs (true hot ${scorer.truthHotPages} pages)\n`,
    );
  }
}

main().catch((err) => {
  process.stderr.write(`mission-guest: ${(err as Error).message}\n`);
  process.exit(1);
});
