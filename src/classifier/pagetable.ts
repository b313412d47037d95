// Per-page classifier state: typed arrays indexed by page, allocated per 2 MiB chunk
// (512 pages) on first touch, so memory follows what is sampled rather than RAM size.
//
// Layout: a two-level chunk directory (chunk key = pfn >> 9; 65536-entry Int32Array
// pages, made on demand) points into one pooled Uint32Array, 4 bytes per tracked page:
//   bits 0-15 count (saturating, decayed sample count), bits 16-23 idle (epochs since the
//   last sample, 255 = never), bits 24-31 flags (bit 24: in DRAM, bit 25: in the last decision's hot set).
// One word per page means one cache line per random sample: ingest is memory-bound.
// A directory entry that is not a chunk index records what is known about a chunk
// nobody sampled: nothing, "all in DRAM" or "all in CXL" (host placement reports), so a
// 1 TiB placement report does not allocate 1 TiB worth of state.

import type { RamMap } from './ingest.js';

export const CHUNK_SHIFT = 9;
export const PAGES_PER_CHUNK = 1 << CHUNK_SHIFT;
/** x86-64 physical addresses have at most 52 bits: frames are below 2^40. */
export const PFN_LIMIT = 2 ** 40;
export const MAX_COUNT = 0xffff;
export const IDLE_NEVER = 0xff;

export const COUNT_MASK = 0xffff;
export const IDLE_SHIFT = 16;
export const IDLE_ONE = 1 << IDLE_SHIFT;
export const IDLE_FIELD = 0xff << IDLE_SHIFT;
export const FLAG_DRAM = 1 << 24;
/** In the hot set of the last decision (what hotRuns() reports). */
export const FLAG_HOT = 1 << 25;
/** Not guest RAM (the part of a 2 MiB chunk past a RAM range's end): never moved. */
export const FLAG_NOT_RAM = 1 << 26;
export const FLAGS_FIELD = 0xff << 24;

/** 2^22 chunks = 2^31 pages = 8 TiB of tracked memory. */
export const MAX_TRACKED_CHUNKS = 1 << 22;

export const DIR_UNKNOWN = 0;
export const DIR_DRAM = 1;
export const DIR_CXL = 2;
export const DIR_FIRST_CHUNK = 3;
export const DIR_PAGE_BITS = 16;
const DIR_PAGE_SIZE = 1 << DIR_PAGE_BITS;
export const DIR_PAGE_MASK = DIR_PAGE_SIZE - 1;

export class PageTable {
  /** Per tracked page: count | idle << 16 | flags (see the layout above). */
  state = new Uint32Array(0);
  /** Chunk key (pfn >> 9) of each allocated chunk, by chunk index. */
  chunkKeys = new Float64Array(0);
  chunkCount = 0;
  /** Tracked pages per exact count value: threshold choice without a pass over pages. */
  readonly histogram = new Uint32Array(MAX_COUNT + 1);
  /** Tracked pages currently in DRAM. */
  trackedDramPages = 0;
  /** Keys of chunks known to be all in DRAM but never sampled (not allocated). */
  readonly untouchedDram = new Set<number>();
  /** Directory pages by chunkKey >>> 16; entries as described above. Read directly by
   *  the ingest loop (the hot path); written only through this class. */
  readonly dirs: Array<Int32Array | undefined> = [];
  private capacityChunks = 0;

  private readonly maxChunks: number;

  constructor(
    maxChunks: number,
    private readonly unknownInDram: boolean,
    /** Guest RAM, when known: pages of a chunk outside it are flagged FLAG_NOT_RAM. */
    private readonly ram?: RamMap,
  ) {
    // Page indexes stay below 2^31 so the hot paths can use int32 arithmetic (8 TiB tracked).
    this.maxChunks = Math.min(maxChunks, MAX_TRACKED_CHUNKS);
  }

  get trackedPages(): number {
    return this.chunkCount * PAGES_PER_CHUNK;
  }

  get dramPages(): number {
    return this.trackedDramPages + this.untouchedDram.size * PAGES_PER_CHUNK;
  }

  /** Directory state of a chunk: DIR_UNKNOWN/DIR_DRAM/DIR_CXL, or >= 3 when allocated. */
  entry(chunkKey: number): number {
    const dir = this.dirs[chunkKey >>> DIR_PAGE_BITS];
    return dir === undefined ? DIR_UNKNOWN : dir[chunkKey & DIR_PAGE_MASK];
  }

  /** First page index of an allocated chunk, or -1. */
  baseOf(chunkKey: number): number {
    const e = this.entry(chunkKey);
    return e >= DIR_FIRST_CHUNK ? (e - DIR_FIRST_CHUNK) * PAGES_PER_CHUNK : -1;
  }

