// DAMON region records -> one PageSamples per aggregation, from untrusted bytes.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AggregationAssembler } from '../guest-agent/sources/damon.js';
import { DAMON_RECORD, decodeDamonRecords } from '../guest-agent/record-layout.js';
import type { PageSamples } from '../src/samples.js';
import { PageSet, pageSamplesFrom } from '../guest-agent/sources/common.js';

function encode(regions: Array<{ start: number; end: number; nr: number; nrRegions: number }>): Uint8Array {
  const bytes = new Uint8Array(regions.length * DAMON_RECORD.size);
  const dv = new DataView(bytes.buffer);
  regions.forEach((r, i) => {
    const o = i * DAMON_RECORD.size;
    const u64 = (off: number, v: number) => {
      dv.setUint32(o + off, v % 2 ** 32, true);
      dv.setUint32(o + off + 4, Math.floor(v / 2 ** 32), true);
    };
    u64(DAMON_RECORD.tsNs, 1000 + i);
    u64(DAMON_RECORD.start, r.start);
    u64(DAMON_RECORD.end, r.end);
    dv.setUint32(o + DAMON_RECORD.nrAccesses, r.nr, true);
    dv.setUint32(o + DAMON_RECORD.nrRegions, r.nrRegions, true);
  });
  return bytes;
}

