// `vtier lab`: a VM of our own under QEMU, with the guest kernel the lab fetched (6.12, DAMON,
// BTF), the host's / read-only as its root and the checkout at the same path, so `vtier ...`
// runs inside unchanged. `--nodes 2` adds a CPU-less node 1 that HMAT puts in a lower memory
// tier: the stand-in for a CXL expander (both nodes are host DRAM: placement and migration are
// real, the latency difference is not).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { action, examples } from '../command.js';
import { printResult, UserError, type OutputOptions } from '../output.js';
import { withInterrupt } from '../interrupt.js';
import { dramBudgetOption, parseDramBytes } from '../options.js';
import { parseDurationMs, parsePositiveInt, parseSizeBytes } from '../../src/util/units.js';
import { checkoutDir, labCacheDir, labMissing, LabNotReady, readGuestKernel } from '../../lab/cache.js';
import { ensureInitramfs } from '../../lab/initramfs.js';
import { resolveAccel, type AccelChoice } from '../../lab/accel.js';
import { LabSpecError } from '../../lab/qemu-args.js';
import { runLab, type LabRunOptions, type LabRunResult } from '../../lab/vm.js';
import { startLabHostAgent, type LabHostAgent } from '../../lab/host-agent.js';
import { labResultsDir } from '../../lab/results.js';

interface LabVmCliOptions extends OutputOptions {
  nodes: string;
  mem: string;
  cxl: string;
  smp: string;
  timeout: string;
  accel: string;
  out?: string;
  hostAgent?: boolean;
  hostDramBudget?: string;
}

/** Exit status for a run that did not end with the command's own status. */
const EXIT_FOR_END: Record<string, number> = { timeout: 124, interrupted: 130, panic: 3, 'no-status': 3, 'qemu-failed': 3 };

function parseVmOptions(options: LabVmCliOptions): Omit<LabRunOptions, 'resultsDir'> {
  const nodes = Number(options.nodes);
  if (nodes !== 1 && nodes !== 2) throw new UserError(`--nodes: 1 or 2, got "${options.nodes}"`, 'usage', 2);
  const accel = options.accel as AccelChoice;
  if (!['auto', 'kvm', 'tcg'].includes(accel)) throw new UserError(`--accel: auto, kvm or tcg, got "${options.accel}"`, 'usage', 2);
  const memBytes = parseSizeBytes(options.mem, '--mem');
  const cxlBytes = parseSizeBytes(options.cxl, '--cxl');
  const smp = parsePositiveInt(options.smp, '--smp');
  const timeoutMs = parseDurationMs(options.timeout, '--timeout');
  if (timeoutMs < 5000) throw new UserError('--timeout: at least 5s (a TCG boot alone takes several seconds)', 'usage', 2);
  return { nodes, memBytes, cxlBytes, smp, timeoutMs, accel };
}

function vmOptions(cmd: Command): Command {
  return cmd
    .option('--nodes <n>', 'NUMA nodes: 1, or 2 (node 1 CPU-less, in a lower memory tier by HMAT: the CXL stand-in)', '2')
    .option('--mem <size>', 'node 0 (DRAM) memory', '2G')
    .option('--cxl <size>', 'node 1 (CXL stand-in) memory, with --nodes 2', '2G')
    .option('--smp <n>', 'vCPUs (all on node 0)', '2')
    .option('--timeout <duration>', 'stop the VM after this long, boot included', '10m')
    .option('--accel <kind>', 'auto (KVM if /dev/kvm really boots a guest, else TCG), kvm, tcg', 'auto')
    .option('-o, --out <dir>', 'results directory: console.log, output.log, .lab/ (default results/lab-<timestamp>)');
}

