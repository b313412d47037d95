// Parsers for the units users type on the command line and in config files.
// Sizes follow numactl/damo (`512M`, `10G`, binary multiples), durations follow
// `500ms` / `20s` / `2m`, node lists follow numactl (`0,2-3`).

export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

const SIZE_MULTIPLIERS: Record<string, number> = {
  '': 1, b: 1, k: 2 ** 10, kb: 2 ** 10, kib: 2 ** 10, m: 2 ** 20, mb: 2 ** 20, mib: 2 ** 20,
  g: 2 ** 30, gb: 2 ** 30, gib: 2 ** 30, t: 2 ** 40, tb: 2 ** 40, tib: 2 ** 40,
};

/** Parses `4096`, `512K`, `512M`, `1.5G`, `1T` into bytes (binary multiples). */
export function parseSizeBytes(text: string, what = 'size'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(String(text));
  const multiplier = match ? SIZE_MULTIPLIERS[match[2].toLowerCase()] : undefined;
  if (!match || multiplier === undefined) {
    throw new InputError(`${what}: "${text}" is not a size (examples: 4096, 512M, 10G)`);
  }
  const bytes = Math.round(Number(match[1]) * multiplier);
  if (!Number.isSafeInteger(bytes)) throw new InputError(`${what}: "${text}" is too large`);
  return bytes;
}

const DURATION_MULTIPLIERS_MS: Record<string, number> = {
  us: 1e-3, ms: 1, s: 1000, '': 1000, m: 60_000, min: 60_000, h: 3_600_000,
};

/** Parses `500ms`, `20s`, `2m`, `1h`; a bare number means seconds. Returns milliseconds. */
export function parseDurationMs(text: string, what = 'duration'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/.exec(String(text));
  const multiplier = match ? DURATION_MULTIPLIERS_MS[match[2]] : undefined;
  if (!match || multiplier === undefined) {
    throw new InputError(`${what}: "${text}" is not a duration (examples: 500ms, 20s, 2m)`);
  }
  return Number(match[1]) * multiplier;
}

/** Parses a numactl node list (`0`, `0,2-3`) into sorted unique node ids. */
export function parseNodeList(text: string, what = 'node list'): number[] {
  const nodes = new Set<number>();
  for (const part of String(text).split(',')) {
    const match = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!match) throw new InputError(`${what}: "${text}" is not a node list (examples: 0, 0,2-3)`);
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    if (last < first || last > 1023) throw new InputError(`${what}: bad range "${part.trim()}"`);
    for (let node = first; node <= last; node++) nodes.add(node);
  }
  return [...nodes].sort((a, b) => a - b);
}

/** Parses a fraction in [0, 1] (`0.1`), naming the option on error. */
export function parseFraction(text: string, what: string): number {
  const value = Number(text);
  if (!/^\s*\d*\.?\d+\s*$/.test(String(text)) || !(value >= 0 && value <= 1)) {
    throw new InputError(`${what}: "${text}" is not a fraction between 0 and 1`);
  }
  return value;
}

/** Parses a positive integer option (`--runs 5`). */
export function parsePositiveInt(text: string, what: string): number {
  const value = Number(text);
  if (!/^\s*\d+\s*$/.test(String(text)) || !Number.isSafeInteger(value) || value <= 0) {
    throw new InputError(`${what}: "${text}" is not a positive integer`);
  }
  return value;
}

/** Formats bytes for people: 1536 -> "1.5 KiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}
