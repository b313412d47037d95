// Policy registry: names the command line accepts and how to build each.
import type { Policy, PolicySettings } from '../policy.js';
import { AutonumaPolicy } from './autonuma.js';
import { DamonPolicy } from './damon.js';
import { LruPolicy } from './lru.js';
import { MemtisPolicy } from './memtis.js';
import { OraclePolicy } from './oracle.js';
import { StaticPolicy } from './static.js';
import { VtierPolicy } from './vtier.js';
import { VtmmPolicy } from './vtmm.js';

export const POLICY_NAMES = ['vtier', 'vtier-thp', 'autonuma', 'vtmm', 'memtis', 'lru', 'damon', 'static', 'oracle'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

export function isPolicyName(name: string): name is PolicyName {
  return (POLICY_NAMES as readonly string[]).includes(name);
}

export function makePolicy(name: PolicyName, settings: PolicySettings): Policy {
  switch (name) {
    case 'vtier':
      return new VtierPolicy(settings, { hugePages: false });
    case 'vtier-thp':
      return new VtierPolicy(settings, { hugePages: true });
    case 'autonuma':
      return new AutonumaPolicy(settings);
    case 'vtmm':
      return new VtmmPolicy(settings);
    case 'memtis':
      return new MemtisPolicy(settings);
    case 'lru':
      return new LruPolicy(settings);
    case 'damon':
      return new DamonPolicy(settings);
    case 'static':
      return new StaticPolicy();
    case 'oracle':
      return new OraclePolicy();
  }
}

export { AutonumaPolicy, DamonPolicy, LruPolicy, MemtisPolicy, OraclePolicy, StaticPolicy, VtierPolicy, VtmmPolicy };
