// How well a classified hot set matches the true one: precision, recall and F1 of the
// pages, and when a series of scores first reached (and stayed at) a level.
import type { PageRuns } from '../samples.js';

export interface HotSetScore {
  /** Pages the classifier calls hot. */
  hotPages: number;
  /** Pages that are truly hot. */
  truthPages: number;
  /** Pages in both. */
  truePositives: number;
  /** truePositives / hotPages (0 when nothing is classified hot). */
  precision: number;
  /** truePositives / truthPages (0 when the truth is empty). */
  recall: number;
  f1: number;
}

/** Scores `hot` (sorted, disjoint runs) against `truthHotPfns` (sorted frames, no duplicates). */
export function scoreHotSet(hot: PageRuns, truthHotPfns: ArrayLike<number>): HotSetScore {
  let hotPages = 0;
  let truePositives = 0;
  let t = 0;
  for (let i = 0; i < hot.count; i++) {
    const first = hot.gpaPfn[i];
    const end = first + hot.pages[i];
    hotPages += hot.pages[i];
    if (i > 0 && first < hot.gpaPfn[i - 1] + hot.pages[i - 1]) throw new RangeError(`scoreHotSet: hot runs overlap or are unsorted at run ${i}`);
    while (t < truthHotPfns.length && truthHotPfns[t] < first) t++;
    while (t < truthHotPfns.length && truthHotPfns[t] < end) {
      truePositives++;
      t++;
    }
  }
  const truthPages = truthHotPfns.length;
  const precision = hotPages ? truePositives / hotPages : 0;
  const recall = truthPages ? truePositives / truthPages : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { hotPages, truthPages, truePositives, precision, recall, f1 };
}

export interface ScorePoint {
  /** Time of the point, in whatever unit the caller uses (the result is in the same unit). */
  t: number;
  value: number;
}

/**
 * Time from `from` until the series reached `level` and never fell below it again;
 * null when the last point is still below (not converged within the run).
 */
export function timeToConverge(series: readonly ScorePoint[], level: number, from = 0): number | null {
  let reachedAt: number | null = null;
  for (const point of series) {
    if (point.t < from) continue;
    if (point.value >= level) reachedAt ??= point.t;
    else reachedAt = null;
  }
  return reachedAt === null ? null : reachedAt - from;
}
