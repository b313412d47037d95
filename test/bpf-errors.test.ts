// Bad arguments throw TypeError naming the field; kernel and libbpf failures carry
// .code (errno name) and .syscall.
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { builtPath, openBpfObject, type BpfObject } from '../native/addon.js';
import { openSampler } from '../guest-agent/sampler-object.js';
import { bpfTestGuard } from './helpers/bpf-guard.js';

const { skip } = bpfTestGuard('bpf-errors');

const objectPath = builtPath('bpf', 'sampler.bpf.o');
const open: BpfObject[] = [];
function openObject(): BpfObject {
  const obj = openBpfObject(objectPath);
  open.push(obj);
  return obj;
}
afterEach(() => {
  for (const obj of open.splice(0)) obj.close();
});

function thrown(fn: () => unknown): Error & { code?: string; syscall?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string; syscall?: string };
  }
  throw new Error('expected a throw');
}

describe.skipIf(skip)('bpf addon errors', () => {
  it('a missing object file gives ENOENT from bpf_object__open_file', () => {
    const err = thrown(() => openBpfObject('/nonexistent/vtier.bpf.o'));
    expect(err.code).toBe('ENOENT');
    expect(err.syscall).toBe('bpf_object__open_file');
    expect(err.message).toContain('/nonexistent/vtier.bpf.o');
  });

  it('bad arguments throw TypeError naming the field', async () => {
    expect(() => openBpfObject(42 as unknown as string)).toThrow(/^path: /);
    const obj = openObject();
    expect(() => obj.setGlobal(7 as unknown as string, 1)).toThrow(TypeError);
    expect(() => obj.setGlobal(7 as unknown as string, 1)).toThrow(/^name: /);
    expect(() => obj.setGlobal('targ_pid', 'x' as unknown as number)).toThrow(/^value: /);
    expect(() => obj.setGlobal('targ_pid', 1.5)).toThrow(/^value: /);
    expect(() => obj.setGlobal('targ_pid', 2 ** 33)).toThrow(/^value: does not fit in targ_pid/);
    expect(() => obj.setAutoload('on_perf_sample', 1 as unknown as boolean)).toThrow(/^on: /);
    expect(() => obj.setMapMaxEntries('pages', 0)).toThrow(/^maxEntries: /);
    for (const p of obj.programs()) obj.setAutoload(p.name, p.name === 'on_perf_sample');
    obj.load();
    const attr = { type: 1, config: 2, samplePeriod: 1 };
    expect(() => obj.attachPerfEvent('on_perf_sample', { config: 2, samplePeriod: 1 } as never, { cpus: [0] })).toThrow(/^attr.type: /);
    expect(() => obj.attachPerfEvent('on_perf_sample', { ...attr, sampleFreq: 100 }, { cpus: [0] })).toThrow(/^attr.samplePeriod: /);
    expect(() => obj.attachPerfEvent('on_perf_sample', { type: 1, config: 2 }, { cpus: [0] })).toThrow(/^attr.samplePeriod: /);
    expect(() => obj.attachPerfEvent('on_perf_sample', { ...attr, preciseIp: 4 as 3 }, { cpus: [0] })).toThrow(/^attr.preciseIp: /);
    expect(() => obj.attachPerfEvent('on_perf_sample', { ...attr, excludeKernel: 1 as unknown as boolean }, { cpus: [0] })).toThrow(
      /^attr.excludeKernel: /,
    );
    expect(() => obj.attachPerfEvent('on_perf_sample', { ...attr, config: -1 }, { cpus: [0] })).toThrow(/^attr.config: /);
    expect(() => obj.attachPerfEvent('on_perf_sample', attr, { cpus: [-1] })).toThrow(/^target.cpus: /);
    expect(() => obj.attachPerfEvent('on_perf_sample', attr, { cpus: [] })).toThrow(/^target.cpus: /);
    expect(() => obj.attachPerfEvent('on_perf_sample', attr, {})).toThrow(/^target: /);
    expect(() => obj.drainHash('counters')).toThrow(/^map: is not a/);
    await expect(obj.drainHashAsync('counters')).rejects.toThrow(/^map: is not a/);
    await expect(obj.drainHashAsync('pages', { limit: 0 })).rejects.toThrow(/^limit: /);
    expect(() => obj.readArray('pages')).toThrow(/^map: is not an array/);
    expect(() => obj.ringBuffer('pages', 32, () => {})).toThrow(/^map: is not a ring buffer/);
    expect(() => obj.ringBuffer('samples', 0, () => {})).toThrow(/^recordSize: /);
    expect(() => obj.ringBuffer('samples', 32, 'cb' as never)).toThrow(/^onBatch: /);
  });

  it('an unknown global, program or map fails clearly', () => {
    const obj = openObject();
    const err = thrown(() => obj.setGlobal('targ_nope', 1));
    expect(err.code).toBe('ENOENT');
    expect(err.message).toMatch(/no const volatile global named targ_nope/);
    expect(thrown(() => obj.setAutoload('no_such_prog', true)).message).toMatch(/no program named no_such_prog/);
    expect(thrown(() => obj.drainHash('no_such_map')).code).toBe('ENOENT');
  });

  it('tunables are refused after load', () => {
    const obj = openObject();
    for (const p of obj.programs()) obj.setAutoload(p.name, p.name === 'on_page_fault_user');
    obj.load();
    const err = thrown(() => obj.setGlobal('targ_pid', 1));
    expect(err.code).toBe('EBUSY');
  });

  it('a perf event the kernel rejects reports perf_event_open and its errno', () => {
    const obj = openObject();
    for (const p of obj.programs()) obj.setAutoload(p.name, p.name === 'on_perf_sample');
    obj.load();
    // No PMU has this type number: the kernel answers ENOENT.
    const err = thrown(() => obj.attachPerfEvent('on_perf_sample', { type: 0x7ffffff0, samplePeriod: 1 }, { cpus: [0] }));
    expect(err.syscall).toBe('perf_event_open');
    expect(err.code).toBe('ENOENT');
  });

  it('a closed object refuses work with EBADF', () => {
    const obj = openObject();
    obj.close();
    expect(thrown(() => obj.load()).code).toBe('EBADF');
    obj.close(); // idempotent
  });

  it('openSampler validates its options', async () => {
    await expect(openSampler({ kind: 'bogus' as 'perf' })).rejects.toThrow(/^kind: /);
    await expect(openSampler({ kind: 'perf', mode: 'sometimes' as 'ring' })).rejects.toThrow(/^mode: /);
    await expect(openSampler({ kind: 'perf', pid: -1 })).rejects.toThrow(/^pid: /);
    await expect(openSampler({ kind: 'perf', ringBytes: 5000 })).rejects.toThrow(/^ringBytes: /);
    await expect(openSampler({ kind: 'perf', maxPages: 0 })).rejects.toThrow(/^maxPages: /);
    await expect(openSampler({ kind: 'perf', objectPath: '/nonexistent.o' })).rejects.toMatchObject({ code: 'ENOENT' });
    const s = await openSampler({ kind: 'perf', mode: 'aggregate' });
    try {
      expect(() => s.attachTracepoints()).toThrow(TypeError);
      expect(() => s.onRecords(() => {})).toThrow(/mode 'aggregate' has no raw samples/);
      expect(() => s.onRegions(() => {})).toThrow(TypeError);
    } finally {
      s.close();
    }
  });

  it('perf attr parsing: arbitrary JS values give a TypeError, a kernel errno or a link, never a crash', () => {
    const obj = openObject();
    for (const p of obj.programs()) obj.setAutoload(p.name, p.name === 'on_perf_sample');
    obj.load();
    const anything = fc.oneof(
      fc.integer({ min: -5, max: 20 }),
      fc.double(),
      fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
      fc.boolean(),
      fc.string({ maxLength: 4 }),
      fc.constant(undefined),
      fc.constant(null),
      fc.constant({}),
    );
    const attr = fc.record(
      {
        type: fc.oneof(fc.constantFrom(1, 0x7ffffff0), anything),
        config: fc.oneof(fc.constantFrom(2, 0), anything),
        samplePeriod: fc.oneof(fc.constantFrom(1, 1000), anything),
        sampleFreq: anything,
        sampleType: anything,
        preciseIp: anything,
        excludeKernel: anything,
        wakeupEvents: anything,
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(attr, fc.oneof(fc.constant([0]), fc.array(anything, { maxLength: 2 })), (a, cpus) => {
        let links: number[] = [];
        try {
          links = obj.attachPerfEvent('on_perf_sample', a as never, { cpus: cpus as number[] });
        } catch (err) {
          const e = err as Error & { code?: string; syscall?: string };
          if (e instanceof TypeError) expect(e.message).toMatch(/^(attr(\.\w+)?|target(\.cpus)?): /);
          else expect(typeof e.code).toBe('string');
          return;
        }
        for (const l of links) obj.detach(l);
      }),
      { numRuns: 300 },
    );
  });
});
