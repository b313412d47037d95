// Protocol messages over any byte stream: frames out, decoded messages in. A rejected
// frame is answered with an `error` message (the framing stays intact); a peer that keeps
// sending bad frames is disconnected.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { FrameDecoder, encodeMessage, type Message, type ProtocolError, type ProtocolLimits, type Side } from '../src/protocol/index.js';
import type { PeerIdentity } from './index.js';

export interface ProtocolConnectionOptions {
  /** The side the peer is: only its message types are accepted. */
  peerSide: Side;
  limits?: Partial<ProtocolLimits>;
  /** Bad frames tolerated before the connection is closed (default 16). */
  maxProtocolErrors?: number;
  peer?: PeerIdentity;
}

export interface ProtocolConnectionEvents {
  message: [message: Message];
  'protocol-error': [error: ProtocolError];
  close: [error: Error | null];
}

export class ProtocolConnection extends EventEmitter<ProtocolConnectionEvents> {
  readonly peer: PeerIdentity | undefined;
  private readonly decoder: FrameDecoder;
  private readonly limits: Partial<ProtocolLimits>;
  private readonly maxProtocolErrors: number;
  private protocolErrors = 0;
  private closed = false;
  /** Frames and bytes sent/received, for status lines and tests. */
  readonly counters = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, rejected: 0 };

  constructor(
    readonly stream: Duplex,
    options: ProtocolConnectionOptions,
  ) {
    super();
    this.peer = options.peer;
    this.limits = options.limits ?? {};
    this.maxProtocolErrors = options.maxProtocolErrors ?? 16;
    this.decoder = new FrameDecoder({ ...this.limits, from: options.peerSide });
    let closeError: Error | null = null;
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (err) => {
      closeError = err;
    });
    stream.on('close', () => {
      this.closed = true;
      this.emit('close', closeError);
    });
  }

  get isOpen(): boolean {
    return !this.closed && !this.stream.destroyed;
  }

  private onData(chunk: Buffer): void {
    this.counters.bytesIn += chunk.length;
    for (const result of this.decoder.push(chunk)) {
      if (this.closed) return;
      if (result.ok) {
        this.counters.framesIn++;
        this.emit('message', result.message);
        continue;
      }
      this.counters.rejected++;
      this.emit('protocol-error', result.error);
      this.send({ type: 'error', code: result.error.code, message: result.error.message.slice(0, 1024) });
      if (++this.protocolErrors >= this.maxProtocolErrors) {
        this.close();
        return;
      }
    }
  }

  /** Sends a message; false when the connection is gone or the stream's buffer is full. */
  send(message: Message): boolean {
    if (!this.isOpen) return false;
    const frame = encodeMessage(message, this.limits);
    this.counters.framesOut++;
    this.counters.bytesOut += frame.length;
    return this.stream.write(frame);
  }

  /** Ends the stream (after queued frames) and destroys it shortly after if the peer lingers. */
  close(): void {
    if (this.stream.destroyed) return;
    this.stream.end();
    const timer = setTimeout(() => this.stream.destroy(), 1000);
    timer.unref();
    this.stream.once('close', () => clearTimeout(timer));
  }

  /** Closes at once, dropping anything queued. */
  destroy(): void {
    this.stream.destroy();
  }
}
