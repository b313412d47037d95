// The sliced translation (translatePagesAsync, sortIndicesSteps) must give exactly what the
// one-piece code gives, also above the block size where sorting goes in merged blocks.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sortIndicesByPage, sortIndicesSteps, translatePages, translatePagesAsync } from '../guest-agent/sources/pages.js';
import { pageSamplesFrom } from '../guest-agent/sources/common.js';
import { KIND_PHYS, KIND_VIRT, type DecodedPages } from '../guest-agent/record-layout.js';

function run<T>(steps: Generator<void, T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Deterministic pseudo-random values with many duplicates (xorshift). */
function values(n: number, seed: number, range: number): Float64Array {
  let x = seed | 1;
  return Float64Array.from({ length: n }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % range;
  });
}

describe('sliced translation', () => {
  it('property: sortIndicesSteps gives sortIndicesByPage\'s order (stable), small and above the block size', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 70_000 }), fc.integer(), fc.constantFrom(10, 5000, 2 ** 31, 2 ** 40), (n, seed, range) => {
        const page = values(n, seed, range);
        if (range === 2 ** 40) for (let i = 0; i < n; i += 7) page[i] *= 4096; // not packable
        const indices = Uint32Array.from({ length: n }, (_, i) => n - 1 - i);
        const want = sortIndicesByPage(page, indices);
        expect(Array.from(run(sortIndicesSteps(page, indices)))).toEqual(Array.from(want));
      }),
      { numRuns: 25 },
    );
  });

  it('property: translatePagesAsync = a per-entry reference, with folios, for large drains', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 60_000 }), fc.integer(), async (n, seed) => {
        const page = values(n, seed, 50_000);
        // physical frames are 4k + 1: never the first frame of a (4-frame) folio, whose
        // runs would sort among them by position
        for (let i = 0; i < n; i += 13) page[i] = page[i] * 4 + 1;
        const d: DecodedPages = {
          count: n,
          page,
          tgid: Uint32Array.from(page, (v, i) => (i % 97 === 0 ? 2 : 1)),
          kind: Uint8Array.from(page, (_, i) => (i % 13 === 0 ? KIND_PHYS : KIND_VIRT)),
          reads: Uint32Array.from(page, (v) => v % 5),
          writes: Uint32Array.from(page, (v) => v % 3),
        };
        // frames: vpage * 2 (absent when vpage % 11 == 0); folios of 4 frames at multiples of 4
        const frameOf = (tgid: number, v: number) => (v % 11 === 0 ? -1 : v * 2 + tgid);
        const translate = (tgid: number, vpages: Float64Array) => Float64Array.from(vpages, (v) => frameOf(tgid, v));
        const folios = (pfns: Float64Array) => ({ first: Float64Array.from(pfns, (p) => p - (p % 4)), pages: new Uint32Array(pfns.length).fill(4) });
        const pfn: number[] = [];
        const runPages: number[] = [];
        const reads: number[] = [];
        const writes: number[] = [];
        let missing = 0;
        for (let i = 0; i < n; i++) {
          const phys = d.kind[i] === KIND_PHYS;
          const f = phys ? d.page[i] : frameOf(d.tgid[i], d.page[i]);
          if (f < 0) {
            missing++;
            continue;
          }
          pfn.push(phys ? f : f - (f % 4));
          runPages.push(phys ? 1 : 4);
          reads.push(d.reads[i]);
          writes.push(d.writes[i]);
        }
        const want = pageSamplesFrom(Float64Array.from(pfn), Uint32Array.from(reads), Uint32Array.from(writes), pfn.length, Uint32Array.from(runPages));
        const got = await translatePagesAsync(d, translate, folios, 1);
        expect(got.untranslated).toBe(missing);
        expect(got.samples.count).toBe(want.count);
        const slice = (s: typeof want) => [s.gpaPfn, s.pages, s.reads, s.writes].map((a) => Array.from(a.subarray(0, s.count)));
        expect(slice(got.samples)).toEqual(slice(want));
        expect(slice(translatePages(d, translate, folios).samples)).toEqual(slice(want));
      }),
      { numRuns: 12 },
    );
  });
});
