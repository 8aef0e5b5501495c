/**
 * Sessions with stock tpm2-tools on one swtpm, both ways:
 * - a key WE create (its password sent under our salted session's parameter encryption) is
 *   loaded by tpm2-tools under ITS OWN salted HMAC session (`tpm2_startauthsession
 *   --hmac-session -c <SRK>`: salted to and bound to the SRK, AES-128-CFB) and signs; openssl
 *   verifies with our PEM;
 * - a key tpm2-tools creates (parent authorized by its salted session) is loaded by us under our
 *   salted session and signs under our salted+bound HMAC session with its password; we verify.
 * The SRK is persisted (tpm2-tools' bridge flushes transients after every tool).
 */
import { createHash, createPublicKey, verify } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tpm } from '../../src/tpm/tpm.js';
import { Create, CreatePrimary, EvictControl, FlushContext, Load, ReadPublic, Sign } from '../../src/tpm/commands.js';
import { TPMA_OBJECT, TPM_ALG, TPM_RH, TPM_ST } from '../../src/tpm/constants.js';
import { TPM2B_PRIVATE, TPM2B_PUBLIC, type TPMT_PUBLIC } from '../../src/tpm/structures.js';
import { decode, encode } from '../../src/tpm/wire/codec.js';
import { srkRsaTemplate } from '../../src/tpm/keys/templates.js';
import { publicToPem, publicToSpkiDer } from '../../src/tpm/keys/public.js';
import { formatSignature } from '../../src/tpm/keys/signature.js';
import { akTemplate } from '../../src/tpm/ops/ak.js';
import { withSession } from '../../src/tpm/session/index.js';
import { socatAvailable, startSwtpm, swtpmAvailable, type SwtpmInstance, withTpmOn } from '../helpers/swtpm.js';
import { opensslAvailable, opensslVerify, tpm2Tools, tpm2ToolsAvailable, workDir, type Tpm2Tools } from '../helpers/tpm-tools.js';

const SRK = 0x81000077;
const EMPTY = new Uint8Array(0);
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const ready = swtpmAvailable() && tpm2ToolsAvailable() && opensslAvailable() && socatAvailable();

