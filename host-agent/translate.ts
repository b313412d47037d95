// Guest page runs -> host virtual addresses, validated against the VM's RAM map.
// Every run from a guest is hostile until proven otherwise: integral, non-negative, inside
// guest RAM, no overflow. The hot path writes into preallocated typed arrays.
import type { PageRuns } from '../src/samples.js';
import { PAGE_BYTES, type RamRange } from './layout.js';

/** Frames beyond 2^40 (4 PiB of guest RAM) are never valid; keeps every sum exact. */
const MAX_PFN = 2 ** 40;

export interface TranslationTable {
  count: number;
  startPfn: Float64Array;
  endPfn: Float64Array;
  hvaPfn: Float64Array;
  /** Index of the first page of each range in the VM's dense page numbering. */
  firstIndex: Float64Array;
  totalPages: number;
}

export function buildTable(ranges: RamRange[]): TranslationTable {
  const n = ranges.length;
  const t: TranslationTable = {
    count: n,
    startPfn: new Float64Array(n),
    endPfn: new Float64Array(n),
    hvaPfn: new Float64Array(n),
    firstIndex: new Float64Array(n),
    totalPages: 0,
  };
  let index = 0;
  for (let i = 0; i < n; i++) {
    const r = ranges[i];
    if (r.gpaStart % PAGE_BYTES || r.gpaEnd % PAGE_BYTES || r.hvaStart % PAGE_BYTES) throw new Error('translate: range not page aligned');
    if (i > 0 && r.gpaStart < ranges[i - 1].gpaEnd) throw new Error('translate: ranges overlap or are unsorted');
    t.startPfn[i] = r.gpaStart / PAGE_BYTES;
    t.endPfn[i] = r.gpaEnd / PAGE_BYTES;
    t.hvaPfn[i] = r.hvaStart / PAGE_BYTES;
    t.firstIndex[i] = index;
    index += t.endPfn[i] - t.startPfn[i];
  }
  t.totalPages = index;
  return t;
}

/** Index of the range holding `pfn`, or -1. */
export function findRange(t: TranslationTable, pfn: number): number {
  let lo = 0;
  let hi = t.count - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (pfn < t.startPfn[mid]) hi = mid - 1;
    else if (pfn >= t.endPfn[mid]) lo = mid + 1;
    else return mid;
  }
  return -1;
}

export type RunRejection = 'bad-run' | 'outside-ram' | 'too-many-pages';

export interface TranslateResult {
  /** Pages written to the output arrays. */
  pages: number;
  /** Runs refused, by index into the input. */
  rejected: Array<{ run: number; reason: RunRejection }>;
}

/** Output buffers, grown on demand and reused between calls. */
export class PageBuffer {
  hva: Float64Array;
  index: Float64Array;
  gpaPfn: Float64Array;
  node: Int32Array;
  count = 0;
  constructor(capacity = 4096) {
    this.hva = new Float64Array(capacity);
    this.index = new Float64Array(capacity);
    this.gpaPfn = new Float64Array(capacity);
    this.node = new Int32Array(capacity);
  }
  clear(): void {
    this.count = 0;
  }
  ensure(capacity: number): void {
    if (capacity <= this.hva.length) return;
    let size = this.hva.length * 2;
    while (size < capacity) size *= 2;
    const hva = new Float64Array(size);
    const index = new Float64Array(size);
    const gpaPfn = new Float64Array(size);
    const node = new Int32Array(size);
    hva.set(this.hva.subarray(0, this.count));
    index.set(this.index.subarray(0, this.count));
    gpaPfn.set(this.gpaPfn.subarray(0, this.count));
    node.set(this.node.subarray(0, this.count));
    this.hva = hva;
    this.index = index;
    this.gpaPfn = gpaPfn;
    this.node = node;
  }
}

/** Validates `runs` and appends each page's HVA, dense page index and `targetNode` to `out`.
 *  A run is all or nothing: any page outside RAM rejects the whole run. At most `maxPages`
 *  pages are appended in total; later runs are rejected as 'too-many-pages'. */
