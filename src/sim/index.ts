// Tiered-memory simulator: pure library (no I/O). See docs/policies.md.
export { runSimulation, validateSimConfig, DEFAULT_SIM, DEFAULT_TIERS, SimPolicyError, firstTouchLayout, tieAwareTruth, epochServeNs, FIRST_TOUCH_MODES } from './engine.js';
export { meanOverSeeds } from './sweep.js';
export type { SeedSpread } from './sweep.js';
export type { SimConfig, SimResult, PolicyResult, TierModel, SimHooks, FirstTouchMode } from './engine.js';
export { makeWorkload, ReplayWorkload, WORKLOAD_KINDS, DEPRECATED_WORKLOAD_NAMES, PAGE_MASK, WRITE_BIT, MAX_SIM_PAGES } from './workloads.js';
export type { Workload, WorkloadKind, WorkloadOptions, HotLayout } from './workloads.js';
export { makePolicy, isPolicyName, POLICY_NAMES } from './policies/index.js';
export type { PolicyName } from './policies/index.js';
export { DEFAULT_POLICY_SETTINGS, CXL, DRAM, PageList, trackingRates } from './policy.js';
export type { Policy, PolicyContext, PolicySettings, Migrations, Signals } from './policy.js';
export { replayFromTrace, MAX_REPLAY_PAGES } from './replay.js';
export { Prng } from './prng.js';
export { topKMask } from './topk.js';
