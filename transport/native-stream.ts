// Node streams over the native non-blocking socket handle (AF_UNIX, AF_VSOCK, character
// devices). Flow control maps onto uv_poll interest: reading stops while the readable
// side is full, and a short write waits for a 'writable' wake-up before the write callback
// runs, so stream backpressure reaches the kernel socket buffer.
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import {
  socketHandle,
  type SocketEvent,
  type SocketFamily,
  type SocketHandle,
  type SocketHandleKind,
  type SocketPeer,
  type SyscallError,
} from '../native/addon.js';

type WriteCallback = (error?: Error | null) => void;

export class NativeStream extends Duplex {
  /** Peer identity from the kernel (accepted connections and connected unix sockets). */
  peer: SocketPeer | null = null;
  private readonly handle: SocketHandle;
  private connected: boolean;
  private wantRead = false;
  private wantWrite = false;
  private pendingWrite: { data: Uint8Array; callback: WriteCallback } | null = null;

  constructor(fd: number, kind: Exclude<SocketHandleKind, 'listen'>, family: SocketFamily) {
    super({ allowHalfOpen: false });
    this.connected = kind !== 'connecting';
    this.handle = socketHandle(fd, kind, family, (...event) => this.onEvent(event));
  }

  private onEvent(event: SocketEvent): void {
    switch (event[0]) {
      case 'data':
        if (!this.push(event[1])) {
          this.wantRead = false;
          this.updateEvents();
        }
        break;
      case 'end':
        this.push(null);
        break;
      case 'error':
        this.destroy(event[1]);
        break;
      case 'writable':
        this.wantWrite = false;
        this.flushPending();
        break;
      case 'connect':
        if (event[1]) {
          this.destroy(event[1]);
          break;
        }
        this.connected = true;
        this.emit('connect');
        this.updateEvents();
        this.flushPending();
        break;
      case 'accept':
        break;
    }
  }

  private updateEvents(): void {
    if (!this.destroyed) this.handle.setEvents(this.wantRead && this.connected, this.wantWrite);
  }

  override _read(): void {
    if (!this.wantRead) {
      this.wantRead = true;
      this.updateEvents();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    this.pendingWrite = { data: chunk, callback };
    if (this.connected) this.flushPending();
  }

  // Small frames queued while the socket was busy go out in one write (as net.Socket does).
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: WriteCallback): void {
    this._write(chunks.length === 1 ? chunks[0].chunk : Buffer.concat(chunks.map((c) => c.chunk)), 'buffer' as BufferEncoding, callback);
  }

  private flushPending(): void {
    const pending = this.pendingWrite;
    if (!pending) return;
    let data = pending.data;
    while (data.length > 0) {
      let written: number;
      try {
        written = this.handle.write(data);
      } catch (err) {
        this.pendingWrite = null;
        pending.callback(err as SyscallError);
        return;
      }
      if (written === 0) {
        pending.data = data;
        this.wantWrite = true;
        this.updateEvents();
        return;
      }
      data = data.subarray(written);
    }
    this.pendingWrite = null;
    pending.callback();
  }

  override _final(callback: WriteCallback): void {
    try {
      this.handle.shutdown();
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.handle.close();
    const pending = this.pendingWrite;
    this.pendingWrite = null;
    if (pending) pending.callback(error ?? Object.assign(new Error('socket closed'), { code: 'ERR_STREAM_DESTROYED' }));
    callback(error);
  }

  /** SO_PEERCRED of a connected unix socket (null for vsock and devices). */
  peerCredentials(): SocketPeer | null {
    return this.destroyed ? null : this.handle.peerCred();
  }

  /** Whether this stream keeps the process alive (like net.Socket.ref/unref). */
  setRef(ref: boolean): this {
    if (!this.destroyed) this.handle.setRef(ref);
    return this;
  }
}

export interface NativeServerEvents {
  connection: [stream: NativeStream, peer: SocketPeer];
  error: [error: Error];
  close: [];
}

/** A listening socket; emits 'connection' with the new stream and its kernel identity. */
export class NativeServer extends EventEmitter<NativeServerEvents> {
  private readonly handle: SocketHandle;
  private closed = false;

  constructor(
    fd: number,
    readonly family: SocketFamily,
    private readonly onClose: () => void = () => {},
  ) {
    super();
    this.handle = socketHandle(fd, 'listen', family, (...event) => this.onEvent(event));
    this.handle.setEvents(true, false);
  }

  private onEvent(event: SocketEvent): void {
    if (event[0] === 'accept') {
      const [, fd, peer] = event;
      const stream = new NativeStream(fd, 'stream', this.family);
      stream.peer = peer;
      this.emit('connection', stream, peer);
    } else if (event[0] === 'error') {
      this.emit('error', event[1]);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
    this.onClose();
    this.emit('close');
  }
}
