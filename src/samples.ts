// The normalised form every sample source produces and every consumer reads:
// runs of guest page frames with read/write sample weights. Page sources (pebs, ibs,
// faults) give runs of one page; region sources (damon) give runs of many pages whose
// weight applies to each page of the run. Columnar typed arrays: no object per sample.

/** Guest page frames are GPA >> 12. Float64 holds frames exactly up to 2^53. */
export interface PageSamples {
  /** Number of valid entries (arrays may be longer: capacity). */
  count: number;
  /** First guest page frame of each run. */
  gpaPfn: Float64Array;
  /** Pages in each run (>= 1). */
  pages: Uint32Array;
  /** Read samples (or accesses) attributed to each page of the run. */
  reads: Uint32Array;
  /** Write samples attributed to each page of the run. */
  writes: Uint32Array;
}

/** A list of page runs, e.g. promote/demote decisions or RAM ranges. */
export interface PageRuns {
  count: number;
  gpaPfn: Float64Array;
  pages: Uint32Array;
}

export function emptySamples(capacity: number): PageSamples {
  return {
    count: 0,
    gpaPfn: new Float64Array(capacity),
    pages: new Uint32Array(capacity),
    reads: new Uint32Array(capacity),
    writes: new Uint32Array(capacity),
  };
}

export function emptyRuns(capacity: number): PageRuns {
  return { count: 0, gpaPfn: new Float64Array(capacity), pages: new Uint32Array(capacity) };
}

/** Builds a PageSamples from plain tuples; for tests and small inputs. */
export function samplesFrom(rows: Array<[gpaPfn: number, pages: number, reads: number, writes: number]>): PageSamples {
  const samples = emptySamples(rows.length);
  for (const [gpaPfn, pages, reads, writes] of rows) {
    const i = samples.count++;
    samples.gpaPfn[i] = gpaPfn;
    samples.pages[i] = pages;
    samples.reads[i] = reads;
    samples.writes[i] = writes;
  }
  return samples;
}

/** Builds PageRuns from plain pairs; for tests and small inputs. */
export function runsFrom(rows: Array<[gpaPfn: number, pages: number]>): PageRuns {
  const runs = emptyRuns(rows.length);
  for (const [gpaPfn, pages] of rows) {
    const i = runs.count++;
    runs.gpaPfn[i] = gpaPfn;
    runs.pages[i] = pages;
  }
  return runs;
}

/** Total pages covered by a run list. */
export function totalPages(runs: PageRuns): number {
  let pages = 0;
  for (let i = 0; i < runs.count; i++) pages += runs.pages[i];
  return pages;
}
