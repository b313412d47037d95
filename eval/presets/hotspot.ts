// vtier's own hotspot workload (native vtier-workload): 1 GiB, 90% of accesses on 10% of the
// pages, 10 s; throughput in accesses/s from its JSON summary line. The same workload the
// demo and the accuracy campaign use, so overhead and accuracy describe one setting.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../results.js';
import type { Preset } from './types.js';

const ARGS = ['hotspot', '--size-bytes', String(2 ** 30), '--hot-frac', '0.1', '--hot-prob', '0.9', '--duration-ms', '10000', '--report-ms', '0'];

export const hotspotPreset: Preset = {
  name: 'hotspot',
  description: 'vtier-workload hotspot: 1 GiB, 90% of accesses on 10% of the pages, 10 s (accesses/s)',
  packages: [],
  binaries: [],
  async prepare() {
    const binary = join(repoRoot(), 'build', 'Release', 'vtier-workload');
    if (!existsSync(binary)) throw new Error(`${binary} is missing; run "npm run build:native" first`);
    return {
      name: 'hotspot-1g',
      tools: {},
      settings: { argv: [binary, ...ARGS] },
      run: () => ({
        argv: [binary, ...ARGS],
        parse(stdout) {
          const line = stdout.split('\n').find((l) => l.includes('"event":"summary"'));
          if (!line) return null;
          const summary = JSON.parse(line) as { accessesPerSec?: number; accesses?: number };
          const value = Number(summary.accessesPerSec);
          return Number.isFinite(value) && value > 0 ? { value, unit: 'accesses/s', work: Number(summary.accesses) || undefined } : null;
        },
      }),
      async stop() {},
    };
  },
};
