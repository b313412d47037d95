// Decoder for trace files. The input is untrusted: every length is checked against the
// bytes actually present and against LIMITS before anything is allocated, and every value
// is range-checked. Corruption raises TraceFormatError; a file that simply stops early
// (recorder killed, disk full) decodes with truncated = true.
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
  TraceFormatError,
  type DecodedTrace,
  type TraceBatch,
  type TraceEnd,
  type TraceHeader,
} from './format.js';
import { checkHeader, checkRun } from './validate.js';

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const MAX_PAYLOAD: Record<number, number> = {
  [RecordType.header]: LIMITS.headerBytes,
  [RecordType.batch]: BATCH_FIXED_BYTES + LIMITS.batchRuns * BATCH_BYTES_PER_RUN,
  [RecordType.end]: END_BYTES,
  [RecordType.truncated]: TRUNCATED_FIXED_BYTES + LIMITS.reasonBytes,
};

const RECORD_NAMES: Record<number, string> = { 1: 'header', 2: 'batch', 3: 'end', 4: 'truncation' };

function readU64(view: DataView, offset: number, what: string): number {
  const value = view.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new TraceFormatError(`${what} ${value} exceeds 2^53`, offset);
  return Number(value);
}

function decodeHeader(bytes: Uint8Array, offset: number): TraceHeader {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new TraceFormatError(`header is not valid UTF-8 JSON (${(err as Error).message})`, offset);
  }
  const raw = parsed as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new TraceFormatError('header is not a JSON object', offset);
  const ranges = raw.ramRanges;
  if (!Array.isArray(ranges) || ranges.length > LIMITS.ramRanges) {
    throw new TraceFormatError('header ramRanges must be an array of at most 65536 [gpaPfn, pages] pairs', offset);
  }
  const ramRanges = { count: ranges.length, gpaPfn: new Float64Array(ranges.length), pages: new Uint32Array(ranges.length) };
  ranges.forEach((pair: unknown, i) => {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'number' || typeof pair[1] !== 'number') {
      throw new TraceFormatError(`header ramRanges[${i}] is not a [gpaPfn, pages] pair`, offset);
    }
    checkRun(pair[0], pair[1], `header ramRanges[${i}]`, (m) => new TraceFormatError(m, offset));
    ramRanges.gpaPfn[i] = pair[0];
    ramRanges.pages[i] = pair[1];
  });
  const header = { ...raw, ramRanges } as unknown as TraceHeader;
  checkHeader(header, (message) => new TraceFormatError(`header ${message}`, offset));
  return header;
}

function decodeBatch(bytes: Uint8Array, view: DataView, at: number, payloadBytes: number): TraceBatch {
  if (payloadBytes < BATCH_FIXED_BYTES) throw new TraceFormatError(`batch record of ${payloadBytes} bytes is too short`, at);
  const tNs = readU64(view, at, 'batch tNs');
  const count = view.getUint32(at + 8, true);
  if (view.getUint32(at + 12, true) !== 0) throw new TraceFormatError('batch reserved field is not zero', at + 12);
  if (count > LIMITS.batchRuns) throw new TraceFormatError(`batch of ${count} runs exceeds ${LIMITS.batchRuns}`, at + 8);
  if (payloadBytes !== BATCH_FIXED_BYTES + count * BATCH_BYTES_PER_RUN) {
    throw new TraceFormatError(`batch of ${count} runs must be ${BATCH_FIXED_BYTES + count * BATCH_BYTES_PER_RUN} bytes, record says ${payloadBytes}`, at);
  }
  let offset = at + BATCH_FIXED_BYTES;
  const samples: PageSamples = {
    count,
    gpaPfn: new Float64Array(count),
    pages: new Uint32Array(count),
    reads: new Uint32Array(count),
    writes: new Uint32Array(count),
  };
  const columns = [samples.gpaPfn, samples.pages, samples.reads, samples.writes];
  if (LITTLE_ENDIAN_HOST) {
    for (const column of columns) {
      const width = column.BYTES_PER_ELEMENT * count;
      new Uint8Array(column.buffer).set(bytes.subarray(offset, offset + width));
      offset += width;
    }
  } else {
    for (let i = 0; i < count; i++, offset += 8) samples.gpaPfn[i] = view.getFloat64(offset, true);
    for (const column of columns.slice(1)) for (let i = 0; i < count; i++, offset += 4) column[i] = view.getUint32(offset, true);
  }
  const runsAt = at + BATCH_FIXED_BYTES;
  const fail = (message: string) => new TraceFormatError(`batch ${message}`, runsAt);
  for (let i = 0; i < count; i++) checkRun(samples.gpaPfn[i], samples.pages[i], `run ${i}`, fail);
  return { tNs, samples };
}

