// npm run bench:soak — the host agent under a long mixed load (issue 13): `vtier host run`
// as its own process serving 8 VMs (local targets: small processes whose pages the agent
// really queries and moves) whose guests send decisions at their rate limit, plus one hostile
// guest on a 9th VM cycling through the attacks the agent must survive (reconnect floods,
// heartbeat floods, half frames, oversized frames, msgpack length bombs, control-character
// strings, runs of 2^32 pages, squatters without hello, hellos claiming another VM).
// Reported: the agent's RSS over time (bounded: end <= 1.2x the RSS after warm-up), its fd
// count, per-VM report latency p50/p99 and lost reports (decisions sent and neither answered
// nor throttled; must be 0).
// Options: --duration 10m (default), --vms 8, --rate 10 (decisions/s per VM), --json.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameDecoder, encodeMessage, PROTOCOL_VERSION, type Message } from '../src/protocol/index.js';
import { runsFrom } from '../src/samples.js';
import { parseDurationMs } from '../src/util/units.js';
import { LocalProcessTranslator } from '../host-agent/local-target.js';
import { fetchStatus } from '../host-agent/status.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const asJson = process.argv.includes('--json');
const durationMs = parseDurationMs(arg('duration', '10m'), 'duration');
const vmCount = Number(arg('vms', '8'));
const rate = Number(arg('rate', '10'));
const log = (line: string) => {
  if (!asJson) process.stdout.write(`${line}\n`);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}
const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** A guest over a unix socket: frames out, decoded messages to a callback. */
function dial(path: string, onMessage: (m: Message) => void): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    const dec = new FrameDecoder({ from: 'host', maxFrameBytes: 16 << 20 });
    s.on('data', (c) => {
      for (const r of dec.push(c)) if (r.ok) onMessage(r.message);
    });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
    s.on('error', () => {});
  });
}

function hello(vmName: string, source = 'soak') {
  return encodeMessage({ type: 'hello', protocolVersion: PROTOCOL_VERSION, agentVersion: 'soak', pageSize: 4096, ramRanges: runsFrom([[0, 1 << 20]]), source, epochMs: 100, vmName });
}

