// The /proc/PID/pagemap entry format, decoded: 8 bytes per virtual page, bits 0-54 the
// frame (zero unless the reader has CAP_SYS_ADMIN), bit 62 swapped, bit 63 present.
// Pure: the guest agent's sources and the host agent's local target both read pagemap.
export const PAGEMAP_ENTRY_BYTES = 8;

export interface PagemapEntry {
  present: boolean;
  swapped: boolean;
  /** Page frame number, or -1 when not present / hidden (non-root). */
  pfn: number;
}

/**
 * Decodes one 64-bit pagemap entry given as its two little-endian 32-bit halves.
 * Returns the frame number, or -1 when the page is not present or the frame is hidden.
 */
export function decodePagemapEntry(low: number, high: number): PagemapEntry {
  const present = (high & 0x8000_0000) !== 0;
  const swapped = (high & 0x4000_0000) !== 0;
  const pfnValue = (high & 0x007f_ffff) * 2 ** 32 + (low >>> 0);
  return { present, swapped, pfn: present && !swapped && pfnValue !== 0 ? pfnValue : -1 };
}

/**
 * Decodes a buffer of pagemap entries into frames (-1 = not present / hidden).
 * Trailing bytes that do not make a whole entry are ignored.
 */
export function decodePagemap(bytes: Uint8Array, out?: Float64Array): Float64Array {
  const entries = Math.floor(bytes.byteLength / PAGEMAP_ENTRY_BYTES);
  const result = out ?? new Float64Array(entries);
  const view = new DataView(bytes.buffer, bytes.byteOffset, entries * PAGEMAP_ENTRY_BYTES);
  for (let i = 0; i < entries; i++) {
    const low = view.getUint32(i * 8, true);
    const high = view.getUint32(i * 8 + 4, true);
    result[i] = decodePagemapEntry(low, high).pfn;
  }
  return result;
}
