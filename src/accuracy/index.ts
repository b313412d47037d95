// Public surface of the accuracy scoring used by `vtier demo` and `vtier eval accuracy`.
export { clipSamples, coverWithRuns, framesToRuns } from './frames.js';
export { scoreHotSet, timeToConverge } from './score.js';
export type { HotSetScore, ScorePoint } from './score.js';
