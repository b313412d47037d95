// `vtier guest ...`: the commands that run inside a guest.
import type { Command } from 'commander';

export function registerGuest(program: Command): void {
  const guest = program.command('guest').description('run inside a guest: record samples, watch hot pages, run the agent');
  void guest;
}
