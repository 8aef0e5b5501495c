/**
 * Interop with stock tpm2-tools (5.x, via tpm2-tss's cmd TCTI and the shared bridge) on the
 * same swtpm:
 * - keys made by tpm2-tools (tpm2_createek / tpm2_createak / tpm2_evictcontrol) are read, loaded
 *   and used by the library: same Name as tpm2-tools' .name file, same PEM as
 *   `tpm2_readpublic -f pem`, signatures that openssl and tpm2_verifysignature accept;
 * - keys made by the library (createAk blobs = tpm2-tools' .pub/.priv, persistKey) are loaded
 *   and used by tpm2-tools (tpm2_load under the EK with a PolicySecret session, tpm2_sign,
 *   tpm2_hash + ticket), and their signatures verify with our PEM;
 * - the EK templates agree (tpm2_createek's EK is the library's EK).
 *
 * swtpm serves one connection at a time: the library's transport is opened per step and
 * closed before any tool runs (withLib). Both RSA and ECC.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  TPM2B_PUBLIC,
  TPMT_SIGNATURE,
  TPM_ALG,
  Tpm,
  akTemplate,
  createAk,
  createTransientEk,
  decode,
  ekTemplate,
  evictPersistent,
  flush,
  formatSignature,
  listPersistentHandles,
  loadKey,
  matchesTemplate,
  objectName,
  persistKey,
  publicToPem,
  readPublic,
  signMessage,
  verifyMessageSignature,
  withLoadedKey,
  type CreatedKey,
  type KeyType,
} from '../../src/tpm/index.js';
import { expectNothingLoaded } from '../helpers/hygiene.js';
import { socatAvailable, startSwtpm, swtpmAvailable, type SwtpmInstance, withTpmOn } from '../helpers/swtpm.js';
import { messageBytes, opensslAvailable, opensslVerify, tpm2Tools, tpm2ToolsAvailable, workDir, type Tpm2Tools } from '../helpers/tpm-tools.js';
import { skipUnlessCI } from '../helpers/ci.js';

const KEY_TYPES: KeyType[] = ['rsa', 'ecc'];
/** Keys tpm2-tools makes (and the library then uses). */
const TOOLS_HANDLE: Record<KeyType, number> = { rsa: 0x81010005, ecc: 0x81010006 };
/** Keys the library makes (and tpm2-tools then uses). */
const LIB_HANDLE: Record<KeyType, number> = { rsa: 0x81010000, ecc: 0x81010010 };
const SCHEME: Record<KeyType, string> = { rsa: 'rsassa', ecc: 'ecdsa' };
const SIG_ALG: Record<KeyType, number> = { rsa: TPM_ALG.RSASSA, ecc: TPM_ALG.ECDSA };

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const h32 = (h: number): string => `0x${h.toString(16)}`;
const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

// socat: the raw connection for the tpm2_load session chain
const ready = swtpmAvailable() && tpm2ToolsAvailable() && opensslAvailable() && socatAvailable();

