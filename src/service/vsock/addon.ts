/**
 * Loading our vsock addon (native/vsock/vsock.c, N-API): thin, non-blocking socket calls and a
 * libuv poll watcher. We replaced the registry's `node-vsock-linux-x64-gnu`: it existed for
 * x86-64 glibc only, gave no peer address on accept (so the caller's CID had to come from
 * running `ss`), and wrote with a blocking send() on the event-loop thread.
 *
 * Where it is looked for, first found wins:
 * 1. `$EVE_TOOLS_VSOCK_ADDON`: a `.node` file, or a folder holding `vsock.node` or
 *    `prebuilds/<platform>/vsock.node`;
 * 2. from this module's folder (in a bundled tool: the tool's folder) and each folder above:
 *    `vsock.node` (beside a tool only), `native/vsock/build/Release/vsock.node` (a node-gyp
 *    build from source, made for this very Node), `prebuilds/<platform>/vsock.node`.
 * `<platform>` is `linux-<x64|arm64>-<glibc|musl>`.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A vsock address as the kernel reports it. */
export interface VsockAddress {
  cid: number;
  port: number;
}

/** An opaque libuv poll watcher. */
export type VsockWatch = { readonly __vsockWatch: unique symbol };

/** What native/vsock/vsock.c exports (abi 1). Each call throws an Error whose `code` is the errno name. */
export interface VsockAddon {
  readonly abi: number;
  readonly VMADDR_CID_ANY: number;
  /** A new AF_VSOCK stream socket, non-blocking and close-on-exec. */
  socket(): number;
  bind(fd: number, cid: number, port: number): void;
  listen(fd: number, backlog: number): void;
  /** The next waiting connection (non-blocking, close-on-exec) with its peer, or null. */
  accept(fd: number): ({ fd: number } & VsockAddress) | null;
  /** true: connected at once; false: in progress (watch for writable, then connectResult). */
  connect(fd: number, cid: number, port: number): boolean;
  /** Throws the errno a finished non-blocking connect failed with. */
  connectResult(fd: number): void;
  getsockname(fd: number): VsockAddress;
  getpeername(fd: number): VsockAddress;
  close(fd: number): void;
  /** Calls `cb(0)` each time `fd` is readable (or writable), `cb(<0)` on a poll error; on the event loop. */
  watch(fd: number, writable: boolean, cb: (status: number) => void): VsockWatch;
  /** Stops a watcher at once; the fd stays open. */
  unwatch(w: VsockWatch): void;
  setRef(w: VsockWatch, ref: boolean): void;
}

const FUNCTIONS = ['socket', 'bind', 'listen', 'accept', 'connect', 'connectResult', 'getsockname', 'getpeername', 'close', 'watch', 'unwatch', 'setRef'] as const;

/** AF_VSOCK cannot be used here: addon missing, unsupported platform, or no vsock in the kernel. */
export class VsockUnavailableError extends Error {
  override readonly name = 'VsockUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A file or folder to load the addon from, for the bundled tools. */
export const ADDON_ENV = 'EVE_TOOLS_VSOCK_ADDON';
export const ADDON_FILE = 'vsock.node';

let cached: VsockAddon | undefined;

/** `linux-<arch>-<glibc|musl>`: the prebuilds/ folder for this process. */
export function platformTag(): string {
  return `${process.platform}-${process.arch}-${isMusl() ? 'musl' : 'glibc'}`;
}

/** Loads the addon once; throws VsockUnavailableError (one line) saying why it cannot be had. */
export function loadVsockAddon(): VsockAddon {
  if (cached) return cached;
  if (process.platform !== 'linux') {
    throw new VsockUnavailableError(`vsock is not available: AF_VSOCK needs Linux, this is ${process.platform}`);
  }
  const override = process.env[ADDON_ENV];
  let file: string | undefined;
  if (override) {
    const p = resolvePath(override);
    file = isDir(p) ? [join(p, ADDON_FILE), join(p, 'prebuilds', platformTag(), ADDON_FILE)].find((f) => existsSync(f)) : p;
    if (!file) throw new VsockUnavailableError(`vsock is not available: cannot load the vsock addon from ${ADDON_ENV}=${p}: no ${ADDON_FILE} or prebuilds/${platformTag()}/${ADDON_FILE} in it`);
  } else {
    file = findAddon(moduleDir());
    if (!file) {
      throw new VsockUnavailableError(
        `vsock is not available: no vsock addon for ${platformTag()}; build one with "npx node-gyp rebuild -C native/vsock" ` +
          `(or scripts/build-addon.sh), or set ${ADDON_ENV}=/path/to/${ADDON_FILE}`,
      );
    }
  }
  const m = { exports: {} as Record<string, unknown> };
  try {
    process.dlopen(m, file);
  } catch (e) {
    const detail = e instanceof Error ? e.message.split('\n')[0] : String(e);
    const where = override ? `${ADDON_ENV}=${file}` : file;
    throw new VsockUnavailableError(`vsock is not available: cannot load the vsock addon from ${where}: ${detail}`, { cause: e });
  }
  const missing = FUNCTIONS.filter((f) => typeof m.exports[f] !== 'function');
  if (m.exports.abi !== 1 || missing.length) {
    throw new VsockUnavailableError(`vsock is not available: ${file} is not this project's vsock addon (abi 1; missing ${missing.join(', ') || 'abi'})`);
  }
  cached = m.exports as unknown as VsockAddon;
  return cached;
}

/** The candidates, nearest folder first (see the module comment). */
export function addonCandidates(start: string): string[] {
  const out = [join(start, ADDON_FILE)];
  for (let dir = start; ; dir = dirname(dir)) {
    out.push(join(dir, 'native/vsock/build/Release', ADDON_FILE), join(dir, 'prebuilds', platformTag(), ADDON_FILE));
    if (dirname(dir) === dir) return out;
  }
}

function findAddon(start: string): string | undefined {
  return addonCandidates(start).find((f) => existsSync(f));
}

/** In a bundled CommonJS tool `__dirname` is the tool's folder; in ESM, this file's. */
function moduleDir(): string {
  return typeof __dirname === 'string' ? __dirname : dirname(fileURLToPath(import.meta.url));
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

let musl: boolean | undefined;

/** glibc's runtime version is in the process report header; musl (Alpine) has none. */
function isMusl(): boolean {
  return (musl ??= reportSaysMusl());
}

function reportSaysMusl(): boolean {
  try {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
    return header !== undefined && header.glibcVersionRuntime === undefined;
  } catch {
    return false;
  }
}

/** The errors socket() gives when the kernel has no AF_VSOCK. */
export function isNoVsockKernel(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'EAFNOSUPPORT' || code === 'EPROTONOSUPPORT' || code === 'ESOCKTNOSUPPORT' || code === 'ENODEV';
}
