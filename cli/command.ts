// Shared plumbing for subcommands: every command gets --json, and every failure
// becomes one line (or one JSON object) with a non-zero exit code.
import type { Command } from 'commander';
import { reportError, type OutputOptions } from './output.js';

/** Adds `--json` and an error-reporting action to `cmd`. `handler` gets the positional
 *  arguments (as commander passes them) followed by the parsed options. */
export function action<O extends OutputOptions>(
  cmd: Command,
  handler: (args: unknown[], options: O, cmd: Command) => Promise<void> | void,
): Command {
  cmd.option('--json', 'print results (and errors) as JSON');
  cmd.action(async (...received: unknown[]) => {
    const self = received[received.length - 1] as Command;
    const options = self.opts() as O;
    const args = received.slice(0, -2);
    try {
      await handler(args, options, self);
    } catch (err) {
      process.exitCode = reportError(err, Boolean(options.json));
    }
  });
  return cmd;
}

/** Appends an "Examples:" block to a command's --help. */
export function examples(cmd: Command, lines: string[]): Command {
  return cmd.addHelpText('after', `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`);
}
