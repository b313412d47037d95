// The bare-metal target: a local process on a tiered host. Decisions name physical page
// frames (what the sampler sees); /proc/PID/pagemap gives the frame behind each of the
// process's virtual pages, so an index sorted by frame turns frames back into addresses,
// and move_pages moves them in that process. Frames change when pages move, so the index
// is rebuilt (rebuild()) before each round of decisions.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import type { PageRuns } from '../src/samples.js';
import { decodePagemap } from '../src/pagemap.js';
import { parseProcMaps } from './layout.js';
import type { PageTranslator } from './migrator.js';
import type { PageBuffer, TranslateResult } from './translate.js';

const PAGE = 4096;
const CHUNK_PAGES = 1 << 16;

export interface LocalIndexStats {
  pages: number;
  mappings: number;
  buildMs: number;
}

/** PFN -> VA for the writable mappings of one process. Typed arrays sorted by frame. */
export class LocalProcessTranslator implements PageTranslator {
  private pfn = new Float64Array(0);
  private va = new Float64Array(0);
  totalPages = 0;
  lastStats: LocalIndexStats = { pages: 0, mappings: 0, buildMs: 0 };

  constructor(
    readonly pid: number,
    private readonly procRoot = '/proc',
  ) {}

  /** Reads the process's maps and pagemap. Throws ESRCH-like errors when it is gone. */
  rebuild(): LocalIndexStats {
    const t0 = performance.now();
    let mapsText: string;
    try {
      mapsText = readFileSync(`${this.procRoot}/${this.pid}/maps`, 'utf8');
    } catch (err) {
      throw Object.assign(new Error(`local process ${this.pid} is gone (${(err as NodeJS.ErrnoException).code})`), { code: 'ESRCH' });
    }
    // Private memory the process writes, the heap and stack included (a pid-filtered sampler
    // sees their frames too); not the kernel's special mappings ([vdso], [vvar]).
    const maps = parseProcMaps(mapsText).filter((m) => m.perms[0] === 'r' && m.perms[1] === 'w' && (!m.path.startsWith('[') || m.path === '[heap]' || m.path === '[stack]'));
    const fd = openSync(`${this.procRoot}/${this.pid}/pagemap`, 'r');
    const pfns: number[] = [];
    const vas: number[] = [];
    const buf = Buffer.alloc(CHUNK_PAGES * 8);
    const frames = new Float64Array(CHUNK_PAGES);
    try {
      for (const m of maps) {
        for (let va = m.start; va < m.end; va += CHUNK_PAGES * PAGE) {
          const n = Math.min(CHUNK_PAGES, (m.end - va) / PAGE);
          const bytes = readSync(fd, buf, 0, n * 8, (va / PAGE) * 8);
          const decoded = decodePagemap(buf.subarray(0, bytes), frames);
          const count = Math.floor(bytes / 8);
          for (let k = 0; k < count; k++) {
            if (decoded[k] > 0) {
              pfns.push(decoded[k]);
              vas.push(va + k * PAGE);
            }
          }
        }
      }
    } finally {
      closeSync(fd);
    }
    // Sort by frame (indices sorted by pfn).
    const order = Uint32Array.from(pfns.keys()).sort((a, b) => pfns[a] - pfns[b]);
    const pfn = new Float64Array(order.length);
    const va = new Float64Array(order.length);
    let w = 0;
    for (let i = 0; i < order.length; i++) {
      const p = pfns[order[i]];
      if (w > 0 && pfn[w - 1] === p) continue; // a frame mapped twice: keep one address
      pfn[w] = p;
      va[w] = vas[order[i]];
      w++;
    }
    this.pfn = pfn.subarray(0, w);
    this.va = va.subarray(0, w);
    this.totalPages = w;
    this.lastStats = { pages: w, mappings: maps.length, buildMs: performance.now() - t0 };
    return this.lastStats;
  }

  /** Index of the first frame >= pfn. */
  private lowerBound(pfn: number): number {
    let lo = 0;
    let hi = this.pfn.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.pfn[mid] < pfn) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Frames of the run that belong to the process are emitted; the others are skipped
   *  (a physical run covers other processes' frames too). A run that is malformed is
   *  rejected; one with no frame of the process counts as outside-ram. */
  translate(runs: PageRuns, targetNode: number, out: PageBuffer, maxPages = Infinity): TranslateResult {
    const rejected: TranslateResult['rejected'] = [];
    const start = out.count;
    for (let r = 0; r < runs.count; r++) {
      const first = runs.gpaPfn[r];
      const pages = runs.pages[r];
      if (!(Number.isInteger(first) && first >= 0 && first < 2 ** 40 && Number.isInteger(pages) && pages >= 1)) {
        rejected.push({ run: r, reason: 'bad-run' });
        continue;
      }
      const end = first + pages;
      let i = this.lowerBound(first);
      if (i >= this.pfn.length || this.pfn[i] >= end) {
        rejected.push({ run: r, reason: 'outside-ram' });
        continue;
      }
      for (; i < this.pfn.length && this.pfn[i] < end; i++) {
        if (out.count - start >= maxPages) {
          rejected.push({ run: r, reason: 'too-many-pages' });
          break;
        }
        out.ensure(out.count + 1);
        const o = out.count++;
        out.hva[o] = this.va[i];
        out.index[o] = i;
        out.gpaPfn[o] = this.pfn[i];
        out.node[o] = targetNode;
      }
    }
    return { pages: out.count - start, rejected };
  }

  allPages(): Float64Array {
    return this.va;
  }

  /** Frames of the process (sorted), e.g. to build a test trace. */
  frames(): Float64Array {
    return this.pfn;
  }
}
