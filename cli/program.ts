// The `vtier` command tree, built without running anything: main.ts parses process.argv with
// it, and test/readme-examples.test.ts parses every documented example line with it.
import { Command } from 'commander';
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

/** The examples `vtier --help` prints (each parsed by test/readme-examples.test.ts). */
export const TOP_EXAMPLES = [
  'vtier demo',
  'vtier doctor',
  'vtier guest record --source auto --duration 10s --out run.trace -- vtier workload hotspot --size 1G',
  'vtier sim --workload hotspot --size 10G --dram 2G --policy vtier,autonuma,oracle',
];

export function buildProgram(): Command {
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
      `\nExamples:\n${TOP_EXAMPLES.map((l) => `  $ ${l}`).join('\n')}\n`,
  );
  return program;
}
