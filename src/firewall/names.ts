/**
 * Which handles a command frame names, read leniently before `decide` reads it strictly: the
 * service loads those of the connection's objects and sessions it holds saved out, so that the
 * decision finds them. A malformed frame names what it names up to where it breaks; `decide`
 * then refuses it, and whatever was loaded is saved out again.
 */
import { TPM_ST } from '../tpm/constants.js';
import { CreatePrimary, EvictControl, FlushContext } from '../tpm/commands.js';
import type { AnyCommand } from '../tpm/command.js';
import { MAX_COMMAND_SIZE } from './frame.js';
import { RULES } from './rules.js';

function commandOf(code: number): AnyCommand | undefined {
  if (code === CreatePrimary.code) return CreatePrimary;
  if (code === EvictControl.code) return EvictControl;
  return RULES.get(code)?.cmd;
}

/** The handles in the handle area, FlushContext's flushHandle, and the session handles of the authorization area. */
export function namedHandles(frame: Uint8Array): number[] {
  if (frame.length < 10 || frame.length > MAX_COMMAND_SIZE) return [];
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const cmd = commandOf(view.getUint32(6));
  if (!cmd) return [];
  const out: number[] = [];
  let at = 10;
  const u32 = (): number | undefined => {
    if (at + 4 > frame.length) return undefined;
    const v = view.getUint32(at);
    at += 4;
    return v;
  };
  for (let i = 0; i < cmd.handles.length; i++) {
    const h = u32();
    if (h === undefined) return out;
    out.push(h);
  }
  if (view.getUint16(0) === TPM_ST.SESSIONS) {
    const size = u32();
    if (size === undefined) return out;
    const end = Math.min(frame.length, at + size);
    // Each entry: sessionHandle, nonce (TPM2B), attributes (1), hmac (TPM2B).
    while (at + 4 <= end) {
      out.push(view.getUint32(at));
      at += 4;
      if (at + 2 > end) break;
      at += 2 + view.getUint16(at) + 1;
      if (at + 2 > end) break;
      at += 2 + view.getUint16(at);
    }
    at = end;
  }
  if (cmd === FlushContext) {
    const h = u32();
    if (h !== undefined) out.push(h);
  }
  return out;
}
