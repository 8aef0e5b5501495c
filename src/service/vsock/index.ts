/**
 * AF_VSOCK for the service and the tools, on top of the node-vsock addon.
 *
 * The addon is used only to create sockets: `listen` (its accept thread hands over fds) and
 * `connect`. Every connected fd is then given to libuv (stream.ts), so reads and writes are
 * non-blocking and no peer can stall the event loop, and the Duplex is a genuine `net.Socket`
 * that node:http can serve (`server.emit('connection', socket)`) or use as a client connection.
 * The peer CID of an accepted connection comes from sock_diag through `ss` (peer.ts); a
 * connection whose CID cannot be learnt is closed, never served.
 *
 * Limits (from the addon, which cannot be changed here):
 * - A listener cannot really be closed: the addon's accept thread loops on the listening fd
 *   for the life of the process and keeps the event loop alive. `close()` stops serving (new
 *   connections are accepted by the kernel and closed at once) but the port stays bound and
 *   the process does not exit by itself: end it with `process.exit()`.
 * - The addon closes its descriptor when its socket object is garbage-collected, so the
 *   objects whose fd libuv now owns are kept alive (a few hundred bytes per client connection).
 *   For the same reason, and because a worker's teardown finalizes them, sockets are made on
 *   the main thread only.
 * - Descriptors are inherited by child processes (no SOCK_CLOEXEC).
 */
import type { Duplex } from 'node:stream';
import { isMainThread } from 'node:worker_threads';
import { isNoVsockKernel, loadVsockAddon, VsockUnavailableError, type NativeVsockSocket, type VsockAddon, type VsockEmit } from './addon.js';
import { SsPeerResolver, type SsRunnerOptions, runSs } from './peer.js';
import { adoptFd, socketDescriptors, socketFromHandle, vsockStreamsAvailable, type AdoptedHandle, type VsockPeer } from './stream.js';

export { VsockUnavailableError, loadVsockAddon } from './addon.js';
export type { VsockAddon } from './addon.js';
export type { VsockPeer } from './stream.js';

/** VMADDR_CID_ANY / VMADDR_PORT_ANY: not valid as a peer or a port here. */
const ANY = 0xffffffff;

export interface ListenVsockOptions extends SsRunnerOptions {
  /**
   * How the peer of an accepted fd is learnt (default: `ss`, see peer.ts). Must reject when it
   * cannot tell; the connection is then closed.
   */
  resolvePeer?: (fd: number) => Promise<VsockPeer>;
  /** Connections open at once (accepted, being identified or served); beyond, new ones are closed. Default 1024. */
  maxConnections?: number;
  /** Refused connections and accept-thread errors, for logging (default: process.emitWarning). */
  onError?: (err: Error) => void;
}

export interface VsockListener {
  readonly port: number;
  /** Stops serving: later connections are closed on arrival. See the module comment for what stays. */
  close(): Promise<void>;
}

export interface ConnectVsockOptions {
  /** Give up after this long (default 10 000 ms). A refusal is reported by the addon after ~1 s. */
  timeoutMs?: number;
}

