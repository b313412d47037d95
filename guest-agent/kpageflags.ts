// Folio extent of a page frame from /proc/kpageflags (one u64 of KPF_* bits per frame),
// so that one fault on a transparent huge page counts for the whole folio it mapped.
import { closeSync, openSync, readSync } from 'node:fs';

/** include/uapi/linux/kernel-page-flags.h */
export const KPF_COMPOUND_HEAD = 15;
export const KPF_COMPOUND_TAIL = 16;
export const KPF_THP = 22;
/** Folios up to PMD size (2 MiB of 4 KiB pages) are expanded; larger ones are clipped to it. */
export const MAX_FOLIO_PAGES = 512;
/** Longest span of frames read in one pread (8 KiB of flags). */
export const SPAN_FRAMES = 1024;
/** A span goes on across a hole of up to this many frames (reading them is cheaper than
 *  another syscall); a wider hole starts a new span. */
export const SPAN_MAX_GAP = 64;
/** Frame numbers above this are refused (2^52 bytes of flags is past any kernel's file). */
const MAX_PFN = 2 ** 49;

const bit = (flags: bigint, n: number) => ((flags >> BigInt(n)) & 1n) === 1n;

/**
 * The folio containing frame `pfn`, from the flags of the aligned window
 * [base, base + flags.length) that holds it (base a multiple of the window length).
 * A frame that is not part of a THP, or flags that do not describe a consistent folio
 * (hostile or racing input), give the frame alone.
 */
export function folioRun(flags: BigUint64Array, base: number, pfn: number): { first: number; pages: number } {
  const alone = { first: pfn, pages: 1 };
  const at = pfn - base;
  if (!(Number.isInteger(at) && at >= 0 && at < flags.length)) return alone;
  const f = flags[at];
  if (!bit(f, KPF_THP) || !(bit(f, KPF_COMPOUND_HEAD) || bit(f, KPF_COMPOUND_TAIL))) return alone;
  let head = at;
  while (head >= 0 && !bit(flags[head], KPF_COMPOUND_HEAD)) {
    if (!bit(flags[head], KPF_COMPOUND_TAIL)) return alone;
    head--;
  }
  if (head < 0) return alone;
  let end = head + 1;
  while (end < flags.length && bit(flags[end], KPF_COMPOUND_TAIL) && !bit(flags[end], KPF_COMPOUND_HEAD)) end++;
  if (end <= at) return alone;
  return { first: base + head, pages: end - head };
}

/** Folio answers for a list of frames: folio i is [first[i], first[i] + pages[i]). */
export interface Folios {
  first: Float64Array;
  pages: Uint32Array;
}

/** Reads /proc/kpageflags (root only); unreadable gives null: frames stay single. */
export class KpageflagsReader {
  private constructor(private readonly fd: number) {}

  static open(path = '/proc/kpageflags'): KpageflagsReader | null {
    try {
      return new KpageflagsReader(openSync(path, 'r'));
    } catch {
      return null;
    }
  }

  /** The last aligned THP window read (the next frames usually fall in it too). */
  private window: { base: number; flags: BigUint64Array } | undefined;
  private readonly span = Buffer.alloc(SPAN_FRAMES * 8);

  /** The folio of one frame. */
  folio(pfn: number): { first: number; pages: number } {
    const f = this.folios([pfn]);
    return { first: f.first[0], pages: f.pages[0] };
  }

  /**
   * The folios of `pfns`: one pread per span of nearby frames (at most SPAN_FRAMES, holes
   * up to SPAN_MAX_GAP), and the aligned window of MAX_FOLIO_PAGES frames only for a THP
   * frame. Ascending input is fastest; any order gives the same answers.
   */
  folios(pfns: ArrayLike<number>, out: Folios = { first: new Float64Array(pfns.length), pages: new Uint32Array(pfns.length) }): Folios {
    const n = pfns.length;
    const valid = (v: number) => Number.isSafeInteger(v) && v >= 0 && v < MAX_PFN;
    let i = 0;
    while (i < n) {
      const start = pfns[i];
      if (!valid(start)) {
        out.first[i] = start;
        out.pages[i++] = 1;
        continue;
      }
      let j = i + 1;
      let last = start;
      while (j < n) {
        const v = pfns[j];
        if (!(valid(v) && v >= last && v - last <= SPAN_MAX_GAP && v < start + SPAN_FRAMES)) break;
        last = v;
        j++;
      }
      let entries = 0;
      try {
        entries = Math.floor(readSync(this.fd, this.span, 0, (last - start + 1) * 8, start * 8) / 8);
      } catch {
        /* unreadable span: its frames stay single */
      }
      for (let k = i; k < j; k++) {
        const pfn = pfns[k];
        const at = pfn - start;
        // KPF_THP is in the low word
        if (at >= entries || ((this.span.readUInt32LE(at * 8) >>> KPF_THP) & 1) === 0) {
          out.first[k] = pfn;
          out.pages[k] = 1;
        } else {
          const f = this.thpFolio(pfn);
          out.first[k] = f.first;
          out.pages[k] = f.pages;
        }
      }
      i = j;
    }
    return out;
  }

  /** The folio of a THP frame, from its aligned window (read once, kept). */
  private thpFolio(pfn: number): { first: number; pages: number } {
    const base = pfn - (pfn % MAX_FOLIO_PAGES);
    if (this.window?.base !== base) {
      try {
        const buf = Buffer.alloc(MAX_FOLIO_PAGES * 8);
        const got = readSync(this.fd, buf, 0, buf.length, base * 8);
        this.window = { base, flags: new BigUint64Array(buf.buffer, buf.byteOffset, Math.floor(got / 8)) };
      } catch {
        return { first: pfn, pages: 1 };
      }
    }
    return folioRun(this.window.flags, base, pfn);
  }

  close(): void {
    closeSync(this.fd);
  }
}
