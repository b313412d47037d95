// The built-in workloads of `vtier eval overhead --preset NAME`.
import { hotspotPreset } from './hotspot.js';
import { redisPreset } from './redis.js';
import { stressNgPreset } from './stress-ng.js';
import { sysbenchPreset } from './sysbench.js';
import type { Preset } from './types.js';

export const PRESETS: Record<string, Preset> = {
  hotspot: hotspotPreset,
  redis: redisPreset,
  sysbench: sysbenchPreset,
  'stress-ng': stressNgPreset,
};

export type { Preset, PreparedWorkload, WorkloadRun, Throughput } from './types.js';
