/**
 * The attestation operations of the service, each one TPM queue job, on keys the caller was
 * already authorized for (http/attest-api.ts): the answers of docs/API.md, the library's
 * refusals turned into 4xx (errors.ts), a lost key explained as sign explains it.
 */
import { encode, parsePcrBanks, publicToPem, TPMT_SIGNATURE, toPcrSelection, formatPcrSelection, pcrRead, type PcrBank, type TpmRunner } from '../../tpm/index.js';
import type { KeyHealth } from '../keys/key-health.js';
import type { KeyManager } from '../keys/keys.js';
import type { KeyEntry, KeyRegistry } from '../keys/registry.js';
import { badRequest } from '../protocol/errors.js';
import { formatHandle } from '../protocol/handles.js';
import type {
  ActivateCredentialAnswer,
  AttestAnswer,
  CertifyAnswer,
  DeviceCertifyAnswer,
  EkCertificateAnswer,
  EkPublicAnswer,
  PcrReadAnswer,
  QuoteAnswer,
} from '../protocol/messages.js';
import type { KeyType } from '../protocol/vocabulary.js';
import type { TpmQueue } from '../tpm/queue.js';
import type { Tenant } from '../tenants/tenants.js';
import { boundTo, qualifyingFor, type Qualifying } from './binding.js';
import { certifyByDevice, certifyOwnKey, deviceKey, type CertifyResult } from './certify.js';
import { activate } from './credential.js';
import { ekCertificate, ekPublic } from './ek.js';
import { explainAttestError } from './errors.js';
import { blame, KeyStepError, nameDigestSize, stillCommitted, type JobKey } from './key-jobs.js';
import { allocatedBanks, checkAllocated, defaultSelection, pcrValues } from './pcrs.js';
import { quoteWithValues } from './quote.js';

export interface AttestationDeps {
  queue: TpmQueue;
  registry: KeyRegistry;
  keys: KeyManager;
  keyHealth?: KeyHealth;
  /** The device's attestation key (EVE's AIK), a persistent handle. */
  deviceAk: number;
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A selection string as tpm2_pcrread takes it → banks (400 on a bad one). */
export function parseSelection(text: string): PcrBank[] {
  try {
    return parsePcrBanks(text);
  } catch (e) {
    throw explainAttestError(e);
  }
}

export class Attestation {
  constructor(private readonly d: AttestationDeps) {}

  private jobKey(entry: KeyEntry): JobKey {
    return { entry, ...this.d.keys.material(entry) };
  }

  /** One queue job; its failure told as a 4xx when the caller's input caused it. */
  private async job<T>(tenant: Tenant, op: string, signal: AbortSignal, keys: readonly KeyEntry[], run: (tpm: TpmRunner) => Promise<T>): Promise<T> {
    for (const k of keys) this.d.keyHealth?.check(k);
    try {
      return await this.d.queue.submit(
        tenant.id,
        op,
        async (tpm) => {
          for (const k of keys) stillCommitted(this.d.registry, k);
          return run(tpm);
        },
        { signal },
      );
    } catch (e) {
      // A lost key is told as sign tells it: the key the failure is blamed on (key-jobs.ts), never a guess.
      const [entry, cause] = e instanceof KeyStepError ? [e.entry, e.cause] : [undefined, e];
      throw explainAttestError(entry && this.d.keyHealth ? this.d.keyHealth.explain(entry, cause) : cause);
    }
  }

  async readPcrs(tenant: Tenant, selection: PcrBank[] | undefined, signal: AbortSignal): Promise<PcrReadAnswer> {
    return this.job(tenant, 'read-pcrs', signal, [], async (tpm) => {
      const allocated = await allocatedBanks(tpm);
      const banks = selection ?? defaultSelection(allocated);
      checkAllocated(banks, allocated);
      const r = await pcrRead(tpm, toPcrSelection(banks));
      return { selection: formatPcrSelection(banks), updateCounter: r.updateCounter, pcrs: pcrValues(banks, r.values) };
    });
  }

