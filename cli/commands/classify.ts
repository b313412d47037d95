// PLACEHOLDER until its owner lands it: `vtier classify`.
import type { Command } from 'commander';
import { action } from '../command.js';
import { UserError } from '../output.js';

export function registerClassify(program: Command): void {
  action(program.command('classify').description('(not built yet)').allowUnknownOption().argument('[args...]'), () => {
    throw new UserError('vtier classify is not built yet', 'not-implemented');
  });
}
