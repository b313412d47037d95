// npm run bench:transport — the transport and protocol costs, side by side in one run:
//  1. bulk throughput over a unix socket: the native socket path (uv_poll + read/send, the
//     code AF_VSOCK uses) vs Node's own net module on the same kind of socket, as a ratio;
//  2. protocol: encode + decode of decisions frames (runs/s and frames/s, no socket);
//  3. small-frame rate through ProtocolConnection (heartbeats), native vs node:net.
// Runs alternate native/net three times each and keep each side's best, so background noise
// on a shared machine hits both. Options: --quick, --json.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { FrameDecoder, encodeMessage } from '../src/protocol/index.js';
import { runsFrom } from '../src/samples.js';
import { ProtocolConnection } from '../transport/connection.js';
import { connect, listen } from '../transport/index.js';

const quick = process.argv.includes('--quick');
const asJson = process.argv.includes('--json');
const log = (line: string) => {
  if (!asJson) process.stdout.write(`${line}\n`);
};

/** Sends `totalBytes` from client to server in 64 KiB writes; resolves with bytes/s. */
async function pump(client: Duplex, server: Duplex, totalBytes: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  let received = 0;
  const done = new Promise<void>((resolve) => {
    server.on('data', (data: Buffer) => {
      received += data.length;
      if (received >= totalBytes) resolve();
    });
  });
  const start = performance.now();
  let sent = 0;
  while (sent < totalBytes) {
    if (!client.write(chunk)) await new Promise((r) => client.once('drain', r));
    sent += chunk.length;
  }
  await done;
  return (totalBytes / (performance.now() - start)) * 1000;
}

async function nativePair(path: string): Promise<{ client: Duplex; server: Duplex; close: () => void }> {
  const srv = await listen(`unix:${path}`);
  const accepted = new Promise<Duplex>((resolve) => srv.once('connection', (s: Duplex) => resolve(s)));
  const client = await connect(`unix:${path}`);
  const server = await accepted;
  return { client, server, close: () => (client.destroy(), server.destroy(), srv.close()) };
}

async function netPair(path: string): Promise<{ client: Duplex; server: Duplex; close: () => void }> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(path, resolve));
  const accepted = new Promise<Duplex>((resolve) => srv.once('connection', resolve));
  const client = net.connect(path);
  await new Promise((r) => client.once('connect', r));
  const server = await accepted;
  return { client, server, close: () => (client.destroy(), server.destroy(), srv.close()) };
}

async function bulk(dir: string): Promise<{ bytes: number; nativeMBps: number; netMBps: number; ratio: number }> {
  const bytes = (quick ? 64 : 512) * 2 ** 20;
  let nativeBest = 0;
  let netBest = 0;
  for (let round = 0; round < 3; round++) {
    const a = await nativePair(join(dir, `native-${round}.sock`));
    nativeBest = Math.max(nativeBest, await pump(a.client, a.server, bytes));
    a.close();
    const b = await netPair(join(dir, `net-${round}.sock`));
    netBest = Math.max(netBest, await pump(b.client, b.server, bytes));
    b.close();
  }
  return { bytes, nativeMBps: nativeBest / 2 ** 20, netMBps: netBest / 2 ** 20, ratio: nativeBest / netBest };
}

function codec(): { runsPerFrame: number; frames: number; encodeRunsPerSec: number; decodeRunsPerSec: number; frameBytes: number } {
  const runsPerFrame = 1000;
  const rows: Array<[number, number]> = [];
  for (let i = 0; i < runsPerFrame; i++) rows.push([0x100000 + i * 7, 1 + (i % 3)]);
  const promote = runsFrom(rows);
  const demote = runsFrom(rows.slice(0, 100));
  const frames = quick ? 2000 : 20000;
  let frame = encodeMessage({ type: 'decisions', epoch: 0, promote, demote });
  let start = performance.now();
  for (let i = 0; i < frames; i++) frame = encodeMessage({ type: 'decisions', epoch: i, promote, demote });
  const encodeMs = performance.now() - start;
  const decoder = new FrameDecoder({ from: 'guest' });
  let decoded = 0;
  start = performance.now();
  for (let i = 0; i < frames; i++) decoded += decoder.push(frame).length;
  const decodeMs = performance.now() - start;
  if (decoded !== frames) throw new Error(`decoded ${decoded} of ${frames} frames`);
  const runs = frames * (runsPerFrame + 100);
  return { runsPerFrame: runsPerFrame + 100, frames, encodeRunsPerSec: (runs / encodeMs) * 1000, decodeRunsPerSec: (runs / decodeMs) * 1000, frameBytes: frame.length };
}

async function smallFrames(dir: string, kind: 'native' | 'net', round: number): Promise<number> {
  const frames = quick ? 20_000 : 100_000;
  const pair = await (kind === 'native' ? nativePair : netPair)(join(dir, `small-${kind}-${round}.sock`));
  const sender = new ProtocolConnection(pair.client, { peerSide: 'host' });
  const receiver = new ProtocolConnection(pair.server, { peerSide: 'guest' });
  let got = 0;
  const done = new Promise<void>((resolve) =>
    receiver.on('message', () => {
      if (++got === frames) resolve();
    }),
  );
  const start = performance.now();
  for (let i = 0; i < frames; i++) {
    if (!sender.send({ type: 'heartbeat', seq: i, tMs: i })) await new Promise((r) => pair.client.once('drain', r));
  }
  await done;
  const ms = performance.now() - start;
  pair.close();
  return (frames / ms) * 1000;
}

async function smallFramesBoth(dir: string): Promise<{ nativeFramesPerSec: number; netFramesPerSec: number; ratio: number }> {
  let nativeBest = 0;
  let netBest = 0;
  for (let round = 0; round < 3; round++) {
    nativeBest = Math.max(nativeBest, await smallFrames(dir, 'native', round));
    netBest = Math.max(netBest, await smallFrames(dir, 'net', round));
  }
  return { nativeFramesPerSec: nativeBest, netFramesPerSec: netBest, ratio: nativeBest / netBest };
}

const dir = mkdtempSync(join(tmpdir(), 'vtier-bench-transport-'));
try {
  const b = await bulk(dir);
  log(`1. unix socket bulk, ${b.bytes / 2 ** 20} MiB in 64 KiB writes (best of 3 alternating):`);
  log(`   native (uv_poll, the vsock code path) ${b.nativeMBps.toFixed(0)} MiB/s, node:net ${b.netMBps.toFixed(0)} MiB/s, ratio native/net ${b.ratio.toFixed(2)}`);
  const c = codec();
  log(`2. decisions codec, ${c.runsPerFrame} runs per frame (${c.frameBytes} bytes), ${c.frames} frames:`);
  log(`   encode ${(c.encodeRunsPerSec / 1e6).toFixed(1)} M runs/s, decode+validate ${(c.decodeRunsPerSec / 1e6).toFixed(1)} M runs/s`);
  const s = await smallFramesBoth(dir);
  log(`3. heartbeat frames through ProtocolConnection over a unix socket (best of 3 alternating):`);
  log(`   native ${(s.nativeFramesPerSec / 1e3).toFixed(0)} k frames/s, node:net ${(s.netFramesPerSec / 1e3).toFixed(0)} k frames/s, ratio ${s.ratio.toFixed(2)}`);
  if (asJson) process.stdout.write(`${JSON.stringify({ bulk: b, codec: c, smallFrames: s }, null, 2)}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
