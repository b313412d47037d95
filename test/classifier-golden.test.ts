// Golden tests: small hand-made sample sequences (test/golden/classifier/*.json) and the
// decisions the classifier made on them, reviewed by hand. When an intended change alters
// a decision, the failure prints the command that accepts the new output.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Classifier, type ClassifierOptions } from '../src/classifier/index.js';
import { runsFrom, samplesFrom, type PageRuns } from '../src/samples.js';

const DIR = join(import.meta.dirname, 'golden', 'classifier');
const UPDATE = process.env.VTIER_UPDATE_GOLDEN === '1';
const ACCEPT = 'VTIER_UPDATE_GOLDEN=1 npx vitest run test/classifier-golden.test.ts';

type Row = [number, number, number, number];
interface GoldenEpoch {
  samples?: Row[];
  budget?: number;
  placement?: { dram?: Array<[number, number]>; cxl?: Array<[number, number]> };
}
interface Golden {
  description: string;
  options: Omit<ClassifierOptions, 'ramRanges'>;
  ramRanges: Array<[number, number]>;
  epochs: GoldenEpoch[];
  expected: unknown;
}

const pairs = (runs: PageRuns): Array<[number, number]> => Array.from({ length: runs.count }, (_, i) => [runs.gpaPfn[i], runs.pages[i]]);

/** Runs a golden input; the result is what the golden file records. */
export function runGolden(golden: Golden): unknown[] {
  const c = new Classifier({ ...golden.options, ramRanges: runsFrom(golden.ramRanges) });
  return golden.epochs.map((epoch) => {
    if (epoch.placement?.dram) c.setPlacement(runsFrom(epoch.placement.dram), 'dram');
    if (epoch.placement?.cxl) c.setPlacement(runsFrom(epoch.placement.cxl), 'cxl');
    if (epoch.budget !== undefined) c.setBudget(epoch.budget);
    if (epoch.samples) c.ingest(samplesFrom(epoch.samples));
    const d = c.decide();
    return { epoch: d.epoch, promote: pairs(d.promote), demote: pairs(d.demote), hot: pairs(c.hotRuns()), stats: d.stats };
  });
}

const files = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();

describe('classifier golden decisions', () => {
  it('has golden inputs', () => expect(files.length).toBeGreaterThanOrEqual(5));

  for (const file of files) {
    it(file, () => {
      const path = join(DIR, file);
      const golden = JSON.parse(readFileSync(path, 'utf8')) as Golden;
      const actual = JSON.parse(JSON.stringify(runGolden(golden)));
      if (UPDATE) {
        writeFileSync(path, `${JSON.stringify({ ...golden, expected: actual }, null, 1)}\n`);
        return;
      }
      expect(golden.expected, `${file} has no expected output yet; accept it with: ${ACCEPT}`).not.toBeNull();
      expect(actual, `${file}: decisions differ from the golden output. If the change is intended, accept it with: ${ACCEPT}`).toEqual(golden.expected);
    });
  }
});
