// `vtier host run`: the host agent. Serves the configured VMs' guest agents, moves their
// pages with move_pages, exposes its status on a local socket until SIGINT/SIGTERM.
import type { Command } from 'commander';
import { action, examples } from '../command.js';
import { UserError, printResult, type OutputOptions } from '../output.js';
import { readHostConfig } from '../../host-agent/config.js';
import { HostServer, type HostStatus } from '../../host-agent/server.js';
import { serveStatus } from '../../host-agent/status.js';
import { safeText } from '../../host-agent/text.js';
import { formatStatus } from './host-status.js';
import { parseDurationMs } from '../../src/util/units.js';

interface HostRunOptions extends OutputOptions {
  config: string;
  statusSocket?: string;
  duration?: string;
  quiet?: boolean;
}

export function registerHostRun(host: Command): void {
  const cmd = host
    .command('run')
    .description('run the host agent: serve the VMs in host.json and move their pages between DRAM and CXL nodes')
    .requiredOption('--config <path>', 'host configuration (see docs/host-config.md)')
    .option('--status-socket <path>', 'where `vtier host status` finds this agent (overrides host.json statusSocket)')
    .option('--duration <duration>', 'stop after this long (default: until SIGINT/SIGTERM)')
    .option('-q, --quiet', 'no log lines on stderr');
  examples(cmd, [
    'vtier host run --config /etc/vtier/host.json',
    'vtier host run --config host.json --status-socket /tmp/vtier-status.sock --duration 60s --json',
  ]);
  action<HostRunOptions>(cmd, async (_args, options) => {
    const config = readHostConfig(options.config);
    if (options.statusSocket) config.statusSocket = options.statusSocket;
    const durationMs = options.duration ? parseDurationMs(options.duration, 'duration') : undefined;
    // QMP and guest strings reach these lines: control characters escaped, one line each.
    const log = options.quiet ? () => {} : (line: string) => process.stderr.write(`vtier host: ${safeText(line, 4096)}\n`);
    const server = new HostServer({ config, log });
    try {
      await server.start();
    } catch (err) {
      server.stop();
      const e = err as NodeJS.ErrnoException;
      throw new UserError(`cannot listen: ${e.message}${e.code === 'EACCES' ? ' (run as root)' : ''}`, 'listen-failed');
    }
    let endpoints;
    try {
      endpoints = await serveStatus(() => server.status(), config.statusSocket, config.prometheus);
    } catch (err) {
      server.stop();
      throw new UserError(`status endpoint: ${(err as Error).message}`, 'listen-failed');
    }
    const st = server.status();
    log(`DRAM nodes ${st.dramNodes.join(',') || '-'}, CXL nodes ${st.cxlNodes.join(',') || '-'} (${st.nodeSplit}); status on ${config.statusSocket}`);
    for (const note of st.notes) log(note);
    log(`serving ${config.vms.map((v) => v.name).join(', ')}`);
    await new Promise<void>((resolve) => {
      const done = () => resolve();
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
      if (durationMs !== undefined) setTimeout(done, durationMs);
    });
    const final: HostStatus = server.status();
    endpoints.close();
    server.stop();
    printResult(options, final, () => formatStatus(final));
    // Listeners and retry timers are closed; make sure nothing keeps the loop alive.
    setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref();
  });
}
