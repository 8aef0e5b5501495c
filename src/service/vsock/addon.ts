/**
 * Loading the node-vsock N-API addon (npm `node-vsock-linux-x64-gnu`, an optional dependency).
 *
 * What the adapter relies on (node-vsock 0.0.5, read from its Rust source):
 * - `new VsockSocket(emit)` makes a blocking AF_VSOCK stream socket (no SOCK_CLOEXEC);
 *   `new VsockSocket(emit, fd)` wraps an existing descriptor. Every instance closes its fd when
 *   it is garbage-collected (Rust Drop: shutdown + close) unless `close()` was called first.
 * - `listen(port)` binds VMADDR_CID_ANY:port and listens synchronously, then starts a thread
 *   that loops on accept() forever and emits `_connection` with the new fd (no peer address).
 *   The thread never ends (an accept error is emitted and retried), so the listening fd must
 *   never be closed, and its thread-safe callbacks keep the event loop alive for good.
 * - `connect(cid, port)` runs connect() in a thread; after every failed attempt it sleeps
 *   1 s, 2 s, 4 s ... (so even with `setMaxConnectionAttempts(1)` a refusal is reported ~1 s late).
 * - `startRecv()`/`writeBuffer()`: a reader thread per socket, and a *blocking* send loop on
 *   the calling thread. The adapter uses neither (see index.ts).
 */
import { createRequire } from 'node:module';
import { resolve as resolvePath } from 'node:path';

/** `emit(err, event, ...args)` as the addon calls it. */
export type VsockEmit = (err: unknown, event: string, ...args: unknown[]) => void;

/** The parts of the addon's `VsockSocket` the adapter uses. */
export interface NativeVsockSocket {
  listen(port: number): void;
  connect(cid: number, port: number): void;
  setMaxConnectionAttempts(attempts: number): void;
  close(): void;
}

export interface VsockAddon {
  VsockSocket: new (emit: VsockEmit, fd?: number) => NativeVsockSocket;
}

/** AF_VSOCK cannot be used here: addon missing, unsupported platform, or no vsock in the kernel. */
export class VsockUnavailableError extends Error {
  override readonly name = 'VsockUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export const ADDON_PACKAGE = 'node-vsock-linux-x64-gnu';
/** A folder holding the addon package (or the `.node` file itself), for the bundled tools. */
export const ADDON_ENV = 'EVE_TOOLS_VSOCK_ADDON';

let cached: VsockAddon | undefined;

/**
 * Loads the addon once. Looked up at `$EVE_TOOLS_VSOCK_ADDON` when set, else as the package
 * `node-vsock-linux-x64-gnu` from this module's location (in a bundled tool: a `node_modules`
 * next to the tool or above it). Throws VsockUnavailableError saying why it cannot be had.
 */
export function loadVsockAddon(): VsockAddon {
  if (cached) return cached;
  if (process.platform !== 'linux') {
    throw new VsockUnavailableError(`vsock is not available: AF_VSOCK needs Linux, this is ${process.platform}`);
  }
  const override = process.env[ADDON_ENV];
  const target = override ? resolvePath(override) : ADDON_PACKAGE;
  let mod: unknown;
  try {
    mod = nodeRequire()(target);
  } catch (e) {
    throw new VsockUnavailableError(whyMissing(override ? target : undefined, e), { cause: e });
  }
  const ctor = (mod as { VsockSocket?: unknown } | null)?.VsockSocket;
  if (typeof ctor !== 'function') {
    throw new VsockUnavailableError(`vsock is not available: ${override ? target : ADDON_PACKAGE} does not export VsockSocket (not node-vsock?)`);
  }
  cached = mod as VsockAddon;
  return cached;
}

/**
 * In the bundled CommonJS tools `require` is the bundle's own, resolving from the tool's
 * folder; in ESM there is none and the lookup starts at this module's URL.
 */
function nodeRequire(): NodeJS.Require {
  return typeof require === 'function' ? require : createRequire(import.meta.url);
}

function whyMissing(path: string | undefined, e: unknown): string {
  const detail = e instanceof Error ? e.message.split('\n')[0] : String(e);
  if (path) return `vsock is not available: cannot load the vsock addon from ${ADDON_ENV}=${path}: ${detail}`;
  if (process.arch !== 'x64') {
    return `vsock is not available: no prebuilt vsock addon for linux-${process.arch} (${ADDON_PACKAGE} exists for x64 glibc only)`;
  }
  if (isMusl()) return `vsock is not available: this is a musl libc system (e.g. Alpine); ${ADDON_PACKAGE} is built for glibc only`;
  return (
    `vsock is not available: the optional dependency ${ADDON_PACKAGE} is not installed (${detail}); ` +
    `install it, put it in a node_modules folder next to the tool, or set ${ADDON_ENV}=/path/to/${ADDON_PACKAGE}`
  );
}

function isMusl(): boolean {
  try {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
    return header !== undefined && header.glibcVersionRuntime === undefined;
  } catch {
    return false;
  }
}

/** The errors the addon's constructor throws when the kernel has no AF_VSOCK. */
export function isNoVsockKernel(e: unknown): boolean {
  const m = e instanceof Error ? e.message : String(e);
  return /EAFNOSUPPORT|EPROTONOSUPPORT|ESOCKTNOSUPPORT|Address family not supported/i.test(m);
}
