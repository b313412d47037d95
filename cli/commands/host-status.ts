// `vtier host status`: what a running host agent is doing, per VM.
import type { Command } from 'commander';
import { action, examples } from '../command.js';
import { UserError, printResult, type OutputOptions } from '../output.js';
import { fetchStatus } from '../../host-agent/status.js';
import type { HostStatus } from '../../host-agent/server.js';
import { safeText } from '../../host-agent/text.js';

interface HostStatusOptions extends OutputOptions {
  socket: string;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export function formatStatus(s: HostStatus): string {
  const lines = [`host agent pid ${s.pid} since ${s.startedAt}; DRAM nodes ${s.dramNodes.join(',') || '-'}, CXL nodes ${s.cxlNodes.join(',') || '-'} (${s.nodeSplit})`];
  // Every string below may have come from a guest or a QEMU: escaped, bounded, one line each.
  for (const n of s.notes) lines.push(`note: ${safeText(n, 512)}`);
  if (s.unknownPeers > 0) lines.push(`dropped connections from unknown peers: ${s.unknownPeers}`);
  const rows = [['VM', 'CONNECTED', 'SOURCE', 'STATE', 'DRAM GiB', 'CXL GiB', 'BUDGET GiB', 'PROMOTE MB/s', 'DEMOTE MB/s', 'FAILURES']];
  for (const v of s.vms) {
    const failures = Object.entries(v.failures)
      .filter(([, n]) => n > 0)
      .map(([reason, n]) => `${reason} ${n}`)
      .join(', ');
    rows.push([
      safeText(v.name, 64),
      v.connected ? 'yes' : 'no',
      v.source === undefined ? '-' : safeText(v.source, 32),
      v.state,
      ((v.dramPages * 4096) / GiB).toFixed(2),
      ((v.cxlPages * 4096) / GiB).toFixed(2),
      ((v.dramBudgetPages * 4096) / GiB).toFixed(2),
      (v.promotedBytesPerSec / MiB).toFixed(1),
      (v.demotedBytesPerSec / MiB).toFixed(1),
      failures || '-',
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) lines.push(r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd());
  for (const v of s.vms) {
    const extra: string[] = [];
    if (v.lastError) extra.push(`last error: ${safeText(v.lastError, 512)}`);
    if (v.throttled > 0) extra.push(`throttled ${v.throttled}`);
    if (v.protocolErrors > 0) extra.push(`protocol errors ${v.protocolErrors}`);
    if (v.refusedConnections > 0) extra.push(`refused hellos ${v.refusedConnections}`);
    if (v.retryPending > 0) extra.push(`busy pages queued ${v.retryPending}`);
    if (v.ramMismatchPages > 0) extra.push(`guest declares ${v.ramMismatchPages} RAM pages QEMU does not have: check which VM this is`);
    if (extra.length > 0) lines.push(`${safeText(v.name, 64)}: ${extra.join('; ')}`);
  }
  return lines.join('\n');
}

export function registerHostStatus(host: Command): void {
  const cmd = host
    .command('status')
    .description('show what the running host agent is doing: per VM connection, DRAM/CXL placement, migration rates, failures')
    .option('--socket <path>', 'status socket of the running agent', '/run/vtier/host-status.sock');
  examples(cmd, ['vtier host status', 'vtier host status --socket /tmp/vtier-status.sock --json']);
  action<HostStatusOptions>(cmd, async (_args, options) => {
    let status: HostStatus;
    try {
      status = await fetchStatus(options.socket);
    } catch (err) {
      throw new UserError((err as Error).message, 'not-running');
    }
    printResult(options, status, () => formatStatus(status));
  });
}
