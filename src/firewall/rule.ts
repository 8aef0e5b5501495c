/**
 * The shape of one firewall rule (rules.ts has the table; nv-, object- and policy-rules.ts
 * add rows): a file of its own so that the row files need not import the table.
 */
import type { AnyCommand, Authorization } from '../tpm/command.js';
import type { Connection } from './app.js';
import type { Slot } from './slots.js';

/** What a parameter check may ask the response step to do on success. */
export interface ParamEffects {
  /** A real handle the command flushes (FlushContext), with its virtual name. */
  flushed?: { real: number; virtual: number };
  /** An NV index the command defines (size) or undefines (undefined). */
  nvDefined?: { index: number; size: number; counter?: true };
  nvUndefined?: number;
  /** StartAuthSession of an HMAC session without salt or bind: its key is empty (primary-auth.ts). */
  unkeyed?: { hashAlg: number };
  /** The command writes chip NV (the rule's `nvWrite`): a success takes one of the app's NV write tokens. */
  nvWrite?: true;
}

export interface Rule {
  readonly cmd: AnyCommand;
  /** One per handle, in handle-area order. */
  readonly slots: readonly Slot[];
  /** Checks (and where documented rewrites) the decoded parameters in place. */
  readonly params?: (p: Record<string, unknown>, conn: Connection, handles: readonly number[], auths: readonly Authorization[]) => ParamEffects | void;
  /** Only TPM_ST_NO_SESSIONS (the firewall rewrites the response; no rpHash may cover it). */
  readonly noSessions?: true;
  /** Writes chip NV: rate-limited per app (limits.ts), TPM_RC_NV_RATE when the app's tokens are spent. */
  readonly nvWrite?: true;
}
