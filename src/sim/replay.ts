// Turns a decoded trace (src/trace) into a replay workload: the trace's sample batches, grouped
// into simulation epochs by timestamp, become the per-epoch access distribution over the span of
// guest frames the trace saw (bounded so a hostile trace cannot ask for absurd memory).
import type { DecodedTrace } from '../trace/index.js';
import { ReplayWorkload } from './workloads.js';

/** Largest replayed span: 2^26 pages = 256 GiB of 4 KiB pages (~1.5 GB of simulator state). */
export const MAX_REPLAY_PAGES = 2 ** 26;

export interface ReplayPlan {
  workload: ReplayWorkload;
  epochs: number;
  firstPfn: number;
  pages: number;
  samples: number;
}

export function replayFromTrace(trace: DecodedTrace, o: { epochMs: number; seed: number }): ReplayPlan {
  const batches = trace.batches;
  let lo = Infinity;
  let hi = -Infinity;
  let samples = 0;
  for (const b of batches) {
    const s = b.samples;
    for (let i = 0; i < s.count; i++) {
      if (s.reads[i] + s.writes[i] === 0) continue;
      lo = Math.min(lo, s.gpaPfn[i]);
      hi = Math.max(hi, s.gpaPfn[i] + s.pages[i]);
      samples += s.reads[i] + s.writes[i];
    }
  }
  if (!(hi > lo)) throw new RangeError('trace: no samples to replay');
  // Prefer the recorded RAM ranges as the memory when they cover the samples.
  const ram = trace.header.ramRanges;
  if (ram && ram.count > 0) {
    const ramLo = ram.gpaPfn[0];
    const ramHi = ram.gpaPfn[ram.count - 1] + ram.pages[ram.count - 1];
    if (ramLo <= lo && ramHi >= hi && ramHi - ramLo <= MAX_REPLAY_PAGES) {
      lo = ramLo;
      hi = ramHi;
    }
  }
  const pages = hi - lo;
  if (pages > MAX_REPLAY_PAGES) {
    throw new RangeError(`trace: samples span ${pages} pages, more than the ${MAX_REPLAY_PAGES} the simulator replays`);
  }
  const t0 = batches[0].tNs;
  const tEnd = batches[batches.length - 1].tNs;
  const epochNs = o.epochMs * 1e6;
  const epochs = Math.max(1, Math.floor((tEnd - t0) / epochNs) + 1);
  const weights: Array<Float64Array | null> = new Array(epochs).fill(null);
  for (const b of batches) {
    const e = Math.min(epochs - 1, Math.max(0, Math.floor((b.tNs - t0) / epochNs)));
    const s = b.samples;
    for (let i = 0; i < s.count; i++) {
      const w = s.reads[i] + s.writes[i];
      if (w === 0) continue;
      const arr = (weights[e] ??= new Float64Array(pages));
      const first = s.gpaPfn[i] - lo;
      for (let k = 0; k < s.pages[i]; k++) arr[first + k] += w;
    }
  }
  return { workload: new ReplayWorkload(pages, lo, weights, o.seed), epochs, firstPfn: lo, pages, samples };
}
