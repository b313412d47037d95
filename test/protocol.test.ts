import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import {
  DEFAULT_LIMITS,
  FrameDecoder,
  MAX_PFN_END,
  PROTOCOL_VERSION,
  ProtocolError,
  decodeBody,
  encodeMessage,
  scanMsgpack,
  type DecodeResult,
  type Message,
} from '../src/protocol/index.js';
import { runsFrom, type PageRuns } from '../src/samples.js';

const packr = new Packr({ useRecords: false });

function frameOf(body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length, false);
  frame.set(body, 4);
  return frame;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function wireRuns(rows: Array<[number, number]>): { gpaPfn: Uint8Array; pages: Uint8Array } {
  const gpaPfn = new Uint8Array(rows.length * 8);
  const pages = new Uint8Array(rows.length * 4);
  const pv = new DataView(gpaPfn.buffer);
  const nv = new DataView(pages.buffer);
  rows.forEach(([pfn, n], i) => {
    pv.setBigUint64(i * 8, BigInt(pfn), true);
    nv.setUint32(i * 4, n, true);
  });
  return { gpaPfn, pages };
}

function runsRows(r: PageRuns): Array<[number, number]> {
  return Array.from({ length: r.count }, (_, i) => [r.gpaPfn[i], r.pages[i]]);
}

/** Comparable plain form of a message (typed arrays trimmed to count). */
function plain(msg: Message): unknown {
  return JSON.parse(
    JSON.stringify(msg, (_k, v) => (v && typeof v === 'object' && 'gpaPfn' in v && 'count' in v ? runsRows(v as PageRuns) : v)),
  );
}

const sample: Message[] = [
  {
    type: 'hello',
    protocolVersion: PROTOCOL_VERSION,
    agentVersion: '0.1.0',
    pageSize: 4096,
    ramRanges: runsFrom([[0, 0x9f], [0x100, 0x7ff00], [0x100000, 0x40000]]),
    source: 'damon',
    epochMs: 500,
    vmName: 'vm1',
  },
  { type: 'welcome', protocolVersion: 1, agentVersion: '0.1.0', vmName: 'vm1' },
  { type: 'budget', dramBudgetPages: 262144 },
  { type: 'decisions', epoch: 7, promote: runsFrom([[0x1000, 16], [2 ** 40, 1]]), demote: runsFrom([]) },
  {
    type: 'report',
    epoch: 7,
    promote: { tried: 17, moved: 0, failed: { ENOENT: 1, EBUSY: 0, ENOMEM: 0, EACCES: 0, other: 16 } },
    demote: { tried: 0, moved: 0, failed: { ENOENT: 0, EBUSY: 0, ENOMEM: 0, EACCES: 0, other: 0 } },
    dramPages: 1000,
    cxlPages: 0,
    promoted: runsFrom([]),
    demoted: runsFrom([]),
    alreadyDram: runsFrom([[0x1000, 16]]),
    alreadyCxl: runsFrom([]),
    crossNodeMoves: false,
    notes: ['single NUMA node: cross-node moves not possible here'],
  },
  { type: 'heartbeat', seq: 3, tMs: 123456 },
  { type: 'error', code: 'unknown-type', message: 'unknown message type "x"' },
];

function decodeAll(bytes: Uint8Array, opts = {}): DecodeResult[] {
  return new FrameDecoder(opts).push(bytes);
}

function errorCode(r: DecodeResult): string {
  return r.ok ? 'ok' : r.error.code;
}

