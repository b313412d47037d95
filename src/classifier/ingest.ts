// The ingest hot path, kept in small standalone functions so V8 optimises them once and
// for all (a loop inside a large method kept deoptimising on its cold tail).
import type { PageRuns } from '../samples.js';
import {
  CHUNK_SHIFT,
  COUNT_MASK,
  DIR_FIRST_CHUNK,
  DIR_PAGE_BITS,
  DIR_PAGE_MASK,
  FLAGS_FIELD,
  MAX_COUNT,
  PAGES_PER_CHUNK,
  PFN_LIMIT,
  type PageTable,
} from './pagetable.js';

/** Sorted, merged guest RAM ranges with a cursor: samples tend to stay in one range. */
export class RamMap {
  readonly start: Float64Array;
  readonly end: Float64Array;
  readonly count: number;
  readonly pages: number;
  private cursor = 0;

  constructor(runs: PageRuns) {
    this.count = runs.count;
    this.start = runs.gpaPfn.slice(0, runs.count);
    this.end = new Float64Array(runs.count);
    let pages = 0;
    for (let i = 0; i < runs.count; i++) {
      this.end[i] = runs.gpaPfn[i] + runs.pages[i];
      pages += runs.pages[i];
    }
    this.pages = pages;
  }

  /** Whether [pfn, pfn + pages) lies inside one range (ranges are merged, so this is exact). */
  contains(pfn: number, pages: number): boolean {
    let i = this.cursor;
    if (!(this.start[i] <= pfn && pfn < this.end[i])) {
      let lo = 0;
      let hi = this.count - 1;
      i = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        if (this.start[mid] <= pfn) {
          i = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      if (i < 0 || pfn >= this.end[i]) return false;
      this.cursor = i;
    }
    return pfn + pages <= this.end[i];
  }
}

/** Running totals of one ingest call: [accepted runs, rejected runs, page samples]. */
export type Tally = Float64Array;
export const TALLY_ACCEPTED = 0;
export const TALLY_REJECTED = 1;
export const TALLY_PAGES = 2;

/** Adds rows [from, n) to the table; stops early, after the row that brings the added
 *  page samples to `coolAfter` or more, so the caller can cool. Returns the next row. */
export function accumulate(
  table: PageTable,
  ram: RamMap | undefined,
  gpaPfn: Float64Array,
  pagesOf: Uint32Array,
  reads: Uint32Array,
  writes: Uint32Array,
  from: number,
  n: number,
  maxRunPages: number,
  coolAfter: number,
  tally: Tally,
): number {
  const hist = table.histogram;
  const dirs = table.dirs;
  let state = table.state;
  let accepted = 0;
  let rejected = 0;
  let pageSamples = 0;
  let i = from;
  while (i < n) {
    const pfn = gpaPfn[i];
    const runPages = pagesOf[i];
    const weightSum = reads[i] + writes[i];
    i++;
    const intPfn = pfn | 0;
    if (intPfn === pfn && intPfn >= 0 && runPages === 1) {
      // The hot path (PEBS/IBS/faults below 8 TiB): integer arithmetic only, one
      // directory read, one state word.
      if (ram !== undefined && !ram.contains(intPfn, 1)) {
        rejected++;
        continue;
      }
      accepted++;
      pageSamples++;
      if (weightSum !== 0) {
        const weight = weightSum > MAX_COUNT ? MAX_COUNT : weightSum;
        const key = intPfn >>> CHUNK_SHIFT;
        const dir = dirs[key >>> DIR_PAGE_BITS];
        const entry = dir === undefined ? 0 : dir[key & DIR_PAGE_MASK];
        let base: number;
        if (entry >= DIR_FIRST_CHUNK) base = (entry - DIR_FIRST_CHUNK) << CHUNK_SHIFT;
        else {
          base = table.chunkBase(key);
          state = table.state;
          if (base < 0) {
            accepted--;
            pageSamples--;
            rejected++;
            continue;
          }
        }
        const p = base | (intPfn & (PAGES_PER_CHUNK - 1));
        const word = state[p];
        const old = word & COUNT_MASK;
        let next = old + weight;
        if (next > MAX_COUNT) next = MAX_COUNT;
        hist[old]--;
        hist[next]++;
        state[p] = (word & FLAGS_FIELD) | next; // idle = 0
      }
      if (pageSamples >= coolAfter) break;
      continue;
    }
    // NaN, fractions, negatives, empty and absurd runs are all rejected here.
    if (!(pfn >= 0 && pfn === Math.floor(pfn) && runPages >= 1 && runPages <= maxRunPages && pfn + runPages <= PFN_LIMIT)) {
      rejected++;
      continue;
    }
    if (ram !== undefined && !ram.contains(pfn, runPages)) {
      rejected++;
      continue;
    }
    accepted++;
    pageSamples += runPages;
    if (weightSum !== 0) {
      const weight = weightSum > MAX_COUNT ? MAX_COUNT : weightSum;
      if (runPages === 1) {
        // A single page above 8 TiB of guest-physical space.
        const key = Math.floor(pfn / PAGES_PER_CHUNK);
        const dir = dirs[key >>> DIR_PAGE_BITS];
        const entry = dir === undefined ? 0 : dir[key & DIR_PAGE_MASK];
        let base: number;
        if (entry >= DIR_FIRST_CHUNK) base = (entry - DIR_FIRST_CHUNK) << CHUNK_SHIFT;
        else {
          base = table.chunkBase(key);
          state = table.state;
          if (base < 0) {
            accepted--;
            pageSamples--;
            rejected++;
            continue;
          }
        }
        // Integer arithmetic: the page index is below 2^31 (PageTable caps tracked chunks).
        const p = base | ((pfn - key * PAGES_PER_CHUNK) | 0);
        const word = state[p];
        const old = word & COUNT_MASK;
        let next = old + weight;
        if (next > MAX_COUNT) next = MAX_COUNT;
        hist[old]--;
        hist[next]++;
        state[p] = (word & FLAGS_FIELD) | next; // idle = 0
      } else {
        if (!addRun(table, pfn, runPages, weight)) {
          accepted--;
          pageSamples -= runPages;
          rejected++;
        }
        state = table.state;
      }
    }
    if (pageSamples >= coolAfter) break;
  }
  tally[TALLY_ACCEPTED] += accepted;
  tally[TALLY_REJECTED] += rejected;
  tally[TALLY_PAGES] += pageSamples;
  return i;
}

/** Region samples (DAMON): the weight applies to every page of the run. False when the
 *  table is full (the pages before that point keep their weight). */
function addRun(table: PageTable, pfn: number, runPages: number, weight: number): boolean {
  const hist = table.histogram;
  let page = pfn;
  const end = pfn + runPages;
  while (page < end) {
    const key = Math.floor(page / PAGES_PER_CHUNK);
    const base = table.chunkBase(key);
    if (base < 0) return false;
    const state = table.state;
    const offset = page - key * PAGES_PER_CHUNK;
    const stop = Math.min(end - page, PAGES_PER_CHUNK - offset);
    const first = base + offset;
    for (let p = first; p < first + stop; p++) {
      const word = state[p];
      const old = word & COUNT_MASK;
      let next = old + weight;
      if (next > MAX_COUNT) next = MAX_COUNT;
      hist[old]--;
      hist[next]++;
      state[p] = (word & FLAGS_FIELD) | next;
    }
    page += stop;
  }
  return true;
}
