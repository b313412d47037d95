// The lab VM's QEMU command line, as a pure function of its spec (unit-tested, no I/O).
//
// One memory-backend-file per NUMA node (share=on, so a host agent can move the pages with
// move_pages(2), as on a production host); with two nodes, node 1 has no CPUs and HMAT
// entries give it CXL-like latency and bandwidth, which a >= 6.10 guest kernel uses to put
// it in a lower memory tier. QEMU 7.2 has no volatile CXL type-3 device (8.1+): the CPU-less
// HMAT node is the stand-in, and both nodes are the same host DRAM underneath.
// Never a vhost-vsock device: the host's vsock belongs to the infrastructure here.

export type LabMode = 'run' | 'shell' | 'probe';
export type LabAccel = 'kvm' | 'tcg';

export interface LabSpec {
  mode: LabMode;
  accel: LabAccel;
  nodes: 1 | 2;
  /** Node 0 (DRAM) size. */
  memBytes: number;
  /** Node 1 (the CXL stand-in) size; ignored with one node. */
  cxlBytes: number;
  smp: number;
  kernel: string;
  initrd: string;
  checkout: string;
  /** The one read-write directory shared with the guest (mounted at the same path inside). */
  results: string;
  /** Memory files are `${memPrefix}-m0`, `${memPrefix}-m1`. */
  memPrefix: string;
  qmpSocket: string;
  /** The virtio-serial port `vtier` (the guest agent's `--connect serial:/dev/virtio-ports/vtier`). */
  serialSocket: string;
  pidfile: string;
  consoleLog: string;
  outputLog: string;
}

/** Latency (ns) and bandwidth of each node as seen from node 0's CPUs: local DRAM and CXL
 *  figures measured with Intel MLC on the target testbed (see docs/lab.md). */
export const HMAT = {
  dram: { latencyNs: 107, bandwidth: '104G' },
  cxl: { latencyNs: 300, bandwidth: '18G' },
} as const;

/** What QEMU options and the kernel command line can carry without quoting: no commas
 *  (QEMU's separator), spaces or shell characters. */
const SAFE_PATH = /^\/[A-Za-z0-9._/+@-]*$/;

export class LabSpecError extends Error {}

export function checkLabPath(path: string, what: string): void {
  if (!SAFE_PATH.test(path)) {
    throw new LabSpecError(`${what} "${path}": the lab passes it to QEMU and the guest kernel command line, so it must be absolute and use only letters, digits and . _ / + @ -`);
  }
}

const MiB = 1 << 20;

export function validateSpec(spec: LabSpec): void {
  if (spec.nodes !== 1 && spec.nodes !== 2) throw new LabSpecError(`nodes: 1 or 2, got ${spec.nodes}`);
  if (!Number.isSafeInteger(spec.smp) || spec.smp < 1 || spec.smp > 64) throw new LabSpecError(`smp: 1 to 64 vCPUs, got ${spec.smp}`);
  const sizes: Array<[string, number]> = [['mem', spec.memBytes]];
  if (spec.nodes === 2) sizes.push(['cxl', spec.cxlBytes]);
  for (const [name, bytes] of sizes) {
    if (!Number.isSafeInteger(bytes) || bytes < 256 * MiB) throw new LabSpecError(`${name}: at least 256M, got ${bytes} bytes`);
    if (bytes % (2 * MiB) !== 0) throw new LabSpecError(`${name}: a multiple of 2M (a huge page), got ${bytes} bytes`);
  }
  for (const [what, path] of [
    ['kernel', spec.kernel],
    ['initrd', spec.initrd],
    ['checkout', spec.checkout],
    ['results dir', spec.results],
    ['memory file prefix', spec.memPrefix],
    ['QMP socket', spec.qmpSocket],
    ['serial socket', spec.serialSocket],
    ['pidfile', spec.pidfile],
    ['console log', spec.consoleLog],
    ['output log', spec.outputLog],
  ] as const) {
    checkLabPath(path, what);
  }
}

export function memFiles(spec: Pick<LabSpec, 'memPrefix' | 'nodes'>): string[] {
  return spec.nodes === 2 ? [`${spec.memPrefix}-m0`, `${spec.memPrefix}-m1`] : [`${spec.memPrefix}-m0`];
}

