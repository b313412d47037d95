// How `vtier host status` reaches a running agent: a local unix socket that answers every
// connection with one JSON document, and an optional Prometheus text endpoint on loopback.
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { dirname } from 'node:path';
import type { HostStatus } from './server.js';
import { MOVE_FAILURES } from './migrator.js';

export interface StatusEndpoints {
  /** The Prometheus port actually bound (useful with port 0). */
  prometheusPort?: number;
  close(): void;
}

/** Serves `getStatus()` on a unix socket (mode 0600) and optionally as Prometheus text. */
export async function serveStatus(getStatus: () => HostStatus, socketPath: string, prometheus?: { host: string; port: number }): Promise<StatusEndpoints> {
  mkdirSync(dirname(socketPath), { recursive: true });
  try {
    unlinkSync(socketPath);
  } catch {
    /* not there */
  }
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
      server.close();
      http?.close();
      try {
        unlinkSync(socketPath);
      } catch {
        /* gone */
      }
    },
  };
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
  metric('vtier_vm_throttled_total', 'Decisions messages dropped for flooding', 'counter', per((v) => v.throttled));
  metric('vtier_vm_protocol_errors_total', 'Bad frames received', 'counter', per((v) => v.protocolErrors));
  return `${lines.join('\n')}\n`;
}
