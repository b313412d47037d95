// One factory for every transport: connect(spec) gives a Duplex byte stream, listen(spec)
// a server emitting ('connection', stream, peer). unix: and vsock: use the native socket
// code (one path, the address family a parameter); tcp: uses node:net (loopback, for
// development); serial: opens a virtio-serial port (a character device, guest side) or
// connects to QEMU's chardev unix socket (host side), whichever the path is.
import { EventEmitter } from 'node:events';
import { lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { socketConnect, socketHandle, socketListen, socketOpenDevice, type SocketPeer, type SyscallError } from '../native/addon.js';
import { NativeServer, NativeStream } from './native-stream.js';
import { formatTransportSpec, parseTransportSpec, type TransportSpec } from './spec.js';

export { NativeServer, NativeStream } from './native-stream.js';
export { formatTransportSpec, parseTransportSpec, type TransportSpec } from './spec.js';

/** Who connected, as the transport (never the payload) tells it. */
export interface PeerIdentity {
  /** The listening spec the peer came in through, e.g. "unix:/run/vtier/vm1.sock". */
  via: string;
  kind: TransportSpec['kind'];
  /** vsock: the peer's CID (the VM's identity). */
  cid?: number;
  /** unix: SO_PEERCRED of the connecting process. */
  pid?: number;
  uid?: number;
  gid?: number;
  /** tcp: remote address (development only; not an identity). */
  remoteAddress?: string;
}

export interface TransportServer extends EventEmitter {
  readonly spec: string;
  on(event: 'connection', listener: (stream: Duplex, peer: PeerIdentity) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  close(): void;
}

function asSpec(spec: string | TransportSpec): TransportSpec {
  return typeof spec === 'string' ? parseTransportSpec(spec) : spec;
}

/** Waits for a native connect that was still in progress. */
function whenConnected(stream: NativeStream, pending: boolean): Promise<NativeStream> {
  if (!pending) return Promise.resolve(stream);
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    stream.once('error', onError);
    stream.once('connect', () => {
      stream.off('error', onError);
      resolve(stream);
    });
  });
}

function isSocketPath(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

/** Connects to a spec and resolves with a connected byte stream. */
export async function connect(specInput: string | TransportSpec): Promise<Duplex> {
  const spec = asSpec(specInput);
  switch (spec.kind) {
    case 'unix': {
      const { fd, pending } = socketConnect('unix', { path: spec.path });
      return whenConnected(new NativeStream(fd, pending ? 'connecting' : 'stream', 'unix'), pending);
    }
    case 'vsock': {
      const { fd, pending } = socketConnect('vsock', { cid: spec.cid, port: spec.port });
      return whenConnected(new NativeStream(fd, pending ? 'connecting' : 'stream', 'vsock'), pending);
    }
    case 'serial': {
      // The host side reaches a VM's virtio-serial port through QEMU's chardev socket.
      if (isSocketPath(spec.path)) return connect({ kind: 'unix', path: spec.path });
      return new NativeStream(socketOpenDevice(spec.path), 'device', 'unix');
    }
    case 'tcp':
      return new Promise((resolve, reject) => {
        const socket = net.connect({ host: spec.host, port: spec.port });
        socket.once('error', reject);
        socket.once('connect', () => {
          socket.off('error', reject);
          socket.setNoDelay(true);
          resolve(socket);
        });
      });
  }
}

/** Removes a unix socket file left by a process that is gone (nobody accepts on it). */
function removeStaleSocket(path: string): boolean {
  if (!isSocketPath(path)) return false;
  try {
    const { fd } = socketConnect('unix', { path });
    socketHandle(fd, 'stream', 'unix', () => {}).close();
    return false; // someone is listening
  } catch (err) {
    if ((err as SyscallError).code !== 'ECONNREFUSED') return false;
  }
  unlinkSync(path);
  return true;
}

class TcpServer extends EventEmitter implements TransportServer {
  constructor(
    readonly spec: string,
    private readonly server: net.Server,
  ) {
    super();
    server.on('connection', (socket) => {
      socket.setNoDelay(true);
      this.emit('connection', socket, { via: spec, kind: 'tcp', remoteAddress: socket.remoteAddress } satisfies PeerIdentity);
    });
    server.on('error', (err) => this.emit('error', err));
  }

  close(): void {
    this.server.close();
  }
}

class NativeTransportServer extends EventEmitter implements TransportServer {
  constructor(
    readonly spec: string,
    private readonly server: NativeServer,
    kind: 'unix' | 'vsock',
  ) {
    super();
    server.on('connection', (stream: NativeStream, peer: SocketPeer) => {
      this.emit('connection', stream, { via: spec, kind, ...peer } satisfies PeerIdentity);
    });
    server.on('error', (err: Error) => this.emit('error', err));
  }

  close(): void {
    this.server.close();
  }
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** Listens on a spec. unix: replaces a stale socket file; tcp: loopback only. */
export async function listen(specInput: string | TransportSpec, options: { backlog?: number } = {}): Promise<TransportServer> {
  const spec = asSpec(specInput);
  const text = formatTransportSpec(spec);
  const backlog = options.backlog ?? 64;
  switch (spec.kind) {
    case 'unix': {
      let fd: number;
      try {
        fd = socketListen('unix', { path: spec.path }, backlog);
      } catch (err) {
        if ((err as SyscallError).code !== 'EADDRINUSE' || !removeStaleSocket(spec.path)) throw err;
        fd = socketListen('unix', { path: spec.path }, backlog);
      }
      const server = new NativeServer(fd, 'unix', () => {
        try {
          unlinkSync(spec.path);
        } catch {
          /* already gone */
        }
      });
      return new NativeTransportServer(text, server, 'unix');
    }
    case 'vsock':
      return new NativeTransportServer(text, new NativeServer(socketListen('vsock', { cid: spec.cid, port: spec.port }, backlog), 'vsock'), 'vsock');
    case 'tcp': {
      if (!LOOPBACK.test(spec.host)) throw new TypeError(`tcp host: ${spec.host} is not a loopback address (tcp is for development)`);
      const server = net.createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: spec.host, port: spec.port, backlog }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      return new TcpServer(text, server);
    }
    case 'serial':
      throw new TypeError('serial: the host connects to the QEMU chardev socket (connect), it does not listen');
  }
}
