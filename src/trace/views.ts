// Views of a trace over time, after damo's `report heats` and `report wss`: an address x time
// heat map of sample weight, and the working-set size (pages touched) per time window. Pure.
import type { DecodedTrace } from './format.js';

export interface HeatCell {
  /** Start of the time bin, seconds after the trace start. */
  timeS: number;
  /** First page frame of the address bin. */
  pfn: number;
  /** Sample weight (reads + writes per page, summed over the pages of the bin) in this cell. */
  weight: number;
}

export interface TraceHeatmap {
  timeBinS: number;
  pagesPerBin: number;
  /** Address span shown: [first frame, last frame + 1). */
  pfnLow: number;
  pfnHigh: number;
  timeBins: number;
  addrBins: number;
  /** Only cells with weight > 0. */
  cells: HeatCell[];
}

export interface WssPoint {
  timeS: number;
  /** Distinct pages with a sample in this window. */
  pages: number;
  bytes: number;
}

/** Bounds for the grid: enough resolution to see a hot set move, few enough cells for an SVG. */
export const VIEW_LIMITS = { timeBins: 400, addrBins: 200 } as const;

function batchTimeS(trace: DecodedTrace, tNs: number): number {
  return Math.max(0, (tNs - trace.header.startNs) / 1e9);
}

/** Length of the trace in seconds (to its last batch or its end record, whichever is later). */
export function traceSpanS(trace: DecodedTrace): number {
  let last = trace.end ? batchTimeS(trace, trace.end.endNs) : 0;
  for (const b of trace.batches) last = Math.max(last, batchTimeS(trace, b.tNs));
  return last;
}

/** Time windows: `wanted` equal bins over the trace, but never shorter than one epoch (a batch
 *  lands once per epoch, so finer bins would alternate between full and empty). */
function timeGrid(trace: DecodedTrace, wanted: number): { binS: number; bins: number } {
  const spanS = traceSpanS(trace);
  const epochS = Math.max(trace.header.epochMs / 1000, 1e-3);
  const binS = Math.max(epochS, spanS / wanted);
  return { binS, bins: Math.max(1, Math.ceil(spanS / binS + 1e-9)) };
}

/**
 * Address x time heat map: time cut into `timeBins` windows over the trace, the touched address
 * span into `addrBins` equal bins. A run that spans several bins adds its weight to each in
 * proportion to the pages it has there.
 */
export function traceHeatmap(trace: DecodedTrace, opts: { timeBins?: number; addrBins?: number } = {}): TraceHeatmap {
  const timeBins = Math.max(1, Math.min(VIEW_LIMITS.timeBins, Math.floor(opts.timeBins ?? 60)));
  const addrWanted = Math.max(1, Math.min(VIEW_LIMITS.addrBins, Math.floor(opts.addrBins ?? 64)));
  let low = Infinity;
  let high = -Infinity;
  for (const b of trace.batches) {
    const s = b.samples;
    for (let i = 0; i < s.count; i++) {
      if (s.reads[i] + s.writes[i] === 0) continue;
      low = Math.min(low, s.gpaPfn[i]);
      high = Math.max(high, s.gpaPfn[i] + s.pages[i]);
    }
  }
  const { binS: timeBinS, bins: usedBins } = timeGrid(trace, timeBins);
  if (!Number.isFinite(low)) return { timeBinS, pagesPerBin: 1, pfnLow: 0, pfnHigh: 0, timeBins: usedBins, addrBins: 0, cells: [] };
  const span = high - low;
  const pagesPerBin = Math.max(1, Math.ceil(span / addrWanted));
  const addrBins = Math.ceil(span / pagesPerBin);
  const grid = new Float64Array(usedBins * addrBins);
  for (const b of trace.batches) {
    const t = Math.min(usedBins - 1, Math.floor(batchTimeS(trace, b.tNs) / timeBinS));
    const s = b.samples;
    for (let i = 0; i < s.count; i++) {
      const perPage = s.reads[i] + s.writes[i];
      if (perPage === 0) continue;
      let from = s.gpaPfn[i] - low;
      const to = from + s.pages[i];
      while (from < to) {
        const bin = Math.floor(from / pagesPerBin);
        const binEnd = Math.min(to, (bin + 1) * pagesPerBin);
        grid[t * addrBins + bin] += perPage * (binEnd - from);
        from = binEnd;
      }
    }
  }
  const cells: HeatCell[] = [];
  for (let t = 0; t < usedBins; t++) {
    for (let a = 0; a < addrBins; a++) {
      const weight = grid[t * addrBins + a];
      if (weight > 0) cells.push({ timeS: t * timeBinS, pfn: low + a * pagesPerBin, weight });
    }
  }
  return { timeBinS, pagesPerBin, pfnLow: low, pfnHigh: high, timeBins: usedBins, addrBins, cells };
}

/** Working-set size per window: distinct pages sampled at least once in each of `bins` windows. */
export function traceWss(trace: DecodedTrace, opts: { bins?: number } = {}): WssPoint[] {
  const { binS, bins } = timeGrid(trace, Math.max(1, Math.min(VIEW_LIMITS.timeBins, Math.floor(opts.bins ?? 60))));
  const perBin: Array<Array<[number, number]>> = Array.from({ length: bins }, () => []);
  for (const b of trace.batches) {
    const t = Math.min(bins - 1, Math.floor(batchTimeS(trace, b.tNs) / binS));
    const s = b.samples;
    for (let i = 0; i < s.count; i++) if (s.reads[i] + s.writes[i] > 0) perBin[t].push([s.gpaPfn[i], s.gpaPfn[i] + s.pages[i]]);
  }
  const pageSize = trace.header.pageSize;
  return perBin.map((runs, t) => {
    runs.sort((a, b) => a[0] - b[0]);
    let pages = 0;
    let start = -1;
    let end = -1;
    for (const [s, e] of runs) {
      if (s > end) {
        pages += end - start;
        start = s;
        end = e;
      } else if (e > end) end = e;
    }
    pages += end - start;
    return { timeS: t * binS, pages, bytes: pages * pageSize };
  });
}
