/**
 * The network provider on a real interface: this machine's loopback, whose counters move by at
 * least what the test sends through it (others may send too: only lower bounds are asserted).
 * Where /sys/class/net/lo/statistics is missing the test says why and does not run.
 */
import { existsSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { readInterface, SYS_CLASS_NET } from '../../src/service/usage/netif.js';

const present = existsSync(`${SYS_CLASS_NET}/lo/statistics/rx_bytes`);
if (!present) console.warn('real interface test not run: no /sys/class/net/lo/statistics');

async function sendDatagrams(count: number, size: number): Promise<void> {
  const rx = createSocket('udp4');
  const tx = createSocket('udp4');
  let got = 0;
  const all = new Promise<void>((resolve) =>
    rx.on('message', () => {
      if (++got === count) resolve();
    }),
  );
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', r));
  const port = rx.address().port;
  const payload = Buffer.alloc(size, 7);
  for (let i = 0; i < count; i++) await new Promise<void>((r, j) => tx.send(payload, port, '127.0.0.1', (e) => (e ? j(e) : r())));
  await all;
  rx.close();
  tx.close();
}

describe.skipIf(!present)('a real interface', () => {
  it('loopback counters move by at least what went through it, both ways', async () => {
    const before = await readInterface(SYS_CLASS_NET, 'lo');
    if (!before.available) throw new Error(before.reason);
    await sendDatagrams(50, 1000);
    const after = await readInterface(SYS_CLASS_NET, 'lo');
    if (!after.available) throw new Error(after.reason);
    // Loopback receives what it transmits: both directions carry the 50 × 1000 payload bytes.
    expect(after.rxBytes - before.rxBytes).toBeGreaterThanOrEqual(50_000);
    expect(after.txBytes - before.txBytes).toBeGreaterThanOrEqual(50_000);
    expect(after.rxPackets - before.rxPackets).toBeGreaterThanOrEqual(50);
  });
});
