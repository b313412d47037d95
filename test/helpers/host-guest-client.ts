// A scripted guest for host-agent tests: raw frames out, decoded host messages in.
import { connect, type Socket } from 'node:net';
import { Packr } from 'msgpackr';
import { FrameDecoder, encodeMessage, PROTOCOL_VERSION, type Message } from '../../src/protocol/index.js';
import { runsFrom } from '../../src/samples.js';

const packr = new Packr({ useRecords: false, variableMapSize: true });

export class TestGuest {
  readonly messages: Message[] = [];
  readonly errors: string[] = [];
  closed = false;
  private readonly decoder = new FrameDecoder({ from: 'host', maxFrameBytes: 16 << 20 });
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => {
      for (const r of this.decoder.push(chunk)) {
        if (r.ok) this.messages.push(r.message);
        else this.errors.push(r.error.message);
      }
      this.wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static connect(path: string): Promise<TestGuest> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => resolve(new TestGuest(socket)));
      socket.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(msg: Message): void {
    this.socket.write(encodeMessage(msg));
  }

  /** A frame around any msgpack value (bypasses the encoder's validation). */
  sendRaw(value: unknown): void {
    this.sendBody(packr.pack(value));
  }

  sendBody(body: Uint8Array): void {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length);
    this.socket.write(Buffer.concat([header, body]));
  }

  hello(vmName?: string): void {
    this.send({ type: 'hello', protocolVersion: PROTOCOL_VERSION, agentVersion: 'test', pageSize: 4096, ramRanges: runsFrom([[0, 1024]]), source: 'test', epochMs: 500, ...(vmName ? { vmName } : {}) });
  }

  /** Waits until `pred` holds over the received messages (or the socket closed). */
  async waitFor<T extends Message>(pred: (m: Message) => m is T, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(pred);
      if (found) return found;
      if (this.closed) throw new Error(`connection closed; received: ${this.messages.map((m) => m.type + ('code' in m ? `:${m.code}` : '')).join(', ')}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout; received: ${this.messages.map((m) => m.type).join(', ')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async waitClosed(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection still open');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

export const isType =
  <K extends Message['type']>(type: K) =>
  (m: Message): m is Extract<Message, { type: K }> =>
    m.type === type;

export const isError =
  (code: string) =>
  (m: Message): m is Extract<Message, { type: 'error' }> =>
    m.type === 'error' && m.code === code;
