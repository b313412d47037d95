// TypeScript view of the structs in bpf/sampler.h. test/bpf-layout.test.ts compiles a C
// program against that header and fails when any size or offset here drifts from it.
// Decoders take untrusted bytes: a trailing partial record is ignored and reported.

/** struct vt_page_key: aggregation map key. */
export const PAGE_KEY = { size: 16, page: 0, tgid: 8, kind: 12 } as const;
/** struct vt_page_value: one page's counts. */
export const PAGE_VALUE = { size: 8, reads: 0, writes: 4 } as const;
/** VT_PAGE_GROUP: pages counted by one aggregation map entry (key.page is the first). */
export const PAGE_GROUP_PAGES = 8;
/** struct vt_page_group: aggregation map value, PAGE_GROUP_PAGES vt_page_value in a row. */
export const PAGE_GROUP = { size: PAGE_GROUP_PAGES * PAGE_VALUE.size, pages: 0 } as const;
/** struct vt_sample_record: one raw sample from the "samples" ring buffer. */
export const SAMPLE_RECORD = { size: 32, tsNs: 0, addr: 8, physAddr: 16, tgid: 24, flags: 28 } as const;
/** struct vt_damon_record: one DAMON region from the "regions" ring buffer. */
export const DAMON_RECORD = {
  size: 48,
  tsNs: 0,
  start: 8,
  end: 16,
  nrAccesses: 24,
  age: 28,
  targetId: 32,
  nrRegions: 36,
  kdamondPid: 40,
  pad: 44,
} as const;

/** Field name in C for each TypeScript field, for the layout test. */
export const C_FIELD_NAMES: Record<string, { struct: string; fields: Record<string, string> }> = {
  PAGE_KEY: { struct: 'vt_page_key', fields: { page: 'page', tgid: 'tgid', kind: 'kind' } },
  PAGE_VALUE: { struct: 'vt_page_value', fields: { reads: 'reads', writes: 'writes' } },
  PAGE_GROUP: { struct: 'vt_page_group', fields: { pages: 'pages' } },
  SAMPLE_RECORD: {
    struct: 'vt_sample_record',
    fields: { tsNs: 'ts_ns', addr: 'addr', physAddr: 'phys_addr', tgid: 'tgid', flags: 'flags' },
  },
  DAMON_RECORD: {
    struct: 'vt_damon_record',
    fields: {
      tsNs: 'ts_ns',
      start: 'start',
      end: 'end',
      nrAccesses: 'nr_accesses',
      age: 'age',
      targetId: 'target_id',
      nrRegions: 'nr_regions',
      kdamondPid: 'kdamond_pid',
      pad: 'pad',
    },
  },
};

/** targ_mode bits (VT_MODE_*). */
export const MODE_AGGREGATE = 1;
export const MODE_RING = 2;
/** vt_sample_record.flags: source kind in the low byte, then flag bits. */
export const SRC_PERF = 1;
export const SRC_FAULT_TP = 2;
export const SRC_MASK = 0xff;
export const FLAG_WRITE = 1 << 8;
export const FLAG_PHYS = 1 << 9;
/** vt_page_key.kind */
export const KIND_PHYS = 0;
export const KIND_VIRT = 1;
/** Indices of the "counters" per-CPU array. */
export const COUNTER = { samples: 0, drops: 1, filtered: 2, mapFull: 3, regions: 4, inserts: 5 } as const;
export const NR_COUNTERS = 6;

/** Raw samples, columnar. Addresses as float64: exact below 2^53 (every user VA and any
 *  physical address below 8 PiB). */
export interface DecodedSamples {
  count: number;
  tsNs: Float64Array;
  addr: Float64Array;
  physAddr: Float64Array;
  tgid: Uint32Array;
  flags: Uint32Array;
  /** Bytes at the end that did not make a whole record (0 for well-formed batches). */
  trailingBytes: number;
}

export interface DecodedDamonRegions {
  count: number;
  tsNs: Float64Array;
  start: Float64Array;
  end: Float64Array;
  nrAccesses: Uint32Array;
  age: Uint32Array;
  targetId: Uint32Array;
  nrRegions: Uint32Array;
  kdamondPid: Uint32Array;
  trailingBytes: number;
}

