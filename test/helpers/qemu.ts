// Starts a paused q35 QEMU (TCG, no KVM needed) whose RAM is a shared file backend, so the
// host agent can discover its layout and move its pages. 3 GiB on q35 splits RAM into
// [0, 2 GiB) and [4 GiB, 5 GiB): two GPA ranges (plus the sub-1 MiB piece below the ROMs).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface QemuVm {
  pid: number;
  /** QMP socket for the agent under test (a QMP socket serves one client at a time). */
  qmpPath: string;
  /** A second QMP monitor for the test itself. */
  testQmpPath: string;
  pidfile: string;
  memPath: string;
  ramBytes: number;
  dir: string;
  child: ChildProcess;
  /** Kills this QEMU (only the one we started) and removes its files. */
  stop(): Promise<void>;
  /** Kills this QEMU but keeps its directory and backing file (to restart it). */
  kill(): Promise<void>;
}

export function qemuAvailable(): string | undefined {
  const r = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'qemu-system-x86_64 not installed (apt-get install qemu-system-x86)';
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`qemu: ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface QemuOptions {
  ramMiB?: number;
  name?: string;
  prealloc?: boolean;
  /** Room for hotplugged DIMMs: -m RAM,slots=2,maxmem=MAXMEM. */
  maxMemMiB?: number;
  /** Reuse this directory (QMP socket, pidfile) and backing file: a restarted QEMU. */
  reuse?: { dir: string; memPath: string };
}

export async function startQemu(options: QemuOptions = {}): Promise<QemuVm> {
  const ramMiB = options.ramMiB ?? 3072;
  const dir = options.reuse?.dir ?? mkdtempSync(join(tmpdir(), 'vtier-qemu-'));
  const memPath = options.reuse?.memPath ?? join('/dev/shm', `vtier-test-${process.pid}-${Date.now()}-${options.name ?? 'vm'}`);
  const qmpPath = join(dir, 'qmp.sock');
  const testQmpPath = join(dir, 'qmp-test.sock');
  const pidfile = join(dir, 'qemu.pid');
  const args = [
    '-machine', 'q35', '-accel', 'tcg', '-S', '-nographic', '-nodefaults', '-display', 'none',
    '-m', options.maxMemMiB ? `${ramMiB}M,slots=2,maxmem=${options.maxMemMiB}M` : `${ramMiB}M`,
    '-object', `memory-backend-file,id=mem0,size=${ramMiB}M,mem-path=${memPath},share=on,prealloc=${options.prealloc === false ? 'off' : 'on'}`,
    '-numa', 'node,memdev=mem0',
    '-qmp', `unix:${qmpPath},server=on,wait=off`,
    '-qmp', `unix:${testQmpPath},server=on,wait=off`,
    '-pidfile', pidfile,
  ];
  // A restarted QEMU writes a new pidfile: wait for that one, not the old one.
  rmSync(pidfile, { force: true });
  rmSync(qmpPath, { force: true });
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  let exited = false;
  child.on('exit', () => (exited = true));
  const kill = async (): Promise<void> => {
    if (!exited && child.pid) {
      child.kill('SIGKILL');
      await waitFor(() => exited, 10_000, 'did not exit').catch(() => {});
    }
  };
  const stop = async (): Promise<void> => {
    await kill();
    rmSync(memPath, { force: true });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => exited || (existsSync(pidfile) && existsSync(qmpPath) && readFileSync(pidfile, 'utf8').trim() !== ''), 60_000, 'no pidfile/QMP socket');
    if (exited) throw new Error(`qemu exited: ${stderr.trim()}`);
  } catch (err) {
    await stop();
    throw err;
  }
  const pid = Number(readFileSync(pidfile, 'utf8').trim());
  return { pid, qmpPath, testQmpPath, pidfile, memPath, ramBytes: ramMiB * 1024 * 1024, dir, child, stop, kill };
}
