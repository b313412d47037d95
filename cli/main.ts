// The `vtier` command line: `vtier <area> <verb>`, every command with --json.
import { Command, CommanderError } from 'commander';
import { reportError, UserError } from './output.js';
import { EXIT_CODES } from './options.js';
import { registerDoctor } from './commands/doctor.js';
import { registerDemo } from './commands/demo.js';
import { registerWorkload } from './commands/workload.js';
import { registerGuest } from './commands/guest.js';
import { registerClassify } from './commands/classify.js';
import { registerSim } from './commands/sim.js';
import { registerHost } from './commands/host.js';
import { registerReport } from './commands/report.js';
import { registerEval } from './commands/eval.js';
import { registerLab } from './commands/lab.js';

const program = new Command('vtier')
  .description('Guest-side page tracking and hot-page classification for VMs on tiered memory (DRAM + CXL)')
  .version(process.env.npm_package_version ?? '0.1.0')
  .showHelpAfterError(false)
  .exitOverride()
  .configureOutput({ outputError: () => {} });

registerDemo(program);
registerDoctor(program);
registerWorkload(program);
registerGuest(program);
registerClassify(program);
registerSim(program);
registerHost(program);
registerReport(program);
registerEval(program);
registerLab(program);

program.addHelpText(
  'after',
  `\nExit codes:\n${EXIT_CODES.map(([code, meaning]) => `  ${String(code).padEnd(4)}${meaning}`).join('\n')}\n` +
  `\nExamples:\n  $ vtier demo\n  $ vtier doctor\n  $ vtier guest record --source auto --duration 10s --out run.trace -- vtier workload hotspot --size 1G\n  $ vtier sim --workload hotspot --size 10G --dram 2G --policy vtier,autonuma,oracle\n`,
);

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
