// Classifier behaviour on small hand-built inputs under the count-threshold rule (rule:
// 'threshold'): threshold, hysteresis, idle demotion, migration budget, budget cuts, huge pages,
// holes and frames near 1 TiB, bad input. The default evidence rule: classifier-evidence.test.ts.
import { describe, expect, it } from 'vitest';
import { Classifier, ClassifierConfigError, type EpochDecision } from '../src/classifier/index.js';
import { emptySamples, runsFrom, samplesFrom, totalPages, type PageRuns } from '../src/samples.js';

/** Expands runs into a sorted list of frames (small inputs only). */
function frames(runs: PageRuns): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs.count; i++) for (let p = 0; p < runs.pages[i]; p++) out.push(runs.gpaPfn[i] + p);
  return out;
}

/** One sample row per page, `weight` reads each. */
function hits(pfns: number[], weight = 1): ReturnType<typeof samplesFrom> {
  return samplesFrom(pfns.map((pfn) => [pfn, 1, weight, 0]));
}

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

describe('configuration', () => {
  it('rejects a zero, negative, fractional or larger-than-RAM budget with ClassifierConfigError', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => new Classifier({ dramBudgetPages: bad })).toThrow(ClassifierConfigError);
    }
    expect(() => new Classifier({ dramBudgetPages: 2048, ramRanges: runsFrom([[0, 1024]]) })).toThrow(/larger than guest RAM \(1024 pages\)/);
    const c = new Classifier({ dramBudgetPages: 10, ramRanges: runsFrom([[0, 1024]]) });
    expect(() => c.setBudget(0)).toThrow(ClassifierConfigError);
    expect(() => c.setBudget(5000)).toThrow(ClassifierConfigError);
    expect(() => new Classifier({ dramBudgetPages: 1, unknownTier: 'nvm' as never })).toThrow(ClassifierConfigError);
    expect(() => new Classifier({ dramBudgetPages: 1, migrationBudgetBytesPerEpoch: -1 })).toThrow(ClassifierConfigError);
  });
});

describe('threshold and promotion', () => {
  it('promotes the hottest pages that fit the budget, hottest first, as coalesced runs', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 3 });
    c.ingest(samplesFrom([
      [10, 1, 9, 0],
      [11, 1, 8, 1],
      [12, 1, 7, 0],
      [40, 1, 1, 0],
      [41, 1, 2, 0],
    ]));
    const d = c.decide();
    // The lowest count whose pages fit: 3 (counts 9, 9, 7 are >= 3; 2 would admit page 41).
    expect(d.stats.thresholdCount).toBe(3);
    expect(d.promote.count).toBe(1);
    expect(frames(d.promote)).toEqual([10, 11, 12]);
    expect(d.stats).toMatchObject({ hotPages: 3, promotedPages: 3, demotedPages: 0, dramPages: 3, sampledPages: 5 });
    expect(frames(c.hotRuns())).toEqual([10, 11, 12]);
  });

  it('never promotes a page the host reports in DRAM', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 4 });
    c.setPlacement(runsFrom([[10, 2]]), 'dram');
    c.ingest(hits([10, 11, 12, 13], 5));
    const d = c.decide();
    expect(frames(d.promote)).toEqual([12, 13]);
    expect(d.stats.dramPages).toBe(4);
  });

  it('treats unreported pages as CXL by default and as DRAM when asked', () => {
    const cxl = new Classifier({ rule: 'threshold', dramBudgetPages: 600 });
    cxl.ingest(hits([5], 3));
    expect(frames(cxl.decide().promote)).toEqual([5]);

    const dram = new Classifier({ rule: 'threshold', dramBudgetPages: 600, unknownTier: 'dram' });
    dram.ingest(hits([5], 3));
    const d = dram.decide();
    expect(d.promote.count).toBe(0);
    // The sampled chunk (512 pages) is assumed resident in DRAM.
    expect(d.stats.dramPages).toBe(512);
  });

  it('fills free DRAM with warm pages but leaves room-making to clearly colder pages', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 4 });
    // counts: 8,8 hot; 5,5,5 warm (threshold 6: the 5 pages with count >= 5 exceed 4).
    c.ingest(samplesFrom([[1, 1, 8, 0], [2, 1, 8, 0], [3, 1, 5, 0], [4, 1, 5, 0], [5, 1, 5, 0]]));
    const d = c.decide();
    expect(d.stats.thresholdCount).toBe(6);
    expect(d.stats.hotPages).toBe(2);
    expect(d.stats.promotedPages).toBe(4);
    expect(d.stats.fillPromotedPages).toBe(2);
    expect(d.stats.dramPages).toBe(4);
  });
});

