// Parsers for `info mtree -f` and /proc/PID/maps, the layout join, and run translation:
// golden input from QEMU 7.2, plus property/fuzz tests (hostile or odd text never throws,
// translation agrees with a slow reference and rejects everything outside RAM).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildLayout, mappedFiles, mappingDrift, parseMtreeFlat, parseProcMaps, type RamRange } from '../host-agent/layout.js';
import { buildTable, PageBuffer, pagesOutside, translateRuns } from '../host-agent/translate.js';
import { runsFrom } from '../src/samples.js';

// Trimmed from Debian QEMU 7.2: -machine q35 -m 3G, memory-backend-file id=mem0.
const MTREE = `FlatView #0
 AS "I/O", root: io
 Root memory region: io
  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan
  0000000000000cf8-0000000000000cf8 (prio 0, i/o): pci-conf-idx

FlatView #1
 AS "memory", root: system
 AS "cpu-memory-0", root: system
 Root memory region: system
  0000000000000000-00000000000bffff (prio 0, ram): mem0
  00000000000c0000-00000000000dffff (prio 1, rom): pc.rom
  00000000000e0000-00000000000fffff (prio 0, rom): pc.bios @0000000000020000
  0000000000100000-000000007fffffff (prio 0, ram): mem0 @0000000000100000
  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic
  00000000fee00000-00000000feefffff (prio 4096, i/o): apic-msi
  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios
  0000000100000000-000000013fffffff (prio 0, ram): mem0 @0000000080000000 KVM

FlatView #2
 AS "cpu-smm-0", root: memory
 Root memory region: memory
  0000000000000000-00000000000bffff (prio 0, ram): smram-only

FlatView #3
 AS "mch", root: bus master container
 Root memory region: (none)
  No rendered FlatView
`;

const MAPS = `55d0c0000000-55d0c0100000 r-xp 00000000 fd:01 1234    /usr/bin/qemu-system-x86_64
7ff03ffff000-7ff0bffff000 rw-s 00000000 00:1b 2                          /dev/shm/vm-mem0
7ff0bffff000-7ff0fffff000 rw-s 80000000 00:1b 2                          /dev/shm/vm-mem0 (deleted)
7ff100000000-7ff100001000 rw-p 00000000 00:00 0
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`;

const GiB = 1024 ** 3;

