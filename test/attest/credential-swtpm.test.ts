/**
 * Credential activation on swtpm, both directions with stock tpm2-tools, RSA and ECC EK:
 * - our makeCredential (to the EK public area tpm2_createek gives) → stock
 *   tpm2_activatecredential with the AK tpm2_createak made: the secret comes back;
 * - stock `tpm2_makecredential -T none` (to the EK public area the library reads) → our
 *   activateCredential with an AK createAk made: the secret comes back;
 * - a credential made for another Name is refused with a CredentialError; nothing stays loaded.
 *
 * swtpm serves one connection at a time: the library's transport is opened per step and closed
 * before any tool runs (withLib).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CredentialError,
  TPM2B_PUBLIC,
  Tpm,
  activateCredential,
  createAk,
  createTransientEk,
  decode,
  encode,
  flush,
  makeCredential,
  objectName,
  readCredentialFile,
  readPublic,
  writeCredentialFile,
  type CreatedKey,
  type KeyType,
  type TPMT_PUBLIC,
} from '../../src/tpm/index.js';
import { expectNothingLoaded } from '../helpers/hygiene.js';
import { socatAvailable, startSwtpm, swtpmAvailable, type SwtpmInstance, withTpmOn } from '../helpers/swtpm.js';
import { tpm2Tools, tpm2ToolsAvailable, workDir, type Tpm2Tools } from '../helpers/tpm-tools.js';
import { skipUnlessCI } from '../helpers/ci.js';

const KEY_TYPES: KeyType[] = ['rsa', 'ecc'];
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// socat: the raw connection for tpm2_activatecredential's PolicySecret session chain
const ready = swtpmAvailable() && tpm2ToolsAvailable() && socatAvailable();

describe.skipIf(skipUnlessCI(!ready))('credential activation on swtpm, with stock tpm2-tools both ways', () => {
  let sw: SwtpmInstance;
  let dir: string;
  let removeDir: () => Promise<void>;
  let tools: Tpm2Tools;
  let raw: Tpm2Tools;
  const withLib = <T>(fn: (tpm: Tpm) => Promise<T>): Promise<T> => withTpmOn(sw, fn);
  const file = (name: string): string => join(dir, name);
  const read = async (name: string): Promise<Uint8Array> => new Uint8Array(await readFile(file(name)));

  async function ekPublic(type: KeyType): Promise<TPMT_PUBLIC> {
    return withLib(async (tpm) => {
      const ek = await createTransientEk(tpm, type);
      try {
        return (await readPublic(tpm, ek.handle)).publicArea;
      } finally {
        await flush(tpm, ek.handle);
      }
    });
  }

  beforeAll(async () => {
    sw = await startSwtpm();
    ({ dir, remove: removeDir } = await workDir('credential-'));
    tools = tpm2Tools(sw.sockPath, dir);
    raw = tpm2Tools(sw.sockPath, dir, { raw: true });
  });

  afterAll(async () => {
    await sw?.stop();
    await removeDir?.();
  });

  afterEach(async () => {
    await withLib((tpm) => expectNothingLoaded(tpm));
  });

  describe.each(KEY_TYPES)('%s EK', (type) => {
    const f = (s: string): string => `${type}-${s}`;
    let ak: CreatedKey;

    beforeAll(async () => {
      ak = await withLib((tpm) => createAk(tpm, 'rsa', { ekType: type }));
    });

    it('our makeCredential → stock tpm2_activatecredential recovers the secret', async () => {
      await tools('tpm2_createek', '-c', f('ek.ctx'), '-G', type, '-u', f('ek.pub'));
      await tools('tpm2_createak', '-C', f('ek.ctx'), '-c', f('ak.ctx'), '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', f('ak.pub'), '-n', f('ak.name'), '-r', f('ak.priv'));
      const ekPub = decode(TPM2B_PUBLIC, await read(f('ek.pub')));
      expect(hex(objectName(ekPub))).toBe(hex(objectName(await ekPublic(type)))); // the same EK
      const secret = new Uint8Array(Buffer.from(`credential for the ${type} EK!`));
      await writeFile(file(f('ours.blob')), writeCredentialFile(makeCredential(ekPub, await read(f('ak.name')), secret)));
      // The EK needs PolicySecret(endorsement): a session chain over the raw connection.
      try {
        await raw('tpm2_startauthsession', '--policy-session', '-S', f('s.ctx'));
        await raw('tpm2_policysecret', '-S', f('s.ctx'), '-c', 'e');
        await raw('tpm2_activatecredential', '-c', f('ak.ctx'), '-C', f('ek.ctx'), '-i', f('ours.blob'), '-o', f('ours.secret'), '-P', `session:${f('s.ctx')}`);
        await raw('tpm2_flushcontext', f('s.ctx'));
      } finally {
        await tools.raw('tpm2_flushcontext', '-t'); // through the bridge: flushes whatever the chain left
      }
      expect(hex(await read(f('ours.secret')))).toBe(hex(secret));
    });

    it('stock tpm2_makecredential -T none → our activateCredential recovers the secret', async () => {
      const ekPub = await ekPublic(type);
      await writeFile(file(f('lib-ek.pub')), encode(TPM2B_PUBLIC, ekPub));
      const secret = new Uint8Array(Buffer.from('0123456789abcdef0123456789abcdef'));
      await writeFile(file(f('secret')), secret);
      await tools('tpm2_makecredential', '-T', 'none', '-e', f('lib-ek.pub'), '-s', f('secret'), '-n', hex(ak.name), '-o', f('theirs.blob'));
      const cred = readCredentialFile(await read(f('theirs.blob')));
      const out = await withLib((tpm) => activateCredential(tpm, { key: ak, ek: type, ...cred }, { ekType: type }));
      expect(hex(out)).toBe(hex(secret));
    });

    it('our makeCredential → our activateCredential', async () => {
      const secret = new Uint8Array([1, 2, 3]);
      const cred = makeCredential(await ekPublic(type), ak.name, secret);
      const out = await withLib((tpm) => activateCredential(tpm, { key: ak, ek: type, ...cred }, { ekType: type }));
      expect(hex(out)).toBe(hex(secret));
    });

    it('a credential made for another Name is refused with a clear error', async () => {
      const other = new Uint8Array(ak.name);
      other[other.length - 1]! ^= 1;
      const cred = makeCredential(await ekPublic(type), other, new Uint8Array([9]));
      const err = await withLib((tpm) => activateCredential(tpm, { key: ak, ek: type, ...cred }, { ekType: type })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CredentialError);
      expect(String((err as Error).message)).toMatch(/made for another key Name or another EK/);
    });
  });

  it('a credential made for the other EK is refused', async () => {
    const ak = await withLib((tpm) => createAk(tpm, 'rsa', { ekType: 'rsa' }));
    const cred = makeCredential(await ekPublic('ecc'), ak.name, new Uint8Array([7]));
    const err = await withLib((tpm) => activateCredential(tpm, { key: ak, ek: 'rsa', ...cred }, { ekType: 'rsa' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CredentialError);
  });
});
