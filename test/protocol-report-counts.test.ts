// The report's optional per-direction counts (already, refused): they round-trip, an older
// host's report without them still decodes, and hostile values are refused with one error.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { HOST_REFUSALS, ProtocolError, decodeBody, encodeMessage, type MoveOutcome, type ReportMessage } from '../src/protocol/index.js';
import { runsFrom } from '../src/samples.js';

const packr = new Packr({ useRecords: false });
const none = { ENOENT: 0, EBUSY: 0, ENOMEM: 0, EACCES: 0, other: 0 };

function report(promote: MoveOutcome, demote: MoveOutcome): ReportMessage {
  return { type: 'report', epoch: 3, promote, demote, dramPages: 1, cxlPages: 2, promoted: runsFrom([]), demoted: runsFrom([]), crossNodeMoves: true, notes: [] };
}

const decode = (body: Uint8Array) => decodeBody(body);

/** The wire form with empty runs, for hand-made hostile variants. */
function wire(promote: unknown, demote: unknown = { tried: 0, moved: 0, failed: none }) {
  const runs = { gpaPfn: new Uint8Array(0), pages: new Uint8Array(0) };
  return packr.pack({ type: 'report', epoch: 1, promote, demote, dramPages: 0, cxlPages: 0, promoted: runs, demoted: runs, crossNodeMoves: true, notes: [] });
}

const count = fc.integer({ min: 0, max: 2 ** 40 });
const outcome = fc
  .record({ tried: count, moved: count, other: count, already: fc.option(count, { nil: undefined }), withRefused: fc.boolean(), shares: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 5, maxLength: 5 }) })
  .map(({ tried, moved, other, already, withRefused, shares }): MoveOutcome => {
    // Refusals are part of failed.other: split `other` among them.
    const total = shares.reduce((a, b) => a + b, 0) || 1;
    let left = other;
    const refused = Object.fromEntries(HOST_REFUSALS.map((r, i) => {
      const n = Math.min(left, Math.floor((other * shares[i]) / total));
      left -= n;
      return [r, n];
    })) as Record<(typeof HOST_REFUSALS)[number], number>;
    return { tried, moved, failed: { ...none, other }, ...(already !== undefined ? { already } : {}), ...(withRefused ? { refused } : {}) };
  });

describe('report: already / refused counts', () => {
  it('round-trip whatever their values (property)', () => {
    fc.assert(
      fc.property(outcome, outcome, (p, d) => {
        const msg = report(p, d);
        const frame = encodeMessage(msg);
        const r = decode(frame.subarray(4));
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        const got = r.message as ReportMessage;
        expect(got.promote).toEqual(p);
        expect(got.demote).toEqual(d);
      }),
      { numRuns: 300 },
    );
  });

  it('an older host without them still decodes', () => {
    const r = decode(wire({ tried: 1, moved: 1, failed: none }));
    expect(r.ok && (r.message as ReportMessage).promote).toEqual({ tried: 1, moved: 1, failed: none });
  });

  it('refuses refusals above failed.other, missing keys, and non-integers (property over junk)', () => {
    const refused = { budget: 0, 'rate-limited': 0, 'outside-ram': 5, 'no-target-node': 0, 'vm-gone': 0 };
    const bad = [
      { tried: 5, moved: 0, failed: { ...none, other: 4 }, refused },
      { tried: 5, moved: 0, failed: { ...none, other: 5 }, refused: { ...refused, budget: undefined } },
      { tried: 5, moved: 0, failed: { ...none, other: 5 }, refused: [1, 2] },
      { tried: 5, moved: 0, failed: none, already: -1 },
      { tried: 5, moved: 0, failed: none, already: 1.5 },
    ];
    for (const o of bad) {
      const r = decode(wire(o));
      expect(r.ok, JSON.stringify(o)).toBe(false);
      if (!r.ok) expect(r.error).toBeInstanceOf(ProtocolError);
    }
    fc.assert(
      fc.property(fc.anything(), fc.anything(), (already, refusedValue) => {
        const r = decode(wire({ tried: 1, moved: 0, failed: { ...none, other: 1 }, already, refused: refusedValue }));
        // Never throws: either a valid message or one protocol error.
        if (!r.ok) expect(r.error).toBeInstanceOf(ProtocolError);
      }),
      { numRuns: 500 },
    );
  });
});
