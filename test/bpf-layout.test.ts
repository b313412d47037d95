// The TypeScript view of bpf/sampler.h must match the C structs: a C program compiled
// against the header prints every size and offset, and any drift fails here.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { bpfLayouts, packageRoot } from '../native/addon.js';
import * as L from '../guest-agent/record-layout.js';

const structs = {
  PAGE_KEY: L.PAGE_KEY,
  PAGE_VALUE: L.PAGE_VALUE,
  PAGE_GROUP: L.PAGE_GROUP,
  SAMPLE_RECORD: L.SAMPLE_RECORD,
  DAMON_RECORD: L.DAMON_RECORD,
} as const;

const constants: Record<string, number> = {
  VT_MODE_AGGREGATE: L.MODE_AGGREGATE,
  VT_MODE_RING: L.MODE_RING,
  VT_SRC_PERF: L.SRC_PERF,
  VT_SRC_FAULT_TP: L.SRC_FAULT_TP,
  VT_SRC_MASK: L.SRC_MASK,
  VT_FLAG_WRITE: L.FLAG_WRITE,
  VT_FLAG_PHYS: L.FLAG_PHYS,
  VT_KIND_PHYS: L.KIND_PHYS,
  VT_KIND_VIRT: L.KIND_VIRT,
  VT_PAGE_GROUP: L.PAGE_GROUP_PAGES,
  VT_CTR_SAMPLES: L.COUNTER.samples,
  VT_CTR_DROPS: L.COUNTER.drops,
  VT_CTR_FILTERED: L.COUNTER.filtered,
  VT_CTR_MAP_FULL: L.COUNTER.mapFull,
  VT_CTR_REGIONS: L.COUNTER.regions,
  VT_CTR_INSERTS: L.COUNTER.inserts,
  VT_NR_COUNTERS: L.NR_COUNTERS,
};

