/**
 * One tenant's usage reading: its configured sources (cgroup.ts, netif.ts), read on their own
 * (never through the TPM queue), and what the service accounts to it (tpm-accounting.ts).
 * A new source is one more provider file and one more member here and in the Usage message.
 */
import type { TpmUsage, Usage } from '../protocol/messages.js';
import type { Tenant } from '../tenants/tenants.js';
import { readAppCgroup } from './cgroup-place.js';
import { missing } from './counters.js';
import { MOUNTINFO, readCgroupMounts } from './mountinfo.js';
import { readNetwork, SYS_CLASS_NET } from './netif.js';
import type { TpmAccounting } from './tpm-accounting.js';

export interface UsageReaderDeps {
  accounting: TpmAccounting;
  /** Keys the tenant holds (as create-key counts them against the quota). */
  keysHeld(t: Tenant): number;
  /** Where interfaces are (default /sys/class/net; tests give a fixture tree). */
  netRoot?: string;
  /** Where the cgroup hierarchies are listed (default /proc/self/mountinfo: read per reading, mounts may change). */
  mountinfo?: string;
}

const NOT_CONFIGURED = (what: string, flag: string): string =>
  `no ${what} is configured for this app: the host administrator names it with eve-tpm-service tenant add or tenant set ${flag}`;

/** Milliseconds kept to the microsecond: enough, and stable in JSON. */
const ms = (v: number): number => Math.round(v * 1000) / 1000;

export class UsageReader {
  constructor(private readonly d: UsageReaderDeps) {}

  async read(t: Tenant): Promise<Usage> {
    const timestamp = new Date().toISOString();
    const cgroupPath = t.cgroup;
    const [cgroup, network] = await Promise.all([
      cgroupPath === undefined ? missing(NOT_CONFIGURED('cgroup', '--cgroup PATH'), false) : readCgroupMounts(this.d.mountinfo ?? MOUNTINFO).then((m) => readAppCgroup(cgroupPath, m)),
      t.netifs === undefined || t.netifs.length === 0 ? missing(NOT_CONFIGURED('network interface', '--netif NAME'), false) : readNetwork(this.d.netRoot ?? SYS_CLASS_NET, t.netifs),
    ]);
    return { tenant: t.id, timestamp, cgroup, network, tpm: this.tpm(t) };
  }

  tpm(t: Tenant): TpmUsage {
    const a = this.d.accounting.account(t.id);
    const held = this.d.keysHeld(t);
    return {
      since: this.d.accounting.since.toISOString(),
      requests: [...a.requests].map(([op, r]) => ({ op, count: r.count, refused: r.refused })).sort((x, y) => (x.op < y.op ? -1 : x.op > y.op ? 1 : 0)),
      tpmTimeMs: ms(a.tpmTimeMs),
      keys: { held, max: t.maxKeys, left: Math.max(0, t.maxKeys - held) },
      queueWaits: { count: a.waits.count, totalMs: ms(a.waits.totalMs), maxMs: ms(a.waits.maxMs) },
    };
  }
}
