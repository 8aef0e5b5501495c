/**
 * The network provider: the counters of the app's host-side interfaces
 * (/sys/class/net/NAME/statistics/*), turned to the app's direction: what the host end
 * transmits, the app received.
 */
import { join } from 'node:path';
import type { InterfaceUsage, NetworkUsage, UsageMissing } from '../protocol/messages.js';
import { missing, readText, singleCounter } from './counters.js';

export const SYS_CLASS_NET = '/sys/class/net';
/** A Linux interface name: up to 15 bytes, no '/', no whitespace; never '.' or '..'. */
export const NETIF_NAME = /^(?!\.\.?$)[A-Za-z0-9_.:@-]{1,15}$/;

/** The app's field ← the host end's statistics file. */
const FIELDS = [
  ['rxBytes', 'tx_bytes'],
  ['txBytes', 'rx_bytes'],
  ['rxPackets', 'tx_packets'],
  ['txPackets', 'rx_packets'],
  ['rxErrors', 'tx_errors'],
  ['txErrors', 'rx_errors'],
  ['rxDropped', 'tx_dropped'],
  ['txDropped', 'rx_dropped'],
] as const;

export async function readInterface(root: string, name: string): Promise<InterfaceUsage | (UsageMissing & { name: string })> {
  if (!NETIF_NAME.test(name)) return { name, ...missing(`${JSON.stringify(name)} is not an interface name`) };
  const dir = join(root, name, 'statistics');
  const reads = await Promise.all(FIELDS.map(([, f]) => readText(join(dir, f), `${name}/statistics/${f}`)));
  const out: Record<string, number> = {};
  for (let i = 0; i < FIELDS.length; i++) {
    const c = singleCounter(reads[i]!, `${name}/statistics/${FIELDS[i]![1]}`);
    if (!c.ok) {
      const gone = reads.every((r) => !r.ok && r.reason.endsWith('does not exist'));
      return { name, ...missing(gone ? `interface ${name} does not exist on the host (is the app running?)` : c.reason) };
    }
    out[FIELDS[i]![0]] = c.value;
  }
  return { name, available: true, ...(out as Omit<InterfaceUsage, 'name' | 'available'>) };
}

export async function readNetwork(root: string, names: readonly string[]): Promise<NetworkUsage> {
  const interfaces = await Promise.all(names.map((n) => readInterface(root, n)));
  let rxBytes = 0;
  let txBytes = 0;
  for (const i of interfaces) {
    if (!i.available) continue;
    rxBytes += i.rxBytes;
    txBytes += i.txBytes;
  }
  return { available: true, rxBytes, txBytes, interfaces };
}
