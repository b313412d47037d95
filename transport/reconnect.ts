// A client connection that comes back: connects, and after any failure or disconnect
// retries with exponential backoff (capped). The delay resets only once the peer has sent
// a valid message: a virtio-serial port opens fine (and then reads EOF) while nobody is on
// the host side, and a listener may accept and drop at once; neither must cause a tight loop.
// The owner keeps working while the peer is away; events say what is happening.
import { EventEmitter } from 'node:events';
import type { Message, ProtocolError, ProtocolLimits, Side } from '../src/protocol/index.js';
import { ProtocolConnection } from './connection.js';
import { connect } from './index.js';
import type { TransportSpec } from './spec.js';

export interface BackoffOptions {
  initialDelayMs?: number;
  maxDelayMs?: number;
  factor?: number;
}

/** Delay before attempt `attempt` (1-based): initial * factor^(attempt-1), capped. */
export function backoffDelayMs(attempt: number, options: BackoffOptions = {}): number {
  const initial = options.initialDelayMs ?? 100;
  const max = options.maxDelayMs ?? 5000;
  const factor = options.factor ?? 2;
  return Math.min(max, initial * factor ** Math.max(0, attempt - 1));
}

export interface ReconnectingClientOptions extends BackoffOptions {
  peerSide: Side;
  limits?: Partial<ProtocolLimits>;
}

export interface ReconnectingClientEvents {
  connected: [connection: ProtocolConnection];
  disconnected: [error: Error | null];
  reconnecting: [info: { attempt: number; delayMs: number; error: Error | null }];
  message: [message: Message];
  'protocol-error': [error: ProtocolError];
}

export class ReconnectingClient extends EventEmitter<ReconnectingClientEvents> {
  connection: ProtocolConnection | null = null;
  /** Attempts since the peer last proved alive (sent a valid message). */
  attempt = 0;
  connects = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;

  constructor(
    readonly spec: string | TransportSpec,
    private readonly options: ReconnectingClientOptions,
  ) {
    super();
  }

  get connected(): boolean {
    return this.connection?.isOpen ?? false;
  }

  start(): this {
    if (!this.stopped) return this;
    this.stopped = false;
    void this.tryConnect();
    return this;
  }

  /** Sends when connected; false when the host is away (the caller keeps going). */
  send(message: Message): boolean {
    return this.connection?.isOpen ? this.connection.send(message) : false;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.connection?.close();
  }

  private async tryConnect(): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    let stream;
    try {
      stream = await connect(this.spec);
    } catch (err) {
      this.schedule(err as Error);
      return;
    }
    if (this.stopped) {
      stream.destroy();
      return;
    }
    this.connects++;
    const connection = new ProtocolConnection(stream, { peerSide: this.options.peerSide, limits: this.options.limits });
    this.connection = connection;
    connection.on('message', (message) => {
      this.attempt = 0;
      this.emit('message', message);
    });
    connection.on('protocol-error', (error) => this.emit('protocol-error', error));
    connection.on('close', (error) => {
      if (this.connection === connection) this.connection = null;
      this.emit('disconnected', error);
      if (!this.stopped) this.schedule(error);
    });
    this.emit('connected', connection);
  }

  private schedule(error: Error | null): void {
    if (this.stopped || this.timer) return;
    this.attempt++;
    const delayMs = backoffDelayMs(this.attempt, this.options);
    this.emit('reconnecting', { attempt: this.attempt, delayMs, error });
    this.timer = setTimeout(() => void this.tryConnect(), delayMs);
  }
}