describe('hysteresis', () => {
  it('a page oscillating around the threshold is not moved back and forth', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 2, coolEverySamples: 0, coolEveryEpochs: 1 });
    const moves: number[] = [];
    // Pages 1-2 and 3-4 trade places slightly each epoch: whoever is a bit hotter wins
    // the threshold, but the loser stays above threshold/2 and so is never demoted.
    for (let epoch = 0; epoch < 12; epoch++) {
      const even = epoch % 2 === 0;
      c.ingest(samplesFrom([
        [1, 1, even ? 10 : 8, 0],
        [2, 1, even ? 10 : 8, 0],
        [3, 1, even ? 8 : 10, 0],
        [4, 1, even ? 8 : 10, 0],
      ]));
      const d = c.decide();
      moves.push(d.stats.promotedPages + d.stats.demotedPages);
      expect(d.stats.dramPages).toBeLessThanOrEqual(2);
    }
    // Epoch 1 fills DRAM; afterwards nothing moves although the hot set flips every epoch.
    expect(moves[0]).toBe(2);
    expect(moves.slice(1).every((m) => m === 0)).toBe(true);
  });

  it('a clearly colder page is swapped out for a hot one; a warm one is not', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 2, coolEverySamples: 0 });
    c.ingest(samplesFrom([[1, 1, 20, 0], [2, 1, 2, 0]]));
    expect(frames(c.decide().promote)).toEqual([1, 2]);
    c.ingest(samplesFrom([[7, 1, 40, 0], [8, 1, 30, 0]]));
    const d = c.decide();
    // Threshold 21 (pages 7 and 8). Page 2 (count 2) is clearly colder and makes room for
    // the hottest, page 7; page 1 (count 20) is warm, so page 8 waits.
    expect(d.stats.thresholdCount).toBe(21);
    expect(frames(d.promote)).toEqual([7]);
    expect(frames(d.demote)).toEqual([2]);
    expect(d.stats).toMatchObject({ dramPages: 2, deferredPages: 1 });
  });

  it('a new hot set at least twice as hot displaces the stale one in the epoch it appears', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 16, coolEverySamples: 0, coolEveryEpochs: 1 });
    for (let epoch = 0; epoch < 3; epoch++) {
      c.ingest(hits(range(0, 16), 6));
      c.decide();
    }
    // Old set: 6 -> 3, 3+6 -> 4, 4+6 -> 5 after halving; the new set arrives at 12 > 2 x 5.
    c.ingest(hits(range(300, 16), 12));
    const d = c.decide();
    expect(frames(d.promote)).toEqual(range(300, 16));
    expect(frames(d.demote)).toEqual(range(0, 16));
    expect(d.stats.deferredPages).toBe(0);
  });

  it('a new hot set less than twice as hot waits until the old one cools or idles', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 16, coolEverySamples: 0, coolEveryEpochs: 1, idleEpochsBeforeDemote: 2 });
    for (let epoch = 0; epoch < 3; epoch++) {
      c.ingest(hits(range(0, 16), 6));
      c.decide();
    }
    c.ingest(hits(range(300, 16), 9)); // 9 < 2 x 5
    const first = c.decide();
    expect(first.stats).toMatchObject({ promotedPages: 0, deferredPages: 16 });
    c.ingest(hits(range(300, 16), 9));
    expect(frames(c.decide().promote)).toEqual(range(300, 16));
  });

  it('coolEachIngest: snapshot batches (DAMON aggregations) are averaged, so a moved hot set wins DRAM two snapshots later', () => {
    // Several epochs per snapshot, as in the guest agent (500 ms epochs, 5 s aggregations).
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 16, coolEachIngest: true, coolEverySamples: 0 });
    const snapshot = (hot: number[]) => samplesFrom([[0, 1024, 1, 0], ...hot.map((pfn) => [pfn, 16, 10, 0] as [number, number, number, number])]);
    const epochsPerSnapshot = (batch: ReturnType<typeof samplesFrom>) => {
      c.ingest(batch);
      let promoted: number[] = [];
      for (let e = 0; e < 3; e++) promoted = promoted.concat(frames(c.decide().promote));
      return promoted;
    };
    for (let i = 0; i < 4; i++) epochsPerSnapshot(snapshot([0]));
    expect(frames(c.hotRuns())).toEqual(range(0, 16));
    expect(c.stats().coolings).toBe(4);
    // Counts: c = c/2 + weight per snapshot, so the old hot pages sit at 20 (1 background
    // + 10 hot). The hot set moves to 512..527: one snapshot later old and new tie at 11,
    // the next the new pages have 16 against 6 (more than twice) and take DRAM.
    expect(epochsPerSnapshot(snapshot([512]))).toEqual([]);
    expect(epochsPerSnapshot(snapshot([512]))).toEqual(range(512, 16));
    expect(frames(c.hotRuns())).toEqual(range(512, 16));
    // An empty batch is not a snapshot: no halving.
    c.ingest(emptySamples(0));
    expect(c.stats().coolings).toBe(6);
  });

  it('idle for K epochs makes a page demotable whatever its count', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 1, coolEverySamples: 0, idleEpochsBeforeDemote: 3 });
    c.ingest(hits([100], 50));
    expect(frames(c.decide().promote)).toEqual([100]);
    // A new page, colder than 100 but not below half of it: no swap while 100 is recent.
    const log: Array<[number[], number[]]> = [];
    for (let epoch = 0; epoch < 4; epoch++) {
      c.ingest(hits([200], 30));
      const d = c.decide();
      log.push([frames(d.promote), frames(d.demote)]);
    }
    // Epochs without a sample for page 100: 1, 2, 3 -> demoted in the third.
    expect(log[0]).toEqual([[], []]);
    expect(log[1]).toEqual([[], []]);
    expect(log[2]).toEqual([[200], [100]]);
    expect(log[3]).toEqual([[], []]);
  });
});

