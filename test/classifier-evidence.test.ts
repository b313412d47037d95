// The default 4 KiB decision rule (rule: 'evidence', docs/classifier.md): region-then-split
// estimates, moves that must pay for themselves, forgetting by time, no ping-pong.
import { describe, expect, it } from 'vitest';
import { Classifier, ClassifierConfigError, PAGES_PER_CHUNK } from '../src/classifier/index.js';
import { Prng } from '../src/sim/prng.js';
import { runsFrom, samplesFrom, totalPages } from '../src/samples.js';
import { frames, uniformSamples } from './helpers/classifier-samples.js';

const CHUNK = PAGES_PER_CHUNK;

describe('evidence rule', () => {
  it('rejects bad tunables with ClassifierConfigError', () => {
    expect(() => new Classifier({ dramBudgetPages: 1, rule: 'magic' as never })).toThrow(ClassifierConfigError);
    expect(() => new Classifier({ dramBudgetPages: 1, confidence: -1 })).toThrow(ClassifierConfigError);
    expect(() => new Classifier({ dramBudgetPages: 1, hysteresis: Number.NaN })).toThrow(ClassifierConfigError);
    expect(() => new Classifier({ dramBudgetPages: 1, accessesPerSample: 0 })).toThrow(ClassifierConfigError);
  });

  it('a uniformly sampled 2 MiB region moves whole, its unsampled pages included', () => {
    const rng = new Prng(1);
    const c = new Classifier({ dramBudgetPages: CHUNK, ramRanges: runsFrom([[0, 8 * CHUNK]]) });
    // 200 samples over 512 pages: two thirds of the pages have none, yet all are in a hot region.
    c.ingest(samplesFrom([...uniformSamples(rng, 3 * CHUNK, CHUNK, 200), ...uniformSamples(rng, 0, 8 * CHUNK, 20)]));
    const d = c.decide();
    expect(totalPages(d.promote)).toBe(CHUNK);
    expect(frames(d.promote)[0]).toBe(3 * CHUNK);
    expect(d.stats.uniformRegions).toBeGreaterThanOrEqual(1);
  });

  it('a skewed region splits: scattered hot pages move without their cold neighbours', () => {
    const c = new Classifier({ dramBudgetPages: 64, ramRanges: runsFrom([[0, 4 * CHUNK]]) });
    // Every 8th page of chunk 1 is hot (8 samples each per epoch); its neighbours get none.
    const hot = Array.from({ length: 64 }, (_, i) => CHUNK + 8 * i);
    for (let e = 0; e < 3; e++) {
      c.ingest(samplesFrom(hot.map((p) => [p, 1, 8, 0])));
      c.decide();
    }
    expect(frames(c.hotRuns())).toEqual(hot);
    expect(c.stats().dramPages).toBe(64);
  });

  it('one sample on a CXL page does not evict a DRAM page of a uniformly busy region', () => {
    const rng = new Prng(2);
    const c = new Classifier({ dramBudgetPages: CHUNK, ramRanges: runsFrom([[0, 4 * CHUNK]]) });
    c.setPlacement(runsFrom([[0, CHUNK]]), 'dram');
    // Region 0 (in DRAM) takes 300 samples an epoch, spread thinly: most pages have none.
    // A page elsewhere gets one sample. Its estimate (1) is not above the region's (~0.6/page
    // with 25% hysteresis) by enough to swap, so nothing moves.
    c.ingest(samplesFrom([...uniformSamples(rng, 0, CHUNK, 300), [3 * CHUNK + 7, 1, 1, 0]]));
    const d = c.decide();
    expect(d.stats.promotedPages).toBe(0);
    expect(d.stats.demotedPages).toBe(0);
  });

  it('never moves pages of equal heat back and forth, at any sampling density', () => {
    for (const perPage of [0.05, 1, 50]) {
      const rng = new Prng(3);
      const pages = 4 * CHUNK;
      const c = new Classifier({ dramBudgetPages: pages / 2, ramRanges: runsFrom([[0, pages]]) });
      c.setPlacement(runsFrom([[0, pages / 2]]), 'dram');
      const moves = new Uint8Array(pages);
      let moved = 0;
      let movedBack = 0;
      for (let e = 0; e < 30; e++) {
        const rows = Array.from({ length: pages }, (_, p) => [p, 1, rng.poisson(perPage), 0] as [number, number, number, number]).filter((r) => r[2] > 0);
        c.ingest(samplesFrom(rows));
        const d = c.decide();
        for (const p of [...frames(d.promote), ...frames(d.demote)]) {
          if (moves[p]++ > 0) movedBack++;
          moved++;
        }
      }
      // A region that looks 25% hotter by chance in the first sparse epochs may move once;
      // nothing ever moves back.
      expect(movedBack, `${perPage} samples per page per epoch`).toBe(0);
      expect(moved, `${perPage} samples per page per epoch`).toBeLessThanOrEqual(2 * CHUNK);
    }
  });

  it('forgets a hot set that left within two decisions (by the last epoch, not by cooling)', () => {
    const rng = new Prng(4);
    const pages = 8 * CHUNK;
    const c = new Classifier({ dramBudgetPages: CHUNK, ramRanges: runsFrom([[0, pages]]) });
    const epoch = (hotFirst: number) => {
      c.ingest(samplesFrom([...uniformSamples(rng, hotFirst, CHUNK, 400), ...uniformSamples(rng, 0, pages, 40)]));
      return c.decide();
    };
    for (let e = 0; e < 20; e++) epoch(0);
    expect(frames(c.hotRuns())[0]).toBe(0);
    const after = [epoch(5 * CHUNK), epoch(5 * CHUNK)];
    const promoted = after.reduce((n, d) => n + d.stats.promotedPages, 0);
    expect(promoted).toBe(CHUNK);
    expect(frames(c.hotRuns())[0]).toBe(5 * CHUNK);
  });

  it('does not move a page whose gain cannot pay for the migration', () => {
    // One sample stands for 1 access: 3 samples over the window gain 3 x 172 ns < 1230 ns.
    const cheap = new Classifier({ dramBudgetPages: 4, accessesPerSample: 1 });
    cheap.ingest(samplesFrom([[100, 1, 3, 0]]));
    expect(cheap.decide().stats.promotedPages).toBe(0);
    // The same evidence at a PEBS period of 1000 is worth moving.
    const sampled = new Classifier({ dramBudgetPages: 4, accessesPerSample: 1000 });
    sampled.ingest(samplesFrom([[100, 1, 3, 0]]));
    expect(frames(sampled.decide().promote)).toEqual([100]);
  });

  it('DAMON region samples (weighted ranges, averaged per aggregation) find the hot range', () => {
    const pages = 16 * CHUNK;
    const c = new Classifier({ dramBudgetPages: 2 * CHUNK, ramRanges: runsFrom([[0, pages]]), coolEachIngest: true, coolEverySamples: 0 });
    for (let a = 0; a < 4; a++) {
      // Region boundaries that are not 2 MiB aligned: a hot range of 700 pages, the rest cold.
      c.ingest(samplesFrom([[0, 1000, 1, 0], [1000, 700, 18, 0], [1700, pages - 1700, 1, 0]]));
      c.decide();
    }
    const hot = frames(c.hotRuns());
    expect(hot[0]).toBe(1000);
    expect(hot).toHaveLength(700);
  });

  it('a budget cut still demotes at once, coldest first', () => {
    const c = new Classifier({ dramBudgetPages: 8 });
    c.ingest(samplesFrom(Array.from({ length: 8 }, (_, i) => [i, 1, i + 1, 0] as [number, number, number, number])));
    c.decide();
    c.setBudget(3);
    const d = c.decide();
    expect(frames(d.demote)).toEqual([0, 1, 2, 3, 4]);
    expect(d.stats.dramPages).toBe(3);
  });
});
