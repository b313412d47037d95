// Transport specs as users write them: unix:PATH, tcp:HOST:PORT, serial:PATH, vsock:CID:PORT.
import { InputError } from '../src/util/units.js';

export type TransportSpec =
  | { kind: 'unix'; path: string }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'serial'; path: string }
  | { kind: 'vsock'; cid: number; port: number };

/** VMADDR_CID_ANY / VMADDR_PORT_ANY. */
const VSOCK_ANY = 0xffffffff;
/** Well-known vsock CIDs: 2 is the host as seen from a guest. */
const VSOCK_NAMED: Record<string, number> = { any: VSOCK_ANY, host: 2, local: 1 };

function u32(text: string, field: string): number {
  if (!/^\d{1,10}$/.test(text) || Number(text) > 0xffffffff) throw new InputError(`${field}: expected an integer in [0, 4294967295], got "${text}"`);
  return Number(text);
}

export function parseTransportSpec(text: string): TransportSpec {
  const colon = text.indexOf(':');
  const kind = colon < 0 ? '' : text.slice(0, colon);
  const rest = colon < 0 ? '' : text.slice(colon + 1);
  switch (kind) {
    case 'unix':
    case 'serial':
      if (!rest) throw new InputError(`${kind} path: missing (e.g. ${kind === 'unix' ? 'unix:/run/vtier/vm1.sock' : 'serial:/dev/virtio-ports/vtier'})`);
      if (kind === 'unix' && Buffer.byteLength(rest) > 107) throw new InputError('unix path: longer than 107 bytes');
      return { kind, path: rest };
    case 'tcp': {
      const at = rest.lastIndexOf(':');
      if (at <= 0) throw new InputError(`tcp: expected tcp:HOST:PORT, got "${text}"`);
      const host = rest.slice(0, at).replace(/^\[(.*)\]$/, '$1');
      const port = u32(rest.slice(at + 1), 'tcp port');
      if (port > 65535) throw new InputError(`tcp port: expected 0..65535, got ${port}`);
      return { kind, host, port };
    }
    case 'vsock': {
      const parts = rest.split(':');
      if (parts.length !== 2) throw new InputError(`vsock: expected vsock:CID:PORT, got "${text}"`);
      const cid = parts[0] in VSOCK_NAMED ? VSOCK_NAMED[parts[0]] : u32(parts[0], 'vsock cid');
      const port = parts[1] === 'any' ? VSOCK_ANY : u32(parts[1], 'vsock port');
      return { kind, cid, port };
    }
    default:
      throw new InputError(`transport: expected unix:PATH, tcp:HOST:PORT, serial:PATH or vsock:CID:PORT, got "${text}"`);
  }
}

export function formatTransportSpec(spec: TransportSpec): string {
  switch (spec.kind) {
    case 'unix':
    case 'serial':
      return `${spec.kind}:${spec.path}`;
    case 'tcp':
      return `tcp:${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${spec.port}`;
    case 'vsock':
      return `vsock:${spec.cid === VSOCK_ANY ? 'any' : spec.cid}:${spec.port === VSOCK_ANY ? 'any' : spec.port}`;
  }
}
