// Where a QEMU guest's RAM lives in the QEMU process: a GPA -> HVA table.
//
// Three sources, joined by memory-region name:
//  - `info mtree -f` (flat view of the "memory" address space): GPA ranges -> RAM region
//    name + offset inside the region. q35 with more than 2.75 GB splits RAM: [0, 2 GB) and
//    [4 GB, ...), with ROM holes in the first megabyte.
//  - `query-memdev` + `qom-get /objects/ID mem-path`: the backends, their sizes and files.
//  - /proc/PID/maps: where QEMU mapped each backend file (the HVA base; one or more VMAs).
// The parsers are pure and fuzzed; discoverLayout() does the I/O.
import { readFileSync } from 'node:fs';
import type { QmpClient } from './qmp.js';
import { readSmallFile } from './safe-read.js';

export const PAGE_BYTES = 4096;
const MAX_EXACT = Number.MAX_SAFE_INTEGER;

export interface FlatViewEntry {
  gpaStart: number;
  /** Exclusive end. */
  gpaEnd: number;
  priority: number;
  /** "ram", "rom", "i/o", "romd", "ramd"... */
  kind: string;
  /** Memory region name (the memdev id for host memory backends). */
  region: string;
  /** Offset of gpaStart inside the region. */
  regionOffset: number;
}

function hexToSafeNumber(hex: string): number | undefined {
  if (hex.length > 16) return undefined;
  const value = BigInt(`0x${hex}`);
  return value <= BigInt(MAX_EXACT) ? Number(value) : undefined;
}

const ENTRY_RE = /^\s+([0-9a-fA-F]{1,16})-([0-9a-fA-F]{1,16}) \(prio (-?\d+), ([a-z/ ]+)\): (.+?)(?: @([0-9a-fA-F]{1,16}))?(?: KVM)?\s*$/;

/** Parses `info mtree -f` and returns the flat view that renders address space `as`
 *  ("memory" = what the CPUs and devices see). Lines it does not understand are skipped;
 *  ranges beyond 2^53 (never RAM) are dropped. */
export function parseMtreeFlat(text: string, as = 'memory'): FlatViewEntry[] {
  const views: Array<{ spaces: string[]; entries: FlatViewEntry[] }> = [];
  let current: { spaces: string[]; entries: FlatViewEntry[] } | undefined;
  for (const line of String(text).split('\n')) {
    if (/^FlatView #\d+/.test(line)) {
      current = { spaces: [], entries: [] };
      views.push(current);
      continue;
    }
    if (!current) continue;
    const asMatch = /^\s*AS "([^"]*)"/.exec(line);
    if (asMatch) {
      current.spaces.push(asMatch[1]);
      continue;
    }
    const m = ENTRY_RE.exec(line);
    if (!m) continue;
    const start = hexToSafeNumber(m[1]);
    const last = hexToSafeNumber(m[2]);
    if (start === undefined || last === undefined || last < start || last + 1 > MAX_EXACT) continue;
    const offset = m[6] === undefined ? 0 : hexToSafeNumber(m[6]);
    if (offset === undefined) continue;
    current.entries.push({
      gpaStart: start,
      gpaEnd: last + 1,
      priority: Number(m[3]),
      kind: m[4].trim(),
      region: m[5],
      regionOffset: offset,
    });
  }
  const view = views.find((v) => v.spaces.includes(as));
  return view ? view.entries : [];
}

export interface ProcMapping {
  start: number;
  end: number;
  perms: string;
  fileOffset: number;
  /** Backing file identity "dev:inode" ("00:00:0" for anonymous memory). */
  file: string;
  path: string;
}

/** Parses /proc/PID/maps. Addresses beyond 2^53 (not user space) are dropped. */
export function parseProcMaps(text: string): ProcMapping[] {
  const out: ProcMapping[] = [];
  for (const line of String(text).split('\n')) {
    const m = /^([0-9a-f]{1,16})-([0-9a-f]{1,16})\s+(\S{4})\s+([0-9a-f]{1,16})\s+([0-9a-f]{1,8}:[0-9a-f]{1,8})\s+(\d{1,20})\s*(.*)$/.exec(line);
    if (!m) continue;
    const start = hexToSafeNumber(m[1]);
    const end = hexToSafeNumber(m[2]);
    const fileOffset = hexToSafeNumber(m[4]);
    if (start === undefined || end === undefined || fileOffset === undefined || end <= start) continue;
    out.push({ start, end, perms: m[3], fileOffset, file: `${m[5]}:${m[6]}`, path: m[7] });
  }
  return out;
}

