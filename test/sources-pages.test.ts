// Drained per-page counts -> frames: grouping by process, sorted span translation,
// physical entries passed through, untranslatable pages counted, duplicates summed.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sortIndicesByPage, translatePages } from '../guest-agent/sources/pages.js';
import { sortedOrder } from '../guest-agent/sources/common.js';
import { TargetGoneError } from '../guest-agent/pagemap.js';
import { KIND_PHYS, KIND_VIRT, type DecodedPages } from '../guest-agent/record-layout.js';

function drained(rows: Array<[page: number, tgid: number, kind: number, reads: number, writes: number]>): DecodedPages {
  const n = rows.length;
  const d: DecodedPages = { count: n, page: new Float64Array(n), tgid: new Uint32Array(n), kind: new Uint8Array(n), reads: new Uint32Array(n), writes: new Uint32Array(n) };
  rows.forEach(([page, tgid, kind, reads, writes], i) => {
    d.page[i] = page;
    d.tgid[i] = tgid;
    d.kind[i] = kind;
    d.reads[i] = reads;
    d.writes[i] = writes;
  });
  return d;
}

// A fake address space: frame = vpage * 3 + tgid for even vpages, not present for odd ones.
const fakeFrame = (tgid: number, vpage: number) => (vpage % 2 === 0 ? vpage * 3 + tgid : -1);

describe('page source translation', () => {
  it('property: matches a per-entry reference, whatever the order and sizes', () => {
    const row = fc.tuple(
      fc.oneof(fc.nat({ max: 5000 }), fc.constantFrom(2 ** 35 + 2, 2 ** 40)), // packable and not
      fc.integer({ min: 1, max: 4 }),
      fc.constantFrom(KIND_PHYS, KIND_VIRT),
      fc.nat({ max: 100 }),
      fc.nat({ max: 100 }),
    );
    fc.assert(
      fc.property(fc.array(row, { maxLength: 200 }), (rows) => {
        const calls: number[] = [];
        const { samples, untranslated } = translatePages(drained(rows), (tgid, vpages) => {
          calls.push(tgid);
          for (let k = 1; k < vpages.length; k++) expect(vpages[k]).toBeGreaterThanOrEqual(vpages[k - 1]);
          if (tgid === 4) throw new TargetGoneError(4);
          return Float64Array.from(vpages, (v) => fakeFrame(tgid, v));
        });
        expect(new Set(calls).size).toBe(calls.length); // one translation per process
        const expected = new Map<number, [number, number]>();
        let expectedMissing = 0;
        for (const [page, tgid, kind, reads, writes] of rows) {
          const frame = kind === KIND_PHYS ? page : tgid === 4 ? -1 : fakeFrame(tgid, page);
          if (frame < 0) {
            expectedMissing++;
            continue;
          }
          const e = expected.get(frame) ?? [0, 0];
          expected.set(frame, [e[0] + reads, e[1] + writes]);
        }
        expect(untranslated).toBe(expectedMissing);
        expect(samples.count).toBe(expected.size);
        for (let i = 0; i < samples.count; i++) {
          if (i > 0) expect(samples.gpaPfn[i]).toBeGreaterThan(samples.gpaPfn[i - 1]);
          expect(samples.pages[i]).toBe(1);
          expect([samples.reads[i], samples.writes[i]]).toEqual(expected.get(samples.gpaPfn[i]));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('sorts by packed keys and by comparator alike', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.nat({ max: 2 ** 34 }), fc.constant(2 ** 45)), { maxLength: 100 }), (values) => {
        const page = Float64Array.from(values);
        const indices = Uint32Array.from(values.keys());
        const sorted = Array.from(sortIndicesByPage(page, indices), (i) => page[i]);
        expect(sorted).toEqual([...values].sort((a, b) => a - b));
        expect(Array.from(sortedOrder(page, page.length), (i) => page[i])).toEqual(sorted);
      }),
    );
  });
});
