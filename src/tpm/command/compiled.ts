/**
 * Per descriptor: the names of its authorized handles, and its whole frames compiled
 * (../wire/generate-frame.ts) from its TIER_UP-th use on, as the structures are (one-shot uses,
 * a tool sending one command, never pay for code generation). The interpreted frame code
 * (layout.ts, frames.ts) stays the reference and runs when a direction is not compiled.
 */
import { hex32 } from '../constants.js';
import { TpmError } from '../rc.js';
import { TPM2B_AUTH, TPM2B_NONCE } from '../structures.js';
import { u8, u32 } from '../wire/codec.js';
import { TIER_UP, compileFrames, compileOwnedResponse, type CompiledFrames, type FrameRuntime } from '../wire/compile.js';
import type { AuthFields } from '../wire/generate-frame.js';
import { Writer } from '../wire/writer.js';
import { handleOf, type CommandDescriptor, type HandleArg } from './descriptor.js';

/** The fields of TPMS_AUTH_COMMAND and TPMS_AUTH_RESPONSE (auth.ts), for the generated code. */
const AUTH_FIELDS: AuthFields = { nonce: TPM2B_NONCE, auth: TPM2B_AUTH, u8, u32 };

interface State {
  uses: number;
  /** Names of the handles that need authorization, in order. */
  readonly authNames: readonly string[];
  frames: CompiledFrames | undefined;
  /** The response decoder into views (compileOwnedResponse); null if it cannot be compiled. */
  owned: CompiledFrames['decodeResponse'] | null;
}

const STATE = new WeakMap<CommandDescriptor, State>();

/** The descriptor's state (made on first use). */
export function stateOf(cmd: CommandDescriptor): State {
  let s = STATE.get(cmd);
  if (s === undefined) {
    s = { uses: 0, authNames: cmd.handles.filter((h) => h.auth === 'auth').map((h) => h.name), frames: undefined, owned: undefined };
    STATE.set(cmd, s);
  }
  return s;
}

const NOTHING: CompiledFrames = {};

/** The compiled frames of `cmd`, or nothing before its TIER_UP-th use. */
export function framesOf(cmd: CommandDescriptor, s: State = stateOf(cmd)): CompiledFrames {
  if (s.frames !== undefined) return s.frames;
  if (++s.uses < TIER_UP) return NOTHING;
  s.frames = compileFrames(cmd, AUTH_FIELDS, runtimeOf(cmd));
  return s.frames;
}

const runtimeOf = (cmd: CommandDescriptor): FrameRuntime => ({
  handleOf: (h) => handleOf(h as HandleArg),
  hex32,
  tpmError: (rc) => new TpmError(rc, { name: cmd.name, code: cmd.code }),
});

/**
 * The response decoder whose byte fields are views into the frame, for a caller that owns the
 * frame; made on first such use once the frames are compiled (`compiled`: framesOf's answer).
 */
export function ownedDecoderOf(cmd: CommandDescriptor, s: State, compiled: CompiledFrames): CompiledFrames['decodeResponse'] {
  if (compiled.decodeResponse === undefined) return undefined;
  if (s.owned === undefined) s.owned = compileOwnedResponse(cmd, AUTH_FIELDS, runtimeOf(cmd)) ?? null;
  return s.owned ?? compiled.decodeResponse;
}

/**
 * One writer lent to the compiled encoders in turn: taken out while in use (a nested call, from
 * a getter in the input, makes its own), not given back after a failure. Its bytes never leave
 * it: finishShared() copies out what was written.
 */
let spare: Writer | undefined;
/** A writer grown past this (a very large frame) is dropped rather than kept. */
const KEEP_MAX = 64 * 1024;

export function borrowWriter(): Writer {
  const w = spare ?? new Writer(1024, false);
  spare = undefined;
  w.clear();
  return w;
}

/** The frame written, a copy (in slab memory if large: ../wire/slab.ts); the writer goes back. */
export function returnWriter(w: Writer): Uint8Array {
  const out = w.finishShared();
  if (w.capacity <= KEEP_MAX) spare = w;
  return out;
}
