// Virtual page -> physical page frame through /proc/PID/pagemap: 8 bytes per virtual
// page, bits 0-54 the frame (zero unless the reader has CAP_SYS_ADMIN), bit 62
// swapped, bit 63 present. One pread per run of consecutive virtual pages.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
// The pure decoder lives in src/ (the host agent's local target uses it too).
import { decodePagemap, decodePagemapEntry, PAGEMAP_ENTRY_BYTES, type PagemapEntry } from '../src/pagemap.js';
export { decodePagemap, decodePagemapEntry, PAGEMAP_ENTRY_BYTES, type PagemapEntry };

const PAGE_SHIFT = 12;
/** Largest span read in one pread (8 KiB of entries = 4 MiB of address space). */
const MAX_SPAN_PAGES = 1024;
/** User address space ends below 2^57 on x86-64 with 5-level paging. */
const MAX_VPAGE = 2 ** 45;

/** The target process exited (or never existed). */
export class TargetGoneError extends Error {
  readonly code = 'target-gone';
  constructor(readonly pid: number, detail = '') {
    super(`target process ${pid} is gone${detail ? ` (${detail})` : ''}`);
    this.name = 'TargetGoneError';
  }
}

function isGoneCode(code: unknown): boolean {
  return code === 'ESRCH' || code === 'ENOENT';
}

/** An open /proc/PID/pagemap (pid 'self' allowed). Close it when done. */
export class Pagemap {
  private fd: number;
  private readonly scratch = Buffer.alloc(MAX_SPAN_PAGES * PAGEMAP_ENTRY_BYTES);

  private constructor(readonly pid: number | 'self', fd: number) {
    this.fd = fd;
  }

  static open(pid: number | 'self', procRoot = '/proc'): Pagemap {
    if (pid !== 'self' && !(Number.isSafeInteger(pid) && pid > 0)) throw new TypeError(`pid: ${pid} is not a process id`);
    try {
      return new Pagemap(pid, openSync(`${procRoot}/${pid}/pagemap`, 'r'));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (isGoneCode(code) && pid !== 'self') throw new TargetGoneError(pid, `cannot open /proc/${pid}/pagemap: ${code}`);
      throw err;
    }
  }

  /**
   * Translates virtual page numbers (VA >> 12) to frames, writing -1 for pages that are
   * not present. Sorted input is fastest (consecutive pages share one pread), but any
   * order works. Throws TargetGoneError when the process exits.
   */
  translate(vpages: ArrayLike<number>, out = new Float64Array(vpages.length)): Float64Array {
    if (this.fd < 0) throw new Error('pagemap: already closed');
    const n = vpages.length;
    let i = 0;
    while (i < n) {
      const first = vpages[i];
      if (!(Number.isSafeInteger(first) && first >= 0 && first < MAX_VPAGE)) {
        out[i++] = -1;
        continue;
      }
      // Extend the span while the next page is within the window of this read.
      let j = i + 1;
      let last = first;
      while (j < n) {
        const v = vpages[j];
        if (!(Number.isSafeInteger(v) && v >= first && v < first + MAX_SPAN_PAGES && v >= last)) break;
        last = v;
        j++;
      }
      const spanPages = last - first + 1;
      const bytes = this.pread(first * PAGEMAP_ENTRY_BYTES, spanPages * PAGEMAP_ENTRY_BYTES);
      const entries = Math.floor(bytes / PAGEMAP_ENTRY_BYTES);
      // A zombie's pagemap opens but reads empty: the address space is gone.
      if (bytes === 0 && this.pid !== 'self' && !processAlive(this.pid)) throw new TargetGoneError(this.pid, 'exited');
      for (let k = i; k < j; k++) {
        const index = vpages[k] - first;
        if (index >= entries) {
          out[k] = -1;
          continue;
        }
        const low = this.scratch.readUInt32LE(index * 8);
        const high = this.scratch.readUInt32LE(index * 8 + 4);
        out[k] = decodePagemapEntry(low, high).pfn;
      }
      i = j;
    }
    return out;
  }

  /** Translates one virtual address; -1 when not present. */
  translateAddress(virtualAddress: number): number {
    return this.translate([Math.floor(virtualAddress / 2 ** PAGE_SHIFT)])[0];
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private pread(offset: number, length: number): number {
    try {
      return readSync(this.fd, this.scratch, 0, length, offset);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (isGoneCode(code) && this.pid !== 'self') throw new TargetGoneError(this.pid, `reading pagemap: ${code}`);
      throw err;
    }
  }
}

/** Whether a process exists (and is not a zombie). */
export function processAlive(pid: number, procRoot = '/proc'): boolean {
  try {
    const stat = readFileSyncSafe(`${procRoot}/${pid}/stat`);
    if (stat === undefined) return false;
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function readFileSyncSafe(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
