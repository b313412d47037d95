// Starts a paused q35 QEMU (TCG, no KVM needed) whose RAM is a shared file backend, so the
// host agent can discover its layout and move its pages. 3 GiB on q35 splits RAM into
// [0, 2 GiB) and [4 GiB, 5 GiB): two GPA ranges (plus the sub-1 MiB piece below the ROMs).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

/** A fake QMP server: a real process (node) speaking QMP on a unix socket, answering with
 *  whatever `answers` says (e.g. another VM's memdev, mem-path and mtree). Its command line
 *  names the socket, as a QEMU's would. */
export interface FakeQmp {
  pid: number;
  path: string;
  stop(): Promise<void>;
}

const FAKE_QMP = `
const net = require('node:net');
const fs = require('node:fs');
const [path, answersFile] = process.argv.slice(1);
const answers = JSON.parse(fs.readFileSync(answersFile, 'utf8'));
try { fs.unlinkSync(path); } catch {}
net.createServer((c) => {
  c.on('error', () => {});
  c.write(JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 } }, capabilities: [] } }) + '\\n');
  let buf = '';
  c.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\\n')) >= 0) {
      const line = buf.slice(0, nl); buf = buf.slice(nl + 1);
      let m; try { m = JSON.parse(line); } catch { continue; }
      const key = m.execute === 'human-monitor-command' ? 'hmp:' + m.arguments['command-line'] : m.execute === 'qom-get' ? 'qom:' + m.arguments.path + ':' + m.arguments.property : m.execute;
      const ret = key in answers ? answers[key] : (m.execute === 'qmp_capabilities' ? {} : undefined);
      c.write(JSON.stringify(ret === undefined ? { id: m.id, error: { class: 'CommandNotFound', desc: key } } : { id: m.id, return: ret }) + '\\n');
    }
  });
}).listen(path, () => console.log('ready'));
`;

export async function startFakeQmp(path: string, answers: Record<string, unknown>): Promise<FakeQmp> {
  const answersFile = `${path}.answers.json`;
  writeFileSync(answersFile, JSON.stringify(answers));
  const child = spawn(process.execPath, ['-e', FAKE_QMP, path, answersFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  let exited = false;
  child.on('exit', () => (exited = true));
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  await waitFor(() => exited || out.includes('ready'), 10_000, 'fake QMP not listening');
  if (exited) throw new Error('fake QMP exited');
  return {
    pid: child.pid!,
    path,
    async stop() {
      if (!exited) {
        child.kill('SIGKILL');
        await waitFor(() => exited, 5000, 'fake QMP did not exit').catch(() => {});
      }
      rmSync(answersFile, { force: true });
      rmSync(path, { force: true });
    },
  };
}
