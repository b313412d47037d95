// The damon_aggregated program is chosen from the parameter types in BTF, not their count:
// 5.15's (struct damon_target *, struct damon_region *, unsigned int) and today's
// (unsigned int, struct damon_region *, unsigned int) have the same number of arguments.
// Synthetic BTF for each prototype the kernel has had, this kernel's own BTF checked against
// libbpf, and the reader fuzzed (it parses a file).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { btfFuncProtoArgs } from '../native/addon.js';
import { BtfFormatError, damonAggregatedProgram, funcProtoParams, readKernelBtf, type BtfParam } from '../guest-agent/btf-proto.js';
import { samplerProgram } from '../guest-agent/sampler-object.js';

type P = 'u32' | 'u32_typedef' | 'target' | 'region' | 'const_region';

/** A minimal BTF blob: one typedef btf_trace_damon_aggregated -> ptr -> func_proto(void *, ...params). */
function btfWith(params: P[], typedefName = 'btf_trace_damon_aggregated'): Uint8Array {
  const strs = ['', 'unsigned int', 'damon_region', 'damon_target', typedefName, 'u32'];
  const strOff: number[] = [];
  let so = 0;
  for (const s of strs) {
    strOff.push(so);
    so += Buffer.byteLength(s, 'latin1') + 1;
  }
  const words: number[] = [];
  const type = (name: number, kind: number, vlen: number, sizeOrType: number, ...extra: number[]) =>
    words.push(strOff[name], (kind << 24) | vlen, sizeOrType, ...extra);
  type(1, 1, 0, 4, 32); //                 1: int "unsigned int"
  type(0, 2, 0, 0); //                     2: void *
  type(2, 4, 0, 0); //                     3: struct damon_region {}
  type(0, 2, 0, 3); //                     4: struct damon_region *
  type(3, 4, 0, 0); //                     5: struct damon_target {}
  type(0, 2, 0, 5); //                     6: struct damon_target *
  type(5, 8, 0, 1); //                     7: typedef u32
  type(0, 10, 0, 3); //                    8: const struct damon_region
  type(0, 2, 0, 8); //                     9: const struct damon_region *
  const ids: Record<P, number> = { u32: 1, u32_typedef: 7, target: 6, region: 4, const_region: 9 };
  const all = [2, ...params.map((p) => ids[p])];
  type(0, 13, all.length, 0, ...all.flatMap((t) => [0, t])); // 10: func_proto
  type(0, 2, 0, 10); //                    11: ptr to it
  type(4, 8, 0, 11); //                    12: the typedef
  const typeLen = words.length * 4;
  const out = new Uint8Array(24 + typeLen + so);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, 0xeb9f, true);
  dv.setUint8(2, 1);
  dv.setUint32(4, 24, true);
  dv.setUint32(8, 0, true);
  dv.setUint32(12, typeLen, true);
  dv.setUint32(16, typeLen, true);
  dv.setUint32(20, so, true);
  words.forEach((w, i) => dv.setUint32(24 + 4 * i, w >>> 0, true));
  strs.forEach((s, i) => out.set(Buffer.from(s, 'latin1'), 24 + typeLen + strOff[i]));
  return out;
}

const pick = (params: BtfParam[] | undefined) => (params ? damonAggregatedProgram(params) : undefined);

describe('damon_aggregated prototype from BTF', () => {
  it('5.15 (target *, region *, nr): same count as today, told apart by the first type', () => {
    const old = funcProtoParams(btfWith(['target', 'region', 'u32']), 'btf_trace_damon_aggregated');
    const now = funcProtoParams(btfWith(['u32', 'region', 'u32']), 'btf_trace_damon_aggregated');
    expect(old).toHaveLength(now!.length);
    expect(pick(old)).toEqual({ program: 'on_damon_aggregated_target_ptr' });
    expect(pick(now)).toEqual({ program: 'on_damon_aggregated' });
  });

  it('(target *, target_id, region *, nr) takes the with_target program', () => {
    expect(pick(funcProtoParams(btfWith(['target', 'u32', 'region', 'u32']), 'btf_trace_damon_aggregated'))).toEqual({
      program: 'on_damon_aggregated_with_target',
    });
  });

  it('typedefs and qualifiers resolve (u32, const struct damon_region *)', () => {
    expect(pick(funcProtoParams(btfWith(['u32_typedef', 'const_region', 'u32_typedef']), 'btf_trace_damon_aggregated'))).toEqual({
      program: 'on_damon_aggregated',
    });
  });

  it('an unknown prototype is named, not guessed (e.g. a leading context id)', () => {
    expect(pick(funcProtoParams(btfWith(['u32', 'u32', 'region', 'u32']), 'btf_trace_damon_aggregated'))).toEqual({
      unknown: '(int, int, damon_region *, int)',
    });
  });

  it('a missing typedef reads as absent', () => {
    expect(funcProtoParams(btfWith(['u32'], 'btf_trace_other'), 'btf_trace_damon_aggregated')).toBeUndefined();
  });

  it('this kernel: the reader agrees with libbpf on the parameter counts, and the sampler picks by it', () => {
    const btf = readKernelBtf();
    expect(btf, 'this machine has /sys/kernel/btf/vmlinux').toBeDefined();
    const fault = funcProtoParams(btf!, 'btf_trace_page_fault_user')!;
    expect(fault.length).toBe(btfFuncProtoArgs('btf_trace_page_fault_user'));
    expect(fault.map((p) => p.kind)).toEqual(['ptr', 'int', 'ptr', 'int']);
    expect(fault[2].pointee).toBe('pt_regs');
    const damon = funcProtoParams(btf!, 'btf_trace_damon_aggregated');
    if (!damon) {
      console.warn('btf-proto: this kernel has no damon_aggregated tracepoint; the sampler choice is not checked here');
      expect(btfFuncProtoArgs('btf_trace_damon_aggregated')).toBe(-1);
      return;
    }
    expect(damon.length).toBe(btfFuncProtoArgs('btf_trace_damon_aggregated'));
    const choice = damonAggregatedProgram(damon);
    expect('program' in choice, JSON.stringify(choice)).toBe(true);
    expect(samplerProgram('damon')).toBe((choice as { program: string }).program);
  });

  it('never throws anything but BtfFormatError on arbitrary or corrupted bytes', () => {
    const valid = btfWith(['target', 'region', 'u32']);
    const check = (bytes: Uint8Array) => {
      try {
        const p = funcProtoParams(bytes, 'btf_trace_damon_aggregated');
        if (p) for (const x of p) expect(['int', 'ptr', 'void', 'other']).toContain(x.kind);
      } catch (err) {
        expect(err).toBeInstanceOf(BtfFormatError);
      }
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (b) => check(b)));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.nat({ max: 255 })), { minLength: 1, maxLength: 8 }), (edits) => {
        const b = valid.slice();
        for (const [at, v] of edits) b[at] = v;
        check(b);
      }),
    );
    fc.assert(fc.property(fc.nat({ max: valid.length }), (n) => check(valid.subarray(0, n))));
  });
});
