// `npm run bench:classifier`: the classifier's speed and memory targets, on one core.
//   ingest      page samples/s (target >= 20 M/s), single-page runs and DAMON-style runs
//   decide      one epoch decision for a 64 GiB guest, 1 M sampled pages (target <= 100 ms), the
//               threshold rule side by side, and a 1 TiB guest sampled in 64 GiB (target <= 200 ms)
//   state       bytes per page of sampled memory (target <= 4)
// Inputs come from a seeded generator, so runs are comparable. --json prints one object.
import { performance } from 'node:perf_hooks';
import { Classifier } from '../src/classifier/index.js';
import { emptySamples, runsFrom, type PageSamples } from '../src/samples.js';

const GUEST_PAGES = (64 * 2 ** 30) / 4096; // 64 GiB = 16,777,216 pages
const SAMPLED_PAGES = 1 << 20;
const json = process.argv.includes('--json');

function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** `runs` single-page samples: 80% of them on a hot 20% of `pages` frames (hotspot). */
function hotspotBatch(runs: number, pages: number, seed: number): PageSamples {
  const next = xorshift(seed);
  const samples = emptySamples(runs);
  const hot = Math.floor(pages / 5);
  for (let i = 0; i < runs; i++) {
    const r = next();
    samples.gpaPfn[i] = r % 5 < 4 ? next() % hot : hot + (next() % (pages - hot));
    samples.pages[i] = 1;
    samples.reads[i] = 1;
    samples.writes[i] = r & 1;
  }
  samples.count = runs;
  return samples;
}

/** `runs` single-page samples on distinct random frames: every chunk gets touched. */
function spreadBatch(runs: number, pages: number, seed: number): PageSamples {
  const next = xorshift(seed);
  const samples = emptySamples(runs);
  const stride = Math.floor(pages / runs);
  for (let i = 0; i < runs; i++) {
    samples.gpaPfn[i] = i * stride + (next() % stride);
    samples.pages[i] = 1;
    samples.reads[i] = 1 + (next() % 16);
  }
  samples.count = runs;
  return samples;
}

/** DAMON-like region runs (64..4096 pages) with small access counts. */
function damonBatch(runs: number, pages: number, seed: number): PageSamples {
  const next = xorshift(seed);
  const samples = emptySamples(runs);
  for (let i = 0; i < runs; i++) {
    const length = 64 + (next() % 4033);
    samples.gpaPfn[i] = next() % (pages - length);
    samples.pages[i] = length;
    samples.reads[i] = next() % 20;
  }
  samples.count = runs;
  return samples;
}

/** Wall and CPU milliseconds of fn(): the box is shared, so CPU time is reported too. */
function timed(fn: () => void): { wallMs: number; cpuMs: number } {
  const cpu = process.cpuUsage();
  const start = performance.now();
  fn();
  const wallMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { wallMs, cpuMs: (used.user + used.system) / 1000 };
}

function pageSamplesIn(batch: PageSamples): number {
  let n = 0;
  for (let i = 0; i < batch.count; i++) n += batch.pages[i];
  return n;
}

/** Page samples/s (by CPU time and by wall time) over repeated ingests of pre-built
 *  batches, and the same for a bare loop that only adds the weight into a Uint32Array at
 *  the same frames: the memory-bound floor on this machine, measured side by side. */
