import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { InputError, parseDurationMs, parseNodeList, parseSizeBytes } from '../src/util/units.js';

describe('units', () => {
  it('parses sizes with binary multiples', () => {
    expect(parseSizeBytes('4096')).toBe(4096);
    expect(parseSizeBytes('512M')).toBe(512 * 2 ** 20);
    expect(parseSizeBytes('10G')).toBe(10 * 2 ** 30);
    expect(parseSizeBytes('1.5k')).toBe(1536);
    expect(() => parseSizeBytes('10Q')).toThrow(InputError);
    expect(() => parseSizeBytes('-1G')).toThrow(InputError);
  });

  it('parses durations to milliseconds', () => {
    expect(parseDurationMs('500ms')).toBe(500);
    expect(parseDurationMs('20s')).toBe(20_000);
    expect(parseDurationMs('2m')).toBe(120_000);
    expect(parseDurationMs('3')).toBe(3000);
    expect(() => parseDurationMs('soon')).toThrow(InputError);
  });

  it('parses numactl node lists', () => {
    expect(parseNodeList('0')).toEqual([0]);
    expect(parseNodeList('0,2-3')).toEqual([0, 2, 3]);
    expect(() => parseNodeList('3-1')).toThrow(InputError);
    expect(() => parseNodeList('a')).toThrow(InputError);
  });

  it('never throws anything but InputError on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        for (const parse of [parseSizeBytes, parseDurationMs, parseNodeList]) {
          try {
            parse(text);
          } catch (err) {
            expect(err).toBeInstanceOf(InputError);
          }
        }
      }),
    );
  });
});
