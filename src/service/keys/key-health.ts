/**
 * Keys the TPM can no longer use, told honestly.
 *
 * A key is its blobs wrapped under the EK. After the TPM is cleared (TPM2_Clear, or a new
 * endorsement seed) or when its file is damaged, TPM2_Load refuses those blobs for good; in
 * the `tpm` store a cleared TPM has also dropped the persistent object. That is not the TPM
 * misbehaving (a 502 with a bare response code) but the key being lost: the tenant gets 409
 * CONFLICT saying so, with the TPM's code kept for the record; the host log names the key and
 * the reason once; later requests for that key are refused without touching the TPM; and
 * recovery carries on with the other keys instead of retrying the lost one forever.
 */
import type { Logger } from 'pino';
import { hex32 } from '../../tpm/constants.js';
import { TpmError, TPM_RC } from '../../tpm/index.js';
import { conflict, ServiceError } from '../protocol/errors.js';
import { formatHandle } from '../protocol/handles.js';
import type { KeyEntry } from './registry.js';
import type { MaintenanceRequests } from '../tpm/maintenance.js';

export interface KeyFailure {
  /** true: the key can never be loaded again by this TPM; false: it may be restored. */
  permanent: boolean;
  /** Why, in words an operator and a tenant can act on. */
  reason: string;
  tpmRc?: string;
  tpmText?: string;
}

/** What a failure of loading or finding `entry` in the TPM says about the key, if anything. */
export function diagnoseKeyFailure(entry: Pick<KeyEntry, 'store' | 'kind'>, e: unknown): KeyFailure | undefined {
  if (!(e instanceof TpmError)) return undefined;
  const tpm = { tpmRc: hex32(e.rc), tpmText: e.message };
  // Load's parameters are the key's own blobs (inPrivate, inPublic): the TPM refuses the key
  // material itself, not the parent, the session or the moment.
  if (e.command === 'Load' && e.kind === 'parameter') {
    // A general key lives under its app's parent, itself under the owner hierarchy (not the EK).
    const cause =
      entry.kind === 'general'
        ? "its app's storage parent was erased (the app was purged) or replaced, the TPM was cleared (its owner seed changed) since the key was made, or the key file is damaged"
        : 'the TPM was cleared or its endorsement seed changed since the key was made, or the key file is damaged';
    const reason = e.is(TPM_RC.INTEGRITY)
      ? `the TPM rejects its wrapped private part (integrity check failed): ${cause}`
      : `the TPM rejects its key material (${e.message}): the key file is damaged or was not made by this TPM`;
    return { permanent: true, reason, ...tpm };
  }
  if (entry.store === 'tpm' && e.command === 'ReadPublic' && e.is(TPM_RC.HANDLE)) {
    return { permanent: false, reason: 'its persistent object is missing from the TPM (evicted, or the TPM was cleared)', ...tpm };
  }
  return undefined;
}

export class KeyHealth {
  /** Keys found unusable, by handle; the Name tells a later key at a reused handle apart. */
  private readonly lost = new Map<number, { name: string; failure: KeyFailure }>();

  constructor(
    private readonly log: Logger,
    /** Asked for reconciliation when a `tpm`-store object went missing (recovery re-persists it). */
    private readonly maintenance: Pick<MaintenanceRequests, 'request'> = { request: () => {} },
  ) {}

  /** Throws the honest error for a key already known to be lost (no TPM command needed). */
  check(entry: KeyEntry): void {
    const l = this.lost.get(entry.handle);
    if (l && l.name === entry.name) throw lostError(entry, l.failure);
  }

  /** Whether `entry` is known to be lost. */
  isLost(entry: KeyEntry): boolean {
    return this.lost.get(entry.handle)?.name === entry.name;
  }

  /**
   * A request on `entry` failed with `e`: the honest error when `e` says the key is lost or
   * missing (recorded and logged), `e` itself otherwise.
   */
  explain(entry: KeyEntry, e: unknown): unknown {
    const f = diagnoseKeyFailure(entry, e);
    if (!f) return e;
    if (f.permanent) {
      this.markLost(entry, f);
      return lostError(entry, f);
    }
    this.log.warn({ event: 'key-missing', handle: formatHandle(entry.handle), tenant: entry.tenant, reason: f.reason }, `key ${formatHandle(entry.handle)}: ${f.reason}; restoring it from its blobs`);
    this.maintenance.request();
    return conflict(`key ${formatHandle(entry.handle)} is not in the TPM right now: ${f.reason}; the service is restoring it from its saved blobs, retry in a few seconds`);
  }

  /**
   * Recovery could not restore `entry` and got `e`: records the key as lost and returns true
   * when `e` says the key can never be loaded again; false when `e` is something else (the
   * caller rethrows it: a TPM outage, say, is retried).
   */
  restoreFailed(entry: KeyEntry, e: unknown): boolean {
    const f = diagnoseKeyFailure(entry, e);
    if (!f?.permanent) return false;
    this.markLost(entry, f);
    return true;
  }

  /** Records a key as lost for a reason found without the TPM (e.g. no blobs to restore it from). */
  markLost(entry: KeyEntry, failure: KeyFailure): void {
    if (this.isLost(entry)) return;
    this.lost.set(entry.handle, { name: entry.name, failure });
    this.log.error(
      { event: 'key-unusable', handle: formatHandle(entry.handle), tenant: entry.tenant, reason: failure.reason, tpmRc: failure.tpmRc ?? null, tpmText: failure.tpmText ?? null },
      `key ${formatHandle(entry.handle)} of ${entry.tenant} can no longer be loaded by this TPM: ${failure.reason}`,
    );
  }
}

function lostError(entry: KeyEntry, f: KeyFailure): ServiceError {
  // The TPM's code stays in the answer for diagnosis, but it is not the headline.
  const details = f.tpmRc === undefined ? {} : { tpmRc: f.tpmRc, tpmText: f.tpmText! };
  return new ServiceError(
    409,
    'CONFLICT',
    `key ${formatHandle(entry.handle)} can no longer be loaded by this TPM: ${f.reason}. It cannot be recovered; delete it and create a new key`,
    details,
  );
}
