// Native sockets on several threads at once (issue 13 item 10): each worker_thread (and the
// main thread) runs its own unix socket pair through the native handles and checks every
// byte it receives. The read buffer used to be one static array shared by all threads.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

const DIST = join(process.cwd(), 'dist/transport/index.js');

// Runs in each thread: listen, connect, send `mib` MiB of byte `fill`, verify on the far side.
const PUMP = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { listen, connect } = await import(workerData.dist);
  const { path, fill, mib } = workerData;
  const server = await listen({ kind: 'unix', path });
  let bad = 0, got = 0;
  const total = mib << 20;
  const done = new Promise((resolve) => {
    server.on('connection', (s) => {
      s.on('data', (chunk) => {
        for (let i = 0; i < chunk.length; i++) if (chunk[i] !== fill) bad++;
        got += chunk.length;
        if (got >= total) resolve();
      });
    });
  });
  const c = await connect({ kind: 'unix', path });
  const block = Buffer.alloc(64 * 1024, fill);
  for (let sent = 0; sent < total; sent += block.length) {
    if (!c.write(block)) await new Promise((r) => c.once('drain', r));
  }
  await done;
  c.destroy();
  server.close();
  parentPort.postMessage({ bad, got });
})().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
`;

function pump(path: string, fill: number, mib: number): Promise<{ bad: number; got: number; error?: string }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(PUMP, { eval: true, workerData: { dist: DIST, path, fill, mib } });
    let result: { bad: number; got: number; error?: string } | undefined;
    w.once('message', (m) => (result = m));
    // The worker ends by itself once its sockets are closed (its loop empties).
    w.once('exit', () => (result ? resolve(result) : reject(new Error('worker exited without a result'))));
    w.once('error', reject);
  });
}

describe('native sockets across worker threads', () => {
  it.skipIf(!existsSync(DIST))('delivers each thread its own bytes, none of another thread', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtier-threads-'));
    try {
      const results = await Promise.all([1, 2, 3, 4].map((fill) => pump(join(dir, `t${fill}.sock`), fill, 32)));
      for (const r of results) {
        expect(r.error).toBeUndefined();
        expect(r.got).toBe(32 << 20);
        expect(r.bad).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
