// Encoders for the trace records. Each returns the exact bytes to append to the file;
// a trace is encodeTraceHeader + encodeTraceBatch* + (encodeTraceEnd | encodeTraceTruncated).
import type { PageSamples } from '../samples.js';
import {
  BATCH_BYTES_PER_RUN,
  BATCH_FIXED_BYTES,
  END_BYTES,
  LIMITS,
  PREAMBLE_BYTES,
  RECORD_HEAD_BYTES,
  RecordType,
  TRACE_MAGIC,
  TRACE_VERSION,
  TRUNCATED_FIXED_BYTES,
  type TraceEnd,
  type TraceHeader,
} from './format.js';
import { checkHeader, checkSamples } from './validate.js';

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function record(type: number, payloadBytes: number, extra = 0): { bytes: Uint8Array; view: DataView; at: number } {
  const bytes = new Uint8Array(extra + RECORD_HEAD_BYTES + payloadBytes);
  const view = new DataView(bytes.buffer);
  view.setUint8(extra, type);
  view.setUint32(extra + 4, payloadBytes, true);
  return { bytes, view, at: extra + RECORD_HEAD_BYTES };
}

/** The file preamble followed by the header record. Throws RangeError on an invalid header. */
export function encodeTraceHeader(header: TraceHeader): Uint8Array {
  checkHeader(header, (message) => new RangeError(`trace header: ${message}`));
  const json = {
    ...header,
    ramRanges: Array.from({ length: header.ramRanges.count }, (_, i) => [header.ramRanges.gpaPfn[i], header.ramRanges.pages[i]]),
  };
  const text = new TextEncoder().encode(JSON.stringify(json));
  if (text.length > LIMITS.headerBytes) throw new RangeError(`trace header: ${text.length} bytes exceeds ${LIMITS.headerBytes}`);
  const { bytes, view, at } = record(RecordType.header, text.length, PREAMBLE_BYTES);
  for (let i = 0; i < TRACE_MAGIC.length; i++) bytes[i] = TRACE_MAGIC.charCodeAt(i);
  view.setUint16(8, TRACE_VERSION, true);
  bytes.set(text, at);
  return bytes;
}

/** One batch record: the samples of one epoch, columns copied as-is (little-endian). */
export function encodeTraceBatch(tNs: number, samples: PageSamples): Uint8Array {
  if (!Number.isSafeInteger(tNs) || tNs < 0) throw new RangeError(`trace batch: tNs ${tNs} is not a non-negative integer`);
  checkSamples(samples, (message) => new RangeError(`trace batch: ${message}`));
  const count = samples.count;
  const { bytes, view, at } = record(RecordType.batch, BATCH_FIXED_BYTES + count * BATCH_BYTES_PER_RUN);
  view.setBigUint64(at, BigInt(tNs), true);
  view.setUint32(at + 8, count, true);
  let offset = at + BATCH_FIXED_BYTES;
  if (LITTLE_ENDIAN_HOST) {
    const columns = [samples.gpaPfn, samples.pages, samples.reads, samples.writes];
    for (const column of columns) {
      const width = column.BYTES_PER_ELEMENT * count;
      bytes.set(new Uint8Array(column.buffer, column.byteOffset, width), offset);
      offset += width;
    }
  } else {
    for (let i = 0; i < count; i++, offset += 8) view.setFloat64(offset, samples.gpaPfn[i], true);
    for (const column of [samples.pages, samples.reads, samples.writes]) {
      for (let i = 0; i < count; i++, offset += 4) view.setUint32(offset, column[i], true);
    }
  }
  return bytes;
}

function u64(value: number, what: string): bigint {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`trace end: ${what} ${value} is not a non-negative integer`);
  return BigInt(value);
}

/** The end record: totals for the whole recording. Its presence means "complete". */
export function encodeTraceEnd(end: TraceEnd): Uint8Array {
  const { view, bytes, at } = record(RecordType.end, END_BYTES);
  view.setBigUint64(at, u64(end.samples, 'samples'), true);
  view.setBigUint64(at + 8, u64(end.pagesSeen, 'pagesSeen'), true);
  view.setBigUint64(at + 16, u64(end.drops, 'drops'), true);
  view.setBigUint64(at + 24, u64(end.untranslated, 'untranslated'), true);
  view.setBigUint64(at + 32, u64(end.endNs, 'endNs'), true);
  if (!Number.isInteger(end.batches) || end.batches < 0 || end.batches > 0xffffffff) {
    throw new RangeError(`trace end: batches ${end.batches} out of range`);
  }
  view.setUint32(at + 40, end.batches, true);
  return bytes;
}

/** The marker a writer leaves when it cannot finish: how many batches made it, and why. */
export function encodeTraceTruncated(batchesWritten: number, reason: string): Uint8Array {
  let text = new TextEncoder().encode(reason);
  if (text.length > LIMITS.reasonBytes) text = text.subarray(0, LIMITS.reasonBytes);
  // A cut in the middle of a UTF-8 sequence is replaced on decode; that is fine for a reason.
  const { view, bytes, at } = record(RecordType.truncated, TRUNCATED_FIXED_BYTES + text.length);
  view.setUint32(at, Math.max(0, Math.min(0xffffffff, Math.floor(batchesWritten))), true);
  view.setUint32(at + 4, text.length, true);
  bytes.set(text, at + TRUNCATED_FIXED_BYTES);
  return bytes;
}