interface VmLoad {
  name: string;
  sock: string;
  frames: Float64Array;
  sent: number;
  reports: number;
  throttled: number;
  latenciesMs: number[];
  pending: Map<number, number>;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'vtier-soak-'));
  const children: ChildProcess[] = [];
  let agent: ChildProcess | undefined;
  let finished = false;
  try {
    // Targets: one small process per VM holding 16 MiB of touched pages.
    const names = [...Array.from({ length: vmCount }, (_, i) => `vm${i + 1}`), 'hostile'];
    for (let i = 0; i < names.length; i++) {
      // A small address space (not a node process, whose heap reservations make every
      // pagemap rebuild of the local target slow): 16 MiB touched, then sleep.
      const c = spawn('python3', ['-c', 'import time\nb = bytearray(b"\\x01" * (16 << 20))\nwhile True: time.sleep(1)'], { stdio: 'ignore' });
      children.push(c);
    }
    await sleep(500);
    const config = {
      vms: names.map((name, i) => ({ name, identity: { listen: `unix:${join(dir, `${name}.sock`)}` }, localPid: children[i].pid, dramBudget: '64M' })),
      statusSocket: join(dir, 'status.sock'),
      limits: { maxDecisionsPerSec: rate, maxHeartbeatsPerSec: 20, maxThrottledBeforeClose: 100, readTimeoutMs: 500, helloTimeoutMs: 2000 },
    };
    writeFileSync(join(dir, 'host.json'), JSON.stringify(config));
    let agentErr = '';
    agent = spawn(process.execPath, [join(process.cwd(), 'bin/vtier.js'), 'host', 'run', '--config', join(dir, 'host.json'), '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
    agent.stderr!.on('data', (d) => (agentErr = (agentErr + d).slice(-4000)));
    agent.on('exit', (code, signal) => {
      if (!finished) process.stderr.write(`agent exited (${code ?? signal}): ${agentErr}\n`);
    });
    for (let t = 0; ; t++) {
      const st = await fetchStatus(config.statusSocket, 1000).catch(() => undefined);
      if (st && st.vms.every((v) => v.state === 'ready')) break;
      if (t > 200) throw new Error('agent did not attach all VMs');
      await sleep(100);
    }
    const agentPid = agent.pid!;

    // Well-behaved guests: decisions at the rate limit, frames of their own process.
    const loads: VmLoad[] = [];
    for (let i = 0; i < vmCount; i++) {
      const t = new LocalProcessTranslator(children[i].pid!);
      t.rebuild();
      loads.push({ name: names[i], sock: join(dir, `${names[i]}.sock`), frames: Float64Array.from(t.frames()), sent: 0, reports: 0, throttled: 0, latenciesMs: [], pending: new Map() });
    }
    const sockets: Socket[] = [];
    let reconnects = 0;
    const open = async (i: number): Promise<void> => {
      const l = loads[i];
      const s = await dial(l.sock, (m) => {
        if (m.type === 'report') {
          const t0 = l.pending.get(m.epoch);
          if (t0 !== undefined) {
            l.latenciesMs.push(performance.now() - t0);
            l.pending.delete(m.epoch);
            l.reports++;
          }
        }
      });
      s.write(hello(l.name));
      sockets[i] = s;
      // Like the guest agent: a closed connection is re-dialled; what was in flight is lost.
      s.once('close', () => {
        if (stopLoad) return;
        reconnects++;
        l.pending.clear();
        void sleep(200).then(() => open(i)).catch(() => {});
      });
    };
    let stopLoad = false;
    for (let i = 0; i < loads.length; i++) await open(i);
    await sleep(300);
    let epoch = 1;
    const timers = loads.map((l, i) =>
      setInterval(() => {
        const e = epoch++;
        const k = Math.floor(Math.random() * Math.max(1, l.frames.length - 64));
        const runs: Array<[number, number]> = [];
        for (let j = 0; j < 16 && k + j * 4 < l.frames.length; j++) runs.push([l.frames[k + j * 4], 1]);
        if (sockets[i].destroyed) return;
        l.pending.set(e, performance.now());
        l.sent++;
        sockets[i].write(encodeMessage({ type: 'decisions', epoch: e, promote: runsFrom(runs), demote: runsFrom([]) }));
      }, 1000 / rate),
    );

    // The hostile guest: one attack every 100 ms, cycling.
    const hostileSock = join(dir, 'hostile.sock');
    const attacks: Array<() => Promise<void>> = [
      async () => {
        for (let r = 0; r < 5; r++) {
          const s = await dial(hostileSock, () => {});
          const frames = [hello('hostile')];
          for (let k = 0; k < 20; k++) frames.push(encodeMessage({ type: 'decisions', epoch: k, promote: runsFrom([[k, 1]]), demote: runsFrom([]) }));
          s.write(Buffer.concat(frames));
          s.destroy();
        }
      },
      async () => {
        const s = await dial(hostileSock, () => {});
        const frames = [hello('hostile')];
        for (let k = 0; k < 300; k++) frames.push(encodeMessage({ type: 'heartbeat', seq: k, tMs: 0 }));
        s.write(Buffer.concat(frames));
        setTimeout(() => s.destroy(), 200);
      },
      async () => {
        const s = await dial(hostileSock, () => {});
        s.write(Buffer.concat([hello('hostile'), Buffer.from([0, 0, 0, 40, 0x81])]));
        setTimeout(() => s.destroy(), 700);
      },
      async () => {
        const s = await dial(hostileSock, () => {});
        s.write(Buffer.concat([hello('hostile'), Buffer.from([0x7f, 0xff, 0xff, 0xff, 1, 2, 3])]));
        setTimeout(() => s.destroy(), 100);
      },
      async () => {
        const s = await dial(hostileSock, () => {});
        const bomb = (b: number[]) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), Buffer.from(b)]);
        s.write(Buffer.concat([hello('hostile'), bomb([0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61]), bomb([0xc6, 0xff, 0xff, 0xff, 0xff, 0x00])]));
        setTimeout(() => s.destroy(), 100);
      },
      async () => {
        const s = await dial(hostileSock, () => {});
        s.write(Buffer.concat([hello('hostile', 'x\u001b[2J\nforged'), encodeMessage({ type: 'error', code: 'a\u001b[31m', message: 'b\nvtier host: vm1: attached' })]));
        setTimeout(() => s.destroy(), 100);
      },
      async () => {
        const s = await dial(hostileSock, () => {});
        const runs: Array<[number, number]> = [];
        for (let k = 0; k < 4000; k++) runs.push([2 ** 40 + k * 2 ** 33, 0xffffffff]);
        s.write(Buffer.concat([hello('hostile'), encodeMessage({ type: 'decisions', epoch: 1, promote: runsFrom(runs), demote: runsFrom([]) })]));
        setTimeout(() => s.destroy(), 300);
      },
      async () => {
        const squatters = await Promise.all([0, 1, 2, 3, 4, 5].map(() => dial(hostileSock, () => {})));
        setTimeout(() => squatters.forEach((s) => s.destroy()), 300);
      },
      async () => {
        const s = await dial(hostileSock, () => {});
        s.write(hello('vm1'));
        setTimeout(() => s.destroy(), 100);
      },
    ];
    let attackCount = 0;
    let stopAttacks = false;
    const hostileLoop = (async () => {
      while (!stopAttacks) {
        await attacks[attackCount++ % attacks.length]().catch(() => {});
        await sleep(100);
      }
    })();

    // Sampling: RSS and fds every durationMs/30 (>= 1 s).
    const t0 = performance.now();
    const sampleMs = Math.max(1000, durationMs / 30);
    // The agent's own view of its memory (status): JS heap vs native (external) vs the rest,
    // to tell a JS leak from a native one when RSS grows.
    const samples: Array<{ tS: number; rssKiB: number; fds: number; heapUsedKiB?: number; externalKiB?: number; arrayBuffersKiB?: number }> = [];
    while (performance.now() - t0 < durationMs) {
      await sleep(Math.min(sampleMs, durationMs - (performance.now() - t0)));
      const mem = (await fetchStatus(config.statusSocket, 2000).catch(() => undefined))?.memory;
      const kib = (b: number | undefined) => (b === undefined ? undefined : Math.round(b / 1024));
      samples.push({ tS: Math.round((performance.now() - t0) / 1000), rssKiB: rssKiB(agentPid), fds: fdCount(agentPid), heapUsedKiB: kib(mem?.heapUsedBytes), externalKiB: kib(mem?.externalBytes), arrayBuffersKiB: kib(mem?.arrayBuffersBytes) });
      const last = samples[samples.length - 1];
      const mib = (k: number | undefined) => (k === undefined ? '?' : (k / 1024).toFixed(1));
      log(`t=${last.tS}s agent RSS ${mib(last.rssKiB)} MiB (JS heap used ${mib(last.heapUsedKiB)}, external ${mib(last.externalKiB)}), fds ${last.fds}, attacks ${attackCount}`);
    }
    timers.forEach(clearInterval);
    stopLoad = true;
    stopAttacks = true;
    await hostileLoop;
    await sleep(1500); // answers in flight
    const st = await fetchStatus(config.statusSocket);
    const perVm = loads.map((l) => {
      const s = st.vms.find((v) => v.name === l.name)!;
      const lat = [...l.latenciesMs].sort((a, b) => a - b);
      return {
        vm: l.name,
        sent: l.sent,
        reports: l.reports,
        throttled: s.throttled,
        lost: l.sent - l.reports - s.throttled,
        p50Ms: Number(percentile(lat, 50).toFixed(2)),
        p99Ms: Number(percentile(lat, 99).toFixed(2)),
      };
    });
    const hostile = st.vms.find((v) => v.name === 'hostile')!;
    const warm = samples[Math.min(samples.length - 1, Math.max(0, Math.floor(samples.length / 5) - 1))];
    const end = samples[samples.length - 1];
    const result = {
      durationS: Math.round(durationMs / 1000),
      vms: vmCount,
      ratePerVm: rate,
      attacks: attackCount,
      reconnects,
      hostile: { throttled: hostile.throttled, protocolErrors: hostile.protocolErrors, refusedConnections: hostile.refusedConnections, refusedRuns: hostile.refusedRuns },
      rss: { warmKiB: warm.rssKiB, endKiB: end.rssKiB, maxKiB: Math.max(...samples.map((s) => s.rssKiB)), endOverWarm: Number((end.rssKiB / warm.rssKiB).toFixed(3)) },
      heapUsedKiB: { warm: warm.heapUsedKiB, end: end.heapUsedKiB },
      externalKiB: { warm: warm.externalKiB, end: end.externalKiB },
      fds: { start: samples[0].fds, end: end.fds, max: Math.max(...samples.map((s) => s.fds)) },
      perVm,
      lostReports: perVm.reduce((n, v) => n + Math.max(0, v.lost), 0),
      samples,
      pass: end.rssKiB <= 1.2 * warm.rssKiB && perVm.every((v) => v.lost <= 0),
    };
    sockets.forEach((s) => s.destroy());
    if (asJson) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } else {
      log(`\n${vmCount} VMs at ${rate} decisions/s for ${result.durationS} s, ${attackCount} attacks from the hostile guest`);
      log(`agent RSS after warm-up ${(warm.rssKiB / 1024).toFixed(1)} MiB, end ${(end.rssKiB / 1024).toFixed(1)} MiB (x${result.rss.endOverWarm}), max ${(result.rss.maxKiB / 1024).toFixed(1)} MiB; fds ${result.fds.start} -> ${result.fds.end} (max ${result.fds.max})`);
      log(`agent JS heap used ${result.heapUsedKiB.warm ?? '?'} -> ${result.heapUsedKiB.end ?? '?'} KiB, external ${result.externalKiB.warm ?? '?'} -> ${result.externalKiB.end ?? '?'} KiB (warm-up -> end)`);
      log('VM     sent  reports  throttled  lost  p50 ms  p99 ms');
      for (const v of perVm) log(`${v.vm.padEnd(6)} ${String(v.sent).padStart(5)}  ${String(v.reports).padStart(7)}  ${String(v.throttled).padStart(9)}  ${String(v.lost).padStart(4)}  ${v.p50Ms.toFixed(2).padStart(6)}  ${v.p99Ms.toFixed(2).padStart(6)}`);
      log(`well-behaved guests re-dialled ${reconnects} times (closed by the agent for flooding)`);
      log(`hostile VM: throttled ${hostile.throttled}, protocol errors ${hostile.protocolErrors}, refused connections ${hostile.refusedConnections}, refused runs ${hostile.refusedRuns}`);
      log(result.pass ? 'PASS: RSS bounded, 0 lost reports' : 'FAIL: RSS grew past 1.2x warm-up or reports were lost');
    }
    if (!result.pass) process.exitCode = 1;
  } finally {
    finished = true;
    if (agent && agent.exitCode === null) agent.kill('SIGTERM');
    await sleep(300);
    if (agent && agent.exitCode === null) agent.kill('SIGKILL');
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
