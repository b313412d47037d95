// Drained per-page counts -> frames: grouping by process, sorted span translation,
// physical entries passed through, untranslatable pages counted, duplicates summed.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { concatPages, pickPages, sortIndicesByPage, translatePages } from '../guest-agent/sources/pages.js';
import { sortedOrder } from '../guest-agent/sources/common.js';
import { TargetGoneError } from '../guest-agent/pagemap.js';
import { folioRun, KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL, KPF_THP, MAX_FOLIO_PAGES } from '../guest-agent/kpageflags.js';
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

  it('property: noFrameYet names exactly the entries without a frame whose process still runs, and picking them back gives those rows', () => {
    const row = fc.tuple(fc.nat({ max: 3000 }), fc.integer({ min: 1, max: 4 }), fc.constantFrom(KIND_PHYS, KIND_VIRT), fc.nat({ max: 50 }), fc.nat({ max: 50 }));
    fc.assert(
      fc.property(fc.array(row, { maxLength: 150 }), fc.array(row, { maxLength: 50 }), (rowsA, rowsB) => {
        const d = concatPages(drained(rowsA), drained(rowsB));
        const rows = [...rowsA, ...rowsB];
        expect(d.count).toBe(rows.length);
        const { noFrameYet, untranslated } = translatePages(d, (tgid, vpages) => {
          if (tgid === 4) throw new TargetGoneError(4);
          return Float64Array.from(vpages, (v) => fakeFrame(tgid, v));
        });
        // retried: virtual pages of live processes with no frame; not physical ones, not a gone process's
        const expected = rows.flatMap(([page, tgid, kind], i) => (kind === KIND_VIRT && tgid !== 4 && fakeFrame(tgid, page) < 0 ? [i] : []));
        expect(Array.from(noFrameYet).sort((a, b) => a - b)).toEqual(expected);
        expect(untranslated).toBeGreaterThanOrEqual(noFrameYet.length);
        const picked = pickPages(d, noFrameYet);
        for (let k = 0; k < picked.count; k++) {
          const [page, tgid, kind, reads, writes] = rows[noFrameYet[k]];
          expect([picked.page[k], picked.tgid[k], picked.kind[k], picked.reads[k], picked.writes[k]]).toEqual([page, tgid, kind, reads, writes]);
        }
      }),
      { numRuns: 200 },
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

describe('folioRun (kpageflags decoder)', () => {
  const HEAD = 1n << BigInt(KPF_COMPOUND_HEAD);
  const TAIL = 1n << BigInt(KPF_COMPOUND_TAIL);
  const THP = 1n << BigInt(KPF_THP);

  it('any flags: the run holds the frame and stays inside the window', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(THP | HEAD, THP | TAIL, TAIL, HEAD, THP, 0n)), { minLength: 1, maxLength: 600 }), fc.nat(1 << 20), fc.integer({ min: -5, max: 700 }), (words, base, at) => {
        const r = folioRun(BigUint64Array.from(words), base, base + at);
        expect(r.first).toBeLessThanOrEqual(base + at);
        expect(r.first + r.pages).toBeGreaterThan(base + at);
        if (r.pages > 1) {
          expect(r.first).toBeGreaterThanOrEqual(base);
          expect(r.first + r.pages).toBeLessThanOrEqual(base + words.length);
        }
      }),
    );
  });

  it('a THP of 2^k pages is found from any of its frames; plain pages stay single', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.nat(), (order, pick) => {
        const size = 1 << order;
        const flags = new BigUint64Array(MAX_FOLIO_PAGES);
        const head = size * (pick % (MAX_FOLIO_PAGES / size));
        flags[head] = THP | HEAD;
        for (let i = 1; i < size; i++) flags[head + i] = THP | TAIL;
        const base = 512 * 1000;
        const inside = head + (pick % size);
        expect(folioRun(flags, base, base + inside)).toEqual({ first: base + head, pages: size });
        const outside = (head + size) % MAX_FOLIO_PAGES;
        if (outside !== head) expect(folioRun(flags, base, base + outside)).toEqual({ first: base + outside, pages: 1 });
      }),
    );
  });
});
