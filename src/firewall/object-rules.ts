/**
 * Object commands on the app's own objects (slots.ts `object`). Tickets and blobs in their
 * parameters are checked by the chip against those objects.
 */
import * as O from './commands-objects.js';
import type { Rule } from './rule.js';

export const objectRules: readonly Rule[] = [
  { cmd: O.HMAC, slots: ['object'] },
  { cmd: O.HMAC_Start, slots: ['object'] },
  { cmd: O.EncryptDecrypt, slots: ['object'] },
  { cmd: O.ObjectChangeAuth, slots: ['object', 'object'] },
  // A duplicate for the app's own new parent, or unwrapped (TPM_RH_NULL): the app's own key either way.
  { cmd: O.Duplicate, slots: ['object', 'objectOrNull'] },
  { cmd: O.Import, slots: ['object'] },
  // A hierarchy parent makes a primary: CreatePrimary's, virtualized by the service (HIERARCHY+H1 here).
  { cmd: O.CreateLoaded, slots: ['object'] },
  /*
   * creationTicket: the chip recomputes it over the object's Name (Part 3 §18.3), so it holds only
   * for the app's own object, whatever hierarchy made it; no check of the firewall's adds to that.
   */
  { cmd: O.CertifyCreation, slots: ['object', 'object'] },
];
