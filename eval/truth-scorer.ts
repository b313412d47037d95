// Scores a classifier against the built-in workload's ground-truth file while both run.
// The workload rewrites the file (atomically) when its hot set shifts; refresh() picks up
// the new generation. Samples are clipped to the workload's own frames first: a live
// source sees the whole machine, and only the workload's pages have a known truth.
import { statSync } from 'node:fs';
import { clipSamples, coverWithRuns, framesToRuns, scoreHotSet, type HotSetScore } from '../src/accuracy/index.js';
import { totalPages, type PageRuns, type PageSamples } from '../src/samples.js';
import { readTruth, type Truth } from '../guest-agent/workload.js';

export class TruthScorer {
  readonly path: string;
  private truth: Truth;
  private mtimeMs: number;
  private workloadFrames: PageRuns;

  constructor(truthPath: string) {
    this.path = truthPath;
    this.mtimeMs = statSync(truthPath).mtimeMs;
    this.truth = readTruth(truthPath);
    if (!this.truth.pfnKnown) throw new Error(`${truthPath}: the workload could not read its page frames (pagemap needs root); nothing to score against`);
    this.workloadFrames = this.framesOf(this.truth);
  }

  private framesOf(truth: Truth): PageRuns {
    return framesToRuns(Float64Array.from(truth.gpaPfn.filter((p) => p >= 0)).sort());
  }

  /** Re-reads the truth file if it changed; returns true when the generation (hot set) changed. */
  refresh(): boolean {
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.path).mtimeMs;
    } catch {
      return false;
    }
    if (mtimeMs === this.mtimeMs) return false;
    const next = readTruth(this.path);
    this.mtimeMs = mtimeMs;
    const shifted = next.generation !== this.truth.generation;
    this.truth = next;
    this.workloadFrames = this.framesOf(next);
    return shifted;
  }

  /** Takes the workload's frames as read just now (e.g. from its pagemap right after a move)
   *  instead of waiting for the workload's next truth refresh: on a tiered machine a move gives
   *  a page a frame on the other node, and the clip and the hot frames must follow at once.
   *  The hot block and generation stay as last read; the next changed truth file replaces it. */
  updateFrames(gpaPfn: Float64Array): void {
    const t = this.truth;
    if (gpaPfn.length !== t.pages) throw new Error(`updateFrames: ${gpaPfn.length} frames for a ${t.pages}-page region`);
    const hot: number[] = [];
    for (let i = 0; i < t.hotPages; i++) {
      const pfn = gpaPfn[(t.hotFirstPage + i) % t.pages];
      if (pfn >= 0) hot.push(pfn);
    }
    this.truth = { ...t, gpaPfn: Float64Array.from(gpaPfn), hotPfns: Float64Array.from(hot).sort() };
    this.workloadFrames = this.framesOf(this.truth);
  }

  /** The truth as last read (refresh() re-reads it). */
  get current(): Truth {
    return this.truth;
  }

  get generation(): number {
    return this.truth.generation;
  }

  /** Pages in the true hot set (frames present). */
  get truthHotPages(): number {
    return this.truth.hotPfns.length;
  }

  /** Resident pages of the workload region. */
  get residentPages(): number {
    return totalPages(this.workloadFrames);
  }

  /** The workload's frames as exact runs. */
  get frames(): PageRuns {
    return this.workloadFrames;
  }

  /** The workload's frames covered by at most `maxRuns` runs (a hello's RAM ranges). */
  ramRanges(maxRuns: number): PageRuns {
    return coverWithRuns(this.workloadFrames, maxRuns);
  }

  /** The part of a sample batch that lies on the workload's frames. */
  clip(batch: PageSamples): PageSamples {
    return clipSamples(batch, this.workloadFrames);
  }

  /** Fraction of the true hot pages whose address lies in one of `byteRanges` ([start, end)
   *  in bytes): what a source that only watches those ranges can find at best. */
  hotShareInside(byteRanges: ReadonlyArray<{ start: number; end: number }>): number {
    const hot = this.truth.hotPfns;
    if (hot.length === 0) return 0;
    let inside = 0;
    for (const pfn of hot) {
      const addr = pfn * 4096; // frames are GPA >> 12 whatever the workload's page size
      if (byteRanges.some((r) => addr >= r.start && addr < r.end)) inside++;
    }
    return inside / hot.length;
  }

  /** Sample weight of a batch (clip it first) on the true hot pages and on the others:
   *  how far the source tells them apart. */
  weightSplit(batch: PageSamples): { hotWeight: number; otherWeight: number } {
    const hot = this.truth.hotPfns;
    const lowerBound = (pfn: number): number => {
      let lo = 0;
      let hi = hot.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (hot[mid] < pfn) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    let hotWeight = 0;
    let otherWeight = 0;
    for (let i = 0; i < batch.count; i++) {
      const weight = batch.reads[i] + batch.writes[i];
      if (weight === 0) continue;
      const first = batch.gpaPfn[i];
      const hotPages = lowerBound(first + batch.pages[i]) - lowerBound(first);
      hotWeight += weight * hotPages;
      otherWeight += weight * (batch.pages[i] - hotPages);
    }
    return { hotWeight, otherWeight };
  }

  score(hotRuns: PageRuns): HotSetScore {
    return scoreHotSet(hotRuns, this.truth.hotPfns);
  }
}
