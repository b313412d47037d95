// How `vtier host status` reaches a running agent: a local unix socket that answers every
// connection with one JSON document, and an optional Prometheus text endpoint on loopback.
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { dirname } from 'node:path';
import type { HostStatus } from './server.js';
import { MOVE_FAILURES, MOVE_LATENCY_BUCKETS_S } from './migrator.js';

export interface StatusEndpoints {
  /** The Prometheus port actually bound (useful with port 0). */
  prometheusPort?: number;
  close(): void;
}

/** Serves `getStatus()` on a unix socket (mode 0600) and optionally as Prometheus text. */
export async function serveStatus(getStatus: () => HostStatus, socketPath: string, prometheus?: { host: string; port: number }): Promise<StatusEndpoints> {
  mkdirSync(dirname(socketPath), { recursive: true });
  await removeStaleSocket(socketPath);
  const server: Server = createServer((socket) => {
    socket.on('error', () => {});
    socket.end(`${JSON.stringify(getStatus())}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  let http: HttpServer | undefined;
  if (prometheus) {
    http = createHttpServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(prometheusText(getStatus()));
    });
    await new Promise<void>((resolve, reject) => {
      http!.once('error', reject);
      http!.listen(prometheus.port, prometheus.host, () => resolve());
    });
  }
  const address = http?.address();
  return {
    prometheusPort: address && typeof address === 'object' ? address.port : undefined,
    close() {
      // libuv unlinks the listening path when the server closes.
      server.close();
      http?.close();
    },
  };
}

/** Makes room for the status socket: nothing there, or a socket nobody answers on (a
 *  previous agent that died) is removed. Anything else — a regular file, a directory, a
 *  symlink, a live agent's socket — is left alone and refused. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let st;
  try {
    st = lstatSync(socketPath);
  } catch {
    return; // not there
  }
  if (!st.isSocket()) throw new Error(`statusSocket ${socketPath}: exists and is not a socket (${st.isSymbolicLink() ? 'a symlink' : st.isDirectory() ? 'a directory' : 'a file'}); refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(socketPath);
    const timer = setTimeout(() => {
      probe.destroy();
      resolve(true); // accepted but silent: someone is there
    }, 1000);
    probe.once('connect', () => {
      clearTimeout(timer);
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code !== 'ECONNREFUSED' && err.code !== 'ENOENT');
    });
  });
  if (live) throw new Error(`statusSocket ${socketPath}: another agent answers there; refusing to replace it`);
  unlinkSync(socketPath);
}

/** Reads the status of the agent listening on `socketPath`. */
export function fetchStatus(socketPath: string, timeoutMs = 3000): Promise<HostStatus> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`status socket ${socketPath}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (d) => {
      text += d;
      if (text.length > 16 << 20) socket.destroy(new Error('status too large'));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`status socket ${socketPath}: ${err.code ?? err.message} (is "vtier host run" running?)`), { code: err.code }));
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(text) as HostStatus);
      } catch {
        reject(new Error(`status socket ${socketPath}: not a status document`));
      }
    });
  });
}

function label(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

export function prometheusText(s: HostStatus): string {
  const lines: string[] = [];
  const metric = (name: string, help: string, type: 'gauge' | 'counter', rows: Array<[string, number]>) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of rows) lines.push(`${name}{${labels}} ${Number.isFinite(v) ? v : 0}`);
  };
  const per = (f: (v: HostStatus['vms'][number]) => number): Array<[string, number]> => s.vms.map((v) => [`vm="${label(v.name)}"`, f(v)]);
  metric('vtier_vm_connected', 'Guest agent connected (1) or not (0)', 'gauge', per((v) => (v.connected ? 1 : 0)));
  metric('vtier_vm_dram_bytes', 'VM memory on DRAM nodes (kernel placement)', 'gauge', per((v) => v.dramPages * 4096));
  metric('vtier_vm_cxl_bytes', 'VM memory on CXL nodes (kernel placement)', 'gauge', per((v) => v.cxlPages * 4096));
  metric('vtier_vm_dram_budget_bytes', 'DRAM granted to the VM', 'gauge', per((v) => v.dramBudgetPages * 4096));
  metric('vtier_vm_promoted_bytes_total', 'Bytes promoted to DRAM', 'counter', per((v) => v.promotedPages * 4096));
  metric('vtier_vm_demoted_bytes_total', 'Bytes demoted to CXL', 'counter', per((v) => v.demotedPages * 4096));
  metric(
    'vtier_vm_move_failures_total',
    'Pages not moved, by reason',
    'counter',
    s.vms.flatMap((v) => MOVE_FAILURES.map((f) => [`vm="${label(v.name)}",reason="${f}"`, v.failures[f] ?? 0] as [string, number])),
  );
  metric('vtier_vm_throttled_total', 'Messages dropped for flooding (decisions, heartbeats)', 'counter', per((v) => v.throttled));
  metric('vtier_vm_protocol_errors_total', 'Bad frames received', 'counter', per((v) => v.protocolErrors));
  metric('vtier_vm_decisions_total', 'Decisions messages accepted from the guest', 'counter', per((v) => v.decisions));
  metric('vtier_vm_refused_runs_total', 'Runs of guest decisions refused (outside guest RAM, malformed, too many pages)', 'counter', per((v) => v.refusedRuns ?? 0));
  metric(
    'vtier_vm_move_pages_calls_total',
    'move_pages(2) calls on the VM process, by mode (move, or query placement)',
    'counter',
    s.vms.flatMap((v) => [[`vm="${label(v.name)}",mode="move"`, v.moveCalls] as [string, number], [`vm="${label(v.name)}",mode="query"`, v.queryCalls] as [string, number]]),
  );
  lines.push('# HELP vtier_vm_move_seconds Wall time of one move_pages(2) call in move mode', '# TYPE vtier_vm_move_seconds histogram');
  for (const v of s.vms) {
    const h = v.moveLatency ?? { buckets: MOVE_LATENCY_BUCKETS_S.map(() => 0), sumSeconds: 0, count: 0 };
    const vm = `vm="${label(v.name)}"`;
    MOVE_LATENCY_BUCKETS_S.forEach((le, i) => lines.push(`vtier_vm_move_seconds_bucket{${vm},le="${le}"} ${h.buckets[i] ?? 0}`));
    lines.push(`vtier_vm_move_seconds_bucket{${vm},le="+Inf"} ${h.count}`, `vtier_vm_move_seconds_sum{${vm}} ${h.sumSeconds}`, `vtier_vm_move_seconds_count{${vm}} ${h.count}`);
  }
  metric('vtier_build_info', 'The running agent: vtier and Node versions', 'gauge', [[`version="${label(s.version ?? 'unknown')}",node="${label(s.nodeVersion ?? 'unknown')}"`, 1]]);
  return `${lines.join('\n')}\n`;
}