describe('protocol frames', () => {
  it('round-trips every message type', () => {
    for (const msg of sample) {
      const results = decodeAll(encodeMessage(msg));
      expect(results).toHaveLength(1);
      const r = results[0];
      expect(r.ok, JSON.stringify(r)).toBe(true);
      if (r.ok) expect(plain(r.message)).toEqual(plain(msg));
    }
  });

  it('encodes the length as u32 big-endian and runs as binary columns', () => {
    const frame = encodeMessage(sample[3]);
    expect(new DataView(frame.buffer).getUint32(0, false)).toBe(frame.length - 4);
    // bin8 with 16 bytes (2 x u64) must appear: the runs are not arrays of objects.
    const body = Buffer.from(frame.subarray(4));
    expect(body.includes(Buffer.from([0xc4, 16]))).toBe(true);
    expect(body.includes(Buffer.from([0xc4, 8]))).toBe(true);
  });

  it('decodes several frames from one chunk and a frame split at every byte', () => {
    const stream = concat(...sample.map((m) => encodeMessage(m)));
    const whole = decodeAll(stream).map((r) => (r.ok ? plain(r.message) : r.error.code));
    expect(whole).toHaveLength(sample.length);
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new FrameDecoder();
      const got = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
      expect(got.map((r) => (r.ok ? plain(r.message) : r.error.code))).toEqual(whole);
      expect(d.idle).toBe(true);
    }
  });

  it('refuses an oversized frame from its header alone and decodes the next frame', () => {
    const d = new FrameDecoder({ maxFrameBytes: 1024 });
    const header = new Uint8Array([0x00, 0x10, 0x00, 0x00]); // 1 MiB declared
    const r1 = d.push(header);
    expect(r1.map(errorCode)).toEqual(['frame-too-large']);
    // The oversized body is skipped, never stored.
    const junk = new Uint8Array(0x100000).fill(0xdd);
    for (let i = 0; i < junk.length; i += 65536) {
      expect(d.push(junk.subarray(i, i + 65536))).toEqual([]);
      expect(d.bufferedBytes).toBe(0);
    }
    const r2 = d.push(encodeMessage({ type: 'budget', dramBudgetPages: 5 }));
    expect(r2.map(errorCode)).toEqual(['ok']);
  });

  it('holds only the bytes received for a partial frame, copied from the caller', () => {
    const d = new FrameDecoder();
    expect(d.push(new Uint8Array([0x00, 0x10, 0x00, 0x00, 0x85]))).toEqual([]); // 1 MiB declared, 1 byte sent
    expect(d.bufferedBytes).toBe(1);
    const frame = Buffer.from(encodeMessage({ type: 'heartbeat', seq: 5, tMs: 6 }));
    const d2 = new FrameDecoder();
    const chunk = Buffer.from(frame.subarray(0, 8));
    expect(d2.push(chunk)).toEqual([]);
    chunk.fill(0xff); // the socket layer may reuse its buffer
    const results = d2.push(frame.subarray(8));
    expect(results.map(errorCode)).toEqual(['ok']);
  });

  it('refuses to encode invalid scalar fields', () => {
    expect(() => encodeMessage({ type: 'budget', dramBudgetPages: -1 })).toThrow(/dramBudgetPages/);
    const hello = sample[0] as Extract<Message, { type: 'hello' }>;
    expect(() => encodeMessage({ ...hello, pageSize: 8192 })).toThrow(/pageSize/);
    expect(() => encodeMessage({ ...hello, epochMs: 0 })).toThrow(/epochMs/);
  });

  it('refuses to encode a frame above the limit', () => {
    const big = runsFrom(Array.from({ length: 1000 }, (_, i) => [i * 2, 1] as [number, number]));
    expect(() => encodeMessage({ type: 'decisions', epoch: 1, promote: big, demote: runsFrom([]) }, { maxFrameBytes: 4096 })).toThrow(
      ProtocolError,
    );
  });

  it('rejects msgpack length bombs without large allocations', () => {
    const bombs = [
      [0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3], // array32 of 2^32-1
      [0xdf, 0xff, 0xff, 0xff, 0xff, 1, 2, 3], // map32
      [0xdb, 0xff, 0xff, 0xff, 0xff, 0x41], // str32
      [0xc6, 0xff, 0xff, 0xff, 0xff, 0x41], // bin32
      [0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc0, 0xc0], // {type: [2^31 ...]}
      [0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0xc0], // nesting bomb
      [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x41], // ext32
    ].map((b) => new Uint8Array(b));
    const before = process.memoryUsage().arrayBuffers;
    for (const bomb of bombs) {
      // The pre-scan itself refuses each one before msgpackr sees it.
      expect(scanMsgpack(bomb)).toMatch(/declared|declares|nesting|unsupported/);
      const d = new FrameDecoder();
      const results = d.push(concat(frameOf(bomb), encodeMessage({ type: 'heartbeat', seq: 1, tMs: 2 })));
      expect(results.map(errorCode)).toEqual(['bad-msgpack', 'ok']);
    }
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
  });

  it('answers an unknown type, a non-map and trailing bytes with an error result', () => {
    expect(errorCode(decodeBody(packr.pack({ type: 'reboot' })))).toBe('unknown-type');
    expect(errorCode(decodeBody(packr.pack([1, 2])))).toBe('not-a-map');
    expect(errorCode(decodeBody(packr.pack({ noType: 1 })))).toBe('unknown-type');
    expect(errorCode(decodeBody(concat(packr.pack({ type: 'heartbeat', seq: 1, tMs: 1 }), new Uint8Array([0xc0]))))).toBe('bad-msgpack');
    expect(errorCode(decodeAll(frameOf(new Uint8Array(0)))[0])).toBe('empty-frame');
  });

  it('refuses messages from the wrong side', () => {
    const frame = encodeMessage({ type: 'budget', dramBudgetPages: 1 });
    expect(decodeAll(frame, { from: 'guest' }).map(errorCode)).toEqual(['wrong-direction']);
    expect(decodeAll(frame, { from: 'host' }).map(errorCode)).toEqual(['ok']);
  });
});

