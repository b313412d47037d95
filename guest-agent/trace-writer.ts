// Streams a trace to a file: header, one write per batch, end record and fsync at the
// end. When a write fails (disk full, I/O error) the file is cut back to the last whole
// record and a truncation record saying why is appended (best effort), so a reader
// never meets a half record without a marker. Format: docs/trace-format.md.
import * as fs from 'node:fs';
import type { PageSamples } from '../src/samples.js';
import {
  encodeTraceBatch,
  encodeTraceEnd,
  encodeTraceHeader,
  encodeTraceTruncated,
  type TraceEnd,
  type TraceHeader,
} from '../src/trace/index.js';

/** The file-system calls the writer makes; tests may swap one to inject a fault. */
export interface TraceIo {
  openSync(path: string, flags: string, mode?: number): number;
  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  ftruncateSync(fd: number, length: number): void;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
}

const nodeIo: TraceIo = {
  openSync: (path, flags, mode) => fs.openSync(path, flags, mode),
  writeSync: (fd, buffer, offset, length, position) => fs.writeSync(fd, buffer, offset, length, position),
  ftruncateSync: (fd, length) => fs.ftruncateSync(fd, length),
  fsyncSync: (fd) => fs.fsyncSync(fd),
  closeSync: (fd) => fs.closeSync(fd),
};

/** A trace could not be completed; the file holds `batches` whole batches and a marker. */
export class TraceWriteError extends Error {
  constructor(
    readonly batches: number,
    readonly reason: string,
    readonly code: string | undefined,
    /** Whether the truncation record made it to the file. */
    readonly markerWritten: boolean,
  ) {
    super(`trace truncated at batch ${batches}: ${reason}`);
    this.name = 'TraceWriteError';
  }
}

function describe(err: unknown): { reason: string; code?: string } {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOSPC') return { reason: 'disk full (ENOSPC)', code: e.code };
  if (e?.code === 'EDQUOT') return { reason: 'disk quota exceeded (EDQUOT)', code: e.code };
  if (e?.code) return { reason: `${e.code}: ${e.message.replace(/^\w+: /, '')}`, code: e.code };
  return { reason: e?.message ?? String(err) };
}

export class TraceWriter {
  private fd: number | undefined;
  /** Bytes of whole records written so far: where the next record starts. */
  private goodBytes = 0;
  private batchCount = 0;
  private failure: TraceWriteError | undefined;

  private constructor(
    readonly path: string,
    private readonly io: TraceIo,
  ) {}

  /** Creates (or replaces) `path` and writes the header. */
  static open(path: string, header: TraceHeader, io: TraceIo = nodeIo): TraceWriter {
    const bytes = encodeTraceHeader(header);
    const writer = new TraceWriter(path, io);
    writer.fd = io.openSync(path, 'w', 0o644);
    try {
      writer.append(bytes);
    } catch (err) {
      const { reason } = describe(err);
      try {
        io.closeSync(writer.fd);
      } catch {
        /* already failing */
      }
      writer.fd = undefined;
      throw Object.assign(new Error(`cannot write trace header to ${path}: ${reason}`), { code: (err as NodeJS.ErrnoException).code });
    }
    return writer;
  }

  get batches(): number {
    return this.batchCount;
  }

  get bytesWritten(): number {
    return this.goodBytes;
  }

  /** The failure that truncated this trace, if any. */
  get error(): TraceWriteError | undefined {
    return this.failure;
  }

  private append(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) {
      const n = this.io.writeSync(this.fd!, bytes, done, bytes.length - done, this.goodBytes + done);
      if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
      done += n;
    }
    this.goodBytes += bytes.length;
  }

  /** Appends one batch. On a write failure the trace is closed with a truncation marker and
   *  TraceWriteError is thrown ("trace truncated at batch N: reason"). */
  writeBatch(tNs: number, samples: PageSamples): void {
    if (this.failure) throw this.failure;
    if (this.fd === undefined) throw new Error('trace writer is closed');
    const bytes = encodeTraceBatch(tNs, samples);
    try {
      this.append(bytes);
      this.batchCount++;
    } catch (err) {
      throw this.fail(err);
    }
  }

  /** Writes the end record, fsyncs and closes. */
  finish(totals: Omit<TraceEnd, 'batches'>): void {
    if (this.failure) throw this.failure;
    if (this.fd === undefined) throw new Error('trace writer is closed');
    try {
      this.append(encodeTraceEnd({ ...totals, batches: this.batchCount }));
      this.io.fsyncSync(this.fd);
    } catch (err) {
      throw this.fail(err);
    }
    this.close();
  }

  /** Ends the trace early on purpose (error elsewhere): writes a truncation marker with `reason`. */
  abort(reason: string): TraceWriteError {
    if (this.failure) return this.failure;
    return this.fail(new Error(reason), reason);
  }

  private fail(err: unknown, reasonText?: string): TraceWriteError {
    const { reason, code } = reasonText ? { reason: reasonText, code: undefined } : describe(err);
    let markerWritten = false;
    if (this.fd !== undefined) {
      const whole = this.goodBytes;
      try {
        // Drop any partial record, then leave the marker where it started.
        this.io.ftruncateSync(this.fd, whole);
        this.append(encodeTraceTruncated(this.batchCount, reason));
        this.io.fsyncSync(this.fd);
        markerWritten = true;
      } catch {
        try {
          this.io.ftruncateSync(this.fd, whole);
        } catch {
          /* the file ends on a record boundary or not at all; the decoder reports it */
        }
        this.goodBytes = whole;
      }
      this.close();
    }
    this.failure = new TraceWriteError(this.batchCount, reason, code, markerWritten);
    return this.failure;
  }

  private close(): void {
    if (this.fd === undefined) return;
    try {
      this.io.closeSync(this.fd);
    } catch {
      /* nothing left to save */
    }
    this.fd = undefined;
  }
}
