// The scoring behind `vtier demo` and `vtier eval accuracy`: clipping samples to a
// workload's frames, covering frames with a bounded number of runs, and precision/recall
// of a hot set. Property tests against a per-page reference.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { clipSamples, coverWithRuns, framesToRuns, scoreHotSet, timeToConverge } from '../src/accuracy/index.js';
import { runsFrom, samplesFrom, type PageRuns } from '../src/samples.js';

const framesArb = fc.uniqueArray(fc.integer({ min: 0, max: 400 }), { maxLength: 120 }).map((a) => a.sort((x, y) => x - y));

function pagesOf(runs: PageRuns): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs.count; i++) for (let p = 0; p < runs.pages[i]; p++) out.push(runs.gpaPfn[i] + p);
  return out;
}

describe('framesToRuns / coverWithRuns', () => {
  it('merges consecutive frames into runs that hold exactly the frames', () => {
    fc.assert(
      fc.property(framesArb, (frames) => {
        const runs = framesToRuns(frames);
        expect(pagesOf(runs)).toEqual(frames);
        for (let i = 1; i < runs.count; i++) expect(runs.gpaPfn[i]).toBeGreaterThan(runs.gpaPfn[i - 1] + runs.pages[i - 1]);
      }),
    );
    expect(() => framesToRuns([3, 1])).toThrow(/not sorted/);
  });

  it('covers every frame with at most maxRuns runs, bridging the narrowest gaps', () => {
    fc.assert(
      fc.property(framesArb, fc.integer({ min: 1, max: 20 }), (frames, maxRuns) => {
        const runs = framesToRuns(frames);
        const cover = coverWithRuns(runs, maxRuns);
        expect(cover.count).toBeLessThanOrEqual(Math.max(maxRuns, 0));
        const covered = new Set(pagesOf(cover));
        for (const f of frames) expect(covered.has(f)).toBe(true);
        if (runs.count <= maxRuns) expect(pagesOf(cover)).toEqual(frames);
      }),
    );
    // Gaps 1, 10, 2: two runs keep the widest gap.
    const c = coverWithRuns(runsFrom([[0, 1], [2, 1], [13, 1], [16, 1]]), 2);
    expect(pagesOf(c)).toEqual([0, 1, 2, 13, 14, 15, 16]);
    expect(() => coverWithRuns(runsFrom([[0, 1]]), 0)).toThrow(/positive/);
  });
});

describe('clipSamples', () => {
  it('keeps exactly the sampled pages inside the kept frames, with their weights', () => {
    const sampleArb = fc.array(fc.tuple(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 1, max: 60 }), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 9 })), { maxLength: 30 });
    fc.assert(
      fc.property(framesArb, sampleArb, (frames, rows) => {
        const keep = new Set(frames);
        const clipped = clipSamples(samplesFrom(rows), framesToRuns(frames));
        const expected: string[] = [];
        for (const [pfn, pages, r, w] of rows) for (let p = pfn; p < pfn + pages; p++) if (keep.has(p)) expected.push(`${p}:${r}:${w}`);
        const got: string[] = [];
        for (let i = 0; i < clipped.count; i++) for (let p = 0; p < clipped.pages[i]; p++) got.push(`${clipped.gpaPfn[i] + p}:${clipped.reads[i]}:${clipped.writes[i]}`);
        expect(got).toEqual(expected);
      }),
    );
  });

  it('splits one region run across several kept runs', () => {
    const out = clipSamples(samplesFrom([[0, 100, 5, 1]]), runsFrom([[10, 5], [50, 2]]));
    expect(out.count).toBe(2);
    expect([out.gpaPfn[0], out.pages[0], out.gpaPfn[1], out.pages[1], out.reads[1], out.writes[1]]).toEqual([10, 5, 50, 2, 5, 1]);
  });
});

describe('scoreHotSet', () => {
  it('matches a per-page count of true and false positives', () => {
    fc.assert(
      fc.property(framesArb, framesArb, (hot, truth) => {
        const s = scoreHotSet(framesToRuns(hot), truth);
        const t = new Set(truth);
        const tp = hot.filter((p) => t.has(p)).length;
        expect(s).toMatchObject({ hotPages: hot.length, truthPages: truth.length, truePositives: tp });
        expect(s.precision).toBeCloseTo(hot.length ? tp / hot.length : 0, 12);
        expect(s.recall).toBeCloseTo(truth.length ? tp / truth.length : 0, 12);
        expect(s.f1).toBeGreaterThanOrEqual(0);
        expect(s.f1).toBeLessThanOrEqual(1);
      }),
    );
  });

  it('is perfect only for the exact set, and refuses unsorted runs', () => {
    expect(scoreHotSet(runsFrom([[4, 3]]), [4, 5, 6])).toMatchObject({ precision: 1, recall: 1, f1: 1 });
    expect(scoreHotSet(runsFrom([[4, 4]]), [4, 5, 6])).toMatchObject({ precision: 0.75, recall: 1 });
    expect(scoreHotSet(runsFrom([]), [1])).toMatchObject({ precision: 0, recall: 0, f1: 0 });
    expect(() => scoreHotSet(runsFrom([[10, 1], [2, 1]]), [])).toThrow(/unsorted/);
  });
});

describe('timeToConverge', () => {
  it('is the first time from which the series stays at the level', () => {
    const series = [0.2, 0.96, 0.5, 0.97, 0.99].map((value, i) => ({ t: i * 1000, value }));
    expect(timeToConverge(series, 0.95)).toBe(3000);
    expect(timeToConverge(series, 0.95, 1000)).toBe(2000);
    expect(timeToConverge(series, 0.999)).toBeNull();
    expect(timeToConverge([], 0.5)).toBeNull();
  });
});
