import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TraceWriteError, TraceWriter, type TraceIo } from '../guest-agent/trace-writer.js';
import { decodeTrace, type TraceHeader } from '../src/trace/index.js';
import { emptySamples, runsFrom, samplesFrom } from '../src/samples.js';

const header: TraceHeader = {
  source: 'faults',
  pageSize: 4096,
  epochMs: 100,
  tunables: { samplePeriod: 1 },
  ramRanges: runsFrom([[256, 1000]]),
  facts: { kernel: 'test' },
  startTimeMs: Date.now(),
  startNs: 1,
};

function bigBatch(n: number) {
  const s = emptySamples(n);
  for (let i = 0; i < n; i++) {
    s.gpaPfn[i] = 1000 + i;
    s.pages[i] = 1;
    s.reads[i] = i;
  }
  s.count = n;
  return s;
}

const dir = fs.mkdtempSync(join(tmpdir(), 'vtier-trace-writer-'));
const isRoot = process.getuid?.() === 0;
const needsMount = process.env.CI === 'true' || isRoot;
let mount: string | undefined;
let mountError: string | undefined;

beforeAll(() => {
  if (!isRoot) return;
  const target = join(dir, 'tiny');
  fs.mkdirSync(target);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', target], { stdio: 'pipe' });
    mount = target;
  } catch (err) {
    mountError = String((err as { stderr?: Buffer }).stderr ?? err);
  }
});

afterAll(() => {
  if (mount) execFileSync('umount', [mount]);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('TraceWriter', () => {
  it('writes a complete trace that decodes', () => {
    const path = join(dir, 'ok.trace');
    const w = TraceWriter.open(path, header);
    w.writeBatch(10, samplesFrom([[1, 1, 2, 0]]));
    w.writeBatch(20, samplesFrom([]));
    w.finish({ samples: 2, pagesSeen: 1, drops: 0, untranslated: 0, endNs: 30 });
    const trace = decodeTrace(fs.readFileSync(path));
    expect(trace.truncated).toBe(false);
    expect(trace.batches).toHaveLength(2);
    expect(trace.end?.batches).toBe(2);
    expect(fs.statSync(path).size).toBe(w.bytesWritten);
  });

  it.skipIf(!needsMount)('disk full on a real 64 KiB tmpfs leaves a marked, decodable trace', () => {
    if (!mount) throw new Error(`cannot mount a tmpfs: ${mountError}`);
    const path = join(mount, 'full.trace');
    const w = TraceWriter.open(path, header);
    let error: unknown;
    let i = 0;
    try {
      for (; i < 100; i++) w.writeBatch(i, bigBatch(200)); // ~4 KiB per batch
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TraceWriteError);
    const e = error as TraceWriteError;
    expect(e.code).toBe('ENOSPC');
    expect(e.message).toBe(`trace truncated at batch ${i}: disk full (ENOSPC)`);
    expect(e.batches).toBe(i);
    expect(i).toBeGreaterThan(5);
    const trace = decodeTrace(fs.readFileSync(path));
    expect(trace.truncated).toBe(true);
    expect(trace.batches).toHaveLength(i);
    if (e.markerWritten) expect(trace.truncatedReason).toBe('disk full (ENOSPC)');
    else expect(trace.truncatedReason).toMatch(/after batch/);
    // Later calls keep reporting the same failure, they do not write.
    expect(() => w.writeBatch(999, bigBatch(1))).toThrow(TraceWriteError);
    expect(() => w.finish({ samples: 0, pagesSeen: 0, drops: 0, untranslated: 0, endNs: 0 })).toThrow(/truncated at batch/);
  });
  if (!needsMount) console.log('skipped the tmpfs ENOSPC test: not root (mount needs CAP_SYS_ADMIN)');

  // A short write followed by an I/O error cannot be provoked on demand: inject it at the io seam.
  it('cuts a partial record before writing the marker (injected EIO after a short write)', () => {
    const path = join(dir, 'eio.trace');
    let writes = 0;
    const io: TraceIo = {
      openSync: fs.openSync,
      ftruncateSync: fs.ftruncateSync,
      fsyncSync: fs.fsyncSync,
      closeSync: fs.closeSync,
      writeSync(fd, buffer, offset, length, position) {
        writes++;
        if (writes === 3) return fs.writeSync(fd, buffer, offset, Math.min(length, 7), position);
        if (writes === 4) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
        return fs.writeSync(fd, buffer, offset, length, position);
      },
    };
    const w = TraceWriter.open(path, header, io);
    w.writeBatch(1, samplesFrom([[5, 1, 1, 1]]));
    expect(() => w.writeBatch(2, samplesFrom([[6, 1, 1, 1]]))).toThrow('trace truncated at batch 1: EIO: i/o error, write');
    const trace = decodeTrace(fs.readFileSync(path));
    expect(trace.batches).toHaveLength(1);
    expect(trace.truncatedReason).toBe('EIO: i/o error, write');
  });

  it('when even the marker fails the file still ends on a record boundary', () => {
    const path = join(dir, 'nomarker.trace');
    let failing = false;
    const io: TraceIo = {
      openSync: fs.openSync,
      ftruncateSync: fs.ftruncateSync,
      fsyncSync: fs.fsyncSync,
      closeSync: fs.closeSync,
      writeSync(fd, buffer, offset, length, position) {
        if (failing) {
          fs.writeSync(fd, buffer, offset, 3, position);
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        }
        return fs.writeSync(fd, buffer, offset, length, position);
      },
    };
    const w = TraceWriter.open(path, header, io);
    w.writeBatch(1, samplesFrom([[5, 1, 1, 1]]));
    failing = true;
    let error: TraceWriteError | undefined;
    try {
      w.writeBatch(2, samplesFrom([[6, 1, 1, 1]]));
    } catch (err) {
      error = err as TraceWriteError;
    }
    expect(error?.markerWritten).toBe(false);
    const trace = decodeTrace(fs.readFileSync(path));
    expect(trace.truncated).toBe(true);
    expect(trace.truncatedReason).toBe('no end record after batch 1');
  });

  it('abort() leaves a marker with the given reason', () => {
    const path = join(dir, 'abort.trace');
    const w = TraceWriter.open(path, header);
    w.writeBatch(1, samplesFrom([[5, 1, 1, 1]]));
    const e = w.abort('target process 123 exited');
    expect(e.message).toBe('trace truncated at batch 1: target process 123 exited');
    expect(decodeTrace(fs.readFileSync(path)).truncatedReason).toBe('target process 123 exited');
  });
});
