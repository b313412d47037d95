import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { Packr } from 'msgpackr';
import { socketConnect, socketListen, VSOCK_ANY } from '../native/addon.js';
import { connect, listen, parseTransportSpec, type PeerIdentity, type TransportServer } from '../transport/index.js';
import { ProtocolConnection } from '../transport/connection.js';
import { ReconnectingClient, backoffDelayMs } from '../transport/reconnect.js';
import { InputError } from '../src/util/units.js';
import type { Message } from '../src/protocol/index.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vtier-transport-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

function nextConnection(server: TransportServer): Promise<[Duplex, PeerIdentity]> {
  return new Promise((resolve) => server.once('connection', (stream: Duplex, peer: PeerIdentity) => resolve([stream, peer])));
}

function readExactly(stream: Duplex, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      have += chunk.length;
      if (have >= bytes) {
        stream.off('data', onData);
        resolve(Buffer.concat(chunks));
      }
    };
    stream.on('data', onData);
    stream.once('error', reject);
  });
}

function waitFor<T>(emitter: { once(event: string, fn: (value: T) => void): unknown }, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, resolve));
}

describe('transport specs', () => {
  it('parses every kind and names the bad field', () => {
    expect(parseTransportSpec('unix:/run/x.sock')).toEqual({ kind: 'unix', path: '/run/x.sock' });
    expect(parseTransportSpec('tcp:127.0.0.1:7000')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 7000 });
    expect(parseTransportSpec('tcp:[::1]:7000')).toEqual({ kind: 'tcp', host: '::1', port: 7000 });
    expect(parseTransportSpec('serial:/dev/virtio-ports/vtier')).toEqual({ kind: 'serial', path: '/dev/virtio-ports/vtier' });
    expect(parseTransportSpec('vsock:2:5000')).toEqual({ kind: 'vsock', cid: 2, port: 5000 });
    expect(parseTransportSpec('vsock:any:5000')).toEqual({ kind: 'vsock', cid: VSOCK_ANY, port: 5000 });
    expect(() => parseTransportSpec('vsock:-1:5000')).toThrow(/vsock cid/);
    expect(() => parseTransportSpec('vsock:2:99999999999')).toThrow(/vsock port/);
    expect(() => parseTransportSpec('vsock:2')).toThrow(InputError);
    expect(() => parseTransportSpec('tcp:localhost:70000')).toThrow(/tcp port/);
    expect(() => parseTransportSpec('http://x')).toThrow(InputError);
    expect(() => parseTransportSpec('unix:')).toThrow(/unix path/);
  });

  it('computes a capped exponential backoff', () => {
    expect([1, 2, 3, 4, 5, 10].map((a) => backoffDelayMs(a, { initialDelayMs: 100, maxDelayMs: 1000 }))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
});

describe('native socket argument validation (no vsock socket is ever created)', () => {
  it('refuses bad vsock CIDs and ports with a TypeError naming the field, before opening anything', () => {
    const before = openFds();
    const bad: Array<[() => unknown, RegExp]> = [
      [() => socketConnect('vsock', { cid: -1, port: 5000 }), /^cid: /],
      [() => socketConnect('vsock', { cid: 2 ** 32, port: 5000 }), /^cid: /],
      [() => socketConnect('vsock', { cid: 2.5, port: 5000 }), /^cid: /],
      [() => socketConnect('vsock', { cid: '2', port: 5000 } as never), /^cid: /],
      [() => socketConnect('vsock', { cid: VSOCK_ANY, port: 5000 }), /^cid: .*only valid for listen/],
      [() => socketConnect('vsock', { cid: 2, port: -5 }), /^port: /],
      [() => socketConnect('vsock', { cid: 2, port: NaN }), /^port: /],
      [() => socketConnect('vsock', { cid: 2, port: VSOCK_ANY }), /^port: .*only valid for listen/],
      [() => socketConnect('vsock', { cid: 2 } as never), /^port: /],
      [() => socketListen('vsock', { cid: 3, port: 2 ** 33 }), /^port: /],
      [() => socketListen('vsock', { cid: 3, port: 1 }, 0), /^backlog: /],
      [() => socketConnect('inet' as never, { cid: 2, port: 1 }), /^family: /],
      [() => socketConnect('unix', { path: 'x'.repeat(108) }), /^path: /],
      [() => socketConnect('unix', { path: '' }), /^path: /],
      [() => socketConnect('unix', { path: 'a\0b' }), /^path: /],
      [() => socketConnect('unix', null as never), /^address: /],
    ];
    for (const [call, message] of bad) {
      expect(call).toThrow(TypeError);
      expect(call).toThrow(message);
    }
    expect(openFds()).toBe(before);
  });

  it('reports connect failures with the errno name', () => {
    let error: NodeJS.ErrnoException | undefined;
    try {
      socketConnect('unix', { path: join(dir, 'nobody-here.sock') });
    } catch (err) {
      error = err as NodeJS.ErrnoException;
    }
    expect(error).toMatchObject({ code: 'ENOENT', syscall: 'connect' });
  });
});

describe('native AF_UNIX sockets (the same code path as AF_VSOCK)', () => {
  it('echoes, and reports the peer credentials from the kernel', async () => {
    const path = join(dir, 'echo.sock');
    const server = await listen(`unix:${path}`);
    const accepted = nextConnection(server);
    const client = await connect(`unix:${path}`);
    const [serverSide, peer] = await accepted;
    serverSide.pipe(serverSide);
    expect(peer).toMatchObject({ kind: 'unix', via: `unix:${path}`, pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    expect((client as unknown as { peerCredentials(): unknown }).peerCredentials()).toMatchObject({ pid: process.pid });
    client.write('hello vtier');
    expect((await readExactly(client, 11)).toString()).toBe('hello vtier');
    client.destroy();
    server.close();
    expect(existsSync(path)).toBe(false);
  });

  it('moves several MB in order in both directions', async () => {
    const path = join(dir, 'bulk.sock');
    const server = await listen(`unix:${path}`);
    const accepted = nextConnection(server);
    const client = await connect(`unix:${path}`);
    const [serverSide] = await accepted;
    serverSide.pipe(serverSide);
    const payload = randomBytes(8 << 20);
    const received = readExactly(client, payload.length);
    for (let at = 0; at < payload.length; at += 100_000) client.write(payload.subarray(at, at + 100_000));
    const echoed = await received;
    expect(echoed.length).toBe(payload.length);
    expect(echoed.equals(payload)).toBe(true);
    client.destroy();
    server.close();
  });

  it('applies backpressure: writes wait until the reader drains the socket', async () => {
    const path = join(dir, 'pressure.sock');
    const server = await listen(`unix:${path}`);
    const accepted = nextConnection(server);
    const client = await connect(`unix:${path}`);
    const [serverSide] = await accepted;
    serverSide.pause();
    const chunk = Buffer.alloc(1 << 20, 7);
    let callbacks = 0;
    let accepting = true;
    for (let i = 0; i < 16 && accepting; i++) accepting = client.write(chunk, () => callbacks++);
    expect(accepting).toBe(false);
    await new Promise((r) => setTimeout(r, 100));
    // The kernel buffer is far below 16 MiB: most writes are still queued in the stream.
    expect(client.writableLength).toBeGreaterThan(0);
    const queued = client.writableLength;
    let total = 0;
    serverSide.on('data', (c: Buffer) => (total += c.length));
    serverSide.resume();
    await waitFor(client, 'drain');
    expect(queued).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 50));
    expect(callbacks).toBeGreaterThan(0);
    expect(total).toBeGreaterThan(0);
    client.destroy();
    server.close();
  });

  it('keeps serving after a client disconnects mid-frame, and answers bad frames with error', async () => {
    const path = join(dir, 'proto.sock');
    const server = await listen(`unix:${path}`);
    const received: Message[] = [];
    const closed: Array<Error | null> = [];
    server.on('connection', (stream: Duplex) => {
      const conn = new ProtocolConnection(stream, { peerSide: 'guest' });
      conn.on('message', (m) => received.push(m));
      conn.on('close', (e) => closed.push(e));
    });
    // Client 1: half a frame, then gone.
    const first = await connect(`unix:${path}`);
    first.write(Buffer.from([0, 0, 0, 50, 0x82, 0xa4]));
    await new Promise((r) => setTimeout(r, 30));
    first.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect(closed.length).toBe(1);
    // Client 2: an unknown type (answered with error), then a valid heartbeat.
    const second = await connect(`unix:${path}`);
    const conn = new ProtocolConnection(second, { peerSide: 'host' });
    const replies: Message[] = [];
    conn.on('message', (m) => replies.push(m));
    const body = new Packr({ useRecords: false }).pack({ type: 'reboot' });
    const frame = Buffer.alloc(4 + body.length);
    frame.writeUInt32BE(body.length, 0);
    body.copy(frame, 4);
    second.write(frame);
    conn.send({ type: 'heartbeat', seq: 9, tMs: 1 });
    await new Promise((r) => setTimeout(r, 100));
    expect(received).toEqual([{ type: 'heartbeat', seq: 9, tMs: 1 }]);
    expect(replies).toMatchObject([{ type: 'error', code: 'unknown-type' }]);
    conn.destroy();
    server.close();
  });

  it('leaks no file descriptors over many connections, and a closed handle fails cleanly', async () => {
    const path = join(dir, 'churn.sock');
    const server = await listen(`unix:${path}`);
    server.on('connection', (stream: Duplex) => stream.on('data', () => stream.end()).on('error', () => {}));
    const before = openFds();
    for (let i = 0; i < 200; i++) {
      const client = await connect(`unix:${path}`);
      const closed = new Promise((r) => client.on('close', r));
      client.write('x');
      client.resume();
      await closed;
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(openFds()).toBeLessThanOrEqual(before + 2);
    const { socketHandle } = await import('../native/addon.js');
    const { fd } = socketConnect('unix', { path });
    const handle = socketHandle(fd, 'stream', 'unix', () => {});
    handle.close();
    handle.close(); // idempotent
    expect(() => handle.write(new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => handle.setEvents(true, true)).not.toThrow();
    server.close();
  });

  it('replaces a stale socket file but refuses a live one', async () => {
    const path = join(dir, 'stale.sock');
    const first = await listen(`unix:${path}`);
    await expect(listen(`unix:${path}`)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    first.close();
    writeFileSync(join(dir, 'not-a-socket'), '');
    await expect(listen(`unix:${join(dir, 'not-a-socket')}`)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    // A socket file with nobody behind it (a crashed agent) is replaced.
    const fd = socketListen('unix', { path }, 1);
    const { socketHandle } = await import('../native/addon.js');
    const handle = socketHandle(fd, 'listen', 'unix', () => {});
    handle.close(); // closes the fd but leaves the file
    await new Promise((r) => setTimeout(r, 20));
    expect(existsSync(path)).toBe(true);
    const again = await listen(`unix:${path}`);
    again.close();
  });
});

describe('reconnecting client', () => {
  it('retries with growing delays until a late server appears, then reconnects after a drop', async () => {
    const path = join(dir, 'late.sock');
    const client = new ReconnectingClient(`unix:${path}`, { peerSide: 'host', initialDelayMs: 10, maxDelayMs: 80 });
    const delays: number[] = [];
    client.on('reconnecting', ({ delayMs }) => delays.push(delayMs));
    client.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(client.connected).toBe(false);
    expect(client.send({ type: 'heartbeat', seq: 1, tMs: 1 })).toBe(false);
    expect(delays.slice(0, 4)).toEqual([10, 20, 40, 80]);
    expect(Math.max(...delays)).toBe(80);

    const server = await listen(`unix:${path}`);
    const messages: Message[] = [];
    let serverConn: ProtocolConnection | undefined;
    server.on('connection', (stream: Duplex) => {
      serverConn = new ProtocolConnection(stream, { peerSide: 'guest' });
      serverConn.on('message', (m) => messages.push(m));
    });
    await waitFor(client, 'connected');
    expect(client.connected).toBe(true);
    expect(client.send({ type: 'heartbeat', seq: 2, tMs: 2 })).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(messages).toEqual([{ type: 'heartbeat', seq: 2, tMs: 2 }]);

    // The host drops the connection: the client notices and comes back.
    serverConn!.destroy();
    await waitFor(client, 'disconnected');
    await waitFor(client, 'connected');
    expect(client.connects).toBe(2);
    client.stop();
    server.close();
  });
});

describe('reconnecting client against a peer that accepts and drops', () => {
  it('keeps backing off until the peer sends something', async () => {
    const path = join(dir, 'dropper.sock');
    const server = await listen(`unix:${path}`);
    let accepted = 0;
    server.on('connection', (stream: Duplex) => {
      accepted++;
      stream.destroy();
    });
    const client = new ReconnectingClient(`unix:${path}`, { peerSide: 'host', initialDelayMs: 10, maxDelayMs: 80 });
    const delays: number[] = [];
    client.on('reconnecting', ({ delayMs }) => delays.push(delayMs));
    client.start();
    await new Promise((r) => setTimeout(r, 400));
    client.stop();
    server.close();
    expect(accepted).toBeGreaterThanOrEqual(4);
    // Connected every time, yet the delay grows to the cap instead of resetting to 10 ms.
    expect(delays.slice(0, 4)).toEqual([10, 20, 40, 80]);
    expect(accepted).toBeLessThan(15);
  });
});

describe('serial and tcp transports', () => {
  let socat: ChildProcess | undefined;
  const children: ChildProcess[] = [];
  afterAll(() => {
    if (socat?.pid) socat.kill();
    for (const child of children) if (child.exitCode === null) child.kill();
  });

  it('carries frames between a pty (the guest port) and a chardev-style unix socket (the host side)', async () => {
    // socat stands in for QEMU: a unix socket on the host side, a character device in the guest.
    const sock = join(dir, 'chardev.sock');
    const port = join(dir, 'virtio-port');
    socat = spawn('socat', [`PTY,raw,echo=0,link=${port}`, `UNIX-LISTEN:${sock}`], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !(existsSync(sock) && existsSync(port)); i++) await new Promise((r) => setTimeout(r, 20));
    expect(existsSync(port)).toBe(true);
    const guestStream = await connect(`serial:${port}`);
    const hostStream = await connect(`serial:${sock}`);
    const guest = new ProtocolConnection(guestStream, { peerSide: 'host' });
    const host = new ProtocolConnection(hostStream, { peerSide: 'guest' });
    const atHost = waitFor<Message>(host, 'message');
    const atGuest = waitFor<Message>(guest, 'message');
    guest.send({ type: 'heartbeat', seq: 1, tMs: 5 });
    host.send({ type: 'budget', dramBudgetPages: 1234 });
    expect(await atHost).toEqual({ type: 'heartbeat', seq: 1, tMs: 5 });
    expect(await atGuest).toEqual({ type: 'budget', dramBudgetPages: 1234 });
    guest.destroy();
    host.destroy();
  });

  it('a guest on a serial port comes back after the host side goes away', async () => {
    const sock = join(dir, 'chardev2.sock');
    const port = join(dir, 'virtio-port2');
    const startSocat = async () => {
      const child = spawn('socat', [`PTY,raw,echo=0,link=${port}`, `UNIX-LISTEN:${sock}`], { stdio: 'ignore' });
      children.push(child);
      for (let i = 0; i < 100 && !(existsSync(sock) && existsSync(port)); i++) await new Promise((r) => setTimeout(r, 20));
      return child;
    };
    let chardev = await startSocat();
    const guest = new ReconnectingClient(`serial:${port}`, { peerSide: 'host', initialDelayMs: 20, maxDelayMs: 100 });
    const budgets: number[] = [];
    guest.on('message', (m) => m.type === 'budget' && budgets.push(m.dramBudgetPages));
    guest.start();
    await waitFor(guest, 'connected');
    const hostSide = async (pages: number) => {
      const conn = new ProtocolConnection(await connect(`serial:${sock}`), { peerSide: 'guest' });
      conn.send({ type: 'budget', dramBudgetPages: pages });
      return conn;
    };
    const host1 = await hostSide(111);
    for (let i = 0; i < 100 && budgets.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(budgets).toEqual([111]);

    // QEMU's side goes away: the port reports EOF/EIO, the guest retries with backoff.
    host1.destroy();
    chardev.kill();
    await waitFor(guest, 'disconnected');
    await new Promise((r) => setTimeout(r, 150));
    expect(guest.connected).toBe(false);

    chardev = await startSocat();
    await waitFor(guest, 'connected');
    const host2 = await hostSide(222);
    for (let i = 0; i < 100 && budgets.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(budgets).toEqual([111, 222]);
    guest.stop();
    host2.destroy();
    chardev.kill();
  });

  it('tcp works on loopback and refuses to listen elsewhere', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const server = await listen(`tcp:127.0.0.1:${port}`);
    const accepted = nextConnection(server);
    const client = await connect(`tcp:127.0.0.1:${port}`);
    const [serverSide, peer] = await accepted;
    expect(peer).toMatchObject({ kind: 'tcp', remoteAddress: '127.0.0.1' });
    serverSide.pipe(serverSide);
    client.write('ping');
    expect((await readExactly(client, 4)).toString()).toBe('ping');
    client.destroy();
    await expect(listen('tcp:10.0.0.1:7000')).rejects.toThrow(/loopback/);
    server.close();
  });
});
