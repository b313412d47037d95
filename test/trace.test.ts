import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  decodeTrace,
  encodeTraceBatch,
  encodeTraceEnd,
  encodeTraceHeader,
  encodeTraceTruncated,
  describeTrace,
  summarizeTrace,
  TraceFormatError,
  type TraceHeader,
} from '../src/trace/index.js';
import { runsFrom, samplesFrom, type PageSamples } from '../src/samples.js';

const header: TraceHeader = {
  source: 'damon',
  damonMode: 'observe',
  pageSize: 4096,
  epochMs: 500,
  tunables: { sampleUs: 5000, aggrUs: 100000 },
  ramRanges: runsFrom([[1, 159], [256, 524032], [1048576, 5505024]]),
  facts: { kernel: '6.18.0', cpus: 2, pmu: 'none' },
  startTimeMs: 1_763_790_000_000,
  startNs: 123_456_789,
  target: { pid: 42, command: ['vtier-workload', 'hotspot'], truthPath: '/tmp/t.truth' },
};

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function rows(samples: PageSamples): number[][] {
  return Array.from({ length: samples.count }, (_, i) => [samples.gpaPfn[i], samples.pages[i], samples.reads[i], samples.writes[i]]);
}

const runArb = fc
  .tuple(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 1, max: 0xffffffff }), fc.nat(0xffffffff), fc.nat(0xffffffff))
  .map(([pfn, pages, r, w]) => [pfn, pages, r, w] as [number, number, number, number]);
const batchArb = fc.record({ tNs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), rows: fc.array(runArb, { maxLength: 40 }) });

function sampleTrace(): Uint8Array {
  return concat([
    encodeTraceHeader(header),
    encodeTraceBatch(1000, samplesFrom([[10, 1, 3, 1], [20, 512, 1, 0]])),
    encodeTraceBatch(2000, samplesFrom([[11, 1, 0, 7]])),
    encodeTraceEnd({ samples: 12, pagesSeen: 514, drops: 1, untranslated: 2, batches: 2, endNs: 3000 }),
  ]);
}

