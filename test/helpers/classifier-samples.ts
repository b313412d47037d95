// Shared by the classifier tests: the frames a set of runs covers, and uniform samples.
import type { Prng } from '../../src/sim/prng.js';
import type { PageRuns } from '../../src/samples.js';

/** Every frame the runs cover, in order. */
export function frames(runs: PageRuns): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs.count; i++) for (let p = 0; p < runs.pages[i]; p++) out.push(runs.gpaPfn[i] + p);
  return out;
}

/** `n` samples drawn uniformly from the pages [first, first + pages). */
export function uniformSamples(rng: Prng, first: number, pages: number, n: number): Array<[number, number, number, number]> {
  return Array.from({ length: n }, () => [first + rng.below(pages), 1, 1, 0] as [number, number, number, number]);
}