describe.skipIf(!ready)('sessions: interop with tpm2-tools', () => {
  let sw: SwtpmInstance;
  let dir: string;
  let removeDir: () => Promise<void>;
  let tools: Tpm2Tools;
  let raw: Tpm2Tools;
  let srkPub: TPMT_PUBLIC;
  let srkName: Uint8Array;
  const file = (n: string): string => join(dir, n);

  /** The library on the swtpm; the connection is closed before tools run (swtpm serves one at a time). */
  const withLib = <T>(fn: (tpm: Tpm) => Promise<T>): Promise<T> => withTpmOn(sw, fn);

  /** tpm2-tools runs sharing one salted HMAC session (raw connection), leftovers flushed after. */
  async function withToolsSession(fn: (session: string) => Promise<void>): Promise<void> {
    try {
      await raw('tpm2_startauthsession', '--hmac-session', '-c', `0x${SRK.toString(16)}`, '-S', 's.ctx');
      await fn('session:s.ctx');
      await raw('tpm2_flushcontext', 's.ctx');
    } finally {
      await tools('tpm2_getcap', 'handles-transient'); // the bridge flushes whatever was left
    }
  }

  const signingTemplate = (): TPMT_PUBLIC => ({ ...akTemplate('ecc'), objectAttributes: akTemplate('ecc').objectAttributes & ~TPMA_OBJECT.restricted });

  beforeAll(async () => {
    sw = await startSwtpm();
    ({ dir, remove: removeDir } = await workDir('tpm-sessions-'));
    tools = tpm2Tools(sw.sockPath, dir);
    raw = tpm2Tools(sw.sockPath, dir, { raw: true });
    await withLib(async (tpm) => {
      const p = await tpm.run(CreatePrimary, { primaryHandle: TPM_RH.OWNER, inSensitive: { userAuth: EMPTY, data: EMPTY }, inPublic: srkRsaTemplate(), outsideInfo: EMPTY, creationPCR: [] });
      await tpm.run(EvictControl, { auth: TPM_RH.OWNER, objectHandle: p.objectHandle, persistentHandle: SRK });
      await tpm.run(FlushContext, { flushHandle: p.objectHandle });
      const rp = await tpm.run(ReadPublic, { objectHandle: SRK });
      srkPub = rp.outPublic;
      srkName = rp.name;
    });
  }, 60_000);

  afterAll(async () => {
    if (sw) await withLib((tpm) => tpm.run(EvictControl, { auth: TPM_RH.OWNER, objectHandle: SRK, persistentHandle: SRK })).catch(() => undefined);
    await sw?.stop();
    await removeDir?.();
  });

  it('tpm2-tools loads (under its salted session) and signs with a key we created under ours', async () => {
    const password = 'made-by-us';
    const created = await withLib((tpm) =>
      withSession(tpm, { salt: { key: SRK, public: srkPub }, encrypt: 'both' }, (s) =>
        tpm.run(
          Create,
          { parentHandle: { handle: SRK, name: srkName }, inSensitive: { userAuth: enc(password), data: EMPTY }, inPublic: signingTemplate(), outsideInfo: EMPTY, creationPCR: [] },
          { auth: { parentHandle: s.use() } },
        ),
      ),
    );
    await writeFile(file('ours.pub'), encode(TPM2B_PUBLIC, created.outPublic));
    await writeFile(file('ours.priv'), encode(TPM2B_PRIVATE, created.outPrivate));
    await writeFile(file('ours.pem'), publicToPem(created.outPublic));
    await writeFile(file('msg'), 'signed by tpm2-tools with our key');
    await withToolsSession(async (session) => {
      await raw('tpm2_load', '-C', `0x${SRK.toString(16)}`, '-P', session, '-u', 'ours.pub', '-r', 'ours.priv', '-c', 'ours.ctx');
      await raw('tpm2_sign', '-c', 'ours.ctx', '-p', password, '-g', 'sha256', '-f', 'plain', '-o', 'ours.sig', 'msg');
    });
    expect((await opensslVerify(dir, 'ours.pem', 'ours.sig', 'msg')).output).toBe('Verified OK');
  });

  it('we load (salted) and sign (salted + bound, password in the HMAC) with a key tpm2-tools created under its salted session', async () => {
    const password = 'made-by-tools';
    await withToolsSession(async (session) => {
      await raw('tpm2_create', '-C', `0x${SRK.toString(16)}`, '-P', session, '-G', 'ecc256:ecdsa-sha256', '-p', password, '-u', 'tools.pub', '-r', 'tools.priv');
    });
    const pub = decode(TPM2B_PUBLIC, new Uint8Array(await readFile(file('tools.pub'))));
    const priv = decode(TPM2B_PRIVATE, new Uint8Array(await readFile(file('tools.priv'))));
    const message = Buffer.from('signed by us with a tpm2-tools key');
    const digest = new Uint8Array(createHash('sha256').update(message).digest());
    const sig = await withLib((tpm) =>
      withSession(tpm, { salt: { key: SRK, public: srkPub }, encrypt: 'both' }, async (s) => {
        const loaded = await tpm.run(Load, { parentHandle: { handle: SRK, name: srkName }, inPrivate: priv, inPublic: pub }, { auth: { parentHandle: s.use() } });
        const key = { handle: loaded.objectHandle, name: loaded.name };
        try {
          return await withSession(tpm, { salt: { key: SRK, public: srkPub }, bind: { handle: key, authValue: password }, encrypt: 'in' }, (b) =>
            tpm.run(
              Sign,
              { keyHandle: key, digest, inScheme: { scheme: TPM_ALG.NULL, details: null }, validation: { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: EMPTY } },
              { auth: { keyHandle: b.use(password) } },
            ),
          );
        } finally {
          await tpm.run(FlushContext, { flushHandle: key.handle });
        }
      }),
    );
    const pem = createPublicKey({ key: Buffer.from(publicToSpkiDer(pub)), format: 'der', type: 'spki' });
    expect(verify('sha256', message, pem, Buffer.from(formatSignature(sig.signature, 'der')))).toBe(true);
  });
});