export function kernelCommandLine(spec: LabSpec): string {
  return [
    'console=ttyS0',
    'rdinit=/init',
    // A panic ends QEMU (with -no-reboot) instead of hanging until the timeout.
    'panic=-1',
    'loglevel=4',
    // NUMA balancing is off unless an experiment turns it on (the autonuma arm): it would
    // otherwise move pages behind the experiment's back (the kernel's default is on).
    'numa_balancing=disable',
    // Under TCG the guest's accessed bits need PTI. QEMU's software TLB keeps a translation
    // until the guest flushes it, and x86 clears accessed bits without a flush, so a process
    // that runs alone on its vCPU keeps hitting cached translations and DAMON sees its hot pages
    // as idle for seconds (mission recall 0.1-0.5, flickering). PTI writes CR3 on every kernel
    // entry, and TCG flushes its TLB on each write, so translations live no longer than a tick,
    // as a hardware TLB's do. KVM walks the guest's page tables in hardware: no PTI there.
    ...(spec.accel === 'kvm' ? [] : ['pti=on']),
    `vtier.mode=${spec.mode}`,
    `vtier.checkout=${spec.checkout}`,
    `vtier.results=${spec.results}`,
  ].join(' ');
}

export function qemuArgs(spec: LabSpec): string[] {
  validateSpec(spec);
  const mib = (bytes: number) => `${bytes / MiB}M`;
  const files = memFiles(spec);
  const totalBytes = spec.memBytes + (spec.nodes === 2 ? spec.cxlBytes : 0);
  const args: string[] = [
    '-machine', spec.nodes === 2 ? 'q35,hmat=on' : 'q35',
    ...(spec.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
    '-smp', String(spec.smp),
    '-m', mib(totalBytes),
    '-object', `memory-backend-file,id=m0,size=${mib(spec.memBytes)},mem-path=${files[0]},share=on`,
  ];
  const cpus = `cpus=0-${spec.smp - 1}`;
  if (spec.nodes === 2) {
    args.push(
      '-object', `memory-backend-file,id=m1,size=${mib(spec.cxlBytes)},mem-path=${files[1]},share=on`,
      '-numa', `node,nodeid=0,${cpus},memdev=m0,initiator=0`,
      '-numa', 'node,nodeid=1,memdev=m1,initiator=0',
    );
    for (const [target, tier] of [[0, HMAT.dram], [1, HMAT.cxl]] as const) {
      args.push(
        '-numa', `hmat-lb,initiator=0,target=${target},hierarchy=memory,data-type=access-latency,latency=${tier.latencyNs}`,
        '-numa', `hmat-lb,initiator=0,target=${target},hierarchy=memory,data-type=access-bandwidth,bandwidth=${tier.bandwidth}`,
      );
    }
  } else {
    args.push('-numa', `node,nodeid=0,${cpus},memdev=m0`);
  }
  args.push(
    '-kernel', spec.kernel,
    '-initrd', spec.initrd,
    '-append', kernelCommandLine(spec),
    '-fsdev', 'local,id=fsroot,path=/,readonly=on,security_model=none,multidevs=remap',
    '-device', 'virtio-9p-pci,fsdev=fsroot,mount_tag=root',
    '-fsdev', `local,id=fsres,path=${spec.results},security_model=passthrough,multidevs=remap`,
    '-device', 'virtio-9p-pci,fsdev=fsres,mount_tag=results',
    '-device', 'virtio-serial-pci',
    '-chardev', `socket,id=vtier0,path=${spec.serialSocket},server=on,wait=off`,
    '-device', 'virtserialport,chardev=vtier0,name=vtier',
    '-qmp', `unix:${spec.qmpSocket},server=on,wait=off`,
    '-pidfile', spec.pidfile,
    '-name', 'vtier-lab',
    '-display', 'none',
    '-nodefaults',
    '-no-reboot',
  );
  // ttyS0: kernel and stage-2 messages; ttyS1: the command's output. A shell gets ttyS0 on
  // the terminal (signal=off: Ctrl-C goes to the guest), logged to the console file as well.
  if (spec.mode === 'shell') args.push('-chardev', `stdio,id=con,signal=off,logfile=${spec.consoleLog}`, '-serial', 'chardev:con');
  else args.push('-serial', `file:${spec.consoleLog}`);
  args.push('-serial', `file:${spec.outputLog}`);
  return args;
}
