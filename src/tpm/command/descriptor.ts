/**
 * Commands as data (TPM 2.0 Part 1 §18 "Command/Response Structure"; Part 3 for each command).
 * A descriptor lists the command code, its handles (each marked as needing authorization or
 * not), a parameter codec, the response handles and a response-parameter codec — and which
 * transient handles the command loads and flushes, so that whoever keeps account of the TPM's
 * memory (the service's queue) needs no list of command codes.
 */
import { TPM_HT, TPMA_SESSION, hex32 } from '../constants.js';
import { struct, type Codec, type Infer } from '../wire/codec.js';

/** Whether a command handle is authorized by a session (Part 3 "Auth Index"/"Auth Role"). */
export type HandleAuth = 'auth' | 'noauth';

/**
 * Where a handle the command flushes travels: one of its command handles by name, or a
 * parameter holding a handle (FlushContext's flushHandle, Part 3 §28.4).
 */
export interface FlushSource {
  readonly from: 'handle' | 'parameter';
  readonly name: string;
}

export interface CommandDescriptor<
  H extends string = string,
  P extends Record<string, unknown> = Record<string, unknown>,
  RH extends string = string,
  R extends Record<string, unknown> = Record<string, unknown>,
> {
  readonly name: string;
  readonly code: number;
  /** Where the command is specified, e.g. "Part 3 §20.2". */
  readonly spec: string;
  readonly handles: readonly { readonly name: H; readonly auth: HandleAuth }[];
  readonly params: Codec<P>;
  readonly responseHandles: readonly RH[];
  readonly response: Codec<R>;
  /**
   * Response handles that name a transient entity the command has just loaded (object,
   * sequence, session): it stays in the TPM until flushed. Cited per command in commands.ts.
   */
  readonly creates: readonly RH[];
  /**
   * Handles a successful command removes from the TPM (FlushContext; SequenceComplete ends its
   * sequence). Sessions used without continueSession are flushed too, whatever the command:
   * that is per call, see `sessionEnds`.
   */
  readonly flushes: readonly FlushSource[];
  /** Flushes and does nothing else (FlushContext): cleanup paths must always let it run. */
  readonly onlyFlushes: boolean;
}

/**
 * Any descriptor, for code generic over commands (executors, wrappers): its type parameters are
 * inferred per call, so `any` here only widens the constraint.
 */
export type AnyCommand = CommandDescriptor<any, any, any, any>;

/** What a caller passes to run a command: its handles by name plus its parameters. */
export type CommandInput<C> = C extends CommandDescriptor<infer H, infer P, any, any> ? { [K in H]: HandleArg } & P : never;
/** What running a command returns: its response handles by name plus response parameters. */
export type CommandOutput<C> = C extends CommandDescriptor<any, any, infer RH, infer R> ? { [K in RH]: number } & R : never;
/** Handle names that need authorization. */
export type AuthHandleName<C> = C extends CommandDescriptor<infer H, any, any, any> ? H : never;

type Fields = Record<string, Codec<any>>;

/** Defines a command descriptor; `params`/`response` are field lists in wire order. */
export function command<H extends string = never, PF extends Fields = Fields, RH extends string = never, RF extends Fields = Fields>(def: {
  name: string;
  code: number;
  spec: string;
  handles?: { [K in H]: HandleAuth };
  params: PF;
  responseHandles?: readonly RH[];
  response: RF;
  /** Response handles naming newly loaded transient entities (a subset of responseHandles). */
  creates?: readonly NoInfer<RH>[];
  /** What a successful command flushes: `{ handle: name }` or `{ parameter: name }`. */
  flushes?: readonly ({ handle: NoInfer<H> } | { parameter: keyof PF & string })[];
}): CommandDescriptor<H, { [K in keyof PF]: Infer<PF[K]> }, RH, { [K in keyof RF]: Infer<RF[K]> }> {
  const handles = Object.entries(def.handles ?? {}).map(([name, auth]) => ({ name: name as H, auth: auth as HandleAuth }));
  const creates = def.creates ?? [];
  for (const c of creates) {
    if (!(def.responseHandles ?? []).includes(c)) throw new TypeError(`${def.name}: creates names ${c}, which is no response handle`);
  }
  const flushes: FlushSource[] = (def.flushes ?? []).map((f) =>
    'handle' in f ? { from: 'handle' as const, name: f.handle as string } : { from: 'parameter' as const, name: f.parameter },
  );
  for (const f of flushes) {
    const known = f.from === 'handle' ? handles.some((h) => h.name === f.name) : f.name in def.params;
    if (!known) throw new TypeError(`${def.name}: flushes names ${f.from} ${f.name}, which it does not have`);
  }
  return {
    name: def.name,
    code: def.code,
    spec: def.spec,
    handles,
    params: struct(`${def.name}.parameters`, def.params),
    responseHandles: def.responseHandles ?? [],
    response: struct(`${def.name}.response`, def.response),
    creates,
    flushes,
    onlyFlushes: flushes.length > 0 && creates.length === 0 && Object.keys(def.response).length === 0,
  };
}

/** The handle a flush declaration points at in a command's input. */
export function flushedHandle(f: FlushSource, input: Record<string, unknown>): number {
  const v = input[f.name];
  return typeof v === 'number' ? v : handleOf(v as HandleArg);
}

/**
 * Calls `fn` with each session a successful command ended: a session authorizing it without
 * continueSession is flushed by the TPM once the command succeeds (Part 2 §8.4,
 * TPMA_SESSION.continueSession). TPM_RS_PW is no session and never ends.
 */
export function sessionEnds(
  auths: Partial<Record<string, SessionRef>> | undefined,
  extra: readonly SessionRef[] | undefined,
  fn: (handle: number) => void,
): void {
  if (auths) for (const k in auths) ended(auths[k], fn);
  if (extra) for (const s of extra) ended(s, fn);
}

/**
 * How a call names a session, as far as its lifetime goes: a plain TPMS_AUTH_COMMAND entry,
 * or a session object's use (../session).
 */
export type SessionRef =
  | { readonly sessionHandle: number; readonly sessionAttributes: number }
  | { readonly session: { readonly handle: number; readonly continueSession: boolean } };

function ended(a: SessionRef | undefined, fn: (handle: number) => void): void {
  if (!a) return;
  const handle = 'session' in a ? a.session.handle : a.sessionHandle;
  const goesOn = 'session' in a ? a.session.continueSession : (a.sessionAttributes & TPMA_SESSION.continueSession) !== 0;
  const type = handle >>> 24;
  if ((type === TPM_HT.HMAC_SESSION || type === TPM_HT.POLICY_SESSION) && !goesOn) fn(handle);
}

/**
 * A handle together with its Name (Part 1 §16), as returned by Load/CreatePrimary/ReadPublic:
 * sessions that compute an HMAC need the Names of the command's handles.
 */
export interface NamedHandle {
  readonly handle: number;
  readonly name: Uint8Array;
}

/** What a command's handle slot takes: the bare handle, or the handle with its Name. */
export type HandleArg = number | NamedHandle;

/** The numeric handle of a handle argument. */
export function handleOf(h: HandleArg): number {
  return typeof h === 'number' ? h : h.handle;
}

/** The Name carried by a handle argument, if any. */
export function nameOf(h: HandleArg): Uint8Array | undefined {
  return typeof h === 'number' ? undefined : h.name;
}

/** Describes a handle for messages: 0x81010000. */
export const showHandle = hex32;
