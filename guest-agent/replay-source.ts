// A recorded trace played back as a sample source: the guest agent runs the same loop
// (classifier, decisions, host) on samples it did not have to sample. Batches are
// delivered at the recorded pace divided by `speed` (Infinity: as fast as the event loop
// allows, yielding between batches so timers and sockets keep running).
import { readFileSync } from 'node:fs';
import type { PageRuns, PageSamples } from '../src/samples.js';
import { decodeTrace, type DecodedTrace } from '../src/trace/index.js';

/** What the guest agent needs from any sample source (the live Sampler has the same shape). */
export interface GuestSampleSource {
  onBatch(listener: (tNs: number, samples: PageSamples) => void): void;
  describe(): object;
  stats(): object;
  stop(): Promise<void> | void;
}

export interface ReplayOptions {
  /** Pace multiplier: 1 = as recorded, 10 = ten times faster, Infinity = no waiting. */
  speed?: number;
}

export class ReplaySource implements GuestSampleSource {
  private listeners: Array<(tNs: number, samples: PageSamples) => void> = [];
  private endListeners: Array<() => void> = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private next = 0;
  private startedAtMs = 0;
  private stopped = false;
  private finished = false;
  private runsDelivered = 0;
  readonly speed: number;

  constructor(
    readonly path: string,
    readonly trace: DecodedTrace,
    options: ReplayOptions = {},
  ) {
    const speed = options.speed ?? 1;
    if (!(speed > 0)) throw new TypeError(`speed: expected a positive number, got ${speed}`);
    this.speed = speed;
  }

  /** Reads and decodes a trace file (TraceFormatError on a malformed one). */
  static open(path: string, options: ReplayOptions = {}): ReplaySource {
    return new ReplaySource(path, decodeTrace(readFileSync(path)), options);
  }

  get ramRanges(): PageRuns {
    return this.trace.header.ramRanges;
  }

  get epochMs(): number {
    return this.trace.header.epochMs;
  }

  /** The source the trace was recorded with (damon, faults, pebs, ibs). */
  get recordedSource(): string {
    return this.trace.header.source;
  }

  get done(): boolean {
    return this.finished;
  }

  onBatch(listener: (tNs: number, samples: PageSamples) => void): void {
    this.listeners.push(listener);
  }

  /** Called once after the last batch was delivered. */
  onEnd(listener: () => void): void {
    this.endListeners.push(listener);
  }

  start(): this {
    this.startedAtMs = performance.now();
    this.schedule();
    return this;
  }

  private schedule(): void {
    if (this.stopped) return;
    const batches = this.trace.batches;
    if (this.next >= batches.length) {
      this.finished = true;
      for (const listener of this.endListeners) listener();
      return;
    }
    if (!Number.isFinite(this.speed)) {
      this.timer = setImmediate(() => this.deliver());
      return;
    }
    const dueMs = (batches[this.next].tNs - this.trace.header.startNs) / 1e6 / this.speed;
    const waitMs = Math.max(0, dueMs - (performance.now() - this.startedAtMs));
    this.timer = setTimeout(() => this.deliver(), waitMs);
  }

  private deliver(): void {
    this.timer = null;
    if (this.stopped) return;
    const batch = this.trace.batches[this.next++];
    this.runsDelivered += batch.samples.count;
    for (const listener of this.listeners) listener(batch.tNs, batch.samples);
    this.schedule();
  }

  describe(): Record<string, unknown> {
    const h = this.trace.header;
    return {
      source: 'replay',
      recordedSource: h.source,
      path: this.path,
      batches: this.trace.batches.length,
      epochMs: h.epochMs,
      speed: Number.isFinite(this.speed) ? this.speed : 'max',
      truncated: this.trace.truncated,
    };
  }

  stats(): Record<string, unknown> {
    return { batchesDelivered: this.next, batches: this.trace.batches.length, runsDelivered: this.runsDelivered, finished: this.finished };
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
      this.timer = null;
    }
  }
}