describe('parseMtreeFlat', () => {
  it('picks the flat view of the "memory" address space', () => {
    const flat = parseMtreeFlat(MTREE);
    expect(flat.filter((e) => e.kind === 'ram')).toEqual([
      { gpaStart: 0, gpaEnd: 0xc0000, priority: 0, kind: 'ram', region: 'mem0', regionOffset: 0 },
      { gpaStart: 0x100000, gpaEnd: 0x80000000, priority: 0, kind: 'ram', region: 'mem0', regionOffset: 0x100000 },
      { gpaStart: 0x100000000, gpaEnd: 0x140000000, priority: 0, kind: 'ram', region: 'mem0', regionOffset: 0x80000000 },
    ]);
    expect(flat.find((e) => e.region === 'pc.bios' && e.gpaStart === 0xe0000)?.regionOffset).toBe(0x20000);
    expect(parseMtreeFlat(MTREE, 'cpu-smm-0').map((e) => e.region)).toEqual(['smram-only']);
  });

  it('never throws and only returns sane entries on arbitrary text', () => {
    const line = fc.oneof(
      fc.string(),
      fc.constantFrom('FlatView #1', ' AS "memory", root: system', '  ffffffffffffffff-0000000000000000 (prio 0, ram): x'),
      fc.tuple(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.string({ maxLength: 12 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })).map(
        ([a, b, name, off]) => `  ${a.toString(16).padStart(16, '0')}-${b.toString(16).padStart(16, '0')} (prio 0, ram): ${name} @${off.toString(16)}`,
      ),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 40 }), (lines) => {
        const flat = parseMtreeFlat(['FlatView #0', ' AS "memory", root: system', ...lines].join('\n'));
        for (const e of flat) {
          expect(Number.isSafeInteger(e.gpaStart) && Number.isSafeInteger(e.gpaEnd) && e.gpaEnd > e.gpaStart).toBe(true);
          expect(Number.isSafeInteger(e.regionOffset)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('parseProcMaps + buildLayout', () => {
  it('joins flat view, backend and two VMAs of the same (deleted) file', () => {
    const maps = parseProcMaps(MAPS);
    expect(maps.length).toBe(4); // vsyscall is above 2^53 and dropped
    const layout = buildLayout(parseMtreeFlat(MTREE), [{ id: 'mem0', sizeBytes: 3 * GiB, memPath: '/dev/shm/vm-mem0' }], maps);
    expect(layout.unresolved).toEqual([]);
    expect(layout.ranges).toEqual([
      { gpaStart: 0, gpaEnd: 0xc0000, hvaStart: 0x7ff03ffff000, memdev: 'mem0', backendOffset: 0, file: '00:1b:2' },
      { gpaStart: 0x100000, gpaEnd: 2 * GiB, hvaStart: 0x7ff03ffff000 + 0x100000, memdev: 'mem0', backendOffset: 0x100000, file: '00:1b:2' },
      { gpaStart: 4 * GiB, gpaEnd: 5 * GiB, hvaStart: 0x7ff0bffff000, memdev: 'mem0', backendOffset: 2 * GiB, file: '00:1b:2' },
    ]);
  });

  it('reports RAM regions it cannot place instead of guessing', () => {
    const layout = buildLayout(parseMtreeFlat(MTREE), [{ id: 'mem0', sizeBytes: 3 * GiB, memPath: '/elsewhere' }], parseProcMaps(MAPS));
    expect(layout.ranges).toEqual([]);
    expect(layout.unresolved).toEqual(['mem0']);
  });

  it('parseProcMaps never throws on arbitrary text', () => {
    fc.assert(
      fc.property(fc.array(fc.string(), { maxLength: 20 }), (lines) => {
        for (const m of parseProcMaps(lines.join('\n'))) expect(m.end).toBeGreaterThan(m.start);
      }),
    );
  });
});

describe('mappingDrift (a RAM file remapped under an accepted layout)', () => {
  const maps = parseProcMaps(MAPS);
  const layout = buildLayout(parseMtreeFlat(MTREE), [{ id: 'mem0', sizeBytes: 3 * GiB, memPath: '/dev/shm/vm-mem0' }], maps);

  it('accepts the maps the layout was built from, and names the file a remap put there', () => {
    expect(mappingDrift(layout.ranges, maps)).toBeUndefined();
    expect(mappedFiles(maps)).toEqual(new Set(['fd:01:1234', '00:1b:2']));
    // Another VM's file (00:1b:7) mapped with MAP_FIXED over the second VMA, same address.
    const remapped = parseProcMaps(MAPS.replace('rw-s 80000000 00:1b 2  ', 'rw-s 80000000 00:1b 7  '));
    expect(mappingDrift(layout.ranges, remapped)).toMatch(/GPA 0x100000000 .* now maps file 00:1b:7 .*not the RAM file 00:1b:2/);
    // Same file, another offset (the guest's GPA would land on other pages of it).
    const shifted = parseProcMaps(MAPS.replace('rw-s 80000000 00:1b 2  ', 'rw-s 40000000 00:1b 2  '));
    expect(mappingDrift(layout.ranges, shifted)).toMatch(/now maps offset 0x40000000 of its file, not 0x80000000/);
    // Unmapped: a hole where RAM was.
    expect(mappingDrift(layout.ranges, maps.filter((m) => m.fileOffset !== 0x80000000))).toMatch(/no longer mapped/);
  });

  it('finds any change of file or offset over any page of RAM, and none otherwise', () => {
    const pageArb = fc.integer({ min: 0, max: (3 * GiB) / 4096 - 1 });
    fc.assert(
      fc.property(pageArb, fc.integer({ min: 1, max: 64 }), fc.constantFrom('file', 'offset', 'same'), (page, pages, change) => {
        // Split the RAM VMAs around [page, page + pages) of the backend and alter that piece.
        const at = page * 4096;
        const out = [];
        for (const m of maps) {
          const lo = m.fileOffset;
          const hi = m.fileOffset + (m.end - m.start);
          if (m.file !== '00:1b:2' || at + pages * 4096 <= lo || at >= hi) {
            out.push(m);
            continue;
          }
          const a = Math.max(at, lo);
          const b = Math.min(at + pages * 4096, hi);
          if (a > lo) out.push({ ...m, end: m.start + (a - lo) });
          const mid = { ...m, start: m.start + (a - lo), end: m.start + (b - lo), fileOffset: a };
          if (change === 'file') mid.file = '00:1b:9';
          if (change === 'offset') mid.fileOffset = a + 4096;
          out.push(mid);
          if (b < hi) out.push({ ...m, start: m.start + (b - lo), fileOffset: b });
        }
        const inRam = layout.ranges.some((r) => at < r.backendOffset + (r.gpaEnd - r.gpaStart) && at + pages * 4096 > r.backendOffset);
        const drift = mappingDrift(layout.ranges, out);
        if (change === 'same' || !inRam) expect(drift).toBeUndefined();
        else expect(drift).toBeDefined();
      }),
      { numRuns: 300 },
    );
  });
});

describe('translateRuns', () => {
  const ranges: RamRange[] = [
    { gpaStart: 0, gpaEnd: 0xc0000, hvaStart: 0x7f0000000000, memdev: 'm', backendOffset: 0 },
    { gpaStart: 0x100000, gpaEnd: 0x800000, hvaStart: 0x7f0000100000, memdev: 'm', backendOffset: 0x100000 },
    // Adjacent in GPA, elsewhere in HVA (a second VMA): runs may span the seam.
    { gpaStart: 0x800000, gpaEnd: 0x1000000, hvaStart: 0x7f1000000000, memdev: 'm', backendOffset: 0x800000 },
    { gpaStart: 0x100000000, gpaEnd: 0x100400000, hvaStart: 0x7f2000000000, memdev: 'm', backendOffset: 0x1000000 },
  ];
  const table = buildTable(ranges);

  function reference(pfn: number): { hva: number; index: number } | undefined {
    let index = 0;
    for (const r of ranges) {
      const s = r.gpaStart / 4096;
      const e = r.gpaEnd / 4096;
      if (pfn >= s && pfn < e) return { hva: r.hvaStart + (pfn - s) * 4096, index: index + pfn - s };
      index += e - s;
    }
    return undefined;
  }

  it('agrees with a slow reference and rejects whole runs that leave RAM', () => {
    const pfnArb = fc.oneof(fc.integer({ min: 0, max: 0x1100 }), fc.integer({ min: 0x100000 - 10, max: 0x100410 }));
    fc.assert(
      fc.property(fc.array(fc.tuple(pfnArb, fc.integer({ min: 1, max: 300 })), { maxLength: 20 }), (rows) => {
        const out = new PageBuffer(16);
        const res = translateRuns(table, runsFrom(rows), 3, out);
        const rejected = new Set(res.rejected.map((r) => r.run));
        let o = 0;
        rows.forEach(([pfn, pages], i) => {
          const inside = Array.from({ length: pages }, (_, k) => reference(pfn + k));
          expect(rejected.has(i)).toBe(inside.some((x) => x === undefined));
          if (rejected.has(i)) return;
          for (const x of inside) {
            if (out.hva[o] !== x!.hva || out.index[o] !== x!.index || out.node[o] !== 3) throw new Error(`page ${o}: wrong translation`);
            o++;
          }
        });
        expect(out.count).toBe(o);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects hostile runs: fractions, negatives, NaN, overflow, and caps the page count', () => {
    const runs = { count: 6, gpaPfn: new Float64Array([1.5, -1, NaN, 2 ** 53, 2 ** 40 - 1, 0x100]), pages: new Uint32Array([1, 1, 1, 1, 0xffffffff, 0]) };
    const out = new PageBuffer();
    const res = translateRuns(table, runs, 0, out);
    expect(res.rejected.map((r) => r.reason)).toEqual(['bad-run', 'bad-run', 'bad-run', 'bad-run', 'bad-run', 'bad-run']);
    const capped = translateRuns(table, runsFrom([[0x100, 100], [0x200, 100]]), 0, out, 150);
    expect(capped.pages).toBe(100);
    expect(capped.rejected).toEqual([{ run: 1, reason: 'too-many-pages' }]);
  });

  it('counts guest-declared RAM pages outside the layout', () => {
    expect(pagesOutside(table, runsFrom([[0, 0xc0]]))).toBe(0);
    expect(pagesOutside(table, runsFrom([[0, 0x1000]]))).toBe(0x40);
    expect(pagesOutside(table, runsFrom([[0xfff, 2], [0x100000, 0x400], [0x100400, 5], [0x200000, 3]]))).toBe(1 + 0 + 5 + 3); // 0x1000 is past the seam-adjacent ranges
  });
});
