// PLACEHOLDER until its owner lands it: `vtier workload`.
import type { Command } from 'commander';
import { action } from '../command.js';
import { UserError } from '../output.js';

export function registerWorkload(program: Command): void {
  action(program.command('workload').description('(not built yet)').allowUnknownOption().argument('[args...]'), () => {
    throw new UserError('vtier workload is not built yet', 'not-implemented');
  });
}
