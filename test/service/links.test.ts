/**
 * The named links core.ts makes first and hands to the parts: a request for maintenance made
 * before the supervisor serves is not lost, and the handles the key manager is changing are
 * what recovery sees as busy, whichever part was made first.
 */
import { describe, expect, it } from 'vitest';
import { MaintenanceRequests } from '../../src/service/tpm/maintenance.js';
import { KeysInChange } from '../../src/service/keys/in-change.js';

describe('links between the service parts', () => {
  it('a maintenance request made before anyone serves is delivered once served; later ones at once', () => {
    const m = new MaintenanceRequests();
    m.request();
    m.request();
    const seen: string[] = [];
    m.serve(() => seen.push('served'));
    expect(seen).toEqual(['served']); // the two early requests ask for the same thing: once
    m.request();
    expect(seen).toEqual(['served', 'served']);
  });

  it('a handle is busy while a create/delete or a purge holds it', () => {
    const c = new KeysInChange();
    expect(c.has(0x81010000)).toBe(false);
    c.creatingOrDeleting.add(0x81010000);
    c.purging.add(0x81010001);
    expect([0x81010000, 0x81010001, 0x81010002].map((h) => c.has(h))).toEqual([true, true, false]);
  });
});
