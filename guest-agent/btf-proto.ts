// The parameters of a kernel function-pointer typedef (btf_trace_<tracepoint>), read from
// raw BTF (/sys/kernel/btf/vmlinux): tp_btf programs get their arguments by position, so the
// sampler picks the program whose prototype matches the running kernel's by the parameters'
// types, not only their number (damon_aggregated kept its count across a type change).
// The bytes come from the kernel, but the reader is bounds-checked all the same: malformed
// input gives a BtfFormatError, never an out-of-range read.
import { readFileSync } from 'node:fs';

/** One parameter, its type resolved through typedefs and qualifiers. */
export interface BtfParam {
  /** 'int' (integers, enums, bool), 'ptr', 'void', or 'other' (struct by value, float...). */
  kind: 'int' | 'ptr' | 'void' | 'other';
  /** For 'ptr': the pointee's name after typedefs/qualifiers ('' for void or anonymous). */
  pointee?: string;
}

export class BtfFormatError extends Error {
  readonly code = 'EBTF';
}

const BTF_MAGIC = 0xeb9f;
const KIND = {
  INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10,
  RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19,
} as const;

/** Bytes that follow the 12-byte common header of a type of this kind. */
function extraBytes(kind: number, vlen: number): number {
  switch (kind) {
    case KIND.INT: case KIND.VAR: case KIND.DECL_TAG: return 4;
    case KIND.ARRAY: return 12;
    case KIND.STRUCT: case KIND.UNION: case KIND.DATASEC: case KIND.ENUM64: return 12 * vlen;
    case KIND.ENUM: case KIND.FUNC_PROTO: return 8 * vlen;
    case KIND.PTR: case KIND.FWD: case KIND.TYPEDEF: case KIND.VOLATILE: case KIND.CONST: case KIND.RESTRICT:
    case KIND.FUNC: case KIND.FLOAT: case KIND.TYPE_TAG: return 0;
    default: throw new BtfFormatError(`btf: unknown type kind ${kind}`);
  }
}

/** Parameters of the function prototype a typedef points to (typedef -> ptr -> func_proto),
 *  or undefined when no typedef has that name. Throws BtfFormatError on malformed BTF. */