describe.skipIf(skipUnlessCI(!ready))('interop with tpm2-tools (via the bridge) and openssl', () => {
  let sw: SwtpmInstance;
  let dir: string;
  let removeDir: () => Promise<void>;
  let tools: Tpm2Tools;
  const withLib = <T>(fn: (tpm: Tpm) => Promise<T>): Promise<T> => withTpmOn(sw, fn);
  const file = (name: string): string => join(dir, name);
  const read = async (name: string): Promise<Uint8Array> => new Uint8Array(await readFile(file(name)));

  // messages: one for TPM2_Hash, one for a hash sequence (> 1024 bytes)
  const MESSAGES = { 'small.msg': new TextEncoder().encode('EVE edge container says hi\n'), 'big.msg': messageBytes(5000, 21) } as const;
  type MsgName = keyof typeof MESSAGES;
  const MSG_NAMES = Object.keys(MESSAGES) as MsgName[];

  beforeAll(async () => {
    sw = await startSwtpm();
    ({ dir, remove: removeDir } = await workDir('tpm-interop-'));
    tools = tpm2Tools(sw.sockPath, dir);
    for (const [name, bytes] of Object.entries(MESSAGES)) await writeFile(file(name), bytes);
  });

  afterAll(async () => {
    if (sw) {
      await withLib(async (tpm) => {
        const present = await listPersistentHandles(tpm);
        for (const h of [...Object.values(TOOLS_HANDLE), ...Object.values(LIB_HANDLE)]) {
          if (present.includes(h)) await evictPersistent(tpm, h);
        }
      }).catch(() => {});
      await sw.stop();
    }
    await removeDir?.();
  });

  afterEach(async () => {
    await withLib((tpm) => expectNothingLoaded(tpm));
  });

  // -------------------------------------------------------------------------------------------

  describe('the EK', () => {
    it.each(KEY_TYPES)('tpm2_createek -G %s makes the library\'s EK (same template, same Name)', async (type) => {
      await tools('tpm2_createek', '-c', `ek-${type}.ctx`, '-G', type, '-u', `ek-${type}.pub`);
      const theirs = decode(TPM2B_PUBLIC, await read(`ek-${type}.pub`));
      expect(matchesTemplate(theirs, ekTemplate(type))).toBe(true);
      const ours = await withLib(async (tpm) => {
        const ek = await createTransientEk(tpm, type);
        const info = await readPublic(tpm, ek.handle);
        await flush(tpm, ek.handle);
        return { name: ek.name, info };
      });
      expect(hex(ours.name)).toBe(hex(objectName(theirs)));
      expect(hex(objectName(ours.info.publicArea))).toBe(hex(ours.name)); // Name the TPM reports = computed
      expect(publicToPem(ours.info.publicArea)).toBe(publicToPem(theirs));
    });
  });

  // -------------------------------------------------------------------------------------------

  describe.each(KEY_TYPES)('an %s AK made by tpm2-tools, used by the library', (type) => {
    const handle = TOOLS_HANDLE[type];
    const f = (s: string): string => `tools-${type}-${s}`;

    it('tpm2_createak + tpm2_evictcontrol; readPublic gives the Name of ak.name and the PEM of tpm2_readpublic', async () => {
      await tools('tpm2_createak', '-C', 'ek-rsa.ctx', '-c', f('ak.ctx'), '-G', type, '-g', 'sha256', '-s', SCHEME[type], '-u', f('ak.pub'), '-n', f('ak.name'), '-r', f('ak.priv'));
      await tools('tpm2_evictcontrol', '-C', 'o', '-c', f('ak.ctx'), h32(handle));
      await tools('tpm2_readpublic', '-c', h32(handle), '-f', 'pem', '-o', f('ak.pem'));
      const toolsName = await read(f('ak.name'));
      const toolsPem = await readFile(file(f('ak.pem')), 'utf8');
      const toolsPub = decode(TPM2B_PUBLIC, await read(f('ak.pub')));

      const info = await withLib((tpm) => readPublic(tpm, handle));
      expect(hex(info.name)).toBe(hex(toolsName)); // .name files are the raw Name bytes
      expect(hex(objectName(info.publicArea))).toBe(hex(toolsName));
      expect(publicToPem(info.publicArea)).toBe(toolsPem);
      expect(info.publicArea).toEqual(toolsPub);
      // tpm2_createak's AK is exactly the library's AK template.
      expect(matchesTemplate(info.publicArea, akTemplate(type))).toBe(true);
    });

    it('the library loads tpm2-tools\' .pub/.priv under the EK (same Name)', async () => {
      const blobs = { public: await read(f('ak.pub')), private: await read(f('ak.priv')) };
      const toolsName = await read(f('ak.name'));
      const sig = await withLib(async (tpm) => {
        const { handle: h, name } = await loadKey(tpm, blobs);
        await flush(tpm, h);
        expect(hex(name)).toBe(hex(toolsName));
        return withLoadedKey(tpm, blobs, (k) => signMessage(tpm, k, MESSAGES['small.msg']));
      });
      expect(verifyMessageSignature(decode(TPM2B_PUBLIC, blobs.public), MESSAGES['small.msg'], sig)).toBe(true);
    });

    it.each(MSG_NAMES)('the library signs %s with the persisted key; openssl and tpm2_verifysignature accept it', async (msg) => {
      const sig = await withLib((tpm) => signMessage(tpm, handle, MESSAGES[msg]));
      expect(sig.sigAlg).toBe(SIG_ALG[type]);
      expect(hex(sig.digest)).toBe(hex(sha256(MESSAGES[msg])));
      await writeFile(file(f(`${msg}.sig`)), formatSignature(sig, 'plain'));
      const v = await opensslVerify(dir, f('ak.pem'), f(`${msg}.sig`), msg);
      expect(v.output).toBe('Verified OK');
      // our 'tss' form is what tpm2-tools reads as a TPMT_SIGNATURE
      await writeFile(file(f(`${msg}.tss`)), formatSignature(sig, 'tss'));
      await tools('tpm2_verifysignature', '-c', h32(handle), '-g', 'sha256', '-m', msg, '-s', f(`${msg}.tss`), '-t', f('verified.tk'));
      // … and a tampered one it rejects
      const bad = formatSignature(sig, 'tss');
      bad[bad.length - 1]! ^= 1;
      await writeFile(file(f(`${msg}.bad.tss`)), bad);
      const r = await tools.raw('tpm2_verifysignature', '-c', h32(handle), '-g', 'sha256', '-m', msg, '-s', f(`${msg}.bad.tss`));
      expect(r.code).not.toBe(0);
    });

    it('tpm2_sign\'s signature (tss format) decodes with our codec and verifies', async () => {
      await tools('tpm2_sign', '-c', h32(handle), '-g', 'sha256', '-o', f('tools.tss'), 'small.msg');
      const theirs = decode(TPMT_SIGNATURE, await read(f('tools.tss')));
      expect(theirs.sigAlg).toBe(SIG_ALG[type]);
      const pub = decode(TPM2B_PUBLIC, await read(f('ak.pub')));
      expect(verifyMessageSignature(pub, MESSAGES['small.msg'], theirs)).toBe(true);
      expect(hex(formatSignature(theirs, 'tss'))).toBe(hex(await read(f('tools.tss')))); // re-encodes byte for byte
      await writeFile(file(f('tools.plain')), formatSignature(theirs, 'plain'));
      expect((await opensslVerify(dir, f('ak.pem'), f('tools.plain'), 'small.msg')).ok).toBe(true);
    });
  });

  // -------------------------------------------------------------------------------------------

  describe.each(KEY_TYPES)('an %s AK made by the library, used by tpm2-tools', (type) => {
    const handle = LIB_HANDLE[type];
    const f = (s: string): string => `lib-${type}-${s}`;
    let key: CreatedKey;

    it('createAk + persistKey; blobs and PEM written like tpm2-tools writes them', async () => {
      key = await withLib(async (tpm) => {
        const k = await createAk(tpm, type);
        await persistKey(tpm, k, handle);
        return k;
      });
      await writeFile(file(f('ak.pub')), key.public);
      await writeFile(file(f('ak.priv')), key.private);
      await writeFile(file(f('ak.pem')), publicToPem(key.publicArea));
      await tools('tpm2_readpublic', '-c', h32(handle), '-f', 'pem', '-o', f('tools.pem'), '-n', f('tools.name'));
      expect(await readFile(file(f('tools.pem')), 'utf8')).toBe(publicToPem(key.publicArea));
      expect(hex(await read(f('tools.name')))).toBe(hex(key.name));
    });

    it('tpm2_load takes our .pub/.priv under the EK with a PolicySecret(endorsement) session', async () => {
      // One session across several tool runs: through the bridge (as through /dev/tpmrm0) the
      // session would be flushed when tpm2_startauthsession exits, so these run over a raw
      // connection; the bridge run afterwards flushes whatever they left loaded.
      const raw = tpm2Tools(sw.sockPath, dir, { raw: true });
      try {
        await raw('tpm2_startauthsession', '--policy-session', '-S', f('s.ctx'));
        await raw('tpm2_policysecret', '-S', f('s.ctx'), '-c', 'e');
        await raw('tpm2_load', '-C', 'ek-rsa.ctx', '-u', f('ak.pub'), '-r', f('ak.priv'), '-c', f('ak.ctx'), '-n', f('ak.name'), '-P', `session:${f('s.ctx')}`);
        await raw('tpm2_flushcontext', f('s.ctx'));
      } finally {
        await tools('tpm2_getcap', 'handles-transient'); // bridge: flushes leftovers on exit
      }
      expect(hex(await read(f('ak.name')))).toBe(hex(key.name));
      // The loaded key's saved context is usable by tpm2-tools: sign with it, verify with our PEM.
      await tools('tpm2_sign', '-c', f('ak.ctx'), '-g', 'sha256', '-f', 'plain', '-o', f('ctx.sig'), 'small.msg');
      expect((await opensslVerify(dir, f('ak.pem'), f('ctx.sig'), 'small.msg')).output).toBe('Verified OK');
    });

    it.each(MSG_NAMES)('tpm2_sign -c <persistent handle> signs %s; openssl verifies with our PEM, the library decodes it', async (msg) => {
      await tools('tpm2_sign', '-c', h32(handle), '-g', 'sha256', '-f', 'plain', '-o', f(`${msg}.plain`), msg);
      expect((await opensslVerify(dir, f('ak.pem'), f(`${msg}.plain`), msg)).output).toBe('Verified OK');
      await tools('tpm2_sign', '-c', h32(handle), '-g', 'sha256', '-o', f(`${msg}.tss`), msg); // default: tss
      const sig = decode(TPMT_SIGNATURE, await read(f(`${msg}.tss`)));
      expect(sig.sigAlg).toBe(SIG_ALG[type]);
      expect(verifyMessageSignature(key.publicArea, MESSAGES[msg], sig)).toBe(true);
      await writeFile(file(f(`${msg}.tss.plain`)), formatSignature(sig, 'plain'));
      expect((await opensslVerify(dir, f('ak.pem'), f(`${msg}.tss.plain`), msg)).ok).toBe(true);
    });

    it.each(MSG_NAMES)('tpm2_hash -t ticket + tpm2_sign -d -t (restricted key) on %s; same digest as the library\'s', async (msg) => {
      await tools('tpm2_hash', '-C', 'o', '-g', 'sha256', '-t', f(`${msg}.ticket`), '-o', f(`${msg}.digest`), msg);
      const digest = await read(f(`${msg}.digest`));
      expect(hex(digest)).toBe(hex(sha256(MESSAGES[msg])));
      await tools('tpm2_sign', '-c', h32(handle), '-g', 'sha256', '-d', '-t', f(`${msg}.ticket`), '-f', 'plain', '-o', f(`${msg}.tk.sig`), f(`${msg}.digest`));
      expect((await opensslVerify(dir, f('ak.pem'), f(`${msg}.tk.sig`), msg)).output).toBe('Verified OK');
      const ours = await withLib((tpm) => signMessage(tpm, handle, MESSAGES[msg]));
      expect(hex(ours.digest)).toBe(hex(digest));
      // A digest without a ticket is refused by a restricted key (tpm2-tools sends a NULL ticket).
      const r = await tools.raw('tpm2_sign', '-c', h32(handle), '-g', 'sha256', '-d', '-o', f(`${msg}.noticket.sig`), f(`${msg}.digest`));
      expect(r.code).not.toBe(0);
    });

    it.each(MSG_NAMES)('tpm2_verifysignature accepts our tss signature over %s', async (msg) => {
      const sig = await withLib((tpm) => signMessage(tpm, handle, MESSAGES[msg]));
      await writeFile(file(f(`${msg}.ours.tss`)), formatSignature(sig, 'tss'));
      await tools('tpm2_verifysignature', '-c', h32(handle), '-g', 'sha256', '-m', msg, '-s', f(`${msg}.ours.tss`));
      await writeFile(file(f(`${msg}.ours.plain`)), formatSignature(sig, 'plain'));
      expect((await opensslVerify(dir, f('tools.pem'), f(`${msg}.ours.plain`), msg)).output).toBe('Verified OK');
    });
  });

  it('an EK persisted by tpm2_createek at 0x81010001 is the parent the library uses (no CreatePrimary)', async () => {
    const EK = 0x81010001;
    await tools('tpm2_createek', '-c', h32(EK), '-G', 'rsa', '-u', 'ek-persisted.pub');
    await tools('tpm2_createak', '-C', h32(EK), '-c', 'pek-ak.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'pek-ak.pub', '-r', 'pek-ak.priv', '-n', 'pek-ak.name');
    const commands: string[] = [];
    const transport = sw.transport();
    const tpm = new Tpm(transport, { onExchange: (e) => commands.push(e.command) });
    try {
      // blobs tpm2-tools made under the persisted EK, and blobs we made under a transient one
      for (const [pub, priv, name] of [
        ['pek-ak.pub', 'pek-ak.priv', 'pek-ak.name'],
        ['lib-rsa-ak.pub', 'lib-rsa-ak.priv', undefined],
      ] as const) {
        const loaded = await loadKey(tpm, { public: await read(pub), private: await read(priv) });
        await flush(tpm, loaded.handle);
        const expected = name ? await read(name) : objectName(decode(TPM2B_PUBLIC, await read(pub)));
        expect(hex(loaded.name)).toBe(hex(expected));
      }
      const k = await createAk(tpm, 'ecc');
      const sig = await withLoadedKey(tpm, k, (h) => signMessage(tpm, h, MESSAGES['big.msg']));
      expect(verifyMessageSignature(k.publicArea, MESSAGES['big.msg'], sig)).toBe(true);
      expect(commands).toContain('Load');
      expect(commands).toContain('Create');
      expect(commands).not.toContain('CreatePrimary');
      await expectNothingLoaded(tpm);
      await evictPersistent(tpm, EK);
    } finally {
      await transport.close();
    }
  });

  it('tpm2-tools and the library agree on the persistent handles; eviction by either side', async () => {
    const { stdout } = await tools('tpm2_getcap', 'handles-persistent');
    const theirs = [...stdout.matchAll(/0x[0-9a-f]{8}/gi)].map((m) => Number(m[0]));
    const ours = await withLib((tpm) => listPersistentHandles(tpm));
    expect(ours).toEqual(theirs);
    for (const h of [...Object.values(TOOLS_HANDLE), ...Object.values(LIB_HANDLE)]) expect(ours).toContain(h);
    // tpm2-tools evicts a key the library made; the library evicts one tpm2-tools made.
    await tools('tpm2_evictcontrol', '-C', 'o', '-c', h32(LIB_HANDLE.ecc));
    await withLib((tpm) => evictPersistent(tpm, TOOLS_HANDLE.ecc));
    const after = await withLib((tpm) => listPersistentHandles(tpm));
    expect(after).not.toContain(LIB_HANDLE.ecc);
    expect(after).not.toContain(TOOLS_HANDLE.ecc);
  });
});

