// One description of a trace, shared by `vtier guest record` (what it just wrote),
// `vtier classify TRACE`, `vtier sim --trace` and `vtier report TRACE`: the same numbers under
// the same names everywhere. Pure: takes a decoded trace, returns plain data and one line.
import type { DecodedTrace } from './format.js';

export interface TraceSummary {
  source: string;
  damonMode: string | null;
  pageSize: number;
  epochMs: number;
  /** Seconds from the header's start to the end record (or to the last batch when truncated). */
  durationS: number;
  batches: number;
  /** Raw samples the recorder counted (events: faults, PEBS records, DAMON region reports);
   *  from the end record, null when the trace is truncated and has none. */
  samples: number | null;
  drops: number | null;
  untranslated: number | null;
  /** Runs in all batches: one per sampled page for page sources, one per region for DAMON. */
  runs: number;
  /** Pages covered by all runs, summed over batches (a 512-page DAMON region reported in 10
   *  batches counts 5120): what the classifier ingests. */
  pageSamples: number;
  /** Sample weight: reads + writes summed per page of each run. */
  accesses: number;
  /** Distinct page frames any batch touched. */
  distinctPages: number;
  /** Lowest and highest+1 page frame touched; null for a trace without samples. */
  pfnRange: [number, number] | null;
  /** Guest RAM in pages ("System RAM" ranges of the header); 0 when the recorder had none. */
  ramPages: number;
  truncated: boolean;
  truncatedReason: string | null;
  target: { pid: number | null; command: string[] | null; truthPath: string | null };
}

/** Distinct frames covered by a list of [start, end) intervals (sorted and merged). */
function unionPages(starts: Float64Array, ends: Float64Array, count: number): { pages: number; low: number; high: number } {
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  order.sort((a, b) => starts[a] - starts[b]);
  let pages = 0;
  let curStart = -1;
  let curEnd = -1;
  for (let k = 0; k < count; k++) {
    const i = order[k];
    if (starts[i] > curEnd) {
      if (curEnd > curStart) pages += curEnd - curStart;
      curStart = starts[i];
      curEnd = ends[i];
    } else if (ends[i] > curEnd) curEnd = ends[i];
  }
  if (curEnd > curStart) pages += curEnd - curStart;
  return { pages, low: count > 0 ? starts[order[0]] : 0, high: count > 0 ? Math.max(...ends.subarray(0, count)) : 0 };
}

export function summarizeTrace(trace: DecodedTrace): TraceSummary {
  const { header, batches, end } = trace;
  let runs = 0;
  for (const b of batches) runs += b.samples.count;
  const starts = new Float64Array(runs);
  const ends = new Float64Array(runs);
  let pageSamples = 0;
  let accesses = 0;
  let k = 0;
  for (const b of batches) {
    const s = b.samples;
    for (let i = 0; i < s.count; i++, k++) {
      starts[k] = s.gpaPfn[i];
      ends[k] = s.gpaPfn[i] + s.pages[i];
      pageSamples += s.pages[i];
      accesses += (s.reads[i] + s.writes[i]) * s.pages[i];
    }
  }
  const union = unionPages(starts, ends, runs);
  let ramPages = 0;
  for (let i = 0; i < header.ramRanges.count; i++) ramPages += header.ramRanges.pages[i];
  const lastNs = end?.endNs ?? batches.reduce((t, b) => Math.max(t, b.tNs), header.startNs);
  return {
    source: header.source,
    damonMode: header.damonMode ?? null,
    pageSize: header.pageSize,
    epochMs: header.epochMs,
    durationS: Math.max(0, (lastNs - header.startNs) / 1e9),
    batches: batches.length,
    samples: end?.samples ?? null,
    drops: end?.drops ?? null,
    untranslated: end?.untranslated ?? null,
    runs,
    pageSamples,
    accesses,
    distinctPages: union.pages,
    pfnRange: runs > 0 ? [union.low, union.high] : null,
    ramPages,
    truncated: trace.truncated,
    truncatedReason: trace.truncatedReason ?? null,
    target: { pid: header.target?.pid ?? null, command: header.target?.command ?? null, truthPath: header.target?.truthPath ?? null },
  };
}

/** 1234567 -> "1,234,567": counts people read. */
export function groupDigits(n: number): string {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Bytes with a binary unit, e.g. 25769803776 -> "24 GiB", 1572864 -> "1.5 MiB". */
export function bytesText(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number(v.toFixed(v >= 100 || Number.isInteger(v) ? 0 : 1))} ${units[u]}`;
}

/** The one-paragraph description every command prints for a trace. */
export function describeTrace(s: TraceSummary): string {
  const source = `${s.source}${s.damonMode ? ` (${s.damonMode})` : ''}`;
  const samples = s.samples === null ? 'sample count unknown (no end record)' : `${groupDigits(s.samples)} samples`;
  const seen = `${groupDigits(s.distinctPages)} distinct pages (${bytesText(s.distinctPages * s.pageSize)})`;
  const ram = s.ramPages > 0 ? `guest RAM ${bytesText(s.ramPages * s.pageSize)}` : 'guest RAM not recorded';
  const lost = s.drops || s.untranslated ? `; ${groupDigits(s.drops ?? 0)} dropped, ${groupDigits(s.untranslated ?? 0)} untranslated` : '';
  return (
    `${source} trace: ${samples} in ${s.durationS.toFixed(1)} s, ${groupDigits(s.batches)} batches of ${s.epochMs} ms; ` +
    `${groupDigits(s.pageSamples)} page samples over ${seen}; ${ram}${lost}` +
    (s.truncated ? `; TRUNCATED (${s.truncatedReason ?? 'no end record'})` : '')
  );
}
