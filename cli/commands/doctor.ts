// PLACEHOLDER until its owner lands it: `vtier doctor`.
import type { Command } from 'commander';
import { action } from '../command.js';
import { UserError } from '../output.js';

export function registerDoctor(program: Command): void {
  action(program.command('doctor').description('(not built yet)').allowUnknownOption().argument('[args...]'), () => {
    throw new UserError('vtier doctor is not built yet', 'not-implemented');
  });
}
