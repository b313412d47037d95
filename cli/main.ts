// The `vtier` command line: `vtier <area> <verb>`, every command with --json.
import { CommanderError } from 'commander';
import { reportError, UserError } from './output.js';
import { buildProgram } from './program.js';

const program = buildProgram();

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here too, with exit code 0.
    if (err.exitCode === 0) process.exit(0);
    const message = err.message.replace(/^error: /, '');
    process.exitCode = reportError(new UserError(`${message} (see vtier --help)`, 'usage', 2), process.argv.includes('--json'));
  } else {
    process.exitCode = reportError(err, process.argv.includes('--json'));
  }
}