export interface DecodedPages {
  count: number;
  /** PFN (kind KIND_PHYS) or virtual page number of tgid (KIND_VIRT). */
  page: Float64Array;
  tgid: Uint32Array;
  kind: Uint8Array;
  reads: Uint32Array;
  writes: Uint32Array;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// u64 as float64 without a BigInt per value; little-endian like every host we target.
function u64(dv: DataView, off: number): number {
  return dv.getUint32(off + 4, true) * 4294967296 + dv.getUint32(off, true);
}

/** Decodes a batch of concatenated vt_sample_record. */
export function decodeSampleRecords(bytes: Uint8Array): DecodedSamples {
  const R = SAMPLE_RECORD;
  const count = Math.floor(bytes.byteLength / R.size);
  const out: DecodedSamples = {
    count,
    tsNs: new Float64Array(count),
    addr: new Float64Array(count),
    physAddr: new Float64Array(count),
    tgid: new Uint32Array(count),
    flags: new Uint32Array(count),
    trailingBytes: bytes.byteLength - count * R.size,
  };
  const dv = view(bytes);
  for (let i = 0, o = 0; i < count; i++, o += R.size) {
    out.tsNs[i] = u64(dv, o + R.tsNs);
    out.addr[i] = u64(dv, o + R.addr);
    out.physAddr[i] = u64(dv, o + R.physAddr);
    out.tgid[i] = dv.getUint32(o + R.tgid, true);
    out.flags[i] = dv.getUint32(o + R.flags, true);
  }
  return out;
}

/** Decodes a batch of concatenated vt_damon_record. */
export function decodeDamonRecords(bytes: Uint8Array): DecodedDamonRegions {
  const R = DAMON_RECORD;
  const count = Math.floor(bytes.byteLength / R.size);
  const out: DecodedDamonRegions = {
    count,
    tsNs: new Float64Array(count),
    start: new Float64Array(count),
    end: new Float64Array(count),
    nrAccesses: new Uint32Array(count),
    age: new Uint32Array(count),
    targetId: new Uint32Array(count),
    nrRegions: new Uint32Array(count),
    kdamondPid: new Uint32Array(count),
    trailingBytes: bytes.byteLength - count * R.size,
  };
  const dv = view(bytes);
  for (let i = 0, o = 0; i < count; i++, o += R.size) {
    out.tsNs[i] = u64(dv, o + R.tsNs);
    out.start[i] = u64(dv, o + R.start);
    out.end[i] = u64(dv, o + R.end);
    out.nrAccesses[i] = dv.getUint32(o + R.nrAccesses, true);
    out.age[i] = dv.getUint32(o + R.age, true);
    out.targetId[i] = dv.getUint32(o + R.targetId, true);
    out.nrRegions[i] = dv.getUint32(o + R.nrRegions, true);
    out.kdamondPid[i] = dv.getUint32(o + R.kdamondPid, true);
  }
  return out;
}

/** Decodes parallel key/value byte arrays drained from the "pages" map: one output entry
 *  per page with a non-zero count (an entry counts PAGE_GROUP_PAGES pages). */
export function decodePageEntries(keys: Uint8Array, values: Uint8Array, count: number): DecodedPages {
  const K = PAGE_KEY;
  const V = PAGE_VALUE;
  const n = Math.max(0, Math.min(count, Math.floor(keys.byteLength / K.size), Math.floor(values.byteLength / PAGE_GROUP.size)));
  const kv = view(keys);
  const vv = view(values);
  let pages = 0;
  for (let o = 0; o < n * PAGE_GROUP.size; o += V.size) if (vv.getUint32(o + V.reads, true) || vv.getUint32(o + V.writes, true)) pages++;
  const out: DecodedPages = {
    count: pages,
    page: new Float64Array(pages),
    tgid: new Uint32Array(pages),
    kind: new Uint8Array(pages),
    reads: new Uint32Array(pages),
    writes: new Uint32Array(pages),
  };
  for (let i = 0, j = 0; i < n; i++) {
    const ko = i * K.size;
    const first = u64(kv, ko + K.page);
    const tgid = kv.getUint32(ko + K.tgid, true);
    const kind = kv.getUint32(ko + K.kind, true);
    for (let p = 0; p < PAGE_GROUP_PAGES; p++) {
      const vo = i * PAGE_GROUP.size + p * V.size;
      const reads = vv.getUint32(vo + V.reads, true);
      const writes = vv.getUint32(vo + V.writes, true);
      if (!reads && !writes) continue;
      out.page[j] = first + p;
      out.tgid[j] = tgid;
      out.kind[j] = kind;
      out.reads[j] = reads;
      out.writes[j] = writes;
      j++;
    }
  }
  return out;
}