describe('trace format', () => {
  it('round-trips header, batches and end', () => {
    fc.assert(
      fc.property(fc.array(batchArb, { maxLength: 8 }), (batches) => {
        const parts = [encodeTraceHeader(header)];
        for (const b of batches) parts.push(encodeTraceBatch(b.tNs, samplesFrom(b.rows)));
        parts.push(encodeTraceEnd({ samples: 5, pagesSeen: 6, drops: 7, untranslated: 8, batches: batches.length, endNs: 9 }));
        const trace = decodeTrace(concat(parts));
        expect(trace.truncated).toBe(false);
        expect(trace.end).toEqual({ samples: 5, pagesSeen: 6, drops: 7, untranslated: 8, batches: batches.length, endNs: 9 });
        expect(trace.header.source).toBe('damon');
        expect(trace.header.target).toEqual(header.target);
        expect(Array.from(trace.header.ramRanges.gpaPfn)).toEqual([1, 256, 1048576]);
        expect(trace.batches.map((b) => b.tNs)).toEqual(batches.map((b) => b.tNs));
        expect(trace.batches.map((b) => rows(b.samples))).toEqual(batches.map((b) => b.rows));
      }),
      { numRuns: 200 },
    );
  });

  it('decodes from an unaligned view inside a larger buffer', () => {
    const bytes = sampleTrace();
    const padded = new Uint8Array(bytes.length + 3);
    padded.set(bytes, 3);
    const trace = decodeTrace(padded.subarray(3));
    expect(rows(trace.batches[0].samples)).toEqual([[10, 1, 3, 1], [20, 512, 1, 0]]);
  });

  it('reports a trace without an end record as truncated, at every cut', () => {
    const bytes = sampleTrace();
    const headerBytes = encodeTraceHeader(header).length;
    for (let cut = 0; cut < bytes.length; cut++) {
      const prefix = bytes.subarray(0, cut);
      if (cut < headerBytes) {
        expect(() => decodeTrace(prefix)).toThrow(TraceFormatError);
      } else {
        const trace = decodeTrace(prefix);
        expect(trace.truncated).toBe(true);
        expect(trace.end).toBeUndefined();
        expect(trace.truncatedReason).toMatch(/after batch \d/);
      }
    }
  });

  it('carries the writer truncation marker and its reason', () => {
    const bytes = concat([
      encodeTraceHeader(header),
      encodeTraceBatch(1, samplesFrom([[1, 1, 1, 0]])),
      encodeTraceTruncated(1, 'ENOSPC: no space left on device'),
    ]);
    const trace = decodeTrace(bytes);
    expect(trace.truncated).toBe(true);
    expect(trace.truncatedReason).toBe('ENOSPC: no space left on device');
    expect(trace.batches).toHaveLength(1);
  });

  it('rejects bad magic, versions, record types, mismatched totals and trailing bytes', () => {
    const good = sampleTrace();
    const cases: Array<[string, (b: Uint8Array) => void, RegExp]> = [
      ['magic', (b) => (b[0] = 0x41), /bad magic/],
      ['version', (b) => (b[8] = 9), /unsupported trace version 9/],
      ['type', (b) => (b[16] = 77), /unknown record type 77/],
    ];
    for (const [, mutate, message] of cases) {
      const b = good.slice();
      mutate(b);
      expect(() => decodeTrace(b)).toThrow(message);
    }
    const wrongTotal = concat([encodeTraceHeader(header), encodeTraceEnd({ samples: 0, pagesSeen: 0, drops: 0, untranslated: 0, batches: 3, endNs: 0 })]);
    expect(() => decodeTrace(wrongTotal)).toThrow(/counts 3 batches, the file holds 0/);
    expect(() => decodeTrace(concat([good, new Uint8Array(8)]))).toThrow(/trailing bytes/);
    expect(() => decodeTrace(new Uint8Array(3))).toThrow(/too short/);
  });

  it('rejects out-of-range values in batches and headers', () => {
    const bytes = concat([encodeTraceHeader(header), encodeTraceBatch(5, samplesFrom([[10, 1, 0, 0]]))]);
    const at = encodeTraceHeader(header).length + 8 + 16;
    const zeroPages = bytes.slice();
    new DataView(zeroPages.buffer).setUint32(at + 8, 0, true);
    expect(() => decodeTrace(zeroPages)).toThrow(/pages 0 out of range/);
    const nanPfn = bytes.slice();
    new DataView(nanPfn.buffer).setFloat64(at, NaN, true);
    expect(() => decodeTrace(nanPfn)).toThrow(/gpaPfn NaN out of range/);
    expect(() => encodeTraceHeader({ ...header, pageSize: 3000 })).toThrow(RangeError);
    expect(() => encodeTraceHeader({ ...header, source: 'magic' as never })).toThrow(/unknown source/);
    expect(() => encodeTraceBatch(-1, samplesFrom([]))).toThrow(RangeError);
  });

  it('rejects length bombs without allocating for them', () => {
    const head = encodeTraceHeader(header);
    const before = process.memoryUsage().arrayBuffers;
    // A record claiming 4 GiB, and a batch claiming 2^31 runs in a small record.
    const huge = concat([head, new Uint8Array([2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])]);
    expect(() => decodeTrace(huge)).toThrow(/more than the limit/);
    const batch = new Uint8Array(8 + 16);
    const view = new DataView(batch.buffer);
    view.setUint8(0, 2);
    view.setUint32(4, 16, true);
    view.setUint32(8 + 8, 2 ** 31, true);
    expect(() => decodeTrace(concat([head, batch]))).toThrow(/exceeds/);
    view.setUint32(8 + 8, 1000, true);
    expect(() => decodeTrace(concat([head, batch]))).toThrow(/must be 20016 bytes, record says 16/);
    const headerBomb = head.slice();
    new DataView(headerBomb.buffer).setUint32(16 + 4, 0xfffffff0, true);
    expect(() => decodeTrace(headerBomb)).toThrow(/more than the limit/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
  });

  it('throws only TraceFormatError on random corruption, and never hangs', () => {
    const good = sampleTrace();
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.nat(255)), { minLength: 1, maxLength: 8 }),
        fc.nat(good.length),
        (flips, cut) => {
          const bytes = good.slice(0, Math.max(cut, 1));
          for (const [at, value] of flips) if (at < bytes.length) bytes[at] = value;
          try {
            const trace = decodeTrace(bytes);
            expect(typeof trace.truncated).toBe('boolean');
          } catch (err) {
            if (!(err instanceof TraceFormatError)) throw err;
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('throws only TraceFormatError on arbitrary bytes behind a valid preamble', () => {
    const preamble = encodeTraceHeader(header).subarray(0, 16);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (tail) => {
        try {
          decodeTrace(concat([preamble, tail]));
        } catch (err) {
          if (!(err instanceof TraceFormatError)) throw err;
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('rejects hostile header JSON with TraceFormatError', () => {
    const bad = ['[]', '{"source":"damon"}', '{', '"x"', JSON.stringify({ ...JSON.parse(JSON.stringify({ ...header, ramRanges: [[0, 0]] })) })];
    bad.push('['.repeat(100_000) + ']'.repeat(100_000));
    for (const text of bad) {
      const json = new TextEncoder().encode(text);
      const bytes = new Uint8Array(16 + 8 + json.length);
      bytes.set(encodeTraceHeader(header).subarray(0, 16));
      bytes[16] = 1;
      new DataView(bytes.buffer).setUint32(20, json.length, true);
      bytes.set(json, 24);
      expect(() => decodeTrace(bytes)).toThrow(TraceFormatError);
    }
  });
});

describe('trace summary (one description for record, classify, sim --trace, report)', () => {
  it('counts samples, page samples and distinct pages of overlapping region runs', () => {
    const trace = decodeTrace(concat([
      encodeTraceHeader(header),
      encodeTraceBatch(header.startNs + 500e6, samplesFrom([[1000, 512, 1, 0], [5000, 1, 3, 1]])),
      encodeTraceBatch(header.startNs + 1000e6, samplesFrom([[1256, 512, 2, 0]])),
      encodeTraceEnd({ samples: 3200, pagesSeen: 1, drops: 2, untranslated: 0, batches: 2, endNs: header.startNs + 10.1e9 }),
    ]));
    const s = summarizeTrace(trace);
    expect(s).toMatchObject({ source: 'damon', damonMode: 'observe', batches: 2, samples: 3200, runs: 3, pageSamples: 1025, distinctPages: 769, pfnRange: [1000, 5001], truncated: false });
    expect(s.durationS).toBeCloseTo(10.1, 9);
    expect(s.accesses).toBe(512 + 4 + 1024);
    expect(describeTrace(s)).toBe(
      'damon (observe) trace: 3,200 samples in 10.1 s, 2 batches of 500 ms; 1,025 page samples over 769 distinct pages (3 MiB); guest RAM 23 GiB; 2 dropped, 0 untranslated',
    );
  });

  it('says when a trace is truncated and has no sample count', () => {
    const trace = decodeTrace(concat([encodeTraceHeader(header), encodeTraceBatch(header.startNs + 2e9, samplesFrom([[7, 1, 1, 0]]))]));
    const s = summarizeTrace(trace);
    expect(s.samples).toBeNull();
    expect(s.durationS).toBeCloseTo(2, 9);
    expect(describeTrace(s)).toMatch(/sample count unknown \(no end record\).*TRUNCATED/);
  });

  it('distinct pages equal a plain set of every covered frame (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 20 })), { maxLength: 8 }), { maxLength: 5 }), (batches) => {
        const parts = [encodeTraceHeader(header)];
        const seen = new Set<number>();
        batches.forEach((runs, i) => {
          parts.push(encodeTraceBatch(header.startNs + i * 1e6, samplesFrom(runs.map(([pfn, pages]) => [pfn + 1, pages, 1, 0] as [number, number, number, number]))));
          for (const [pfn, pages] of runs) for (let p = 0; p < pages; p++) seen.add(pfn + 1 + p);
        });
        const s = summarizeTrace(decodeTrace(concat(parts)));
        expect(s.distinctPages).toBe(seen.size);
        expect(s.runs).toBe(batches.reduce((n, b) => n + b.length, 0));
      }),
      { numRuns: 200 },
    );
  });
});
