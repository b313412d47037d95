// KpageflagsReader.folios reads /proc/kpageflags in spans (one pread per run of nearby
// frames) instead of one read per frame: it must answer exactly as the per-frame reference
// (the frame's aligned window decoded by folioRun), on hostile flags and on the real file.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { closeSync, mkdtempSync, openSync, readSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { folioRun, KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL, KPF_THP, KpageflagsReader, MAX_FOLIO_PAGES } from '../guest-agent/kpageflags.js';

/** The per-frame answer: read the aligned window of `pfn` from the file, decode it. */
function reference(path: string, pfn: number): { first: number; pages: number } {
  if (!(Number.isSafeInteger(pfn) && pfn >= 0)) return { first: pfn, pages: 1 };
  const base = pfn - (pfn % MAX_FOLIO_PAGES);
  const fd = openSync(path, 'r');
  try {
    const one = Buffer.alloc(8);
    if (readSync(fd, one, 0, 8, pfn * 8) !== 8) return { first: pfn, pages: 1 };
    if (((one.readUInt32LE(0) >>> KPF_THP) & 1) === 0) return { first: pfn, pages: 1 };
    const buf = Buffer.alloc(MAX_FOLIO_PAGES * 8);
    const got = readSync(fd, buf, 0, buf.length, base * 8);
    return folioRun(new BigUint64Array(buf.buffer, buf.byteOffset, Math.floor(got / 8)), base, pfn);
  } finally {
    closeSync(fd);
  }
}

const HEAD = (1n << BigInt(KPF_COMPOUND_HEAD)) | (1n << BigInt(KPF_THP));
const TAIL = (1n << BigInt(KPF_COMPOUND_TAIL)) | (1n << BigInt(KPF_THP));

describe('KpageflagsReader.folios (span reads)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtier-kpf-'));

  it('property: the same folios as per-frame reads, for any frames in any order', () => {
    // a file of 4 windows: whole THPs, partial or broken folios, random junk bits
    const frame = fc.oneof(
      fc.constant(0n),
      fc.constant(HEAD),
      fc.constant(TAIL),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    );
    const layout = fc.array(
      fc.record({ at: fc.nat({ max: 4 * MAX_FOLIO_PAGES - 1 }), size: fc.integer({ min: 1, max: MAX_FOLIO_PAGES + 40 }), flags: fc.array(frame, { maxLength: 8 }) }),
      { maxLength: 6 },
    );
    const frames = fc.array(
      fc.oneof({ arbitrary: fc.nat({ max: 4 * MAX_FOLIO_PAGES + 100 }), weight: 50 }, { arbitrary: fc.constantFrom(-1, 0.5, Number.NaN, 2 ** 60), weight: 1 }),
      { maxLength: 1500, size: 'max' },
    );
    let n = 0;
    fc.assert(
      fc.property(layout, frames, fc.boolean(), fc.integer({ min: 1, max: 4 * MAX_FOLIO_PAGES }), (parts, pfns, sorted, fileFrames) => {
        const words = new BigUint64Array(fileFrames);
        for (const { at, size, flags } of parts) {
          for (let k = 0; k < size && at + k < fileFrames; k++) words[at + k] = k === 0 ? HEAD : TAIL;
          flags.forEach((f, k) => at + k < fileFrames && (words[at + k] = f));
        }
        const path = join(dir, `kpageflags-${n++}`);
        writeFileSync(path, new Uint8Array(words.buffer));
        const key = (v: number) => (Number.isNaN(v) ? Infinity : v);
        if (sorted) pfns.sort((a, b) => key(a) - key(b));
        const reader = KpageflagsReader.open(path)!;
        try {
          const got = reader.folios(pfns);
          pfns.forEach((pfn, k) => {
            const want = reference(path, pfn);
            expect({ first: got.first[k], pages: got.pages[k] }, `pfn ${pfn}`).toEqual(want);
            expect(reader.folio(pfn)).toEqual(want);
          });
        } finally {
          reader.close();
        }
      }),
      { numRuns: 50 },
    );
  });

  it('the real /proc/kpageflags: span answers equal per-frame answers on a sample of frames', () => {
    const reader = KpageflagsReader.open();
    if (!reader) {
      console.log('[kpageflags-spans] skipped the real file: /proc/kpageflags unreadable (needs root)');
      return;
    }
    try {
      // dense runs (spans) and scattered frames over the first 32 GiB of frames
      const pfns: number[] = [];
      for (let base = 0; base < 2 ** 23; base += 8191) for (let k = 0; k < 40; k += 1 + (k % 3)) pfns.push(base + k);
      pfns.sort((a, b) => a - b);
      const got = reader.folios(pfns);
      let thp = 0;
      let differ = 0;
      pfns.forEach((pfn, k) => {
        const want = reference('/proc/kpageflags', pfn);
        if (want.pages > 1) thp++;
        if (got.first[k] !== want.first || got.pages[k] !== want.pages) differ++;
      });
      console.log(`[kpageflags-spans] ${pfns.length} real frames compared, ${thp} in THPs, ${differ} differ`);
      // the kernel is live: a frame can change between the two reads, so a few may differ
      expect(differ).toBeLessThanOrEqual(pfns.length * 0.01);
    } finally {
      reader.close();
    }
  });
});