export interface MemdevInfo {
  id: string;
  sizeBytes: number;
  /** The backing file (memory-backend-file); undefined for memfd/ram backends. */
  memPath?: string;
  share?: boolean;
}

/** One linear piece of guest RAM: GPA [gpaStart, gpaEnd) is at HVA hvaStart.. in QEMU. */
export interface RamRange {
  gpaStart: number;
  gpaEnd: number;
  hvaStart: number;
  memdev: string;
  /** Offset of gpaStart inside the backend (= inside its file for file backends). */
  backendOffset: number;
  /** The mapped file's identity, "dev:inode" from /proc/PID/maps. */
  file?: string;
}

export interface GuestLayout {
  /** Sorted by gpaStart, non-overlapping, page aligned. */
  ranges: RamRange[];
  totalBytes: number;
  /** RAM regions in the flat view that could not be placed (no host mapping found). */
  unresolved: string[];
}

function pathMatches(mapPath: string, memPath: string): boolean {
  const p = mapPath.replace(/ \(deleted\)$/, '');
  return p === memPath;
}

/** Joins the flat view, the backends and the process maps into a GPA -> HVA table. */
export function buildLayout(flat: FlatViewEntry[], memdevs: MemdevInfo[], maps: ProcMapping[]): GuestLayout {
  const ranges: RamRange[] = [];
  const unresolved = new Set<string>();
  const byRegion = new Map<string, MemdevInfo>();
  for (const m of memdevs) {
    byRegion.set(m.id, m);
    byRegion.set(`/objects/${m.id}`, m);
  }
  for (const entry of flat) {
    if (entry.kind !== 'ram') continue;
    const dev = byRegion.get(entry.region);
    if (!dev) {
      unresolved.add(entry.region);
      continue;
    }
    // The VMAs mapping this backend, by offset inside the backend.
    const vmas = maps
      .filter((v) => (dev.memPath ? pathMatches(v.path, dev.memPath) : v.path.startsWith('/memfd:') && v.path.includes(dev.id)))
      .sort((a, b) => a.fileOffset - b.fileOffset);
    // Clip to whole pages (the flat view can start or end mid-page only for tiny regions).
    let gpa = Math.ceil(entry.gpaStart / PAGE_BYTES) * PAGE_BYTES;
    const gpaEnd = Math.floor(entry.gpaEnd / PAGE_BYTES) * PAGE_BYTES;
    let placedAll = gpa < gpaEnd;
    while (gpa < gpaEnd) {
      const off = entry.regionOffset + (gpa - entry.gpaStart);
      if (off >= dev.sizeBytes) {
        placedAll = false;
        break;
      }
      const vma = vmas.find((v) => off >= v.fileOffset && off < v.fileOffset + (v.end - v.start));
      if (!vma) {
        placedAll = false;
        break;
      }
      const vmaRemaining = vma.fileOffset + (vma.end - vma.start) - off;
      const len = Math.min(gpaEnd - gpa, vmaRemaining, dev.sizeBytes - off);
      ranges.push({ gpaStart: gpa, gpaEnd: gpa + len, hvaStart: vma.start + (off - vma.fileOffset), memdev: dev.id, backendOffset: off, file: vma.file });
      gpa += len;
    }
    if (!placedAll) unresolved.add(entry.region);
  }
  ranges.sort((a, b) => a.gpaStart - b.gpaStart);
  // Merge pieces that are contiguous in both GPA and HVA (VMA splits, adjacent flat entries).
  const merged: RamRange[] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && last.gpaEnd > r.gpaStart) throw new Error(`layout: overlapping RAM ranges at GPA 0x${r.gpaStart.toString(16)}`);
    if (last && last.gpaEnd === r.gpaStart && last.hvaStart + (last.gpaEnd - last.gpaStart) === r.hvaStart && last.memdev === r.memdev) {
      last.gpaEnd = r.gpaEnd;
    } else {
      merged.push({ ...r });
    }
  }
  const totalBytes = merged.reduce((sum, r) => sum + (r.gpaEnd - r.gpaStart), 0);
  return { ranges: merged, totalBytes, unresolved: [...unresolved] };
}

