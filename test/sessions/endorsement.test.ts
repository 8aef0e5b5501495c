/**
 * An endorsement-hierarchy password never crosses the bus in clear (bus snooping on a real
 * device): createAk/loadKey with `endorsementAuth` re-derive the EK (CreatePrimary) and satisfy
 * the EK's PolicySecret through salted HMAC sessions. Every command frame sent is recorded and
 * searched for the password. Before sessions, both commands carried it as a cleartext password.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tpm } from '../../src/tpm/tpm.js';
import { TPM_RH } from '../../src/tpm/constants.js';
import { TpmError } from '../../src/tpm/rc.js';
import { createAk, loadKey } from '../../src/tpm/ops/ak.js';
import { flush } from '../../src/tpm/ops/objects.js';
import { withHierarchyAuth } from '../../src/tpm/ops/session.js';
import type { SendOptions, Transport } from '../../src/tpm/transport/types.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { HierarchyChangeAuth } from '../helpers/hierarchy.js';

class Recorder implements Transport {
  readonly description = 'recorder';
  readonly requests: Uint8Array[] = [];
  constructor(private readonly inner: Transport) {}
  send(request: Uint8Array, opts?: SendOptions): Promise<Uint8Array> {
    this.requests.push(request);
    return this.inner.send(request, opts);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const PASSWORD = 'endorsement-password-on-the-bus?';
const contains = (frames: Uint8Array[], s: string): boolean => frames.some((f) => Buffer.from(f).includes(Buffer.from(s)));

describe.skipIf(!swtpmAvailable())('endorsement password over salted sessions', () => {
  let sw: SwtpmInstance;
  let rec: Recorder;
  let tpm: Tpm;

  beforeAll(async () => {
    sw = await startSwtpm();
    rec = new Recorder(sw.transport());
    tpm = new Tpm(rec);
    // Set the password in clear (setup): that frame shows the search below finds a cleartext password.
    await tpm.run(HierarchyChangeAuth, { authHandle: TPM_RH.ENDORSEMENT, newAuth: new TextEncoder().encode(PASSWORD) });
    expect(contains(rec.requests, PASSWORD)).toBe(true);
  }, 60_000);

  afterAll(async () => {
    await sw?.stop();
  });

  it.each(['rsa', 'ecc'] as const)('createAk(%s) and loadKey with endorsementAuth: the password is in no frame', async (type) => {
    const from = rec.requests.length;
    expect(from).toBeGreaterThan(0);
    const key = await createAk(tpm, type, { endorsementAuth: PASSWORD });
    const h = await loadKey(tpm, key, { endorsementAuth: PASSWORD });
    await flush(tpm, h);
    const sent = rec.requests.slice(from);
    expect(sent.length).toBeGreaterThan(6);
    expect(contains(sent, PASSWORD)).toBe(false);
  });

  it('a wrong endorsement password is still refused by the TPM', async () => {
    await expect(createAk(tpm, 'ecc', { endorsementAuth: 'wrong' })).rejects.toBeInstanceOf(TpmError);
  });

  it('the password can be changed back through the salted session; its new value is encrypted too', async () => {
    const from = rec.requests.length;
    const next = 'second-password-also-hidden';
    await withHierarchyAuth(tpm, PASSWORD, (auth) => {
      // The TPM answers HierarchyChangeAuth with an HMAC keyed by the new password.
      if (!('session' in auth)) throw new Error('expected a session');
      const use = auth.session.use(PASSWORD, { responseAuthValue: next });
      return tpm.run(HierarchyChangeAuth, { authHandle: TPM_RH.ENDORSEMENT, newAuth: new TextEncoder().encode(next) }, { auth: { authHandle: use } });
    });
    expect(contains(rec.requests.slice(from), PASSWORD) || contains(rec.requests.slice(from), next)).toBe(false);
    const key = await createAk(tpm, 'ecc', { endorsementAuth: next });
    expect(key.public.length).toBeGreaterThan(0);
  });
});