  async quote(tenant: Tenant, entry: KeyEntry, selection: PcrBank[], nonce: Uint8Array, bind: boolean, signal: AbortSignal): Promise<QuoteAnswer> {
    const q = qualifyingFor(tenant, nonce, bind);
    if (!bind) checkNonceFits(entry, nonce);
    const key = this.jobKey(entry);
    const { result, values } = await this.job(tenant, 'quote', signal, [entry], async (tpm) => {
      checkAllocated(selection, await allocatedBanks(tpm));
      return blame(entry, () => quoteWithValues(tpm, key, selection, q.qualifyingData));
    });
    return {
      ...attestAnswer(formatHandle(entry.handle), result, nonce, q),
      selection: formatPcrSelection(selection),
      pcrs: pcrValues(selection, values),
    };
  }

  async certify(tenant: Tenant, signer: KeyEntry, object: KeyEntry, nonce: Uint8Array, bind: boolean, signal: AbortSignal): Promise<CertifyAnswer> {
    const q = qualifyingFor(tenant, nonce, bind);
    if (!bind) checkNonceFits(signer, nonce);
    const s = this.jobKey(signer);
    const o = this.jobKey(object);
    const result = await this.job(tenant, 'certify', signal, [signer, object], (tpm) => certifyOwnKey(tpm, s, o, q.qualifyingData));
    return { ...attestAnswer(formatHandle(signer.handle), result, nonce, q), object: formatHandle(object.handle), objectName: object.name };
  }

  async deviceCertify(tenant: Tenant, entry: KeyEntry, nonce: Uint8Array, signal: AbortSignal): Promise<DeviceCertifyAnswer> {
    const q = boundTo('EVE-APP-KEY', tenant, nonce);
    const o = this.jobKey(entry);
    const { result, device } = await this.job(tenant, 'device-certify', signal, [entry], async (tpm) => {
      const device = await deviceKey(tpm, this.d.deviceAk);
      return { device, result: await blame(entry, () => certifyByDevice(tpm, device, o, q.qualifyingData)) };
    });
    return {
      ...attestAnswer(formatHandle(this.d.deviceAk), result, nonce, q),
      binding: q.binding,
      object: formatHandle(entry.handle),
      objectName: entry.name,
      signerPem: publicToPem(device.publicArea),
      signerName: hex(device.name),
    };
  }

  async activateCredential(tenant: Tenant, entry: KeyEntry, credentialBlob: Uint8Array, secret: Uint8Array, signal: AbortSignal): Promise<ActivateCredentialAnswer> {
    const key = this.jobKey(entry);
    const out = await this.job(tenant, 'activate-credential', signal, [entry], (tpm) => blame(entry, () => activate(tpm, key, credentialBlob, secret)));
    return { handle: formatHandle(entry.handle), secret: b64(out) };
  }

  ekPublic(tenant: Tenant, type: KeyType, signal: AbortSignal): Promise<EkPublicAnswer> {
    return this.job(tenant, 'ek-public', signal, [], (tpm) => ekPublic(tpm, type));
  }

  ekCertificate(tenant: Tenant, type: KeyType, signal: AbortSignal): Promise<EkCertificateAnswer> {
    return this.job(tenant, 'ek-certificate', signal, [], (tpm) => ekCertificate(tpm, type));
  }
}

/** An unbound nonce goes into extraData as it is: at most a digest of the key's name hash. */
function checkNonceFits(entry: KeyEntry, nonce: Uint8Array): void {
  const max = nameDigestSize(entry);
  if (nonce.length > max) {
    throw badRequest(`the nonce has ${nonce.length} bytes but key ${formatHandle(entry.handle)} takes at most ${max} (its name hash's digest size); use a shorter nonce, or bind the attestation to the app (bind: true; the tools' --bind), whose qualifying data is a 32-byte hash of any nonce up to 64 bytes`);
  }
}

function attestAnswer(signer: string, r: CertifyResult | { attest: Uint8Array; signature: TPMT_SIGNATURE }, nonce: Uint8Array, q: Qualifying): AttestAnswer {
  return {
    signer,
    attest: b64(r.attest),
    signature: b64(encode(TPMT_SIGNATURE, r.signature)),
    nonce: hex(nonce),
    qualifyingData: hex(q.qualifyingData),
    ...(q.binding ? { binding: q.binding } : {}),
  };
}