describe('sparse sampling', () => {
  it('stretches idle-K so a hot page that merely went unsampled is not taken for idle', () => {
    // 64 DRAM pages, ~8 samples per epoch: a hot page is sampled every ~8 epochs, so
    // K = 3 epochs without a sample is no evidence; K stretches towards ceil(3 / (8 / 64)) = 24.
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 64, idleEpochsBeforeDemote: 3, coolEverySamples: 0 });
    c.ingest(hits(range(0, 64), 4));
    expect(c.decide().stats.promotedPages).toBe(64);
    let demoted = 0;
    let idleEpochs = 0;
    for (let epoch = 0; epoch < 6; epoch++) {
      c.ingest(hits(range(1000 + epoch * 8, 8), 3)); // new pages, less than twice as hot
      const d = c.decide();
      demoted += d.stats.demotedPages;
      idleEpochs = d.stats.idleEpochs;
    }
    expect(idleEpochs).toBeGreaterThanOrEqual(20); // the rate is smoothed over epochs (64 samples in the first)
    expect(demoted).toBe(0);
  });
});

describe('budgets', () => {
  it('respects the per-epoch migration budget and defers the rest', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 100, migrationBudgetBytesPerEpoch: 10 * 4096, coolEverySamples: 0 });
    c.ingest(hits(range(0, 25), 3));
    const first = c.decide();
    expect(first.stats.promotedPages).toBe(10);
    expect(first.stats.deferredPages).toBe(15);
    expect(frames(first.promote)).toEqual(range(0, 10));
    expect(c.decide().stats.promotedPages).toBe(10);
    const third = c.decide();
    expect(third.stats.promotedPages).toBe(5);
    expect(third.stats.deferredPages).toBe(0);
  });

  it('counts swaps (demote + promote) against the migration budget', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 4, migrationBudgetBytesPerEpoch: 3 * 4096, coolEverySamples: 0 });
    c.setPlacement(runsFrom([[0, 4]]), 'dram');
    c.ingest(hits([50, 51, 52, 53], 9));
    const d = c.decide();
    // 3 pages of traffic: one swap (2 moves), then no room for another.
    expect(d.stats.promotedPages + d.stats.demotedPages).toBeLessThanOrEqual(3);
    expect(d.stats.promotedPages).toBe(1);
    expect(d.stats.demotedPages).toBe(1);
  });

  it('a budget cut demotes the coldest DRAM pages at the next decision, even warm ones', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 6, coolEverySamples: 0 });
    c.ingest(samplesFrom([[1, 1, 60, 0], [2, 1, 50, 0], [3, 1, 40, 0], [4, 1, 30, 0], [5, 1, 20, 0], [6, 1, 10, 0]]));
    expect(c.decide().stats.dramPages).toBe(6);
    c.setBudget(2);
    const d = c.decide();
    expect(frames(d.demote)).toEqual([3, 4, 5, 6]);
    expect(d.stats).toMatchObject({ dramPages: 2, forcedDemotedPages: 4, promotedPages: 0 });
  });

  it('demotes never-sampled DRAM chunks as whole 2 MiB runs without allocating state for them', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 1024, ramRanges: runsFrom([[0, 1 << 20]]) });
    c.setPlacement(runsFrom([[0, 1 << 20]]), 'cxl');
    c.setPlacement(runsFrom([[4096, 1024]]), 'dram');
    expect(c.stats().trackedPages).toBe(0);
    expect(c.stats().dramPages).toBe(1024);
    c.ingest(hits([9000], 4));
    const d = c.decide();
    expect(frames(d.promote)).toEqual([9000]);
    expect(d.demote.count).toBe(1);
    expect([d.demote.gpaPfn[0], d.demote.pages[0]]).toEqual([4096, 512]);
    expect(d.stats.dramPages).toBe(1024 - 512 + 1);
  });
});