function describeEnd(r: LabRunResult): string {
  const head = `lab: ${r.nodes}-node VM, kernel ${r.kernel}, ${r.accelReason}; boot ${r.bootMs === null ? 'did not finish' : `${(r.bootMs / 1000).toFixed(1)} s`}, wall ${(r.wallMs / 1000).toFixed(1)} s`;
  const tail = r.end === 'exited' ? `command exited with status ${r.exitStatus}` : r.detail ?? r.end;
  return `${head}\nlab: ${tail}; console log ${r.consoleLog}, output ${r.outputLog}`;
}

function mapLabError(err: unknown): never {
  if (err instanceof LabNotReady) throw new UserError(`lab not ready: ${err.message}`, 'lab-not-ready');
  if (err instanceof LabSpecError) throw new UserError(err.message, 'usage', 2);
  throw err;
}

export function registerLab(program: Command): void {
  const lab = program.command('lab').description('a VM of our own (QEMU, guest kernel with DAMON and BTF, optional CPU-less CXL stand-in node): run vtier inside a real guest');

  const run = vmOptions(lab.command('run').description('boot a lab VM, run CMD inside (checkout at the same path, `vtier` on its PATH), stream its output, exit with its status'))
    .option('--host-agent', 'also run `vtier host run` on the host wired to this VM (QMP, pidfile, virtio-serial): inside, `vtier guest run --connect serial:/dev/virtio-ports/vtier`')
    .addOption(dramBudgetOption('--host-dram-budget', 'with --host-agent: the DRAM budget the host grants this VM (host.json dramBudget; share: of the VM memory)'))
    .argument('<cmd...>', 'command to run inside the VM (after --)');
  examples(run, [
    'vtier lab run -- vtier doctor',
    'vtier lab run --nodes 2 -- numactl -H',
    'vtier lab run --nodes 1 --host-agent -- vtier guest run --connect serial:/dev/virtio-ports/vtier --source damon --duration 30s',
    'vtier lab run --timeout 2m --out /tmp/lab1 --json -- sh -c "cat /sys/devices/virtual/memory_tiering/*/nodelist"',
  ]);
  action<LabVmCliOptions>(run, async (args, options) => {
    const command = (args[0] as string[]) ?? [];
    const vm = parseVmOptions(options);
    const resultsDir = labResultsDir(options.out);
    if (options.hostDramBudget !== undefined && !options.hostAgent) throw new UserError('--host-dram-budget goes with --host-agent', 'usage', 2);
    const vmBytes = vm.memBytes + (vm.nodes === 2 ? vm.cxlBytes : 0);
    const hostExtra = options.hostDramBudget !== undefined ? { dramBudget: parseDramBytes(options.hostDramBudget, vmBytes, '--host-dram-budget') } : {};
    let hostAgent: LabHostAgent | null = null;
    let hostStatus: unknown = null;
    const say = (line: string) => {
      if (!options.json) process.stderr.write(`${line}\n`);
    };
    let result: LabRunResult;
    try {
      result = await withInterrupt((signal) =>
        runLab({
          ...vm,
          resultsDir,
          command,
          cwd: safeCwd(),
          signal,
          onOutput: (chunk) => {
            if (!options.json) process.stdout.write(chunk);
          },
          onStarted: (started) => {
            if (options.hostAgent) {
              hostAgent = startLabHostAgent(started, resultsDir, hostExtra);
              say(`lab: host agent started (QEMU target pid ${started.pid}, serial ${started.serialSocket}); log ${hostAgent.logPath}`);
            }
          },
        }),
      );
    } catch (err) {
      if (hostAgent) await (hostAgent as LabHostAgent).stop();
      mapLabError(err);
    } finally {
      if (hostAgent) hostStatus = await (hostAgent as LabHostAgent).stop();
    }
    const exitCode = result!.end === 'exited' ? result!.exitStatus ?? 3 : EXIT_FOR_END[result!.end] ?? 3;
    printResult(options, { ...result!, hostAgent: hostStatus }, () => describeEnd(result!));
    if (!options.json) process.stderr.write('');
    process.exitCode = exitCode;
  });

  const shell = vmOptions(lab.command('shell').description('boot a lab VM with an interactive shell on its console (exit the shell to power it off)'));
  examples(shell, ['vtier lab shell', 'vtier lab shell --nodes 1 --mem 4G']);
  action<LabVmCliOptions>(shell, async (_args, options) => {
    if (!process.stdin.isTTY) throw new UserError('lab shell needs a terminal; use `vtier lab run -- CMD` from scripts', 'usage', 2);
    const vm = parseVmOptions(options);
    const resultsDir = labResultsDir(options.out);
    let result: LabRunResult;
    try {
      result = await runLab({ ...vm, mode: 'shell', resultsDir, tty: { rows: process.stdout.rows ?? 24, cols: process.stdout.columns ?? 80 } });
    } catch (err) {
      mapLabError(err);
    }
    printResult(options, result!, () => describeEnd(result!));
  });

  const setup = lab.command('setup').description('fetch the guest kernel (bookworm-backports, private apt state, nothing installed) and build the initramfs');
  examples(setup, ['vtier lab setup', 'vtier lab status']);
  action<OutputOptions>(setup, async (_args, options) => {
    const script = join(checkoutDir(), 'lab', 'fetch-kernel.sh');
    const r = spawnSync('bash', [script, labCacheDir()], { stdio: ['ignore', options.json ? 'ignore' : 'inherit', 'pipe'], encoding: 'utf8' });
    if (r.status !== 0) throw new UserError(`lab setup: ${(r.stderr || 'fetch-kernel.sh failed').trim().split('\n').pop()}`, 'lab-setup');
    try {
      const kernel = readGuestKernel();
      const initrd = ensureInitramfs(kernel);
      printResult(options, { kernel: kernel.release, initramfs: initrd }, () => `lab: kernel ${kernel.release}, initramfs ${initrd}`);
    } catch (err) {
      mapLabError(err);
    }
  });

  const status = lab.command('status').description('is the lab ready: QEMU, guest kernel, initramfs, KVM or TCG');
  examples(status, ['vtier lab status', 'vtier lab status --json']);
  action<OutputOptions>(status, async (_args, options) => {
    const readiness = await labReadiness(true);
    printResult(options, readiness, () =>
      readiness.ready ? `lab ready: kernel ${readiness.kernel}, ${readiness.accel}` : `lab not ready: ${readiness.missing.join('; ')}`,
    );
    if (!readiness.ready) process.exitCode = 1;
  });
}

