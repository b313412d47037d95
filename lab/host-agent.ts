// `vtier lab run --host-agent`: a real `vtier host run` on the host, wired to the lab VM as a
// production host agent is wired to its QEMU: the QEMU target (QMP socket + pidfile) and the
// virtio-serial chardev as the VM's identity. The guest agent inside connects with
// `--connect serial:/dev/virtio-ports/vtier`. Its log and final status (JSON) stay in the
// results directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkoutDir } from './cache.js';
import type { StartedLab } from './vm.js';

export interface LabHostAgent {
  configPath: string;
  statusSocket: string;
  logPath: string;
  statusPath: string;
  /** SIGTERM, wait for the final status it prints; returns it (parsed) or null. */
  stop(): Promise<unknown>;
}

export const LAB_VM_NAME = 'lab';

export function startLabHostAgent(vm: StartedLab, resultsDir: string, extra: Record<string, unknown> = {}): LabHostAgent {
  const configPath = join(vm.runtimeDir, 'host.json');
  const statusSocket = join(vm.runtimeDir, 'status.sock');
  const config = {
    vms: [{ name: LAB_VM_NAME, identity: { serial: vm.serialSocket }, qmp: vm.qmpSocket, pidfile: vm.pidfile, ...extra }],
    statusSocket,
  };
  writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`);
  writeFileSync(join(resultsDir, 'host.json'), `${JSON.stringify(config, null, 2)}\n`);
  const logPath = join(resultsDir, 'host-agent.log');
  const statusPath = join(resultsDir, 'host-agent-status.json');
  const log = createWriteStream(logPath);
  const out = createWriteStream(statusPath);
  const child: ChildProcess = spawn(process.execPath, [join(checkoutDir(), 'bin', 'vtier.js'), 'host', 'run', '--config', configPath, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(out);
  child.stderr!.pipe(log);
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => child.on('exit', () => ((exited = true), resolve())));
  return {
    configPath,
    statusSocket,
    logPath,
    statusPath,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exitPromise;
        clearTimeout(timer);
      }
      await new Promise((r) => out.end(r));
      await new Promise((r) => log.end(r));
      try {
        return JSON.parse(readFileSync(statusPath, 'utf8'));
      } catch {
        return null;
      }
    },
  };
}
