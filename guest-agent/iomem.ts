// Physical RAM ranges of this machine (= guest-physical RAM inside a VM), from the
// top-level "System RAM" lines of /proc/iomem. DAMON's paddr target and the trace
// header's RAM map both come from here.
import { readFileSync } from 'node:fs';
import { emptyRuns, type PageRuns } from '../src/samples.js';

export const PAGE_SHIFT = 12;
const PAGE_BYTES = 2 ** PAGE_SHIFT;
/** Longest run a PageRuns entry holds (pages is a Uint32Array). */
const MAX_RUN_PAGES = 0xffff_ffff;
/** /proc/iomem is a few KiB; refuse absurd inputs rather than scan them. */
const MAX_IOMEM_CHARS = 4 << 20;
const MAX_RANGES = 65_536;
/** Physical addresses beyond 2^52 do not exist on x86-64 / arm64. */
const MAX_PHYS_ADDR = 2 ** 52;

export class IomemError extends Error {
  readonly code = 'iomem';
  constructor(message: string) {
    super(message);
    this.name = 'IomemError';
  }
}

/**
 * Parses /proc/iomem text into runs of whole page frames covered by top-level
 * "System RAM" resources. Nested lines (indented) are children such as "Kernel code"
 * and are ignored. Partial pages at range edges are dropped. Lines that do not parse
 * are skipped; ranges are returned sorted and merged.
 */
export function systemRamRanges(iomemText: string): PageRuns {
  if (typeof iomemText !== 'string') throw new IomemError('iomem: input is not text');
  if (iomemText.length > MAX_IOMEM_CHARS) throw new IomemError(`iomem: input larger than ${MAX_IOMEM_CHARS} characters`);
  const spans: Array<[firstPfn: number, endPfn: number]> = [];
  let sawZeroedRam = false;
  for (const line of iomemText.split('\n')) {
    const match = /^([0-9a-fA-F]{1,16})-([0-9a-fA-F]{1,16}) : System RAM\s*$/.exec(line);
    if (!match) continue;
    const start = parseInt(match[1], 16);
    const endInclusive = parseInt(match[2], 16);
    if (start === 0 && endInclusive === 0) {
      sawZeroedRam = true; // non-root readers see every address as 0
      continue;
    }
    if (!(endInclusive >= start) || endInclusive >= MAX_PHYS_ADDR) continue;
    const firstPfn = Math.ceil(start / PAGE_BYTES);
    const endPfn = Math.floor((endInclusive + 1) / PAGE_BYTES);
    if (endPfn > firstPfn) spans.push([firstPfn, endPfn]);
    if (spans.length > MAX_RANGES) throw new IomemError(`iomem: more than ${MAX_RANGES} System RAM ranges`);
  }
  if (spans.length === 0 && sawZeroedRam) {
    throw new IomemError('iomem: /proc/iomem shows zeroed addresses (reading it needs root / CAP_SYS_ADMIN)');
  }
  spans.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const span of spans) {
    const last = merged[merged.length - 1];
    if (last && span[0] <= last[1]) last[1] = Math.max(last[1], span[1]);
    else merged.push([span[0], span[1]]);
  }
  let count = 0;
  for (const [first, end] of merged) count += Math.ceil((end - first) / MAX_RUN_PAGES);
  const runs = emptyRuns(count);
  for (const [first, end] of merged) {
    for (let pfn = first; pfn < end; pfn += MAX_RUN_PAGES) {
      const i = runs.count++;
      runs.gpaPfn[i] = pfn;
      runs.pages[i] = Math.min(MAX_RUN_PAGES, end - pfn);
    }
  }
  return runs;
}

/** System RAM of this machine; throws IomemError when it cannot be read or is empty. */
export function readSystemRam(path = '/proc/iomem'): PageRuns {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new IomemError(`iomem: cannot read ${path}: ${(err as Error).message}`);
  }
  const runs = systemRamRanges(text);
  if (runs.count === 0) throw new IomemError(`iomem: no "System RAM" lines in ${path}`);
  return runs;
}

/** Byte ranges [start, end) of a run list, for DAMON region files. */
export function runsToByteRanges(runs: PageRuns): Array<{ start: number; end: number }> {
  const ranges: Array<{ start: number; end: number }> = [];
  for (let i = 0; i < runs.count; i++) {
    const start = runs.gpaPfn[i] * PAGE_BYTES;
    ranges.push({ start, end: start + runs.pages[i] * PAGE_BYTES });
  }
  return ranges;
}
