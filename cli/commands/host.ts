// `vtier host ...`: the commands that run on the hypervisor host.
import type { Command } from 'commander';
import { registerHostRun } from './host-run.js';
import { registerHostStatus } from './host-status.js';

export function registerHost(program: Command): void {
  const host = program.command('host').description('run on the host: migrate VM pages between DRAM and CXL nodes');
  registerHostRun(host);
  registerHostStatus(host);
}