describe('protocol validation', () => {
  const decisions = (promote: unknown, extra: Record<string, unknown> = {}) =>
    decodeBody(packr.pack({ type: 'decisions', epoch: 1, promote, demote: wireRuns([]), ...extra }));

  it('rejects GPA overflow, zero-length runs and mismatched columns', () => {
    expect(errorCode(decisions(wireRuns([[MAX_PFN_END - 1, 1]])))).toBe('ok');
    expect(errorCode(decisions(wireRuns([[MAX_PFN_END - 1, 2]])))).toBe('invalid-field');
    expect(errorCode(decisions(wireRuns([[2 ** 60, 1]])))).toBe('invalid-field');
    expect(errorCode(decisions(wireRuns([[0, 0]])))).toBe('invalid-field');
    const { gpaPfn } = wireRuns([[1, 1], [2, 1]]);
    expect(errorCode(decisions({ gpaPfn, pages: wireRuns([[1, 1]]).pages }))).toBe('invalid-field');
    expect(errorCode(decisions({ gpaPfn: gpaPfn.subarray(0, 7), pages: new Uint8Array(0) }))).toBe('invalid-field');
    expect(() => encodeMessage({ type: 'decisions', epoch: 1, promote: runsFrom([[MAX_PFN_END, 1]]), demote: runsFrom([]) })).toThrow(
      /overflows/,
    );
  });

  it('bounds the number of runs', () => {
    const rows = Array.from({ length: 11 }, (_, i) => [i * 4, 1] as [number, number]);
    const body = packr.pack({ type: 'decisions', epoch: 1, promote: wireRuns(rows), demote: wireRuns([]) });
    expect(errorCode(decodeBody(body, { maxRunsPerList: 10 }))).toBe('invalid-field');
    expect(errorCode(decodeBody(body, { maxRunsPerList: 11 }))).toBe('ok');
    const ram = Array.from({ length: DEFAULT_LIMITS.maxRamRanges + 1 }, (_, i) => [i * 4, 1] as [number, number]);
    const hello = { type: 'hello', protocolVersion: 1, agentVersion: 'x', pageSize: 4096, source: 's', epochMs: 500, ramRanges: wireRuns(ram) };
    expect(decodeBody(packr.pack(hello))).toMatchObject({ ok: false, error: { code: 'invalid-field', message: /ramRanges/ } });
  });

  it('checks field types and ranges', () => {
    const cases: Array<Record<string, unknown>> = [
      { type: 'budget', dramBudgetPages: -1 },
      { type: 'budget', dramBudgetPages: 1.5 },
      { type: 'budget', dramBudgetPages: '5' },
      { type: 'budget' },
      { type: 'heartbeat', seq: 1 },
      { type: 'decisions', epoch: 1, promote: [[1, 2]], demote: wireRuns([]) },
      { type: 'decisions', epoch: 1, promote: { gpaPfn: [1], pages: [1] }, demote: wireRuns([]) },
      { type: 'hello', protocolVersion: 1, agentVersion: 'x', pageSize: 65536, source: 's', epochMs: 500, ramRanges: wireRuns([]) },
      { type: 'hello', protocolVersion: 0, agentVersion: 'x', pageSize: 4096, source: 's', epochMs: 500, ramRanges: wireRuns([]) },
      { type: 'hello', protocolVersion: 1, agentVersion: 'x'.repeat(300), pageSize: 4096, source: 's', epochMs: 500, ramRanges: wireRuns([]) },
      { type: 'hello', protocolVersion: 1, agentVersion: 'x', pageSize: 4096, source: 's', epochMs: 0, ramRanges: wireRuns([]) },
      { type: 'error', code: 1, message: 'x' },
      { type: 'report', epoch: 1 },
    ];
    for (const c of cases) expect(errorCode(decodeBody(packr.pack(c))), JSON.stringify(c)).toBe('invalid-field');
  });
});