describe('DAMON aggregation assembly', () => {
  it('splits bursts into aggregations by the announced region count and by address wrap', () => {
    const out: PageSamples[] = [];
    const asm = new AggregationAssembler((_t, s) => out.push(s));
    const G = 2 ** 32;
    const agg = (nrs: number[]) => nrs.map((nr, i) => ({ start: G + i * 2 ** 21, end: G + (i + 1) * 2 ** 21, nr, nrRegions: nrs.length }));
    // Two aggregations delivered across three ring wake-ups.
    const a = agg([1, 2, 3]);
    const b = agg([4, 5, 6]);
    asm.push(decodeDamonRecords(encode(a.slice(0, 2))));
    expect(out).toHaveLength(0);
    asm.push(decodeDamonRecords(encode([...a.slice(2), ...b.slice(0, 1)])));
    expect(out).toHaveLength(1);
    asm.push(decodeDamonRecords(encode(b.slice(1))));
    expect(out).toHaveLength(2);
    expect(Array.from(out[0].reads.subarray(0, 3))).toEqual([1, 2, 3]);
    expect(out[1].gpaPfn[0]).toBe(G / 4096);
    expect(out[1].pages[0]).toBe(512);
    // A count that changed mid-way: the address wrap still separates aggregations.
    asm.push(decodeDamonRecords(encode([{ start: G, end: G + 8192, nr: 1, nrRegions: 99 }, { start: G + 8192, end: G + 16384, nr: 1, nrRegions: 99 }])));
    asm.push(decodeDamonRecords(encode([{ start: G, end: G + 8192, nr: 2, nrRegions: 99 }])));
    expect(out).toHaveLength(3);
    expect(out[2].count).toBe(2);
    asm.flush();
    expect(out).toHaveLength(4);
  });

  it('property: any bytes -> runs inside the records, total weight preserved, no throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: DAMON_RECORD.size * 20 + 7 }), (bytes) => {
        const out: PageSamples[] = [];
        const asm = new AggregationAssembler((_t, s) => out.push(s));
        const decoded = decodeDamonRecords(bytes);
        asm.push(decoded);
        asm.flush();
        let runs = 0;
        let weight = 0n;
        for (const s of out) {
          for (let i = 0; i < s.count; i++) {
            expect(s.pages[i]).toBeGreaterThan(0);
            expect(Number.isSafeInteger(s.gpaPfn[i])).toBe(true);
            weight += BigInt(s.reads[i] + s.writes[i]) * BigInt(s.pages[i]);
            runs++;
          }
        }
        expect(runs).toBeLessThanOrEqual(decoded.count);
        // reference: every region with a whole page in it, weight = accesses x whole pages
        let expected = 0n;
        for (let i = 0; i < decoded.count; i++) {
          if (!(decoded.end[i] > decoded.start[i])) continue;
          const pages = Math.floor(decoded.end[i] / 4096) - Math.ceil(decoded.start[i] / 4096);
          if (pages > 0) expected += BigInt(decoded.nrAccesses[i]) * BigInt(Math.min(0xffff_ffff, pages));
        }
        expect(weight).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('addr_unit: region addresses in DAMON address units become byte addresses (6.18+)', () => {
    const out: PageSamples[] = [];
    const asm = new AggregationAssembler((_t, s) => out.push(s), 4096);
    // two regions in units of 4 KiB: [0x100000, 0x100200) and [0x100200, 0x101000)
    asm.push(decodeDamonRecords(encode([
      { start: 0x100000, end: 0x100200, nr: 3, nrRegions: 2 },
      { start: 0x100200, end: 0x101000, nr: 0, nrRegions: 2 },
    ])));
    expect(out).toHaveLength(1);
    expect(Array.from(out[0].gpaPfn.subarray(0, 2))).toEqual([0x100000, 0x100200]);
    expect(Array.from(out[0].pages.subarray(0, 2))).toEqual([0x200, 0xe00]);
    expect(Array.from(out[0].reads.subarray(0, 2))).toEqual([3, 0]);
    // a unit that pushes addresses past 2^53 bytes: skipped and counted, never wrapped
    const big = new AggregationAssembler((_t, s) => out.push(s), 2 ** 30);
    big.push(decodeDamonRecords(encode([{ start: 2 ** 24, end: 2 ** 25, nr: 1, nrRegions: 1 }])));
    expect(big.unscalable).toBe(1);
    expect(out.at(-1)!.count).toBe(0);
  });

  it('property: with any addr_unit, runs cover the scaled byte ranges and weight is preserved', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ start: fc.nat({ max: 2 ** 32 }), len: fc.integer({ min: 1, max: 2 ** 20 }), nr: fc.nat({ max: 1000 }) }), { maxLength: 20 }),
        fc.constantFrom(1, 2, 512, 4096, 65536),
        (regions, unit) => {
          const out: PageSamples[] = [];
          const asm = new AggregationAssembler((_t, s) => out.push(s), unit);
          const records = regions.map((r) => ({ start: r.start, end: r.start + r.len, nr: r.nr, nrRegions: regions.length }));
          const decoded = decodeDamonRecords(encode(records));
          asm.push(decoded);
          asm.flush();
          let weight = 0n;
          for (const s of out) for (let i = 0; i < s.count; i++) weight += BigInt(s.reads[i]) * BigInt(s.pages[i]);
          let expected = 0n;
          for (let i = 0; i < decoded.count; i++) {
            const pages = Math.floor((decoded.end[i] * unit) / 4096) - Math.ceil((decoded.start[i] * unit) / 4096);
            if (pages > 0) expected += BigInt(decoded.nrAccesses[i]) * BigInt(Math.min(0xffff_ffff, pages));
          }
          expect(weight).toBe(expected);
          expect(asm.unscalable).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('page set counts distinct pages across overlapping runs', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat({ max: 5000 }), fc.integer({ min: 1, max: 300 })), { maxLength: 30 }), (runs) => {
        const set = new PageSet();
        const reference = new Set<number>();
        for (const [pfn, pages] of runs) {
          set.addRun(pfn, pages);
          for (let p = pfn; p < pfn + pages; p++) reference.add(p);
        }
        expect(set.size).toBe(reference.size);
      }),
    );
  });

  it('page samples are sorted by frame with duplicates summed', () => {
    const s = pageSamplesFrom(Float64Array.from([9, 3, 9, 1]), Uint32Array.from([1, 2, 3, 4]), Uint32Array.from([0, 1, 1, 0]), 4);
    expect(Array.from(s.gpaPfn.subarray(0, s.count))).toEqual([1, 3, 9]);
    expect(Array.from(s.reads.subarray(0, s.count))).toEqual([4, 2, 4]);
    expect(Array.from(s.writes.subarray(0, s.count))).toEqual([0, 1, 1]);
  });
});
