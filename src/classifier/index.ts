// Public surface of the classifier (pure library: data in, decisions out).
export { Classifier, nextRegionGap, fallHoldEpochs } from './classifier.js';
export type { ClassifierOptions, ClassifierStats, EpochDecision, EpochStats, Tier } from './classifier.js';
export { ClassifierConfigError } from './errors.js';
export { PAGES_PER_CHUNK, PFN_LIMIT, MAX_COUNT } from './pagetable.js';
