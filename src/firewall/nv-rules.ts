/**
 * NV commands beyond NV_Read/NV_Write, on the app's own indices only (slots.ts `nv`; `nvAuth`
 * also admits the app's virtual owner, authorized as for NV_Write). Those that change an
 * index's data, lock state or authValue count as NV writes (the app's write rate limit).
 */
import * as N from './commands-nv.js';
import type { Rule } from './rule.js';

export const nvRules: readonly Rule[] = [
  { cmd: N.NV_Increment, slots: ['nvAuth', 'nv'], nvWrite: true },
  { cmd: N.NV_Extend, slots: ['nvAuth', 'nv'], nvWrite: true },
  { cmd: N.NV_SetBits, slots: ['nvAuth', 'nv'], nvWrite: true },
  { cmd: N.NV_WriteLock, slots: ['nvAuth', 'nv'], nvWrite: true },
  { cmd: N.NV_ReadLock, slots: ['nvAuth', 'nv'], nvWrite: true },
  // The index authorizes its own change (ADMIN role: the chip demands a policy session).
  { cmd: N.NV_ChangeAuth, slots: ['nv'], nvWrite: true },
  { cmd: N.NV_Certify, slots: ['object', 'nvAuth', 'nv'] },
];
