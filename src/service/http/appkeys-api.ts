/**
 * The endpoints of general keys (issue 12, docs/API.md "App keys"): RSA-OAEP decryption and
 * ECDH with the caller's own decrypt keys. Each parses its body strictly, acts only on the
 * caller's own key (authorizeKey, audited), checks the key's usage before the TPM sees a
 * command, and hands one TPM job to keys/general-ops.ts.
 */
import { unsupported } from '../protocol/errors.js';
import type { ApiDeps, Handlers } from './handler.js';

export type AppKeyOp = 'decrypt' | 'ecdh';

export function appKeyHandlers(_d: ApiDeps): Pick<Handlers, AppKeyOp> {
  return {
    decrypt: () => {
      throw unsupported('decrypt: not implemented yet');
    },
    ecdh: () => {
      throw unsupported('ecdh: not implemented yet');
    },
  };
}
