// PLACEHOLDER until its owner lands it: `vtier sim`.
import type { Command } from 'commander';
import { action } from '../command.js';
import { UserError } from '../output.js';

export function registerSim(program: Command): void {
  action(program.command('sim').description('(not built yet)').allowUnknownOption().argument('[args...]'), () => {
    throw new UserError('vtier sim is not built yet', 'not-implemented');
  });
}