describe('protocol properties', () => {
  const runsArb = fc
    .array(fc.tuple(fc.integer({ min: 0, max: 2 ** 52 - 2 ** 32 }), fc.integer({ min: 1, max: 2 ** 32 - 1 })), { maxLength: 50 })
    .map((rows) => runsFrom(rows));
  const countArb = fc.integer({ min: 0, max: 2 ** 40 });
  const outcomeArb = fc.record({
    tried: countArb,
    moved: countArb,
    failed: fc.record({ ENOENT: countArb, EBUSY: countArb, ENOMEM: countArb, EACCES: countArb, other: countArb }),
  });
  const messageArb: fc.Arbitrary<Message> = fc.oneof(
    fc.record({ type: fc.constant('decisions' as const), epoch: countArb, promote: runsArb, demote: runsArb }),
    fc.record({ type: fc.constant('budget' as const), dramBudgetPages: countArb }),
    fc.record({ type: fc.constant('heartbeat' as const), seq: countArb, tMs: countArb }),
    fc.record({ type: fc.constant('error' as const), code: fc.string({ maxLength: 64 }), message: fc.string({ maxLength: 200 }) }),
    fc.record({
      type: fc.constant('hello' as const),
      protocolVersion: fc.integer({ min: 1, max: 10 }),
      agentVersion: fc.string({ maxLength: 20 }),
      pageSize: fc.constant(4096),
      ramRanges: runsArb,
      source: fc.string({ maxLength: 20 }),
      epochMs: fc.integer({ min: 1, max: 60000 }),
    }),
    fc.record({
      type: fc.constant('report' as const),
      epoch: countArb,
      promote: outcomeArb,
      demote: outcomeArb,
      dramPages: countArb,
      cxlPages: countArb,
      promoted: runsArb,
      demoted: runsArb,
      alreadyDram: runsArb,
      alreadyCxl: runsArb,
      crossNodeMoves: fc.boolean(),
      notes: fc.array(fc.string({ maxLength: 50 }), { maxLength: 4 }),
    }, { requiredKeys: ['type', 'epoch', 'promote', 'demote', 'dramPages', 'cxlPages', 'promoted', 'demoted', 'crossNodeMoves', 'notes'] }),
  );

  it('round-trips arbitrary valid messages, split anywhere', () => {
    fc.assert(
      fc.property(fc.array(messageArb, { minLength: 1, maxLength: 4 }), fc.nat(), (msgs, cutSeed) => {
        const stream = concat(...msgs.map((m) => encodeMessage(m)));
        const cut = cutSeed % (stream.length + 1);
        const d = new FrameDecoder();
        const got = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
        expect(got.map((r) => (r.ok ? plain(r.message) : r.error.message))).toEqual(msgs.map(plain));
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on arbitrary bytes, and a valid frame after a rejected one decodes', () => {
    const good = encodeMessage({ type: 'heartbeat', seq: 42, tMs: 1 });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (junk) => {
        // Arbitrary bytes as a stream: any outcome but a throw.
        const d = new FrameDecoder({ maxFrameBytes: 4096 });
        d.push(junk);
        expect(d.bufferedBytes).toBeLessThanOrEqual(4096 + 4);
        // Arbitrary bytes inside an intact frame: rejected or accepted, then the next frame decodes.
        const results = new FrameDecoder().push(concat(frameOf(junk), good));
        const last = results[results.length - 1];
        expect(last.ok && last.message.type === 'heartbeat' && last.message.seq === 42).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('survives mutated valid frames', () => {
    const good = encodeMessage({ type: 'heartbeat', seq: 42, tMs: 1 });
    fc.assert(
      fc.property(messageArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (msg, edits) => {
        const body = encodeMessage(msg).slice(4);
        for (const [at, value] of edits) body[at % body.length] = value;
        const results = new FrameDecoder().push(concat(frameOf(body), good));
        expect(results).toHaveLength(2);
        expect(results[1].ok).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it('the scanner agrees with msgpackr on what msgpackr produces', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (value) => {
        expect(scanMsgpack(packr.pack(value))).toBeNull();
      }),
      { numRuns: 500 },
    );
  });
});
