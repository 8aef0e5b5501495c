/** Frames for the firewall tests, built with the library's own marshaller (real TPM bytes). */
import { TPM_ALG, TPM_RH, TPM_ST } from '../../src/tpm/constants.js';
import { HashSequenceStart, StartAuthSession } from '../../src/tpm/commands.js';
import { marshalCommand, marshalResponse, passwordAuth, type Authorization, type CommandDescriptor, type CommandInput } from '../../src/tpm/command.js';
import { AppState, Connection } from '../../src/firewall/app.js';
import { decide, type Decision } from '../../src/firewall/decide.js';
import { finish } from '../../src/firewall/response.js';
import { LoadExternal } from '../../src/firewall/commands.js';

export const NV_RANGE = { first: 0x01001000, last: 0x010010ff };

export function newConnection(app = new AppState('app-a', NV_RANGE)): Connection {
  return new Connection(app);
}

export const frame = <C extends CommandDescriptor>(cmd: C, input: CommandInput<C>, auths: Partial<Record<string, Authorization>> = {}): Uint8Array =>
  marshalCommand(cmd, input, auths);

/** The response code of a reply decision (fails the test on any other decision). */
export function rcOf(d: Decision): number {
  if (d.kind !== 'reply') throw new Error(`expected a reply, got ${d.kind}`);
  return d.rc;
}

export function forwarded(d: Decision): Extract<Decision, { kind: 'forward' }> {
  if (d.kind !== 'forward') throw new Error(`expected forward, got ${d.kind}${d.kind === 'reply' ? `: ${d.reason} (0x${d.rc.toString(16)})` : ''}`);
  return d;
}

/** Runs a command through decide and answers it with `output` as if from the chip. */
export function roundTrip<C extends CommandDescriptor>(conn: Connection, cmd: C, input: CommandInput<C>, output: Parameters<typeof marshalResponse<C>>[1], auths: Partial<Record<string, Authorization>> = {}): Uint8Array {
  const d = forwarded(decide(conn, frame(cmd, input, auths)));
  const sessions = d.plan.sessions;
  const response = marshalResponse(cmd, output, sessions > 0 ? Array.from({ length: sessions }, () => ({ nonceTPM: new Uint8Array(0), sessionAttributes: 1, hmac: new Uint8Array(0) })) : undefined);
  return finish(conn, d.plan, response);
}

export const u32At = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at);

/** Gives the connection a transient object the chip has at `real`; returns its virtual handle. */
export function loadObject(conn: Connection, real: number): number {
  const public_ = { type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: 0x40, authPolicy: new Uint8Array(0), parameters: { scheme: { scheme: TPM_ALG.NULL, details: null } }, unique: new Uint8Array(32) };
  const out = roundTrip(conn, LoadExternal, { inPrivate: new Uint8Array(0), inPublic: public_ as never, hierarchy: TPM_RH.NULL }, { objectHandle: real, name: new Uint8Array(34) } as never);
  return u32At(out, 10);
}

/** Gives the connection a session the chip started at `handle`. */
export function startSession(conn: Connection, handle: number): void {
  roundTrip(
    conn,
    StartAuthSession,
    { tpmKey: TPM_RH.NULL, bind: TPM_RH.NULL, nonceCaller: new Uint8Array(16), encryptedSalt: new Uint8Array(0), sessionType: 1, symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null }, authHash: TPM_ALG.SHA256 } as never,
    { sessionHandle: handle, nonceTPM: new Uint8Array(16) } as never,
  );
}

export function startSequence(conn: Connection, real: number): number {
  return u32At(roundTrip(conn, HashSequenceStart, { auth: new Uint8Array(0), hashAlg: TPM_ALG.SHA256 }, { sequenceHandle: real } as never), 10);
}

export const pw = (password = ''): Authorization => passwordAuth(new TextEncoder().encode(password));
export { TPM_ST };
