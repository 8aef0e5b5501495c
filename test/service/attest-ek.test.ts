/**
 * The EK endpoints against stock tools: on a swtpm prepared by tpm2-tools and openssl before
 * the service starts (swtpm serves one connection at a time), ek-public answers the very
 * TPM2B_PUBLIC tpm2_createek writes, and ek-certificate the DER certificate written with
 * tpm2_nvwrite to the TCG index — zero padding after the DER dropped, an index readable only
 * with the owner's authorization read as well.
 */
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tpm } from '../../src/tpm/index.js';
import { resolveConfig } from '../../src/service/config.js';
import { createLogger } from '../../src/service/logger.js';
import { startService, type RunningService } from '../../src/service/service.js';
import { ServiceClient } from '../../src/service/client/client.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { validate, type Schema } from '../helpers/json-schema.js';
import { opensslAvailable, runOk, tpm2Tools, tpm2ToolsAvailable, workDir } from '../helpers/tpm-tools.js';

const tools = tpm2ToolsAvailable() && opensslAvailable();
const doc = JSON.parse(readFileSync(new URL('../../docs/openapi.json', import.meta.url), 'utf8')) as { components: { schemas: Record<string, Schema> } };
/** The answer against its schema in docs/openapi.json (openapi.test.ts cannot make an EK certificate). */
const documented = (schema: string, body: unknown): string[] => validate(doc.components.schemas[schema]!, body, doc);

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !tools))('EK endpoints against tpm2_createek and an EK certificate in NV', () => {
  let sw: SwtpmInstance;
  let work: { dir: string; remove(): Promise<void> };
  let service: RunningService | undefined;
  let client: ServiceClient;
  const file = (n: string): string => join(work.dir, n);
  let rsaCert: Buffer;
  let eccCert: Buffer;

  /** A self-signed certificate, DER, made by openssl (a stand-in for a manufacturer's EK certificate). */
  async function certificate(name: string): Promise<Buffer> {
    await runOk('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-subj', `/CN=${name}`, '-days', '1', '-outform', 'DER', '-out', `${name}.der`], { cwd: work.dir });
    return readFile(file(`${name}.der`));
  }

  beforeAll(async () => {
    work = await workDir('attest-ek-');
    sw = await startSwtpm();
    const t = tpm2Tools(sw.sockPath, work.dir);
    await t('tpm2_createek', '-G', 'rsa', '-c', 'ek-rsa.ctx', '-u', 'ek-rsa.pub');
    await t('tpm2_createek', '-G', 'ecc', '-c', 'ek-ecc.ctx', '-u', 'ek-ecc.pub');
    // RSA: stored in a larger index, zero-padded, readable with its own (empty) auth.
    rsaCert = await certificate('rsa-ek');
    const padded = Buffer.concat([rsaCert, Buffer.alloc(100)]);
    await writeFile(file('rsa-ek.padded'), padded);
    await t('tpm2_nvdefine', '0x01C00002', '-C', 'p', '-s', String(padded.length), '-a', 'ppwrite|ppread|ownerread|authread|no_da|platformcreate');
    await t('tpm2_nvwrite', '0x01C00002', '-C', 'p', '-i', 'rsa-ek.padded');
    // ECC: exactly the DER, readable only with the owner's authorization.
    eccCert = await certificate('ecc-ek');
    await t('tpm2_nvdefine', '0x01C0000A', '-C', 'p', '-s', String(eccCert.length), '-a', 'ppwrite|ppread|ownerread|no_da|platformcreate');
    await t('tpm2_nvwrite', '0x01C0000A', '-C', 'p', '-i', 'ecc-ek.der');

    const config = resolveConfig(
      {},
      { tpm: `swtpm:unix:${sw.sockPath}`, listen: [`unix:${file('svc.sock')}`], singleTenant: true, stateDir: file('state'), logLevel: 'silent' },
    );
    service = await startService(config, { tpm: new Tpm(sw.transport()), logger: createLogger('silent') });
    client = new ServiceClient({ address: `unix:${file('svc.sock')}`, timeoutMs: 60_000 });
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await service?.close().catch(() => {});
    await sw?.stop();
    await work?.remove();
  });

  it('ek-public is the TPM2B_PUBLIC tpm2_createek writes, for RSA and ECC', async () => {
    for (const type of ['rsa', 'ecc'] as const) {
      const ek = await client.request('ek-public', {}, { query: { type } });
      expect(Buffer.from(ek.public, 'base64').equals(await readFile(file(`ek-${type}.pub`))), type).toBe(true);
      expect(documented('EkPublic', ek)).toEqual([]);
    }
  });

  it('ek-certificate is the DER written to the TCG index, padding dropped; the owner-read index is read too', async () => {
    const rsa = await client.request('ek-certificate', {});
    expect(rsa).toMatchObject({ type: 'rsa', index: '0x01C00002' });
    expect(Buffer.from(rsa.der, 'base64').equals(rsaCert)).toBe(true);
    expect(documented('EkCertificate', rsa)).toEqual([]);
    const ecc = await client.request('ek-certificate', {}, { query: { type: 'ecc' } });
    expect(ecc).toMatchObject({ type: 'ecc', index: '0x01C0000A' });
    expect(Buffer.from(ecc.der, 'base64').equals(eccCert)).toBe(true);
    expect(documented('EkCertificate', ecc)).toEqual([]);
  });
});
