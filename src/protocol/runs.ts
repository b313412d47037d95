// Page runs on the wire: two msgpack bin fields, one column each, little-endian,
// so a C peer can read them with memcpy and JS decodes them without an object per run.
//   gpaPfn: count x u64 LE  (first guest page frame, GPA >> 12)
//   pages:  count x u32 LE  (pages in the run, >= 1)
// Every run must satisfy gpaPfn + pages <= 2^52 (GPAs below 2^64).
import type { PageRuns } from '../samples.js';

/** Highest frame number + 1 a run may reach: 2^52 frames of 4 KiB = the 64-bit space. */
export const MAX_PFN_END = 2 ** 52;

export interface WireRuns {
  gpaPfn: Uint8Array;
  pages: Uint8Array;
}

export function packRuns(runs: PageRuns): WireRuns {
  const count = runs.count;
  const gpaPfn = new Uint8Array(count * 8);
  const pages = new Uint8Array(count * 4);
  const pfnView = new DataView(gpaPfn.buffer);
  const pagesView = new DataView(pages.buffer);
  for (let i = 0; i < count; i++) {
    const pfn = runs.gpaPfn[i];
    pfnView.setUint32(i * 8, pfn % 0x1_0000_0000, true);
    pfnView.setUint32(i * 8 + 4, Math.floor(pfn / 0x1_0000_0000), true);
    pagesView.setUint32(i * 4, runs.pages[i], true);
  }
  return { gpaPfn, pages };
}

/** Decodes and validates wire runs. Returns the runs or a reason for refusing them. */
export function unpackRuns(wire: unknown, field: string, maxRuns: number): PageRuns | string {
  if (typeof wire !== 'object' || wire === null || Array.isArray(wire)) return `${field}: expected a map with gpaPfn and pages`;
  const { gpaPfn, pages } = wire as Record<string, unknown>;
  if (!(gpaPfn instanceof Uint8Array)) return `${field}.gpaPfn: expected binary`;
  if (!(pages instanceof Uint8Array)) return `${field}.pages: expected binary`;
  if (gpaPfn.length % 8 !== 0) return `${field}.gpaPfn: length ${gpaPfn.length} is not a multiple of 8`;
  if (pages.length % 4 !== 0) return `${field}.pages: length ${pages.length} is not a multiple of 4`;
  const count = gpaPfn.length / 8;
  if (pages.length / 4 !== count) return `${field}: ${count} frames but ${pages.length / 4} page counts`;
  if (count > maxRuns) return `${field}: ${count} runs exceeds the limit of ${maxRuns}`;
  const out: PageRuns = { count, gpaPfn: new Float64Array(count), pages: new Uint32Array(count) };
  const pfnView = new DataView(gpaPfn.buffer, gpaPfn.byteOffset, gpaPfn.byteLength);
  const pagesView = new DataView(pages.buffer, pages.byteOffset, pages.byteLength);
  for (let i = 0; i < count; i++) {
    const lo = pfnView.getUint32(i * 8, true);
    const hi = pfnView.getUint32(i * 8 + 4, true);
    const n = pagesView.getUint32(i * 4, true);
    // hi < 2^20 keeps the frame below 2^52, where doubles are exact.
    if (hi >= 0x10_0000) return `${field}[${i}]: gpaPfn beyond 2^52`;
    const pfn = hi * 0x1_0000_0000 + lo;
    if (n === 0) return `${field}[${i}]: pages must be >= 1`;
    if (pfn + n > MAX_PFN_END) return `${field}[${i}]: gpaPfn + pages overflows 2^52`;
    out.gpaPfn[i] = pfn;
    out.pages[i] = n;
  }
  return out;
}

/** The same checks for runs built locally (before encoding). */
export function checkRuns(runs: PageRuns, field: string, maxRuns: number): string | null {
  if (!runs || typeof runs.count !== 'number' || !(runs.gpaPfn instanceof Float64Array) || !(runs.pages instanceof Uint32Array)) {
    return `${field}: expected PageRuns`;
  }
  if (!Number.isInteger(runs.count) || runs.count < 0 || runs.count > runs.gpaPfn.length || runs.count > runs.pages.length) {
    return `${field}: bad count ${runs.count}`;
  }
  if (runs.count > maxRuns) return `${field}: ${runs.count} runs exceeds the limit of ${maxRuns}`;
  for (let i = 0; i < runs.count; i++) {
    const pfn = runs.gpaPfn[i];
    const n = runs.pages[i];
    if (!Number.isInteger(pfn) || pfn < 0) return `${field}[${i}]: gpaPfn must be a non-negative integer`;
    if (n === 0) return `${field}[${i}]: pages must be >= 1`;
    if (pfn + n > MAX_PFN_END) return `${field}[${i}]: gpaPfn + pages overflows 2^52`;
  }
  return null;
}
