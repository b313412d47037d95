// `vtier host ...`: the commands that run on the hypervisor host.
import type { Command } from 'commander';

export function registerHost(program: Command): void {
  const host = program.command('host').description('run on the host: migrate VM pages between DRAM and CXL nodes');
  void host;
}
