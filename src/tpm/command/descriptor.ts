/**
 * Commands as data (TPM 2.0 Part 1 §18 "Command/Response Structure"; Part 3 for each command).
 * A descriptor lists the command code, its handles (each marked as needing authorization or
 * not), a parameter codec, the response handles and a response-parameter codec.
 */
import { hex32 } from '../constants.js';
import { struct, type Codec, type Infer } from '../wire/codec.js';

/** Whether a command handle is authorized by a session (Part 3 "Auth Index"/"Auth Role"). */
export type HandleAuth = 'auth' | 'noauth';

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
}

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
}): CommandDescriptor<H, { [K in keyof PF]: Infer<PF[K]> }, RH, { [K in keyof RF]: Infer<RF[K]> }> {
  const handles = Object.entries(def.handles ?? {}).map(([name, auth]) => ({ name: name as H, auth: auth as HandleAuth }));
  return {
    name: def.name,
    code: def.code,
    spec: def.spec,
    handles,
    params: struct(`${def.name}.parameters`, def.params) as any,
    responseHandles: def.responseHandles ?? [],
    response: struct(`${def.name}.response`, def.response) as any,
  };
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