/** Whether a dev:inode identity is anonymous memory (no file). */
export function isAnonymousFile(file: string): boolean {
  return /^0+:0+:0$/.test(file);
}

/** Why `ranges` are no longer mapped as they were when the layout was accepted (another
 *  file, another offset, a hole), or undefined when every page still is. A compromised
 *  QEMU can mmap(MAP_FIXED) another VM's RAM file over its own at the same address: the
 *  GPA -> HVA table is unchanged, only the file behind it differs. */
export function mappingDrift(ranges: RamRange[], maps: ProcMapping[]): string | undefined {
  for (const r of ranges) {
    const end = r.hvaStart + (r.gpaEnd - r.gpaStart);
    let hva = r.hvaStart;
    while (hva < end) {
      const v = maps.find((m) => m.start <= hva && hva < m.end);
      const where = `GPA 0x${(r.gpaStart + (hva - r.hvaStart)).toString(16)} (HVA 0x${hva.toString(16)})`;
      if (!v) return `${where} is no longer mapped`;
      const offset = r.backendOffset + (hva - r.hvaStart);
      if (r.file !== undefined && v.file !== r.file) return `${where} now maps file ${v.file} (dev:inode), not the RAM file ${r.file} it had`;
      if (v.fileOffset + (hva - v.start) !== offset) return `${where} now maps offset 0x${(v.fileOffset + (hva - v.start)).toString(16)} of its file, not 0x${offset.toString(16)}`;
      hva = v.end;
    }
  }
  return undefined;
}

/** The files (dev:inode) a process maps, anonymous memory left out. */
export function mappedFiles(maps: ProcMapping[]): Set<string> {
  const out = new Set<string>();
  for (const m of maps) if (!isAnonymousFile(m.file)) out.add(m.file);
  return out;
}

/** /proc/PID/maps, parsed. */
export function readProcMaps(pid: number, procRoot = '/proc'): ProcMapping[] {
  return parseProcMaps(readFileSync(`${procRoot}/${pid}/maps`, 'utf8'));
}

/** Reads the layout of a running QEMU through QMP and /proc/PID/maps. */
export async function discoverLayout(qmp: QmpClient, pid: number, procRoot = '/proc'): Promise<GuestLayout> {
  const memdevList = await qmp.execute<Array<{ id?: string; size: number; share?: boolean }>>('query-memdev');
  const memdevs: MemdevInfo[] = [];
  for (const m of memdevList) {
    if (!m.id) continue;
    let memPath: string | undefined;
    try {
      memPath = await qmp.execute<string>('qom-get', { path: `/objects/${m.id}`, property: 'mem-path' });
    } catch {
      memPath = undefined; // memfd or anonymous RAM backend
    }
    memdevs.push({ id: m.id, sizeBytes: m.size, memPath, share: m.share });
  }
  const flat = parseMtreeFlat(await qmp.hmp('info mtree -f'));
  const maps = readProcMaps(pid, procRoot);
  const layout = buildLayout(flat, memdevs, maps);
  if (layout.ranges.length === 0) {
    const names = flat.filter((e) => e.kind === 'ram').map((e) => e.region);
    throw new Error(
      `layout: no guest RAM with a host mapping found in QEMU pid ${pid} (RAM regions: ${[...new Set(names)].join(', ') || 'none'}); ` +
        'start QEMU with -object memory-backend-file,id=mem0,mem-path=...,share=on -numa node,memdev=mem0',
    );
  }
  return layout;
}

/** Reads a QEMU pidfile: a small regular file, never a FIFO, device or symlink. */
export function readPidfile(path: string): number {
  const text = readSmallFile(path, { maxBytes: 32, noFollow: true, what: 'pidfile' }).trim();
  const pid = Number(text);
  if (!/^\d{1,10}$/.test(text) || pid <= 0 || pid > 0x3fffffff) throw new Error(`pidfile ${path}: ${JSON.stringify(text.slice(0, 20))} is not a process id`);
  return pid;
}