function decodeEnd(view: DataView, at: number): TraceEnd {
  if (view.getUint32(at + 44, true) !== 0) throw new TraceFormatError('end reserved field is not zero', at + 44);
  return {
    samples: readU64(view, at, 'end samples'),
    pagesSeen: readU64(view, at + 8, 'end pagesSeen'),
    drops: readU64(view, at + 16, 'end drops'),
    untranslated: readU64(view, at + 24, 'end untranslated'),
    endNs: readU64(view, at + 32, 'end endNs'),
    batches: view.getUint32(at + 40, true),
  };
}

/** Decodes a whole trace file. Throws TraceFormatError on anything malformed. */
export function decodeTrace(bytes: Uint8Array): DecodedTrace {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('decodeTrace: bytes must be a Uint8Array');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < PREAMBLE_BYTES) throw new TraceFormatError(`file of ${bytes.length} bytes is too short to be a trace`, 0);
  for (let i = 0; i < TRACE_MAGIC.length; i++) {
    if (bytes[i] !== TRACE_MAGIC.charCodeAt(i)) throw new TraceFormatError('not a vtier trace (bad magic)', 0);
  }
  const version = view.getUint16(8, true);
  if (version !== TRACE_VERSION) throw new TraceFormatError(`unsupported trace version ${version} (this vtier reads ${TRACE_VERSION})`, 8);
  if (view.getUint16(10, true) !== 0 || view.getUint32(12, true) !== 0) throw new TraceFormatError('preamble flags are not zero', 10);

  let header: TraceHeader | undefined;
  const batches: TraceBatch[] = [];
  let end: TraceEnd | undefined;
  let truncatedReason: string | undefined;
  let offset = PREAMBLE_BYTES;

  const stopEarly = (what: string): string => `file ends inside ${what} after batch ${batches.length}`;
  while (offset < bytes.length) {
    if (end || truncatedReason !== undefined) {
      throw new TraceFormatError(`${bytes.length - offset} trailing bytes after the ${end ? 'end' : 'truncation'} record`, offset);
    }
    if (bytes.length - offset < RECORD_HEAD_BYTES) {
      if (!header) throw new TraceFormatError('file ends before the header record', offset);
      truncatedReason = stopEarly('a record head');
      offset = bytes.length;
      break;
    }
    const type = view.getUint8(offset);
    const name = RECORD_NAMES[type];
    if (!name) throw new TraceFormatError(`unknown record type ${type}`, offset);
    if (view.getUint8(offset + 1) | view.getUint8(offset + 2) | view.getUint8(offset + 3)) {
      throw new TraceFormatError(`${name} record reserved bytes are not zero`, offset + 1);
    }
    const payloadBytes = view.getUint32(offset + 4, true);
    if (payloadBytes > MAX_PAYLOAD[type]) {
      throw new TraceFormatError(`${name} record claims ${payloadBytes} bytes, more than the limit ${MAX_PAYLOAD[type]}`, offset + 4);
    }
    const at = offset + RECORD_HEAD_BYTES;
    if (!header && type !== RecordType.header) throw new TraceFormatError(`first record is ${name}, expected header`, offset);
    if (payloadBytes > bytes.length - at) {
      if (!header) throw new TraceFormatError('file ends inside the header record', offset);
      truncatedReason = stopEarly(`a ${name} record`);
      offset = bytes.length;
      break;
    }
    const payload = bytes.subarray(at, at + payloadBytes);
    switch (type) {
      case RecordType.header:
        if (header) throw new TraceFormatError('second header record', offset);
        header = decodeHeader(payload, at);
        break;
      case RecordType.batch:
        batches.push(decodeBatch(bytes, view, at, payloadBytes));
        break;
      case RecordType.end:
        if (payloadBytes !== END_BYTES) throw new TraceFormatError(`end record must be ${END_BYTES} bytes, is ${payloadBytes}`, offset);
        end = decodeEnd(view, at);
        if (end.batches !== batches.length) {
          throw new TraceFormatError(`end record counts ${end.batches} batches, the file holds ${batches.length}`, at + 40);
        }
        break;
      case RecordType.truncated: {
        if (payloadBytes < TRUNCATED_FIXED_BYTES) throw new TraceFormatError('truncation record too short', offset);
        const written = view.getUint32(at, true);
        const reasonBytes = view.getUint32(at + 4, true);
        if (reasonBytes !== payloadBytes - TRUNCATED_FIXED_BYTES) throw new TraceFormatError('truncation reason length mismatch', at + 4);
        if (written !== batches.length) {
          throw new TraceFormatError(`truncation record counts ${written} batches, the file holds ${batches.length}`, at);
        }
        truncatedReason = new TextDecoder().decode(payload.subarray(TRUNCATED_FIXED_BYTES)) || 'recorder stopped early';
        break;
      }
    }
    offset = at + payloadBytes;
  }
  if (!header) throw new TraceFormatError('file ends before the header record', offset);
  if (!end && truncatedReason === undefined) truncatedReason = `no end record after batch ${batches.length}`;
  return end
    ? { header, batches, end, truncated: false }
    : { header, batches, truncated: true, truncatedReason };
}
