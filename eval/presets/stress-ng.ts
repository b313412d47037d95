// stress-ng --vm: one worker writing and checking a 256 MiB mapping for 5 s; bogo ops/s.
import { toolVersion } from '../results.js';
import type { Preset } from './types.js';

const ARGS = ['--vm', '1', '--vm-bytes', '256M', '--timeout', '5s', '--metrics-brief'];

export const stressNgPreset: Preset = {
  name: 'stress-ng',
  description: 'stress-ng --vm 1 --vm-bytes 256M for 5 s (bogo ops/s, real time)',
  packages: ['stress-ng'],
  binaries: ['stress-ng'],
  async prepare() {
    return {
      name: 'stress-ng-vm',
      tools: { 'stress-ng': toolVersion('stress-ng') ?? 'unknown' },
      settings: { argv: ['stress-ng', ...ARGS] },
      run: () => ({
        argv: ['stress-ng', ...ARGS],
        parse(stdout, stderr) {
          // "stress-ng: metrc: [pid] vm  1234  5.00  4.90  0.08  246.80  247.81"
          const line = `${stdout}\n${stderr}`.split('\n').find((l) => /\]\s+vm\s+\d/.test(l));
          const fields = line?.trim().split(/\s+/) ?? [];
          const value = Number(fields[fields.length - 2]);
          const vm = fields.indexOf('vm');
          const work = vm >= 0 ? Number(fields[vm + 1]) : NaN;
          return Number.isFinite(value) && value > 0 ? { value, unit: 'bogo-ops/s', ...(Number.isFinite(work) ? { work } : {}) } : null;
        },
      }),
      async stop() {},
    };
  },
};
