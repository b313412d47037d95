// redis: a private redis-server on 127.0.0.1 (random free port, no persistence) driven by
// redis-benchmark with a YCSB-like mix: 50% GET / 50% SET, 4 KiB values, hotspot keys (80% of
// operations on 20% of the keys). redis-benchmark has no mix option, so each operation is a
// small Lua script that draws the key and the operation from redis-benchmark's own
// per-placeholder random numbers.
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { captureTail, freeLoopbackPort, sleep, stopChild } from '../children.js';
import { toolVersion } from '../results.js';
import type { Preset } from './types.js';

const KEYS = 10_000;
const VALUE_BYTES = 4096;
const OPERATIONS = 40_000;
const CLIENTS = 4;

const MIX_SCRIPT =
  'local n=tonumber(ARGV[3]) local hot=math.floor(n*0.2) local r=tonumber(ARGV[5]) local key ' +
  'if tonumber(ARGV[1])%10<8 then key=r%hot else key=hot+r%(n-hot) end ' +
  "if tonumber(ARGV[2])%2==0 then redis.call('GET','k:'..key) return 0 " +
  "else redis.call('SET','k:'..key,ARGV[4]) return 1 end";

const LOAD_SCRIPT = "for i=0,tonumber(ARGV[1])-1 do redis.call('SET','k:'..i,ARGV[2]) end return 1";

export const redisPreset: Preset = {
  name: 'redis',
  description: `redis-server on loopback + redis-benchmark: 50/50 GET/SET, ${VALUE_BYTES} B values, ${KEYS} keys, 80% of ops on 20% of keys, ${OPERATIONS} ops per run`,
  packages: ['redis-server', 'redis-tools'],
  binaries: ['redis-server', 'redis-benchmark', 'redis-cli'],
  async prepare() {
    const port = await freeLoopbackPort();
    const server = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'yes', '--loglevel', 'warning'],
      { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const log = captureTail(server.stderr);
    const logOut = captureTail(server.stdout);
    const stop = async (): Promise<void> => {
      await stopChild(server, 'SIGTERM', 5000);
    };
    const cli = (...args: string[]): string =>
      execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 }).trim();
    try {
      for (let i = 0; ; i++) {
        if (server.exitCode !== null) throw new Error(`redis-server exited: ${(log() + logOut()).trim().split('\n').pop() ?? ''}`);
        try {
          if (cli('ping') === 'PONG') break;
        } catch {
          /* not listening yet */
        }
        if (i > 100) throw new Error('redis-server did not answer PING within 10 s');
        await sleep(100);
      }
      const value = 'x'.repeat(VALUE_BYTES);
      cli('eval', LOAD_SCRIPT, '0', String(KEYS), value);
      const argv = [
        'redis-benchmark', '-h', '127.0.0.1', '-p', String(port), '-c', String(CLIENTS), '-n', String(OPERATIONS), '-r', '1000000000', '--csv',
        'eval', MIX_SCRIPT, '0', '__rand_int__', '__rand_int__', String(KEYS), value, '__rand_int__',
      ];
      return {
        name: 'redis-ycsb',
        tools: { 'redis-server': toolVersion('redis-server') ?? 'unknown', 'redis-benchmark': toolVersion('redis-benchmark') ?? 'unknown' },
        settings: { port, keys: KEYS, valueBytes: VALUE_BYTES, operations: OPERATIONS, clients: CLIENTS, mix: '50% GET / 50% SET, 80% of ops on 20% of keys' },
        targetPid: server.pid,
        run: () => ({
          argv,
          parse(stdout) {
            // CSV: header, then one line per test: "eval ...","<rps>",...
            const line = stdout.trim().split('\n').filter((l) => l.startsWith('"eval'))[0];
            const m = line ? /","([\d.]+)",/.exec(line) : null;
            return m ? { value: Number(m[1]), unit: 'ops/s', work: OPERATIONS } : null;
          },
        }),
        stop,
      };
    } catch (err) {
      await stop();
      throw err;
    }
  },
};
