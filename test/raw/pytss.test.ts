/**
 * A tpm2-pytss ESAPI script (Debian python3-tpm2-pytss) inside the app, through
 * `eve_tools_tpm2_tcti` and the service's raw channel, against swtpm: random, the app's own
 * primary, a signing key created and loaded, a signature the TPM verifies and python's
 * cryptography verifies again from the public key alone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_CAP } from '../../src/tpm/constants.js';
import * as C from '../../src/tpm/commands.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { runOk, workDir } from '../helpers/tpm-tools.js';
import { startEnv, type TestEnv } from '../service/env.js';
import { bundleTcti } from './helpers.js';

/** Debian's python (a pyenv or venv python3 first in PATH would not see the Debian package). */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const pytssThere = spawnSync(PYTHON, ['-c', 'import tpm2_pytss, cryptography'], { timeout: 30_000 }).status === 0;

const SCRIPT = `
import hashlib, os
from tpm2_pytss import ESAPI, TCTILdr, TPM2B_PUBLIC, TPM2B_SENSITIVE_CREATE, TPMT_SIG_SCHEME, TPMT_TK_HASHCHECK
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_ST, TPM2_RH, TPMA_OBJECT
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

msg = b"hello pytss"
with ESAPI(TCTILdr.parse(os.environ["TCTI"])) as e:
    print("random", bytes(e.get_random(16)).hex())
    primary, primary_pub, *_ = e.create_primary(TPM2B_SENSITIVE_CREATE(), "ecc256:aes128cfb", ESYS_TR.OWNER)
    attrs = TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.SIGN_ENCRYPT | TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN
    priv, pub, *_ = e.create(primary, TPM2B_SENSITIVE_CREATE(), TPM2B_PUBLIC.parse("ecc256:ecdsa-sha256", objectAttributes=attrs))
    key = e.load(primary, priv, pub)
    digest = hashlib.sha256(msg).digest()
    ticket = TPMT_TK_HASHCHECK(tag=TPM2_ST.HASHCHECK, hierarchy=TPM2_RH.NULL)
    sig = e.sign(key, digest, TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL), ticket)
    e.verify_signature(key, digest, sig)
    r = int.from_bytes(bytes(sig.signature.ecdsa.signatureR), "big")
    s = int.from_bytes(bytes(sig.signature.ecdsa.signatureS), "big")
    serialization.load_pem_public_key(pub.to_pem()).verify(utils.encode_dss_signature(r, s), msg, ec.ECDSA(hashes.SHA256()))
    print("verified")
    print("primary", bytes(primary_pub.publicArea.unique.ecc.x).hex())
    e.flush_context(key)
    e.flush_context(primary)
`;

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !pytssThere, 'swtpm or python3-tpm2-pytss'))('tpm2-pytss through the cmd TCTI', () => {
  let env: TestEnv;
  let work: { dir: string; remove(): Promise<void> };
  let tcti: string;
  const py = (tenant: string) =>
    runOk(PYTHON, ['esapi.py'], {
      cwd: work.dir,
      env: { PATH: process.env.PATH, TCTI: `cmd:${process.execPath} ${tcti}`, EVE_TOOLS_CONFIG: 'none', EVE_TOOLS_SERVICE: env.unix, EVE_TOOLS_SECRET: env.secrets[tenant] },
      timeoutMs: 90_000,
    });

  beforeAll(async () => {
    env = await startEnv();
    work = await workDir('raw-pytss-');
    tcti = bundleTcti(work.dir);
    await writeFile(join(work.dir, 'esapi.py'), SCRIPT);
  }, 180_000);
  afterAll(async () => {
    await env?.stop();
    await work?.remove();
  });

  it('an ESAPI script: random, primary, create, load, sign, verify (by the TPM and by cryptography)', async () => {
    const r = await py('alice');
    expect(r.stdout).toMatch(/^random [0-9a-f]{32}$/m);
    expect(r.stdout).toMatch(/^verified$/m);
    // The app's own primary: the same for alice again, another for bob.
    const primary = (out: string) => /^primary ([0-9a-f]{64})$/m.exec(out)?.[1];
    expect(primary((await py('alice')).stdout)).toBe(primary(r.stdout));
    expect(primary((await py('bob')).stdout)).not.toBe(primary(r.stdout));
    expect(env.logs.filter((l) => l.event === 'raw-refused')).toEqual([]);
    // Nothing of the script stays on the chip.
    const chip = await env.onTpm(async (tpm) => (await tpm.run(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property: 0x80000000, propertyCount: 64 })).capabilityData);
    expect(chip).toEqual({ capability: TPM_CAP.HANDLES, data: [] });
  }, 300_000);
});
