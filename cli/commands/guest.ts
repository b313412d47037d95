// `vtier guest ...`: the commands that run inside a guest.
import type { Command } from 'commander';
import { registerGuestRecord } from './guest-record.js';
import { registerGuestTop } from './guest-top.js';
import { registerGuestRun } from './guest-run.js';

export function registerGuest(program: Command): void {
  const guest = program.command('guest').description('run inside a guest: record samples, watch hot pages, run the agent');
  registerGuestRecord(guest);
  registerGuestTop(guest);
  registerGuestRun(guest);
}
