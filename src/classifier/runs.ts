// Run lists built in ascending pfn order, merging adjacent frames, so decisions travel
// as few GPA ranges as possible.
import type { PageRuns } from '../samples.js';

/** Appends page runs, coalescing a run that starts where the previous one ends. */
export class RunBuilder {
  private gpaPfn = new Float64Array(16);
  private pages = new Uint32Array(16);
  private count = 0;
  private totalPages = 0;

  add(gpaPfn: number, pages: number): void {
    if (pages <= 0) return;
    this.totalPages += pages;
    const last = this.count - 1;
    if (last >= 0 && this.gpaPfn[last] + this.pages[last] === gpaPfn && this.pages[last] + pages <= 0xffffffff) {
      this.pages[last] += pages;
      return;
    }
    if (this.count === this.gpaPfn.length) {
      const gpaPfnGrown = new Float64Array(this.count * 2);
      gpaPfnGrown.set(this.gpaPfn);
      this.gpaPfn = gpaPfnGrown;
      const pagesGrown = new Uint32Array(this.count * 2);
      pagesGrown.set(this.pages);
      this.pages = pagesGrown;
    }
    this.gpaPfn[this.count] = gpaPfn;
    this.pages[this.count] = pages;
    this.count++;
  }

  get pageCount(): number {
    return this.totalPages;
  }

  finish(): PageRuns {
    return { count: this.count, gpaPfn: this.gpaPfn.slice(0, this.count), pages: this.pages.slice(0, this.count) };
  }
}

/** Sorted, merged copy of a run list (RAM maps may come unsorted or overlapping).
 *  Runs that are not whole non-negative numbers are dropped and counted. */
export function normaliseRuns(runs: PageRuns): { runs: PageRuns; dropped: number } {
  const rows: Array<[number, number]> = [];
  let dropped = 0;
  const n = Math.min(runs.count, runs.gpaPfn.length, runs.pages.length);
  for (let i = 0; i < n; i++) {
    const gpaPfn = runs.gpaPfn[i];
    const pages = runs.pages[i];
    if (!Number.isSafeInteger(gpaPfn) || gpaPfn < 0 || !(pages > 0)) dropped++;
    else rows.push([gpaPfn, pages]);
  }
  rows.sort((a, b) => a[0] - b[0]);
  const builder = new RunBuilder();
  let curStart = -1;
  let curEnd = -1;
  for (const [start, pages] of rows) {
    const end = start + pages;
    if (start <= curEnd) {
      curEnd = Math.max(curEnd, end);
      continue;
    }
    if (curStart >= 0) builder.add(curStart, curEnd - curStart);
    curStart = start;
    curEnd = end;
  }
  if (curStart >= 0) builder.add(curStart, curEnd - curStart);
  return { runs: builder.finish(), dropped };
}