describe('huge pages', () => {
  it('promotes a whole 2 MiB chunk only when most of its sampled pages are hot', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 600, hugePages: true, coolEverySamples: 0 });
    // Threshold 2 (the 500 pages with count 5). Chunk 0: 400 hot pages. Chunk 1: 100 hot pages among 400 sampled (mostly cold).
    c.ingest(hits(range(0, 400), 5));
    c.ingest(hits(range(512, 100), 5));
    c.ingest(hits(range(612, 300), 1));
    const d: EpochDecision = c.decide();
    expect(d.stats.thresholdCount).toBe(2);
    expect(frames(d.promote)).toEqual(range(0, 512));
    expect(d.promote.count).toBe(1);
    expect(d.stats.promotedPages).toBe(512);
  });

  it('moves whole chunks only, and demotes a chunk that went cold to make room', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 512, hugePages: true, coolEverySamples: 0, coolEveryEpochs: 1 });
    c.ingest(hits(range(0, 512), 4));
    expect(c.decide().stats.promotedPages).toBe(512);
    for (let epoch = 0; epoch < 3; epoch++) {
      c.ingest(hits(range(1024, 512), 8));
      const d = c.decide();
      if (d.stats.promotedPages > 0) {
        expect(frames(d.promote)).toEqual(range(1024, 512));
        expect(frames(d.demote)).toEqual(range(0, 512));
        return;
      }
    }
    throw new Error('the cold chunk was never replaced');
  });
});

describe('address space', () => {
  it('handles holes (RAM above 4 GiB) and frames near 2^28 (1 TiB)', () => {
    const ram = runsFrom([[0, 0xc0000], [0x100000, (1 << 28) - 0xc0000]]);
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 4, ramRanges: ram });
    const top = 0x100000 + (1 << 28) - 0xc0000 - 1;
    c.ingest(samplesFrom([
      [0xc0000, 1, 9, 0], // in the PCI hole: rejected
      [top, 1, 9, 0],
      [top, 2, 9, 0], // runs past the end of RAM: rejected
      [0x0bffff, 1, 8, 0],
      [0x100000, 1, 7, 0],
      [(1 << 28) - 1, 1, 6, 0],
    ]));
    const d = c.decide();
    expect(d.stats.rejectedRuns).toBe(2);
    expect(frames(d.promote)).toEqual([0x0bffff, 0x100000, (1 << 28) - 1, top]);
    expect(c.stats().trackedPages).toBe(4 * 512);
  });

  it('a DAMON-style run applies its weight to every page of the run', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 2000, coolEverySamples: 0 });
    c.ingest(samplesFrom([[1000, 1500, 3, 0]]));
    const d = c.decide();
    expect(frames(d.promote)).toEqual(range(1000, 1500));
    expect(d.promote.count).toBe(1);
    expect(c.stats().pageSamples).toBe(1500);
  });

  it('cools by halving every N samples', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 10, coolEverySamples: 4 });
    c.ingest(samplesFrom([[1, 1, 8, 0], [2, 1, 8, 0], [3, 1, 8, 0], [4, 1, 8, 0]]));
    const s = c.stats();
    expect(s.coolings).toBe(1);
    expect(s.histogramLog2[3]).toBe(4); // counts 4 -> bin [4, 8)
  });
});

describe('hostile input', () => {
  it('counts malformed runs and batches in rejectedRuns and keeps going', () => {
    const c = new Classifier({ rule: 'threshold', dramBudgetPages: 10 });
    c.ingest(samplesFrom([
      [Number.NaN, 1, 1, 0],
      [-1, 1, 1, 0],
      [1.5, 1, 1, 0],
      [5, 0, 1, 0],
      [2 ** 40, 1, 1, 0],
      [7, 1, 1, 0],
    ]));
    c.ingest(null as never);
    c.ingest({ count: 5, gpaPfn: [1, 2], pages: [1], reads: [], writes: [] } as never);
    const short = emptySamples(2);
    short.count = 5; // claims more rows than the columns hold
    c.ingest(short);
    c.setPlacement({ count: 1, gpaPfn: new Float64Array([-4]), pages: new Uint32Array([1]) }, 'dram');
    const s = c.stats();
    // 5 bad rows, null, plain arrays, 3 missing rows + 2 empty (pages 0) rows, 1 placement.
    expect(s.rejectedRuns).toBe(5 + 1 + 1 + 3 + 2 + 1);
    expect(s.acceptedRuns).toBe(1);
    expect(totalPages(c.hotRuns())).toBe(1);
  });
});
