// The vtier trace file: what `vtier guest record` writes and the classifier and the
// simulator replay. Layout (little-endian, documented in docs/trace-format.md):
//
//   preamble  "VTIERTRC" | version u16 | flags u16 | reserved u32            (16 bytes)
//   records   type u8 | reserved u8[3] | payloadBytes u32 | payload          (8 + n bytes)
//
// The first record is the header (JSON), then batch records (binary columns), then one
// end record with totals. A writer that fails part way leaves a truncation record instead.
import type { PageRuns, PageSamples } from '../samples.js';

export const TRACE_MAGIC = 'VTIERTRC';
export const TRACE_VERSION = 1;
export const PREAMBLE_BYTES = 16;
export const RECORD_HEAD_BYTES = 8;

export const RecordType = {
  header: 1,
  batch: 2,
  end: 3,
  truncated: 4,
} as const;

/** Bounds that keep a corrupt or hostile file from asking for huge allocations. */
export const LIMITS = {
  headerBytes: 1 << 20,
  /** 2^22 runs per batch = 80 MiB of columns: far above any epoch's drain. */
  batchRuns: 1 << 22,
  reasonBytes: 4096,
  ramRanges: 1 << 16,
  /** GPA is at most 64 bits, so a 4 KiB frame number is below 2^52. */
  maxPfn: 2 ** 52,
} as const;

/** Batch payload: tNs u64 | count u32 | reserved u32, then the four columns. */
export const BATCH_FIXED_BYTES = 16;
export const BATCH_BYTES_PER_RUN = 8 + 4 + 4 + 4;
/** End payload: samples, pagesSeen, drops, untranslated, endNs (u64 each), batches u32, reserved u32. */
export const END_BYTES = 48;
/** Truncation payload: batchesWritten u32 | reasonBytes u32 | reason UTF-8. */
export const TRUNCATED_FIXED_BYTES = 8;

export const TRACE_SOURCES = ['damon', 'faults', 'pebs', 'ibs'] as const;
export type TraceSource = (typeof TRACE_SOURCES)[number];
export const DAMON_MODES = ['own', 'observe'] as const;
export type DamonMode = (typeof DAMON_MODES)[number];

export type Scalar = string | number | boolean;

export interface TraceHeader {
  /** The sample source that produced the batches. */
  source: TraceSource;
  /** For damon: whether the recorder ran its own kdamond or observed an existing one. */
  damonMode?: DamonMode;
  /** Bytes per guest page frame (gpaPfn = GPA / pageSize). */
  pageSize: number;
  /** Epoch between batches, in milliseconds. */
  epochMs: number;
  /** Source tunables as recorded (sample period, DAMON intervals, ...). */
  tunables: Record<string, Scalar>;
  /** Guest RAM ("System RAM" ranges) in page frames. */
  ramRanges: PageRuns;
  /** Facts about the machine that recorded (kernel, cpus, hostname, pmu, ...). */
  facts: Record<string, Scalar>;
  /** Wall-clock start, Unix milliseconds. */
  startTimeMs: number;
  /** Start on the clock batch timestamps use (monotonic nanoseconds). */
  startNs: number;
  /** What was recorded: a pid, a command, the built-in workload and its truth file. */
  target?: { pid?: number; command?: string[]; truthPath?: string };
}

export interface TraceBatch {
  /** Monotonic nanoseconds, same clock as header.startNs. */
  tNs: number;
  samples: PageSamples;
}

export interface TraceEnd {
  samples: number;
  pagesSeen: number;
  drops: number;
  untranslated: number;
  batches: number;
  endNs: number;
}

export interface DecodedTrace {
  header: TraceHeader;
  batches: TraceBatch[];
  end?: TraceEnd;
  /** True when the end record is missing: the recorder stopped early or the file was cut. */
  truncated: boolean;
  truncatedReason?: string;
}

/** Raised for any file that is not a well-formed trace; the message says what and where. */
export class TraceFormatError extends Error {
  constructor(
    message: string,
    /** Byte offset where the problem was found. */
    readonly offset: number,
  ) {
    super(`trace: ${message} (at byte ${offset})`);
    this.name = 'TraceFormatError';
  }
}
