// sysbench memory: random 4 KiB accesses over a buffer; throughput in MiB/s.
import { toolVersion } from '../results.js';
import type { Preset } from './types.js';

const ARGS = ['memory', '--memory-block-size=4K', '--memory-total-size=4G', '--memory-access-mode=rnd', '--threads=1', 'run'];

export const sysbenchPreset: Preset = {
  name: 'sysbench',
  description: 'sysbench memory, random 4 KiB blocks, 4 GiB transferred, 1 thread',
  packages: ['sysbench'],
  binaries: ['sysbench'],
  async prepare() {
    return {
      name: 'sysbench-memory',
      tools: { sysbench: toolVersion('sysbench') ?? 'unknown' },
      settings: { argv: ['sysbench', ...ARGS] },
      run: () => ({
        argv: ['sysbench', ...ARGS],
        parse(stdout) {
          const m = /([\d.]+) MiB transferred \(([\d.]+) MiB\/sec\)/.exec(stdout);
          return m ? { value: Number(m[2]), unit: 'MiB/s', work: Number(m[1]) } : null;
        },
      }),
      async stop() {},
    };
  },
};
