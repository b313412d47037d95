// host.json validation: good configs parse to pages/bytes, bad ones fail naming the field.
import { describe, expect, it } from 'vitest';
import { parseHostConfig } from '../host-agent/config.js';
import { HostServer } from '../host-agent/server.js';

const vm = (extra: Record<string, unknown> = {}) => ({ name: 'vm1', identity: { listen: 'unix:/run/vtier/vm1.sock' }, qmp: '/run/vm1.qmp', pidfile: '/run/vm1.pid', dramBudget: '8G', ...extra });

describe('parseHostConfig', () => {
  it('parses VMs, node lists, sizes, limits', () => {
    const c = parseHostConfig({
      vms: [vm(), { name: 'vm2', identity: { vsockCid: 5 }, qmp: '/q2', pidfile: '/p2' }, { name: 'bare', identity: { listen: 'unix:/l' }, localPid: 42, dramBudget: '1G' }],
      vsockListen: 'vsock:any:5000',
      dramNodes: '0-1',
      cxlNodes: [2],
      dramPool: '16G',
      migrationRateMBps: 2048,
      prometheus: '127.0.0.1:9464',
      limits: { readTimeoutMs: 1000 },
    });
    expect(c.vms.map((v) => [v.name, v.identity.kind, v.target.kind, v.dramBudgetPages])).toEqual([
      ['vm1', 'listen', 'qemu', 2097152],
      ['vm2', 'vsock', 'qemu', undefined],
      ['bare', 'listen', 'local', 262144],
    ]);
    expect(c.dramNodes).toEqual([0, 1]);
    expect(c.cxlNodes).toEqual([2]);
    expect(c.dramPoolPages).toBe(4194304);
    expect(c.migrationBytesPerSec).toBe(2048 * 1024 * 1024);
    expect(c.prometheus).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(c.limits.readTimeoutMs).toBe(1000);
    expect(c.limits.maxFrameBytes).toBe(1 << 20);
  });

  it.each([
    [{}, /vms/],
    [{ vms: [vm({ name: 'bad name' })] }, /name/],
    [{ vms: [vm(), vm()] }, /twice/],
    [{ vms: [vm({ identity: {} })] }, /identity/],
    [{ vms: [vm({ identity: { vsockCid: 2 } })], vsockListen: 'vsock:any:1' }, /vsockCid/],
    [{ vms: [vm({ identity: { vsockCid: 3 } })] }, /vsockListen/],
    [{ vms: [vm({ identity: { listen: 'tcp:10.0.0.1:80' } })] }, /loopback|tcp/],
    [{ vms: [vm({ dramBudget: undefined })] }, /dramPool/],
    [{ vms: [vm()], dramNodes: '0' }, /both or neither/],
    [{ vms: [vm()], dramNodes: '0-1', cxlNodes: '1' }, /overlap/],
    [{ vms: [vm()], prometheus: '0.0.0.0:9464' }, /loopback/],
    [{ vms: [vm()], migrationRateMBps: -1 }, /migrationRateMBps/],
    [{ vms: [vm({ qmp: undefined, pidfile: undefined })] }, /qmp/],
    // A typo must not silently turn a limit off: the unknown key and the nearest known one.
    [{ vms: [vm()], migrationRateMbps: 100 }, /host\.json: unknown key "migrationRateMbps" \(did you mean "migrationRateMBps"\?\)/],
    [{ vms: [vm({ dramBuget: '1G' })] }, /vms\[0\]: unknown key "dramBuget" \(did you mean "dramBudget"\?\)/],
    [{ vms: [vm()], limits: { maxDecisionPerSec: 5 } }, /limits: unknown key "maxDecisionPerSec" \(did you mean "maxDecisionsPerSec"\?\)/],
    [{ vms: [vm({ identity: { listen: 'unix:/a', vsockCid: 3 } })] }, /exactly one/],
    [{ vms: [vm({ localPid: 42 })] }, /exclude each other/],
    [{ vms: [vm(), vm({ name: 'vm2', identity: { listen: 'unix:/b' }, pidfile: '/run/vm2.pid' })] }, /vm1 and vm2 share the QMP socket/],
    [{ vms: [vm(), vm({ name: 'vm2', identity: { listen: 'unix:/b' }, qmp: '/run/vm2.qmp' })] }, /vm1 and vm2 share the pidfile/],
    [{ vms: [vm(), vm({ name: 'vm2', qmp: '/q2', pidfile: '/p2' })] }, /share the listen socket/],
  ])('refuses %j', (config, message) => {
    expect(() => parseHostConfig(config)).toThrow(message);
  });
});

describe('HostServer refuses node lists this host does not have', () => {
  const topology = { nodes: [{ id: 0, cpus: [0], memTotalBytes: 1 << 30, cpuless: false }], memoryTiers: [] };
  it('names the missing CXL node and the nodes that exist', () => {
    const config = parseHostConfig({ vms: [vm()], dramNodes: '0', cxlNodes: '3' });
    expect(() => new HostServer({ config, topology })).toThrow(/cxlNodes: node 3 does not exist on this host \(nodes: 0\)/);
    expect(() => new HostServer({ config: parseHostConfig({ vms: [vm()], dramNodes: '0', cxlNodes: [] }), topology })).not.toThrow();
  });
});
