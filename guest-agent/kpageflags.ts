// Folio extent of a page frame from /proc/kpageflags (one u64 of KPF_* bits per frame),
// so that one fault on a transparent huge page counts for the whole folio it mapped.
import { closeSync, openSync, readSync } from 'node:fs';

/** include/uapi/linux/kernel-page-flags.h */
export const KPF_COMPOUND_HEAD = 15;
export const KPF_COMPOUND_TAIL = 16;
export const KPF_THP = 22;
/** Folios up to PMD size (2 MiB of 4 KiB pages) are expanded; larger ones are clipped to it. */
export const MAX_FOLIO_PAGES = 512;

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

/** Reads /proc/kpageflags windows (root only); unreadable gives null: frames stay single. */
export class KpageflagsReader {
  private constructor(private readonly fd: number) {}

  static open(path = '/proc/kpageflags'): KpageflagsReader | null {
    try {
      return new KpageflagsReader(openSync(path, 'r'));
    } catch {
      return null;
    }
  }

  private window: { base: number; flags: BigUint64Array } | undefined;
  private readonly one = Buffer.alloc(8);

  /** The folio of `pfn`: one 8-byte read, and the aligned window of MAX_FOLIO_PAGES
   *  frames only for a THP (kept for the next frames, which usually follow). */
  folio(pfn: number): { first: number; pages: number } {
    const base = pfn - (pfn % MAX_FOLIO_PAGES);
    if (this.window?.base === base) return folioRun(this.window.flags, base, pfn);
    try {
      if (readSync(this.fd, this.one, 0, 8, pfn * 8) !== 8) return { first: pfn, pages: 1 };
      if (!bit(this.one.readBigUInt64LE(0), KPF_THP)) return { first: pfn, pages: 1 };
      const buf = Buffer.alloc(MAX_FOLIO_PAGES * 8);
      const got = readSync(this.fd, buf, 0, buf.length, base * 8);
      this.window = { base, flags: new BigUint64Array(buf.buffer, buf.byteOffset, Math.floor(got / 8)) };
    } catch {
      return { first: pfn, pages: 1 };
    }
    return folioRun(this.window.flags, base, pfn);
  }

  close(): void {
    closeSync(this.fd);
  }
}
