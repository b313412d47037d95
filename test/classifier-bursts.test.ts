// Regions swept in bursts (graph edge arrays, scans): the evidence rule keeps each region's
// gap between bursts (2 bytes per 2 MiB region) and lets a fall count only once the region has
// been idle longer than that gap, as a rise must hold two epochs (docs/classifier.md).
import { describe, expect, it } from 'vitest';
import { Classifier, PAGES_PER_CHUNK, fallHoldEpochs, nextRegionGap } from '../src/classifier/index.js';
import { Prng } from '../src/sim/prng.js';
import { runsFrom, samplesFrom } from '../src/samples.js';
import { frames, uniformSamples } from './helpers/classifier-samples.js';

const CHUNK = PAGES_PER_CHUNK;

/** Runs `epochs` epochs; returns pages moved back within 4 epochs of their last move. */
function reversedPages(c: Classifier, epochs: number, samplesOf: (e: number) => Array<[number, number, number, number]>, from = 0): number {
  const lastDir = new Map<number, { dir: number; epoch: number }>();
  let reversed = 0;
  for (let e = 0; e < epochs; e++) {
    c.ingest(samplesFrom(samplesOf(e)));
    const d = c.decide();
    for (const [runs, dir] of [[d.promote, 1], [d.demote, -1]] as const) {
      for (const p of frames(runs)) {
        const last = lastDir.get(p);
        if (e >= from && last && last.dir === -dir && e - last.epoch <= 4) reversed++;
        lastDir.set(p, { dir, epoch: e });
      }
    }
  }
  return reversed;
}

describe('burst history', () => {
  it('nextRegionGap: a closed gap is remembered, a first sample closes the gap since the start (at most 2), steady epochs forget it', () => {
    expect(nextRegionGap(0, 3, 0)).toBe(3); // idle 3 epochs, sampled now
    expect(nextRegionGap(5, 3, 0)).toBe(4); // a shorter gap lowers it by one at most (max(3, 5 - 1))
    expect(nextRegionGap(6, 2, 0)).toBe(5);
    expect(nextRegionGap(3, 2, 2)).toBe(3); // not sampled now: unchanged
    expect(nextRegionGap(0, 255, 0, 0)).toBe(0); // first sample in the first epoch
    expect(nextRegionGap(0, 255, 0, 1)).toBe(1); // first sample after one idle epoch
    expect(nextRegionGap(0, 255, 0, 20)).toBe(2); // late first sample: at most 2
    let gap = 9;
    for (let e = 0; e < 9; e++) gap = nextRegionGap(gap, 0, 0); // sampled 9 epochs in a row
    expect(gap).toBe(0);
    expect(fallHoldEpochs(0)).toBe(0);
    expect(fallHoldEpochs(3)).toBe(4);
  });

  it('regions swept in turns every 4 epochs stay in DRAM between their bursts (no ping-pong)', () => {
    const rng = new Prng(3);
    // 8 "edge" regions, two swept per epoch (300 samples each), so each bursts every 4 epochs;
    // 8 cold regions get a trickle. DRAM holds 4 regions: any 4 edge regions are right, and
    // once placed nothing should move back.
    const c = new Classifier({ dramBudgetPages: 4 * CHUNK, ramRanges: runsFrom([[0, 16 * CHUNK]]) });
    const reversed = reversedPages(
      c,
      40,
      (e) => {
        const a = (2 * e) % 8;
        return [...uniformSamples(rng, a * CHUNK, CHUNK, 300), ...uniformSamples(rng, (a + 1) * CHUNK, CHUNK, 300), ...uniformSamples(rng, 8 * CHUNK, 8 * CHUNK, 8)];
      },
      8,
    );
    expect(reversed).toBe(0);
    const dram = new Set(frames(c.hotRuns()).map((p) => Math.floor(p / CHUNK)));
    for (const region of dram) expect(region).toBeLessThan(8);
  });

  it('a steady hot region that stops still falls at once (a shift is followed within 2 epochs)', () => {
    const rng = new Prng(4);
    const c = new Classifier({ dramBudgetPages: CHUNK, ramRanges: runsFrom([[0, 8 * CHUNK]]) });
    const hotAt = (e: number) => (e < 12 ? 1 : 5);
    let movedAt = -1;
    for (let e = 0; e < 20; e++) {
      c.ingest(samplesFrom([...uniformSamples(rng, hotAt(e) * CHUNK, CHUNK, 300), ...uniformSamples(rng, 0, 8 * CHUNK, 8)]));
      c.decide();
      const inDram = new Set(frames(c.hotRuns()).map((p) => Math.floor(p / CHUNK)));
      if (e >= 12 && movedAt < 0 && inDram.has(5) && !inDram.has(1)) movedAt = e;
    }
    expect(movedAt).toBeGreaterThanOrEqual(12);
    expect(movedAt - 12).toBeLessThanOrEqual(1);
  });

  it('a hot set on memory never sampled before is promoted within 2 epochs (late first samples are not held back)', () => {
    const rng = new Prng(5);
    const c = new Classifier({ dramBudgetPages: CHUNK, ramRanges: runsFrom([[0, 8 * CHUNK]]) });
    let movedAt = -1;
    for (let e = 0; e < 26; e++) {
      c.ingest(samplesFrom(uniformSamples(rng, (e < 20 ? 1 : 5) * CHUNK, CHUNK, 300)));
      c.decide();
      const inDram = new Set(frames(c.hotRuns()).map((p) => Math.floor(p / CHUNK)));
      if (e >= 20 && movedAt < 0 && inDram.has(5)) movedAt = e;
    }
    expect(movedAt).toBeGreaterThanOrEqual(20);
    expect(movedAt - 20).toBeLessThanOrEqual(1);
  });
});