export interface LabReadiness {
  ready: boolean;
  kernel: string | null;
  qemu: boolean;
  /** "KVM: ..." or "TCG: ..." (probed only when asked: it boots the kernel). */
  accel: string | null;
  missing: string[];
}

/** What `vtier doctor` and `vtier lab status` print; `probeAccel` boots the probe guest. */
export async function labReadiness(probeAccel: boolean): Promise<LabReadiness> {
  const missing = labMissing();
  const qemu = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).status === 0;
  if (!qemu) missing.push('qemu-system-x86_64 (apt-get install qemu-system-x86)');
  let kernel: string | null = null;
  let accel: string | null = null;
  try {
    const k = readGuestKernel();
    kernel = k.release;
    if (probeAccel && missing.length === 0) accel = (await resolveAccel('auto', k, ensureInitramfs(k))).reason;
  } catch {
    /* listed in missing */
  }
  return { ready: missing.length === 0, kernel, qemu, accel, missing };
}

/** The host cwd is the guest's too (same root), when the lab can pass it on. */
function safeCwd(): string {
  // The guest mounts its own /tmp, /run, /dev, /proc and /sys: the host's are not there.
  const cwd = resolve(process.cwd());
  const hidden = /^\/(tmp|run|dev|proc|sys)(\/|$)/.test(cwd);
  return !hidden && /^\/[A-Za-z0-9._/+@-]*$/.test(cwd) && existsSync(cwd) ? cwd : checkoutDir();
}