  /** First page index of the chunk, allocating it on first touch; -1 when the table is
   *  full (more chunks than RAM has, or 8 TiB without a RAM map): the caller rejects. */
  chunkBase(chunkKey: number): number {
    const e = this.entry(chunkKey);
    if (e >= DIR_FIRST_CHUNK) return (e - DIR_FIRST_CHUNK) * PAGES_PER_CHUNK;
    return this.allocate(chunkKey, e);
  }

  /** Records an unallocated chunk's tier (whole-chunk placement reports). */
  setUntouchedTier(chunkKey: number, state: typeof DIR_DRAM | typeof DIR_CXL): void {
    if (state === DIR_DRAM) this.untouchedDram.add(chunkKey);
    else this.untouchedDram.delete(chunkKey);
    this.setEntry(chunkKey, state);
  }

  /** Bytes held by the pooled per-page arrays (the part that scales with tracked memory). */
  get pooledBytes(): number {
    return this.state.byteLength;
  }

  /** Fixed and per-chunk overhead: directory pages, chunk keys, the histogram. */
  get overheadBytes(): number {
    let dirBytes = 0;
    for (const dir of this.dirs) if (dir) dirBytes += dir.byteLength;
    return dirBytes + this.chunkKeys.byteLength + this.histogram.byteLength + this.untouchedDram.size * 16;
  }

  /** Halves every count (Memtis-style cooling); the histogram shifts down with it. */
  cool(): void {
    const state = this.state;
    const end = this.trackedPages;
    for (let p = 0; p < end; p++) {
      const word = state[p];
      if (word & COUNT_MASK) state[p] = (word & ~COUNT_MASK) | ((word & COUNT_MASK) >>> 1);
    }
    this.shiftHistogram();
  }

  /** The histogram after every count has been halved (by cool(), or by a decision pass). */
  shiftHistogram(): void {
    const hist = this.histogram;
    const shifted = new Uint32Array(hist.length);
    for (let c = 0; c < hist.length; c++) shifted[c >>> 1] += hist[c];
    hist.set(shifted);
  }

  private setEntry(chunkKey: number, value: number): void {
    const hi = chunkKey >>> DIR_PAGE_BITS;
    let dir = this.dirs[hi];
    if (dir === undefined) {
      dir = new Int32Array(DIR_PAGE_SIZE);
      this.dirs[hi] = dir;
    }
    dir[chunkKey & DIR_PAGE_MASK] = value;
  }

  private allocate(chunkKey: number, state: number): number {
    if (this.chunkCount >= this.maxChunks) return -1;
    if (this.chunkCount === this.capacityChunks) this.grow();
    const chunk = this.chunkCount++;
    const base = chunk * PAGES_PER_CHUNK;
    this.chunkKeys[chunk] = chunkKey;
    const inDram = state === DIR_DRAM || (state === DIR_UNKNOWN && this.unknownInDram);
    const firstPfn = chunkKey * PAGES_PER_CHUNK;
    if (this.ram === undefined || this.ram.contains(firstPfn, PAGES_PER_CHUNK)) {
      if (inDram) this.trackedDramPages += PAGES_PER_CHUNK;
      this.state.fill((inDram ? FLAG_DRAM : 0) | (IDLE_NEVER << IDLE_SHIFT), base, base + PAGES_PER_CHUNK);
    } else {
      // A chunk straddling the end of a RAM range (RAM sizes need not be 2 MiB multiples).
      for (let o = 0; o < PAGES_PER_CHUNK; o++) {
        const inRam = this.ram.contains(firstPfn + o, 1);
        if (inRam && inDram) this.trackedDramPages++;
        this.state[base + o] = (inRam ? (inDram ? FLAG_DRAM : 0) : FLAG_NOT_RAM) | (IDLE_NEVER << IDLE_SHIFT);
      }
    }
    this.histogram[0] += PAGES_PER_CHUNK;
    this.untouchedDram.delete(chunkKey);
    this.setEntry(chunkKey, chunk + DIR_FIRST_CHUNK);
    return base;
  }

  private grow(): void {
    // 1.5x growth, capped at the RAM size when known, keeps slack (and the bytes/page
    // figure) bounded without copying on every chunk.
    const wanted = Math.max(64, Math.ceil(this.capacityChunks * 1.5));
    const capacity = Math.max(this.capacityChunks + 1, Math.min(this.maxChunks, wanted));
    const pages = capacity * PAGES_PER_CHUNK;
    const state = new Uint32Array(pages);
    state.set(this.state);
    const chunkKeys = new Float64Array(capacity);
    chunkKeys.set(this.chunkKeys);
    this.state = state;
    this.chunkKeys = chunkKeys;
    this.capacityChunks = capacity;
  }
}
