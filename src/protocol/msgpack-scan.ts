// A structural pre-scan of one msgpack value before msgpackr decodes it. Hostile peers
// can declare containers and strings far larger than the frame holds (an array header
// claiming 2^32 elements inside 20 bytes). The scan walks the tokens without allocating,
// checks every declared length against the bytes that remain, bounds the nesting depth
// and the element count, refuses extension types (vtier never sends them, and msgpackr
// would turn some into records or dates), and requires the value to end exactly at the
// end of the frame. Only a frame that passes reaches msgpackr.

export interface ScanLimits {
  /** Deepest container nesting allowed (the top-level map is depth 1). */
  maxDepth: number;
  /** Total values (containers, scalars, keys) allowed in one frame. */
  maxValues: number;
}

export const DEFAULT_SCAN_LIMITS: ScanLimits = { maxDepth: 8, maxValues: 100_000 };

/** Returns null when `bytes` holds exactly one well-formed msgpack value within the
 *  limits, or a reason why not. Never throws, never allocates per element. */
export function scanMsgpack(bytes: Uint8Array, limits: ScanLimits = DEFAULT_SCAN_LIMITS): string | null {
  const end = bytes.length;
  let pos = 0;
  let values = 0;
  // pending[d] = values still to read at depth d (a map of n entries needs 2n values).
  const pending: number[] = [1];

  const u16 = (at: number) => (bytes[at] << 8) | bytes[at + 1];
  const u32 = (at: number) => ((bytes[at] << 24) >>> 0) + (bytes[at + 1] << 16) + (bytes[at + 2] << 8) + bytes[at + 3];

  while (pending.length > 0) {
    if (pending[pending.length - 1] === 0) {
      pending.pop();
      continue;
    }
    pending[pending.length - 1]--;
    if (++values > limits.maxValues) return `more than ${limits.maxValues} values`;
    if (pos >= end) return 'truncated value';
    const tag = bytes[pos++];
    let skip = 0; // payload bytes to skip
    let children = -1; // >= 0: a container with that many values
    let need = 0; // header bytes that must follow the tag
    if (tag <= 0x7f || tag >= 0xe0 || tag === 0xc0 || tag === 0xc2 || tag === 0xc3) {
      // fixint, nil, booleans
    } else if (tag >= 0x80 && tag <= 0x8f) {
      children = (tag & 0x0f) * 2;
    } else if (tag >= 0x90 && tag <= 0x9f) {
      children = tag & 0x0f;
    } else if (tag >= 0xa0 && tag <= 0xbf) {
      skip = tag & 0x1f;
    } else {
      switch (tag) {
        case 0xc4: case 0xd9: need = 1; break; // bin8, str8
        case 0xc5: case 0xda: need = 2; break; // bin16, str16
        case 0xc6: case 0xdb: need = 4; break; // bin32, str32
        case 0xcc: case 0xd0: skip = 1; break;
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xca: case 0xce: case 0xd2: skip = 4; break;
        case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
        case 0xdc: case 0xde: need = 2; break; // array16, map16
        case 0xdd: case 0xdf: need = 4; break; // array32, map32
        default:
          // 0xc1 (never used), ext types 0xc7-0xc9 and 0xd4-0xd8
          return `unsupported msgpack type 0x${tag.toString(16)}`;
      }
      if (need > 0) {
        if (pos + need > end) return 'truncated header';
        const length = need === 1 ? bytes[pos] : need === 2 ? u16(pos) : u32(pos);
        pos += need;
        if (tag === 0xdc || tag === 0xdd) children = length;
        else if (tag === 0xde || tag === 0xdf) children = length * 2;
        else skip = length;
      }
    }
    if (skip > 0) {
      if (skip > end - pos) return `declared length ${skip} exceeds the ${end - pos} bytes left`;
      pos += skip;
    }
    if (children >= 0) {
      // Every value takes at least one byte: a larger count is a lie.
      if (children > end - pos) return `container declares ${children} values but only ${end - pos} bytes are left`;
      if (children > 0) {
        // pending holds the root slot plus one entry per open container.
        if (pending.length > limits.maxDepth) return `nesting deeper than ${limits.maxDepth}`;
        pending.push(children);
      }
    }
  }
  if (pos !== end) return `${end - pos} trailing bytes after the value`;
  return null;
}
