/**
 * The apps' storage parents (issue 12): one per tenant record, its TPM-wrapped blobs in
 * `<state-dir>/parents/`, made on the record's first general key. General keys are children of
 * their app's parent; destroying the parent's blob file when the record is purged is the
 * crypto-erase: no copy of a child's blobs can be loaded again (see tpm/ops/app-parent.ts).
 */
import type { KeyBlobs } from '../../tpm/index.js';

export const PARENTS_DIR = 'parents';

export class AppParents {
  constructor(readonly dir: string) {}

  /** The record's parent blobs, if it has one. */
  get(_owner: string): KeyBlobs | undefined {
    return undefined;
  }

  /**
   * The record's parent, made first by `create` (a TPM job of the caller's) and written durably
   * if it has none; concurrent calls for one record make one parent.
   */
  ensure(_owner: string, _create: () => Promise<KeyBlobs>): Promise<KeyBlobs> {
    return Promise.reject(new Error('AppParents.ensure: not implemented yet'));
  }

  /** Crypto-erase of the record's general keys: removes its parent's file durably (absent: nothing). */
  async destroy(_owner: string): Promise<void> {}
}
