// A small QMP client over QEMU's unix socket: greeting, capability negotiation, commands
// matched to replies by id, asynchronous events (MEMORY_DEVICE_SIZE_CHANGE, DEVICE_ADDED,
// RESET, SHUTDOWN...). Every command has a timeout so a wedged QEMU cannot stall the agent.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { connect as transportConnect, type NativeStream } from '../transport/index.js';

/** QEMU answered a command with {"error": {...}}. */
export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    description: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${description}`);
    this.name = 'QmpError';
  }
}

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

// A reply longer than this is not something QEMU sends (mtree of a big VM is ~100 KB).
const MAX_LINE_BYTES = 16 * 1024 * 1024;

export interface QmpClientEvents {
  event: [QmpEvent];
  close: [Error | undefined];
}

export class QmpClient extends EventEmitter<QmpClientEvents> {
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closed = false;
  /** QEMU version from the greeting, e.g. "7.2.22". */
  version = '';

  /** SO_PEERCRED pid of the process serving the QMP socket (the kernel's word, not QEMU's). */
  peerPid?: number;

  private constructor(
    private readonly socket: Duplex,
    readonly defaultTimeoutMs: number,
  ) {
    super();
  }

  /** Connects, reads the greeting and enters command mode. */
  static async connect(path: string, options: { timeoutMs?: number } = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? 5000;
    let socket: NativeStream;
    try {
      socket = (await transportConnect({ kind: 'unix', path })) as NativeStream;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw Object.assign(new Error(`QMP ${path}: ${code ?? (err as Error).message}: cannot connect (is QEMU running with -qmp unix:${path},server=on,wait=off?)`), { code });
    }
    const client = new QmpClient(socket, timeoutMs);
    client.peerPid = socket.peerCredentials()?.pid;
    const greeting = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`QMP ${path}: no greeting within ${timeoutMs} ms`));
      }, timeoutMs);
      client.onGreeting = (msg) => {
        clearTimeout(timer);
        resolve(msg);
      };
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(Object.assign(new Error(`QMP ${path}: ${err.code ?? err.message}`), { code: err.code }));
      });
      socket.once('close', () => {
        clearTimeout(timer);
        reject(new Error(`QMP ${path}: closed before the greeting`));
      });
      socket.on('data', (chunk) => client.onData(chunk));
      socket.on('close', () => client.onClose());
    });
    const v = (greeting.QMP as { version?: { qemu?: { major: number; minor: number; micro: number } } })?.version?.qemu;
    if (v) client.version = `${v.major}.${v.minor}.${v.micro}`;
    socket.on('error', () => {
      /* reported through 'close' */
    });
    await client.execute('qmp_capabilities');
    return client;
  }

  private onGreeting: ((msg: Record<string, unknown>) => void) | undefined;

  private onData(chunk: Buffer): void {
    this.buffer += chunk.toString('utf8');
    if (this.buffer.length > MAX_LINE_BYTES) {
      this.socket.destroy(new Error('QMP: reply larger than 16 MiB'));
      return;
    }
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if ('QMP' in msg) {
      this.onGreeting?.(msg);
      this.onGreeting = undefined;
      return;
    }
    if (typeof msg.event === 'string') {
      this.emit('event', { event: msg.event, data: (msg.data as Record<string, unknown>) ?? {}, timestamp: msg.timestamp as QmpEvent['timestamp'] });
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    const pending = id ? this.pending.get(id) : undefined;
    if (!pending || !id) return;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    if (msg.error) {
      const e = msg.error as { class?: string; desc?: string };
      pending.reject(new QmpError(pending.command, e.class ?? 'GenericError', e.desc ?? 'unknown error'));
    } else {
      pending.resolve(msg.return);
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    const err = new Error('QMP connection closed (QEMU exited?)');
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.emit('close', undefined);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Runs a QMP command; resolves with its "return" value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = this.defaultTimeoutMs): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`QMP ${command}: connection closed`));
    const id = `vtier-${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`QMP ${command}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id })}\n`);
    });
  }

  /** Runs a human monitor command (e.g. "info mtree -f") and returns its text. */
  hmp(commandLine: string, timeoutMs?: number): Promise<string> {
    return this.execute<string>('human-monitor-command', { 'command-line': commandLine }, timeoutMs);
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
    this.onClose();
  }
}
