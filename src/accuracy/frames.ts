// Frame sets as runs, and samples restricted to them. A live source sees the whole machine
// (DAMON's regions cover all of System RAM); scoring one workload against its ground truth
// only means something on the workload's own frames, so samples are clipped to them first.
import { emptyRuns, emptySamples, type PageRuns, type PageSamples } from '../samples.js';

/** Sorted frames (duplicates allowed) -> merged runs of consecutive frames. */
export function framesToRuns(sortedFrames: ArrayLike<number>): PageRuns {
  const rows: Array<[number, number]> = [];
  for (let i = 0; i < sortedFrames.length; i++) {
    const pfn = sortedFrames[i];
    if (i > 0 && pfn < sortedFrames[i - 1]) throw new RangeError(`framesToRuns: frames not sorted at index ${i}`);
    const last = rows[rows.length - 1];
    if (last && pfn < last[0] + last[1]) continue;
    if (last && pfn === last[0] + last[1]) last[1]++;
    else rows.push([pfn, 1]);
  }
  const runs = emptyRuns(rows.length);
  for (const [pfn, pages] of rows) {
    runs.gpaPfn[runs.count] = pfn;
    runs.pages[runs.count++] = pages;
  }
  return runs;
}

/**
 * Covers sorted, disjoint runs with at most `maxRuns` runs by bridging the smallest gaps
 * (a protocol hello carries a bounded number of RAM ranges). The result covers every
 * input frame and, where it had to bridge, some frames between them.
 */
export function coverWithRuns(runs: PageRuns, maxRuns: number): PageRuns {
  if (!Number.isSafeInteger(maxRuns) || maxRuns < 1) throw new RangeError(`coverWithRuns: maxRuns must be a positive integer, got ${maxRuns}`);
  if (runs.count <= maxRuns) return { count: runs.count, gpaPfn: runs.gpaPfn.slice(0, runs.count), pages: runs.pages.slice(0, runs.count) };
  const gaps = new Float64Array(runs.count - 1);
  for (let i = 0; i + 1 < runs.count; i++) gaps[i] = runs.gpaPfn[i + 1] - (runs.gpaPfn[i] + runs.pages[i]);
  // Keep the (maxRuns - 1) widest gaps; bridge every other one.
  const order = Array.from(gaps.keys()).sort((a, b) => gaps[b] - gaps[a] || a - b);
  const keepGap = new Uint8Array(gaps.length);
  for (let k = 0; k < maxRuns - 1; k++) keepGap[order[k]] = 1;
  const out = emptyRuns(maxRuns);
  let start = runs.gpaPfn[0];
  for (let i = 0; i < runs.count; i++) {
    const end = runs.gpaPfn[i] + runs.pages[i];
    if (i === runs.count - 1 || keepGap[i]) {
      const pages = end - start;
      if (pages > 0xffffffff) throw new RangeError('coverWithRuns: a bridged run exceeds 2^32 pages');
      out.gpaPfn[out.count] = start;
      out.pages[out.count++] = pages;
      if (i + 1 < runs.count) start = runs.gpaPfn[i + 1];
    }
  }
  return out;
}

/**
 * The parts of each sample run that fall inside `keep` (sorted, disjoint runs), with the
 * run's per-page weights unchanged. A run crossing several kept runs yields one piece each.
 */
export function clipSamples(batch: PageSamples, keep: PageRuns): PageSamples {
  const pieces: number[] = [];
  for (let i = 0; i < batch.count; i++) {
    const first = batch.gpaPfn[i];
    const end = first + batch.pages[i];
    // First kept run ending after `first`.
    let lo = 0;
    let hi = keep.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keep.gpaPfn[mid] + keep.pages[mid] <= first) lo = mid + 1;
      else hi = mid;
    }
    for (let k = lo; k < keep.count && keep.gpaPfn[k] < end; k++) {
      const from = Math.max(first, keep.gpaPfn[k]);
      const to = Math.min(end, keep.gpaPfn[k] + keep.pages[k]);
      if (to > from) pieces.push(i, from, to - from);
    }
  }
  const out = emptySamples(pieces.length / 3);
  for (let p = 0; p < pieces.length; p += 3) {
    const i = pieces[p];
    const o = out.count++;
    out.gpaPfn[o] = pieces[p + 1];
    out.pages[o] = pieces[p + 2];
    out.reads[o] = batch.reads[i];
    out.writes[o] = batch.writes[i];
  }
  return out;
}
