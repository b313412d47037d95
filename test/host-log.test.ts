// `vtier host run`'s stderr log cannot be forged by QEMU (issue 13 item 5, QMP side): strings
// a QMP server chooses reach log lines (a QmpError description in "not attached: ...", a
// memory-region name in a layout error). Two fake QEMUs (real processes, their own QMP peers
// and pidfile pids, command lines naming their sockets) answer with newlines, carriage
// returns, ANSI escapes (cursor up, clear line), BEL and NEL (U+0085); the real CLI's stderr must keep one event per line,
// no control character, and no forged "vm2: attached" line.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeQemuAvailable, startFakeQemu, type FakeQemu } from './helpers/fake-qemu.js';

const missing = fakeQemuAvailable();
if (missing && process.env.CI === 'true') throw new Error(`CI: ${missing}`);
if (missing) console.warn(`skipping host log test: ${missing}`);

const CLI = join(process.cwd(), 'bin/vtier.js');
const FORGED = 'vtier host: vm2: attached (pid 1, 65536 pages, 65536 on DRAM, 0 on CXL)';

describe.skipIf(Boolean(missing))('host run log lines with hostile QMP strings', () => {
  let dir: string;
  const fakes: FakeQemu[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vtier-log-'));
    fakes.push(
      await startFakeQemu({
        dir,
        qmpPath: join(dir, 'vm1-qmp.sock'),
        pidfile: join(dir, 'vm1.pid'),
        memPath: join('/dev/shm', `vtier-test-${process.pid}-log1`),
        sizeBytes: 8 << 20,
        errors: { 'query-memdev': `no memdev\n${FORGED}\r\u001b[2J\u001b[31mred\u001b[0m\u0007` },
      }),
      await startFakeQemu({
        dir,
        qmpPath: join(dir, 'vm2-qmp.sock'),
        pidfile: join(dir, 'vm2.pid'),
        memPath: join('/dev/shm', `vtier-test-${process.pid}-log2`),
        sizeBytes: 8 << 20,
        regionName: `ram\u001b[1A\u001b[2K\u0085${FORGED}\u0007`,
      }),
    );
  }, 60_000);

  afterAll(async () => {
    for (const f of fakes) await f.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('escapes QMP-chosen text: one line per event, no control characters, no forged line', async () => {
    const config = join(dir, 'host.json');
    writeFileSync(
      config,
      JSON.stringify({
        vms: [
          { name: 'vm1', identity: { listen: `unix:${join(dir, 'vm1.sock')}` }, qmp: join(dir, 'vm1-qmp.sock'), pidfile: join(dir, 'vm1.pid'), dramBudget: '4M' },
          { name: 'vm2', identity: { listen: `unix:${join(dir, 'vm2.sock')}` }, qmp: join(dir, 'vm2-qmp.sock'), pidfile: join(dir, 'vm2.pid'), dramBudget: '4M' },
        ],
        statusSocket: join(dir, 'status.sock'),
      }),
    );
    const child = spawn(process.execPath, [CLI, 'host', 'run', '--config', config, '--duration', '3s', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.stdout!.resume();
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    const lines = stderr.split('\n').filter((l) => l !== '');
    // Both VMs logged their (hostile) attach errors.
    const vm1 = lines.filter((l) => l.startsWith('vtier host: vm1: not attached: '));
    const vm2 = lines.filter((l) => l.startsWith('vtier host: vm2: not attached: '));
    expect(vm1).toHaveLength(1);
    expect(vm2).toHaveLength(1);
    expect(vm1[0]).toContain('QMP query-memdev: GenericError: no memdev\\u{a}vtier host: vm2: attached');
    expect(vm1[0]).toContain('\\u{1b}[2J\\u{1b}[31mred\\u{1b}[0m\\u{7}');
    expect(vm2[0]).toContain('RAM regions: ram\\u{1b}[1A\\u{1b}[2K\\u{85}vtier host: vm2: attached');
    for (const l of lines) {
      expect(l).toMatch(/^vtier host: /);
      // eslint-disable-next-line no-control-regex
      expect(l).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
    }
    expect(lines.filter((l) => l.startsWith('vtier host: vm2: attached'))).toEqual([]);
  }, 60_000);
});