function ingestRate(batches: PageSamples[], minMs: number): { perCpuSec: number; perWallSec: number; bareLoopPerCpuSec: number } {
  const c = new Classifier({ dramBudgetPages: Math.floor(GUEST_PAGES / 5), ramRanges: runsFrom([[0, GUEST_PAGES]]), coolEverySamples: 0 });
  for (const batch of batches) c.ingest(batch); // warm-up: allocates the touched chunks
  const bare = new Uint32Array(GUEST_PAGES);
  const bareLoop = (batch: PageSamples): void => {
    for (let i = 0; i < batch.count; i++) {
      const first = batch.gpaPfn[i];
      for (let p = first; p < first + batch.pages[i]; p++) bare[p] += batch.reads[i] + batch.writes[i];
    }
  };
  let pages = 0;
  let wallMs = 0;
  let cpuMs = 0;
  let bareCpuMs = 0;
  let barePages = 0;
  for (let round = 0; cpuMs < minMs; round++) {
    const batch = batches[round % batches.length];
    const t = timed(() => c.ingest(batch));
    const b = timed(() => bareLoop(batch));
    pages += pageSamplesIn(batch);
    barePages += pageSamplesIn(batch);
    wallMs += t.wallMs;
    cpuMs += t.cpuMs;
    bareCpuMs += b.cpuMs;
  }
  return { perCpuSec: pages / (cpuMs / 1000), perWallSec: pages / (wallMs / 1000), bareLoopPerCpuSec: barePages / (bareCpuMs / 1000) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Epoch decisions (with the halving of all counts) for a 64 GiB guest with 1 M sampled pages per epoch. steady: the same
 *  1 M pages are sampled every epoch (new weights), so few pages move after the first
 *  epoch; churn: 1 M new pages every epoch (worst case: ~800 K moves per epoch). */
function decideBench(
  huge: boolean,
  churn: boolean,
  rule: 'evidence' | 'threshold' = 'evidence',
  ramPages = GUEST_PAGES,
): { wallMs: number; cpuMs: number; epochs: number; stats: ReturnType<Classifier['stats']>; movedPagesLast: number } {
  const c = new Classifier({
    dramBudgetPages: GUEST_PAGES / 4,
    ramRanges: runsFrom([[0, ramPages]]),
    coolEveryEpochs: 1,
    coolEverySamples: 0,
    hugePages: huge,
    rule,
  });
  // An eighth of the sampled range is reported in DRAM (not sampled yet), the rest in CXL.
  c.setPlacement(runsFrom([[0, ramPages]]), 'cxl');
  c.setPlacement(runsFrom([[GUEST_PAGES / 2, GUEST_PAGES / 8]]), 'dram');
  const wall: number[] = [];
  const cpu: number[] = [];
  let movedPagesLast = 0;
  const epochs = 7;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const batch = spreadBatch(SAMPLED_PAGES, GUEST_PAGES, churn ? 100 + epoch : 100);
    if (!churn) {
      const next = xorshift(1000 + epoch);
      for (let i = 0; i < batch.count; i++) batch.reads[i] = 1 + (next() % 16);
    }
    c.ingest(batch);
    let d: ReturnType<Classifier['decide']> | undefined;
    // decide() plus the epoch's cooling (applied lazily; an empty ingest triggers it).
    const t = timed(() => {
      d = c.decide();
      c.ingest(emptySamples(0));
    });
    // The first epoch places the initial hot set: reported apart from the steady state.
    if (epoch > 0) {
      wall.push(t.wallMs);
      cpu.push(t.cpuMs);
    }
    movedPagesLast = d!.stats.promotedPages + d!.stats.demotedPages;
  }
  return { wallMs: median(wall), cpuMs: median(cpu), epochs: wall.length, stats: c.stats(), movedPagesLast };
}

function stateBench(): Record<string, number> {
  // Sampled memory clustered in 2 MiB chunks (a 4 GiB working set inside 64 GiB).
  const c = new Classifier({ dramBudgetPages: GUEST_PAGES / 4, ramRanges: runsFrom([[0, GUEST_PAGES]]) });
  const workingSet = (4 * 2 ** 30) / 4096;
  c.ingest(hotspotBatch(4 * SAMPLED_PAGES, workingSet, 7));
  const s = c.stats();
  return {
    trackedPages: s.trackedPages,
    sampledPages: s.sampledPages,
    bytesPerTrackedPage: (s.pooledBytes + s.overheadBytes) / s.trackedPages,
    pooledBytesPerTrackedPage: s.pooledBytes / s.trackedPages,
  };
}

const ingestSingle = ingestRate([1, 2, 3, 4].map((seed) => hotspotBatch(1 << 20, GUEST_PAGES, seed)), 2000);
const ingestDamon = ingestRate([damonBatch(4096, GUEST_PAGES, 9)], 1000);
// The same single-page samples over a 256 MiB working set (its state fits in cache):
// what the code costs per sample when memory latency is not the limit.
const ingestCached = ingestRate([1, 2, 3, 4].map((seed) => hotspotBatch(1 << 20, (256 << 20) / 4096, seed)), 1000);
const steady = decideBench(false, false);
const churn = decideBench(false, true);
const steadyHuge = decideBench(true, false);
const steadyThreshold = decideBench(false, false, 'threshold');
// A 1 TiB guest whose samples fall in 64 GiB of it: the pass follows tracked (sampled) memory.
const TIB_PAGES = 2 ** 40 / 4096;
const steadyTiB = decideBench(false, false, 'evidence', TIB_PAGES);
const state = stateBench();
const spread = steady.stats;
const round1 = (x: number): number => Number(x.toFixed(1));

const result = {
  command: 'npm run bench:classifier',
  node: process.version,
  ingest: {
    singlePageSamplesPerCpuSec: Math.round(ingestSingle.perCpuSec),
    singlePageSamplesPerWallSec: Math.round(ingestSingle.perWallSec),
    bareLoopSamplesPerCpuSec: Math.round(ingestSingle.bareLoopPerCpuSec),
    damonRunPageSamplesPerCpuSec: Math.round(ingestDamon.perCpuSec),
    cachedWorkingSetPerCpuSec: Math.round(ingestCached.perCpuSec),
    cachedBareLoopPerCpuSec: Math.round(ingestCached.bareLoopPerCpuSec),
    targetPerSec: 20e6,
  },
  decide: {
    guestPages: GUEST_PAGES,
    sampledPagesPerEpoch: SAMPLED_PAGES,
    trackedPages: spread.trackedPages,
    steady: { medianWallMs: round1(steady.wallMs), medianCpuMs: round1(steady.cpuMs), movedPagesLastEpoch: steady.movedPagesLast },
    churn: { medianWallMs: round1(churn.wallMs), medianCpuMs: round1(churn.cpuMs), movedPagesLastEpoch: churn.movedPagesLast },
    steadyHugePages: { medianWallMs: round1(steadyHuge.wallMs), medianCpuMs: round1(steadyHuge.cpuMs) },
    steadyThresholdRule: { medianWallMs: round1(steadyThreshold.wallMs), medianCpuMs: round1(steadyThreshold.cpuMs) },
    steady1TiBGuest: { guestPages: TIB_PAGES, trackedPages: steadyTiB.stats.trackedPages, medianWallMs: round1(steadyTiB.wallMs), medianCpuMs: round1(steadyTiB.cpuMs), bytesPerTrackedPage: steadyTiB.stats.bytesPerTrackedPage, targetMs: 200 },
    epochsMeasured: steady.epochs,
    targetMs: 100,
  },
  state: {
    clustered: state,
    spread: {
      trackedPages: spread.trackedPages,
      sampledPages: spread.sampledPages,
      bytesPerTrackedPage: spread.bytesPerTrackedPage,
      bytesPerSampledPage: (spread.pooledBytes + spread.overheadBytes) / spread.sampledPages,
    },
    targetBytesPerPage: 4,
  },
};

if (json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
else {
  const m = (x: number): string => `${(x / 1e6).toFixed(1)} M/s`;
  const ms = (x: { wallMs: number; cpuMs: number }): string => `${x.cpuMs.toFixed(0)} ms CPU (${x.wallMs.toFixed(0)} ms wall)`;
  process.stdout.write(
    [
      `classifier bench (${process.version}, one core; medians; CPU time because the box is shared)`,
      `  ingest, single-page runs, hotspot over 64 GiB: ${m(ingestSingle.perCpuSec)} page samples per CPU-second (${m(ingestSingle.perWallSec)} wall); bare Uint32Array increment at the same frames: ${m(ingestSingle.bareLoopPerCpuSec)}  (target >= 20 M/s)`,
      `  ingest, single-page runs, 256 MiB working set: ${m(ingestCached.perCpuSec)} page samples per CPU-second; bare loop ${m(ingestCached.bareLoopPerCpuSec)}`,
      `  ingest, DAMON region runs (64-4096 pages):     ${m(ingestDamon.perCpuSec)} page samples per CPU-second`,
      `  decide, 64 GiB guest, 1 M sampled pages, steady: ${ms(steady)}, ${steady.movedPagesLast} pages moved in the last epoch (target <= 100 ms)`,
      `  decide, same, churn (1 M new pages per epoch):   ${ms(churn)}, ${churn.movedPagesLast} pages moved in the last epoch`,
      `  decide, steady, huge-page mode:                  ${ms(steadyHuge)}`,
      `  decide, steady, threshold rule (A/B):            ${ms(steadyThreshold)}`,
      `  decide, 1 TiB guest, samples in 64 GiB of it:    ${ms(steadyTiB)}, ${steadyTiB.stats.bytesPerTrackedPage.toFixed(3)} B per tracked page (target <= 200 ms, <= 4 B)`,
      `  state, clustered (4 GiB working set):  ${state.bytesPerTrackedPage.toFixed(3)} B per tracked page (${state.pooledBytesPerTrackedPage.toFixed(3)} pooled; ${state.sampledPages} of ${state.trackedPages} tracked pages sampled)`,
      `  state, spread (1 M pages over 64 GiB): ${spread.bytesPerTrackedPage.toFixed(3)} B per tracked page, ${result.state.spread.bytesPerSampledPage.toFixed(2)} B per sampled page (every 2 MiB chunk touched)`,
    ].join('\n') + '\n',
  );
}