const dir = mkdtempSync(join(tmpdir(), 'vtier-layout-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Compiles and runs a C program printing "name value" lines for every struct field,
 *  struct size and constant, all taken from bpf/sampler.h. */
function cLayout(): Map<string, number> {
  const lines: string[] = [];
  for (const [tsName, { struct, fields }] of Object.entries(L.C_FIELD_NAMES)) {
    lines.push(`  printf("${tsName}.size %zu\\n", sizeof(struct ${struct}));`);
    // Every field the C struct has must be described: count them by their end offsets.
    for (const [tsField, cField] of Object.entries(fields)) {
      lines.push(`  printf("${tsName}.${tsField} %zu\\n", offsetof(struct ${struct}, ${cField}));`);
      lines.push(
        `  printf("${tsName}.${tsField}.width %zu\\n", sizeof(((struct ${struct} *)0)->${cField}));`,
      );
    }
  }
  for (const name of Object.keys(constants)) lines.push(`  printf("${name} %llu\\n", (unsigned long long)(${name}));`);
  const src = `#include <stddef.h>\n#include <stdio.h>\n#include "sampler.h"\nint main(void) {\n${lines.join('\n')}\n  return 0;\n}\n`;
  writeFileSync(join(dir, 'layout.c'), src);
  execFileSync('cc', ['-Wall', '-Werror', '-I', join(packageRoot(), 'bpf'), '-o', join(dir, 'layout'), join(dir, 'layout.c')]);
  const out = execFileSync(join(dir, 'layout'), { encoding: 'utf8' });
  const map = new Map<string, number>();
  for (const line of out.trim().split('\n')) {
    const [k, v] = line.split(' ');
    map.set(k, Number(v));
  }
  return map;
}

describe('record layout (bpf/sampler.h vs guest-agent/record-layout.ts)', () => {
  const c = cLayout();

  it('matches every struct size and field offset', () => {
    for (const [tsName, layout] of Object.entries(structs)) {
      expect(layout.size, `${tsName}.size`).toBe(c.get(`${tsName}.size`));
      for (const field of Object.keys(L.C_FIELD_NAMES[tsName].fields)) {
        expect((layout as Record<string, number>)[field], `${tsName}.${field}`).toBe(c.get(`${tsName}.${field}`));
      }
    }
  });

  it('describes every byte of every struct (no field missing from the TypeScript view)', () => {
    for (const [tsName, layout] of Object.entries(structs)) {
      let covered = 0;
      for (const field of Object.keys(L.C_FIELD_NAMES[tsName].fields)) covered += c.get(`${tsName}.${field}.width`)!;
      expect(covered, `${tsName}: bytes covered by described fields`).toBe(layout.size);
    }
  });

  it('matches the flag, kind and counter constants', () => {
    for (const [name, value] of Object.entries(constants)) expect(value, name).toBe(c.get(name));
  });

  it('matches the sizes the native addon was compiled with', () => {
    const native = bpfLayouts();
    expect(native.vt_page_key).toBe(L.PAGE_KEY.size);
    expect(native.vt_page_value).toBe(L.PAGE_VALUE.size);
    expect(native.vt_sample_record).toBe(L.SAMPLE_RECORD.size);
    expect(native.vt_damon_record).toBe(L.DAMON_RECORD.size);
  });
});

function encodeSample(dv: DataView, o: number, r: { ts: bigint; addr: bigint; phys: bigint; tgid: number; flags: number }) {
  dv.setBigUint64(o + L.SAMPLE_RECORD.tsNs, r.ts, true);
  dv.setBigUint64(o + L.SAMPLE_RECORD.addr, r.addr, true);
  dv.setBigUint64(o + L.SAMPLE_RECORD.physAddr, r.phys, true);
  dv.setUint32(o + L.SAMPLE_RECORD.tgid, r.tgid, true);
  dv.setUint32(o + L.SAMPLE_RECORD.flags, r.flags, true);
}

describe('record decoders', () => {
  const u53 = fc.bigInt({ min: 0n, max: 2n ** 53n - 1n });
  const sample = fc.record({ ts: u53, addr: u53, phys: u53, tgid: fc.nat({ max: 0xffffffff }), flags: fc.nat({ max: 0xffffffff }) });

  it('round-trips sample records', () => {
    fc.assert(
      fc.property(fc.array(sample, { maxLength: 64 }), fc.nat({ max: 31 }), (records, extra) => {
        const bytes = new Uint8Array(records.length * L.SAMPLE_RECORD.size + extra);
        const dv = new DataView(bytes.buffer);
        records.forEach((r, i) => encodeSample(dv, i * L.SAMPLE_RECORD.size, r));
        const d = L.decodeSampleRecords(bytes);
        expect(d.count).toBe(records.length);
        expect(d.trailingBytes).toBe(extra);
        records.forEach((r, i) => {
          expect(d.tsNs[i]).toBe(Number(r.ts));
          expect(d.addr[i]).toBe(Number(r.addr));
          expect(d.physAddr[i]).toBe(Number(r.phys));
          expect(d.tgid[i]).toBe(r.tgid);
          expect(d.flags[i]).toBe(r.flags);
        });
      }),
    );
  });

  it('decodes records from an offset view of a larger buffer', () => {
    const backing = new Uint8Array(8 + 2 * L.SAMPLE_RECORD.size);
    const dv = new DataView(backing.buffer, 8);
    encodeSample(dv, 0, { ts: 1n, addr: 0x7f0000001000n, phys: 0n, tgid: 42, flags: L.SRC_PERF });
    encodeSample(dv, 32, { ts: 2n, addr: 0x1000n, phys: 0x5000n, tgid: 43, flags: L.SRC_FAULT_TP | L.FLAG_WRITE });
    const d = L.decodeSampleRecords(backing.subarray(8));
    expect(d.count).toBe(2);
    expect(d.addr[0]).toBe(0x7f0000001000);
    expect(d.flags[1] & L.FLAG_WRITE).toBeTruthy();
  });

  it('never throws on arbitrary bytes (sample, damon and page decoders)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.uint8Array({ maxLength: 600 }), fc.integer({ min: -5, max: 100 }), (a, b, n) => {
        const s = L.decodeSampleRecords(a);
        expect(s.count * L.SAMPLE_RECORD.size + s.trailingBytes).toBe(a.byteLength);
        const r = L.decodeDamonRecords(a);
        expect(r.count * L.DAMON_RECORD.size + r.trailingBytes).toBe(a.byteLength);
        for (let i = 0; i < r.count; i++) expect(Number.isFinite(r.start[i])).toBe(true);
        const p = L.decodePageEntries(a, b, n);
        const entries = Math.min(Math.max(0, n), Math.floor(a.byteLength / L.PAGE_KEY.size), Math.floor(b.byteLength / L.PAGE_GROUP.size));
        expect(p.count).toBeLessThanOrEqual(entries * L.PAGE_GROUP_PAGES);
        for (let i = 0; i < p.count; i++) expect(p.reads[i] + p.writes[i]).toBeGreaterThan(0);
      }),
    );
  });

  it('decodes damon records and page entries field by field', () => {
    const bytes = new Uint8Array(L.DAMON_RECORD.size);
    const dv = new DataView(bytes.buffer);
    dv.setBigUint64(L.DAMON_RECORD.start, 0x100000000n, true);
    dv.setBigUint64(L.DAMON_RECORD.end, 0x100200000n, true);
    dv.setUint32(L.DAMON_RECORD.nrAccesses, 7, true);
    dv.setUint32(L.DAMON_RECORD.age, 3, true);
    dv.setUint32(L.DAMON_RECORD.kdamondPid, 999, true);
    const d = L.decodeDamonRecords(bytes);
    expect([d.start[0], d.end[0], d.nrAccesses[0], d.age[0], d.kdamondPid[0]]).toEqual([0x100000000, 0x100200000, 7, 3, 999]);

    const keys = new Uint8Array(L.PAGE_KEY.size);
    const values = new Uint8Array(L.PAGE_GROUP.size);
    new DataView(keys.buffer).setBigUint64(L.PAGE_KEY.page, 0x12340n, true);
    new DataView(keys.buffer).setUint32(L.PAGE_KEY.kind, L.KIND_VIRT, true);
    new DataView(values.buffer).setUint32(L.PAGE_GROUP.pages + 5 * L.PAGE_VALUE.size + L.PAGE_VALUE.writes, 5, true);
    const p = L.decodePageEntries(keys, values, 1);
    expect(p.count).toBe(1);
    expect([p.page[0], p.kind[0], p.reads[0], p.writes[0]]).toEqual([0x12345, L.KIND_VIRT, 0, 5]);
  });

  it('expands page groups: every counted page once, at first page + slot, weight kept', () => {
    const count = fc.nat({ max: 3 }).chain((big) => (big ? fc.nat({ max: 0xffffffff }) : fc.constant(0)));
    const group = fc.record({
      first: fc.bigInt({ min: 0n, max: 2n ** 50n }).map((p) => p * BigInt(L.PAGE_GROUP_PAGES)),
      tgid: fc.nat({ max: 0x3fffff }),
      kind: fc.constantFrom(L.KIND_PHYS, L.KIND_VIRT),
      counts: fc.array(fc.tuple(count, count), { minLength: L.PAGE_GROUP_PAGES, maxLength: L.PAGE_GROUP_PAGES }),
    });
    fc.assert(
      fc.property(fc.array(group, { maxLength: 20 }), (groups) => {
        const keys = new Uint8Array(groups.length * L.PAGE_KEY.size);
        const values = new Uint8Array(groups.length * L.PAGE_GROUP.size);
        const kv = new DataView(keys.buffer);
        const vv = new DataView(values.buffer);
        const expected: [number, number, number, number, number][] = [];
        groups.forEach((g, i) => {
          kv.setBigUint64(i * L.PAGE_KEY.size + L.PAGE_KEY.page, g.first, true);
          kv.setUint32(i * L.PAGE_KEY.size + L.PAGE_KEY.tgid, g.tgid, true);
          kv.setUint32(i * L.PAGE_KEY.size + L.PAGE_KEY.kind, g.kind, true);
          g.counts.forEach(([r, w], slot) => {
            const o = i * L.PAGE_GROUP.size + L.PAGE_GROUP.pages + slot * L.PAGE_VALUE.size;
            vv.setUint32(o + L.PAGE_VALUE.reads, r, true);
            vv.setUint32(o + L.PAGE_VALUE.writes, w, true);
            if (r || w) expected.push([Number(g.first) + slot, g.tgid, g.kind, r, w]);
          });
        });
        const p = L.decodePageEntries(keys, values, groups.length);
        const got = Array.from({ length: p.count }, (_, i) => [p.page[i], p.tgid[i], p.kind[i], p.reads[i], p.writes[i]]);
        expect(got).toEqual(expected);
      }),
    );
  });
});
