// Framing: every message is a u32 big-endian body length followed by a msgpack body.
// FrameDecoder is incremental (feed it whatever the socket delivers) and hostile-input
// safe: it never buffers more than one maximum-size frame, refuses an oversized frame
// from its length prefix alone (then skips its body without storing it, so the next
// frame still decodes), pre-scans each body for msgpack length bombs, and returns every
// problem as a value instead of throwing.
import { Packr, Unpackr } from 'msgpackr';
import { DEFAULT_LIMITS, ProtocolError, SENDERS, messageFromWire, messageToWire, type Message, type ProtocolLimits, type Side } from './messages.js';
import { scanMsgpack, type ScanLimits } from './msgpack-scan.js';

export const FRAME_HEADER_BYTES = 4;

const packr = new Packr({ useRecords: false, variableMapSize: true });
// Each frame body is a fresh buffer, so bin fields may alias it (no copy).
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

export type DecodeResult = { ok: true; message: Message } | { ok: false; error: ProtocolError };

export interface FrameDecoderOptions extends Partial<ProtocolLimits> {
  /** The side whose messages this decoder reads; others' message types are refused. */
  from?: Side;
  scan?: ScanLimits;
}

/** Encodes one message as a frame. Throws ProtocolError if the message is invalid or
 *  its body exceeds maxFrameBytes. */
export function encodeMessage(msg: Message, limits: Partial<ProtocolLimits> = {}): Uint8Array {
  const full = { ...DEFAULT_LIMITS, ...limits };
  const body = packr.pack(messageToWire(msg, full));
  if (body.length > full.maxFrameBytes) {
    throw new ProtocolError('frame-too-large', `${msg.type} message of ${body.length} bytes exceeds the ${full.maxFrameBytes}-byte frame limit`);
  }
  const frame = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  new DataView(frame.buffer).setUint32(0, body.length, false);
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

/** Decodes one frame body (no length prefix). Never throws. */
export function decodeBody(body: Uint8Array, options: FrameDecoderOptions = {}): DecodeResult {
  const limits = { ...DEFAULT_LIMITS, ...options };
  if (body.length === 0) return fail('empty-frame', 'empty frame body');
  const problem = scanMsgpack(body, options.scan);
  if (problem) return fail('bad-msgpack', problem);
  let value: unknown;
  try {
    value = unpackr.unpack(body);
  } catch (err) {
    return fail('bad-msgpack', (err as Error).message);
  }
  try {
    const message = messageFromWire(value, limits);
    if (options.from && !SENDERS[message.type].includes(options.from)) {
      return fail('wrong-direction', `a ${options.from} may not send "${message.type}"`);
    }
    return { ok: true, message };
  } catch (err) {
    if (err instanceof ProtocolError) return { ok: false, error: err };
    return fail('invalid-field', (err as Error).message);
  }
}

function fail(code: ProtocolError['code'], message: string): DecodeResult {
  return { ok: false, error: new ProtocolError(code, message) };
}

export class FrameDecoder {
  private readonly options: FrameDecoderOptions;
  private readonly maxFrameBytes: number;
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFill = 0;
  /** Declared length of the body being collected, or -1 between frames. */
  private bodyLength = -1;
  /** Copies of the body bytes received so far: memory follows what the peer actually sent,
   *  not what its header claims (a header alone cannot make the decoder allocate 1 MiB). */
  private bodyParts: Uint8Array[] = [];
  private bodyFill = 0;
  /** Bytes of an oversized frame still to discard. */
  private skipRemaining = 0;

  constructor(options: FrameDecoderOptions = {}) {
    this.options = options;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_LIMITS.maxFrameBytes;
  }

  /** Bytes held for an incomplete frame (never more than maxFrameBytes + 4). */
  get bufferedBytes(): number {
    return this.headerFill + this.bodyFill;
  }

  /** True when no partial frame is pending (a clean place for the stream to end). */
  get idle(): boolean {
    return this.headerFill === 0 && this.bodyLength < 0 && this.skipRemaining === 0;
  }

  push(chunk: Uint8Array): DecodeResult[] {
    const results: DecodeResult[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.skipRemaining > 0) {
        const n = Math.min(this.skipRemaining, chunk.length - pos);
        this.skipRemaining -= n;
        pos += n;
        continue;
      }
      if (this.bodyLength < 0) {
        const n = Math.min(FRAME_HEADER_BYTES - this.headerFill, chunk.length - pos);
        this.header.set(chunk.subarray(pos, pos + n), this.headerFill);
        this.headerFill += n;
        pos += n;
        if (this.headerFill < FRAME_HEADER_BYTES) break;
        this.headerFill = 0;
        const length = new DataView(this.header.buffer).getUint32(0, false);
        if (length > this.maxFrameBytes) {
          this.skipRemaining = length;
          results.push(fail('frame-too-large', `frame of ${length} bytes exceeds the ${this.maxFrameBytes}-byte limit`));
          continue;
        }
        if (length === 0) {
          results.push(fail('empty-frame', 'empty frame body'));
          continue;
        }
        this.bodyLength = length;
        this.bodyFill = 0;
      }
      const n = Math.min(this.bodyLength - this.bodyFill, chunk.length - pos);
      // A copy: the caller may reuse its buffer (and Buffer#slice would not copy).
      this.bodyParts.push(Uint8Array.prototype.slice.call(chunk, pos, pos + n));
      this.bodyFill += n;
      pos += n;
      if (this.bodyFill === this.bodyLength) {
        const parts = this.bodyParts;
        let body = parts[0];
        if (parts.length > 1) {
          body = new Uint8Array(this.bodyLength);
          let at = 0;
          for (const part of parts) {
            body.set(part, at);
            at += part.length;
          }
        }
        this.bodyParts = [];
        this.bodyLength = -1;
        this.bodyFill = 0;
        results.push(decodeBody(body, this.options));
      }
    }
    return results;
  }
}