export function translateRuns(t: TranslationTable, runs: PageRuns, targetNode: number, out: PageBuffer, maxPages = Infinity): TranslateResult {
  const rejected: TranslateResult['rejected'] = [];
  const start = out.count;
  // Guests send sorted runs: most runs fall in the range of the previous one.
  let lastRange = -1;
  out.ensure(out.count + Math.min(maxPages, runs.count));
  for (let r = 0; r < runs.count; r++) {
    const pfn = runs.gpaPfn[r];
    const pages = runs.pages[r];
    if (!(Number.isInteger(pfn) && pfn >= 0 && pfn < MAX_PFN && Number.isInteger(pages) && pages >= 1 && pfn + pages <= MAX_PFN)) {
      rejected.push({ run: r, reason: 'bad-run' });
      continue;
    }
    if (out.count - start + pages > maxPages) {
      rejected.push({ run: r, reason: 'too-many-pages' });
      continue;
    }
    // Check the whole run first (it may span adjacent ranges), then emit.
    let ri = lastRange >= 0 && pfn >= t.startPfn[lastRange] && pfn < t.endPfn[lastRange] ? lastRange : findRange(t, pfn);
    if (ri < 0) {
      rejected.push({ run: r, reason: 'outside-ram' });
      continue;
    }
    let ok = true;
    let cursor = pfn;
    const end = pfn + pages;
    for (let k = ri; cursor < end; k++) {
      if (k >= t.count || (k > ri && t.startPfn[k] !== cursor)) {
        ok = false;
        break;
      }
      cursor = Math.min(end, t.endPfn[k]);
    }
    if (!ok) {
      rejected.push({ run: r, reason: 'outside-ram' });
      continue;
    }
    lastRange = ri;
    if (out.count + pages > out.hva.length) out.ensure(out.count + pages);
    const hva = out.hva;
    const index = out.index;
    const node = out.node;
    const gpa = out.gpaPfn;
    let o = out.count;
    cursor = pfn;
    while (cursor < end) {
      const stop = Math.min(end, t.endPfn[ri]);
      const hvaBase = (t.hvaPfn[ri] - t.startPfn[ri]) * PAGE_BYTES;
      const indexBase = t.firstIndex[ri] - t.startPfn[ri];
      for (let p = cursor; p < stop; p++, o++) {
        hva[o] = hvaBase + p * PAGE_BYTES;
        index[o] = indexBase + p;
        gpa[o] = p;
        node[o] = targetNode;
      }
      cursor = stop;
      ri++;
    }
    out.count = o;
  }
  return { pages: out.count - start, rejected };
}

/** HVA of every page of the VM, in dense index order (for placement queries). */
export function allPages(t: TranslationTable): Float64Array {
  const hva = new Float64Array(t.totalPages);
  for (let i = 0; i < t.count; i++) {
    const base = t.hvaPfn[i] * PAGE_BYTES;
    const first = t.firstIndex[i];
    const n = t.endPfn[i] - t.startPfn[i];
    for (let p = 0; p < n; p++) hva[first + p] = base + p * PAGE_BYTES;
  }
  return hva;
}

/** The QEMU translator: guest RAM ranges -> QEMU's mapping of the backend. */
export class RangeTranslator {
  readonly table: TranslationTable;
  private all?: Float64Array;
  constructor(ranges: RamRange[]) {
    this.table = buildTable(ranges);
  }
  get totalPages(): number {
    return this.table.totalPages;
  }
  translate(runs: PageRuns, targetNode: number, out: PageBuffer, maxPages = Infinity): TranslateResult {
    return translateRuns(this.table, runs, targetNode, out, maxPages);
  }
  allPages(): Float64Array {
    this.all ??= allPages(this.table);
    return this.all;
  }
}

/** Pages of `runs` that no range of the table covers (guest-declared RAM the host does not
 *  see: a sign the connection belongs to another VM, or a stale layout). */
export function pagesOutside(t: TranslationTable, runs: PageRuns): number {
  let outside = 0;
  for (let r = 0; r < runs.count; r++) {
    let pfn = runs.gpaPfn[r];
    const end = pfn + runs.pages[r];
    while (pfn < end) {
      const i = findRange(t, pfn);
      if (i >= 0) {
        pfn = Math.min(end, t.endPfn[i]);
        continue;
      }
      // Skip to the next range start (binary search for the first start > pfn).
      let lo = 0;
      let hi = t.count;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (t.startPfn[mid] <= pfn) lo = mid + 1;
        else hi = mid;
      }
      const next = lo < t.count ? Math.min(end, t.startPfn[lo]) : end;
      outside += next - pfn;
      pfn = next;
    }
  }
  return outside;
}