export function funcProtoParams(btf: Uint8Array, typedefName: string): BtfParam[] | undefined {
  const dv = new DataView(btf.buffer, btf.byteOffset, btf.byteLength);
  const u32 = (off: number): number => {
    if (off < 0 || off + 4 > btf.byteLength) throw new BtfFormatError('btf: truncated');
    return dv.getUint32(off, true);
  };
  if (btf.byteLength < 24 || dv.getUint16(0, true) !== BTF_MAGIC) throw new BtfFormatError('btf: bad magic (not little-endian BTF)');
  const hdrLen = u32(4);
  const typeStart = hdrLen + u32(8);
  const typeEnd = typeStart + u32(12);
  const strStart = hdrLen + u32(16);
  const strEnd = strStart + u32(20);
  if (hdrLen < 24 || typeEnd > btf.byteLength || strEnd > btf.byteLength || typeStart > typeEnd || strStart > strEnd) {
    throw new BtfFormatError('btf: sections out of bounds');
  }
  const name = (off: number): string => {
    const start = strStart + off;
    if (off < 0 || start >= strEnd) throw new BtfFormatError('btf: name offset out of bounds');
    let end = start;
    while (end < strEnd && btf[end] !== 0) end++;
    return Buffer.from(btf.buffer, btf.byteOffset + start, end - start).toString('latin1');
  };
  // offsets[id] = where type id starts (id 0 is void)
  const offsets: number[] = [0];
  let wanted = -1;
  for (let off = typeStart; off < typeEnd; ) {
    const info = u32(off + 4);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    if (kind === KIND.TYPEDEF && wanted < 0 && name(u32(off)) === typedefName) wanted = offsets.length;
    offsets.push(off);
    off += 12 + extraBytes(kind, vlen);
    if (off > typeEnd) throw new BtfFormatError('btf: type runs past its section');
  }
  if (wanted < 0) return undefined;
  const kindOf = (id: number): number => (u32(offsets[id] + 4) >>> 24) & 0x1f;
  const refOf = (id: number): number => {
    const ref = u32(offsets[id] + 8);
    if (ref >= offsets.length) throw new BtfFormatError(`btf: type ${id} refers to missing type ${ref}`);
    return ref;
  };
  // typedefs and qualifiers resolve to what they name; a cycle is malformed
  const strip = (id: number): number => {
    for (let hops = 0; id !== 0; hops++) {
      if (hops > 64) throw new BtfFormatError('btf: typedef/qualifier chain too long');
      const k = kindOf(id);
      if (k !== KIND.TYPEDEF && k !== KIND.VOLATILE && k !== KIND.CONST && k !== KIND.RESTRICT && k !== KIND.TYPE_TAG) return id;
      id = refOf(id);
    }
    return 0;
  };
  const ptr = refOf(wanted);
  if (ptr === 0 || kindOf(ptr) !== KIND.PTR) throw new BtfFormatError(`btf: ${typedefName} is not a function pointer`);
  const proto = strip(refOf(ptr));
  if (proto === 0 || kindOf(proto) !== KIND.FUNC_PROTO) throw new BtfFormatError(`btf: ${typedefName} is not a function pointer`);
  const vlen = u32(offsets[proto] + 4) & 0xffff;
  const params: BtfParam[] = [];
  for (let i = 0; i < vlen; i++) {
    const type = u32(offsets[proto] + 12 + 8 * i + 4);
    if (type >= offsets.length) throw new BtfFormatError(`btf: parameter ${i} refers to missing type ${type}`);
    const t = strip(type);
    const k = t === 0 ? 0 : kindOf(t);
    if (t === 0) params.push({ kind: 'void' });
    else if (k === KIND.INT || k === KIND.ENUM || k === KIND.ENUM64) params.push({ kind: 'int' });
    else if (k === KIND.PTR) {
      const p = strip(refOf(t));
      params.push({ kind: 'ptr', pointee: p === 0 ? '' : name(u32(offsets[p])) });
    } else params.push({ kind: 'other' });
  }
  return params;
}

/** The running kernel's BTF (CONFIG_DEBUG_INFO_BTF), or undefined when it has none. */
export function readKernelBtf(path = '/sys/kernel/btf/vmlinux'): Uint8Array | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

/** sampler.bpf.c programs for damon:damon_aggregated, one per prototype it has had. */
export type DamonAggregatedProgram = 'on_damon_aggregated' | 'on_damon_aggregated_with_target' | 'on_damon_aggregated_target_ptr';

/** Picks the program for a damon_aggregated prototype (params include the leading void *
 *  of btf_trace_*), or returns why none fits. */
export function damonAggregatedProgram(params: BtfParam[]): { program: DamonAggregatedProgram } | { unknown: string } {
  const sig = params
    .slice(1)
    .map((p) => (p.kind === 'ptr' ? `${p.pointee || 'void'} *` : p.kind))
    .join(', ');
  // 5.15 .. 5.19: (struct damon_target *t, struct damon_region *r, unsigned int nr_regions)
  if (sig === 'damon_target *, damon_region *, int') return { program: 'on_damon_aggregated_target_ptr' };
  // 6.0 .. : (struct damon_target *t, unsigned int target_id, struct damon_region *r, unsigned int nr_regions)
  if (sig === 'damon_target *, int, damon_region *, int') return { program: 'on_damon_aggregated_with_target' };
  // later: (unsigned int target_id, struct damon_region *r, unsigned int nr_regions)
  if (sig === 'int, damon_region *, int') return { program: 'on_damon_aggregated' };
  return { unknown: `(${sig})` };
}