/** A failed `connectVsock`: `code` is ECONNREFUSED, ETIMEDOUT or the errno the addon reported. */
export class VsockConnectError extends Error {
  override readonly name = 'VsockConnectError';
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// Addon objects that must never be collected (their Drop would close an fd they no longer
// own, or the listening fd under a live accept thread).
const retained = new Set<NativeVsockSocket>();

function checkPort(port: number, what = 'port'): void {
  if (!Number.isInteger(port) || port < 0 || port >= ANY) throw new RangeError(`vsock ${what} must be an integer in [0, 0xfffffffe], got ${port}`);
}

function prepare(): VsockAddon {
  if (!isMainThread) throw new Error('vsock sockets can only be made on the main thread (the addon closes its fds when a worker ends)');
  const addon = loadVsockAddon();
  vsockStreamsAvailable();
  return addon;
}

function newNative(addon: VsockAddon, emit: VsockEmit): NativeVsockSocket {
  try {
    return new addon.VsockSocket(emit);
  } catch (e) {
    if (isNoVsockKernel(e)) throw new VsockUnavailableError('vsock is not available: this kernel has no AF_VSOCK (vsock modules not loaded?)', { cause: e });
    throw e;
  }
}

function errorFrom(v: unknown): Error {
  return v instanceof Error ? v : new Error(String(v));
}

/**
 * Serves vsock `port` (on VMADDR_CID_ANY). Each connection reaches `onConnection` only once
 * its peer CID is known, as a net.Socket whose `remoteAddress` is `vsock:<cid>`.
 */
export async function listenVsock(
  port: number,
  onConnection: (duplex: Duplex, peer: VsockPeer) => void,
  opts: ListenVsockOptions = {},
): Promise<VsockListener> {
  checkPort(port);
  const addon = prepare();
  const maxConnections = opts.maxConnections ?? 1024;
  const report = (e: Error): void => {
    try {
      if (opts.onError) opts.onError(e);
      else process.emitWarning(e.message, 'VsockWarning');
    } catch {
      // a logging hook must not break accepting
    }
  };
  const resolver = new SsPeerResolver(opts);
  const resolvePeer = opts.resolvePeer ?? ((fd: number) => resolver.lookup(fd, port));
  const identifying = new Set<AdoptedHandle>();
  let open = 0;
  let closed = false;
  // The accept thread retries a failing accept() at once (EMFILE ...): report at most once a second.
  let lastAcceptError = 0;
  let suppressed = 0;

  const refuseFd = (fd: number): void => {
    try {
      adoptFd(fd).close();
    } catch {
      try {
        new addon.VsockSocket(() => {}, fd).close();
      } catch {
        // nothing else can close it
      }
    }
  };

  const onAccepted = (fd: number): void => {
    if (closed) return refuseFd(fd);
    if (open >= maxConnections) {
      refuseFd(fd);
      return report(new Error(`vsock port ${port}: connection refused, ${open} already open (maxConnections)`));
    }
    let handle: AdoptedHandle;
    try {
      handle = adoptFd(fd);
    } catch (e) {
      refuseFd(fd);
      return report(errorFrom(e));
    }
    open++;
    identifying.add(handle);
    const drop = (): void => {
      identifying.delete(handle);
      handle.close();
      open--;
    };
    resolvePeer(fd).then(
      (peer) => {
        if (!identifying.has(handle)) return; // closed meanwhile
        if (!Number.isInteger(peer.cid) || peer.cid < 0 || peer.cid >= ANY || !Number.isInteger(peer.port)) {
          drop();
          return report(new Error(`vsock port ${port}: connection refused, bad peer ${JSON.stringify(peer)}`));
        }
        identifying.delete(handle);
        const sock = socketFromHandle(handle, peer);
        sock.once('close', () => open--);
        try {
          onConnection(sock, peer);
        } catch (e) {
          sock.destroy();
          report(errorFrom(e));
        }
      },
      (e: unknown) => {
        if (!identifying.has(handle)) return;
        drop();
        report(new Error(`vsock port ${port}: connection refused, peer CID unknown: ${errorFrom(e).message}`, { cause: e }));
      },
    );
  };

  const emit: VsockEmit = (err, event, ...args) => {
    if (event === '_connection' && typeof args[0] === 'number') return onAccepted(args[0]);
    if (event === '_error' || err) {
      const now = Date.now();
      if (now - lastAcceptError < 1000) {
        suppressed++;
        return;
      }
      lastAcceptError = now;
      const e = errorFrom(err ?? args[0]);
      report(new Error(`vsock port ${port}: ${e.message}${suppressed ? ` (+${suppressed} more)` : ''}`, { cause: e }));
      suppressed = 0;
    }
  };

  const native = newNative(addon, emit);
  try {
    native.listen(port);
  } catch (e) {
    native.close(); // no accept thread yet: closing is safe
    throw new Error(`cannot listen on vsock port ${port}: ${errorFrom(e).message}`, { cause: e });
  }
  retained.add(native);

  if (!opts.resolvePeer) {
    // Fail now, not on every connection, when ss or vsock_diag is missing.
    try {
      const entries = await runSs(opts);
      const ours = entries.some((e) => e.state === 'LISTEN' && e.local.port === port && e.users.some((u) => u.pid === process.pid));
      if (!ours) throw new Error(`ss does not list our listening socket on port ${port}: is the vsock_diag kernel module loaded?`);
    } catch (e) {
      closed = true;
      throw new Error(`vsock port ${port}: cannot identify peers (the listener stays bound until the process exits): ${errorFrom(e).message}`, { cause: e });
    }
  }

  return {
    port,
    close: async () => {
      closed = true;
      for (const h of identifying) {
        identifying.delete(h);
        h.close();
        open--;
      }
    },
  };
}

/**
 * Connects to `cid`:`port`. Resolves with a net.Socket (`remoteAddress` `vsock:<cid>`); rejects
 * with VsockConnectError (ECONNREFUSED when nothing listens, ETIMEDOUT after `timeoutMs`).
 */
export async function connectVsock(cid: number, port: number, opts: ConnectVsockOptions = {}): Promise<Duplex> {
  checkPort(cid, 'CID');
  checkPort(port);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  if (!(timeoutMs > 0)) throw new RangeError('timeoutMs must be > 0');
  const addon = prepare();
  const target = `vsock:${cid}:${port}`;

  return new Promise<Duplex>((resolve, reject) => {
    // The addon keeps `emit` for the socket's lifetime: route through a slot emptied when done.
    let onEvent: ((err: unknown, event: string, args: unknown[]) => void) | undefined;
    const emit: VsockEmit = (err, event, ...args) => onEvent?.(err, event, args);
    const { native, fd } = createClientSocket(addon, emit);
    let timer: NodeJS.Timeout | undefined;
    const fail = (e: VsockConnectError): void => {
      onEvent = undefined;
      clearTimeout(timer);
      // Not adopted by libuv: the addon closes its own fd. A connect still running in the
      // addon's thread holds the socket itself, not the fd number, and makes no further call.
      try {
        native.close();
      } catch {
        // already closed
      }
      reject(e);
    };
    onEvent = (err, event, args) => {
      if (event === '_connect') {
        onEvent = undefined;
        clearTimeout(timer);
        let handle: AdoptedHandle;
        try {
          handle = adoptFd(fd);
        } catch (e) {
          native.close();
          reject(new VsockConnectError('EIO', `cannot use the connection to ${target}: ${errorFrom(e).message}`, { cause: e }));
          return;
        }
        retained.add(native); // libuv owns the fd now; this object must never close it
        resolve(socketFromHandle(handle, { cid, port }));
      } else if (event === '_error' || err) {
        const e = errorFrom(err ?? args[0]);
        const code = /ECONNRESET|ECONNREFUSED/.test(e.message) ? 'ECONNREFUSED' : (/\b(E[A-Z]+)\b/.exec(e.message)?.[1] ?? 'EIO');
        const why = code === 'ECONNREFUSED' ? 'connection refused (nothing listens there)' : e.message;
        fail(new VsockConnectError(code, `cannot connect to ${target}: ${why}`, { cause: e }));
      }
    };
    timer = setTimeout(() => fail(new VsockConnectError('ETIMEDOUT', `cannot connect to ${target}: no answer within ${timeoutMs} ms`)), timeoutMs);
    try {
      native.setMaxConnectionAttempts(1); // else the addon retries for 31 s
      native.connect(cid, port);
    } catch (e) {
      fail(new VsockConnectError('EIO', `cannot connect to ${target}: ${errorFrom(e).message}`, { cause: e }));
    }
  });
}

/**
 * The addon does not tell a socket's fd. It is the one socket descriptor that appears across
 * the constructor call (compared as fd + inode, so a number reused meanwhile is not mistaken).
 * Another thread creating a socket at the same instant makes it ambiguous: try again.
 */
function createClientSocket(addon: VsockAddon, emit: VsockEmit): { native: NativeVsockSocket; fd: number } {
  for (let attempt = 0; attempt < 5; attempt++) {
    const before = socketDescriptors();
    const native = newNative(addon, emit);
    const fresh = [...socketDescriptors()].filter(([fd, link]) => before.get(fd) !== link);
    if (fresh.length === 1) return { native, fd: fresh[0]![0] };
    native.close();
  }
  throw new Error('cannot tell which descriptor the new vsock socket has (sockets being created concurrently)');
}
