/**
 * AF_VSOCK for the service and the tools, on our own addon (addon.ts, native/vsock/vsock.c).
 *
 * Every socket is non-blocking. A listening fd is watched by a libuv poll handle on Node's event
 * loop; when it is readable we call accept() until it says nothing is waiting. accept() returns
 * the new fd together with the peer's CID and port from the kernel's sockaddr_vm: that is the
 * caller's identity (no `ss`, no sock_diag). A client connect() is non-blocking too; the fd is
 * watched for writable and its SO_ERROR read. Connected fds are then given to libuv as streams
 * (stream.ts), so reads and writes never block and the Duplex is a real `net.Socket`.
 *
 * Limit: sockets are made on the main thread only (watchers are not torn down with a worker).
 */
import type { Duplex } from 'node:stream';
import { isMainThread } from 'node:worker_threads';
import { isNoVsockKernel, loadVsockAddon, VsockUnavailableError, type VsockAddon, type VsockWatch } from './addon.js';
import { adoptFd, socketFromHandle, vsockStreamsAvailable, type VsockPeer } from './stream.js';

export { VsockUnavailableError, loadVsockAddon, platformTag } from './addon.js';
export type { VsockAddon } from './addon.js';
export type { VsockPeer } from './stream.js';

/** VMADDR_CID_ANY / VMADDR_PORT_ANY: not valid as a peer or a port here. */
const ANY = 0xffffffff;
/** accept() calls per readiness report, so one busy listener cannot hog the loop. */
const ACCEPT_BURST = 64;
/** Errnos of accept() that clear up only with time (descriptors or memory exhausted). */
const PAUSE_ON = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

export interface ListenVsockOptions {
  /** Connections open at once; beyond, new ones are closed at once. Default 1024. */
  maxConnections?: number;
  /** Refused connections and accept errors, for logging (default: process.emitWarning). */
  onError?: (err: Error) => void;
  /** listen() backlog (default 128). */
  backlog?: number;
}

export interface VsockListener {
  readonly port: number;
  /** Stops accepting and closes the listening socket; open connections are left alone. */
  close(): Promise<void>;
}

export interface ConnectVsockOptions {
  /** Give up after this long (default 10 000 ms). */
  timeoutMs?: number;
}

/** A failed `connectVsock`: `code` is ECONNREFUSED, ETIMEDOUT or the errno name. */
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

function checkPort(port: number, what = 'port'): void {
  if (!Number.isInteger(port) || port < 0 || port >= ANY) throw new RangeError(`vsock ${what} must be an integer in [0, 0xfffffffe], got ${port}`);
}

function prepare(): VsockAddon {
  if (!isMainThread) throw new Error('vsock sockets can only be made on the main thread');
  const addon = loadVsockAddon();
  vsockStreamsAvailable();
  return addon;
}

function errorFrom(v: unknown): Error {
  return v instanceof Error ? v : new Error(String(v));
}

const codeOf = (e: unknown): string | undefined => (e as { code?: unknown } | null)?.code as string | undefined;

function newSocket(addon: VsockAddon): number {
  try {
    return addon.socket();
  } catch (e) {
    if (isNoVsockKernel(e)) throw new VsockUnavailableError('vsock is not available: this kernel has no AF_VSOCK (vsock modules not loaded?)', { cause: e });
    throw e;
  }
}

/**
 * Serves vsock `port` (on VMADDR_CID_ANY). Each connection reaches `onConnection` as a
 * net.Socket whose `remoteAddress` is `vsock:<cid>`, with the peer accept() reported.
 */
export async function listenVsock(port: number, onConnection: (duplex: Duplex, peer: VsockPeer) => void, opts: ListenVsockOptions = {}): Promise<VsockListener> {
  checkPort(port);
  const addon = prepare();
  const fd = newSocket(addon);
  try {
    addon.bind(fd, addon.VMADDR_CID_ANY, port);
    addon.listen(fd, opts.backlog ?? 128);
  } catch (e) {
    addon.close(fd);
    throw new Error(`cannot listen on vsock port ${port}: ${errorFrom(e).message}`, { cause: e });
  }
  try {
    return serveListening(addon, fd, onConnection, opts);
  } catch (e) {
    addon.close(fd);
    throw e;
  }
}

/**
 * Serves an inherited listening AF_VSOCK socket (systemd `ListenStream=vsock::PORT`, or
 * `--listen fd:N`). Fails if `fd` is not a vsock socket. Closing the listener closes `fd`.
 */
export async function listenVsockFd(fd: number, onConnection: (duplex: Duplex, peer: VsockPeer) => void, opts: ListenVsockOptions = {}): Promise<VsockListener> {
  if (!Number.isInteger(fd) || fd < 0) throw new RangeError(`fd must be a non-negative integer, got ${fd}`);
  const addon = prepare();
  try {
    addon.getsockname(fd); // EAFNOSUPPORT when not AF_VSOCK, ENOTSOCK/EBADF otherwise
  } catch (e) {
    throw new Error(`fd ${fd} is not a vsock socket: ${errorFrom(e).message}`, { cause: e });
  }
  return serveListening(addon, fd, onConnection, opts);
}

function serveListening(addon: VsockAddon, fd: number, onConnection: (duplex: Duplex, peer: VsockPeer) => void, opts: ListenVsockOptions): VsockListener {
  const port = addon.getsockname(fd).port;
  const maxConnections = opts.maxConnections ?? 1024;
  const report = (e: Error): void => {
    try {
      if (opts.onError) opts.onError(e);
      else process.emitWarning(e.message, 'VsockWarning');
    } catch {
      // a logging hook must not break accepting
    }
  };
  let open = 0;
  let closed = false;
  let watch: VsockWatch | undefined;
  let pause: NodeJS.Timeout | undefined;

  const refuse = (conn: number, why: string): void => {
    addon.close(conn);
    report(new Error(`vsock port ${port}: connection refused, ${why}`));
  };

  const accepted = (conn: { fd: number; cid: number; port: number }): void => {
    if (closed) return addon.close(conn.fd);
    if (open >= maxConnections) return refuse(conn.fd, `${open} already open (maxConnections)`);
    if (conn.cid >= ANY) return refuse(conn.fd, `bad peer CID ${conn.cid}`);
    let handle: ReturnType<typeof adoptFd>;
    try {
      handle = adoptFd(conn.fd);
    } catch (e) {
      return refuse(conn.fd, errorFrom(e).message);
    }
    const peer: VsockPeer = { cid: conn.cid, port: conn.port };
    const sock = socketFromHandle(handle, peer);
    open++;
    sock.once('close', () => open--);
    try {
      onConnection(sock, peer);
    } catch (e) {
      sock.destroy();
      report(errorFrom(e));
    }
  };

  // Readable: drain the queue. A level-triggered poll reports again if more are left.
  const onReadable = (status: number): void => {
    if (closed) return;
    if (status < 0) return report(new Error(`vsock port ${port}: poll error ${status}`));
    // `closed` is checked each time: onConnection may close the listener (and its fd number be reused).
    for (let i = 0; i < ACCEPT_BURST && !closed; i++) {
      let conn: ReturnType<VsockAddon['accept']>;
      try {
        conn = addon.accept(fd);
      } catch (e) {
        report(new Error(`vsock port ${port}: ${errorFrom(e).message}`, { cause: e }));
        if (PAUSE_ON.has(codeOf(e) ?? '')) pauseAccepting();
        return;
      }
      if (!conn) return;
      accepted(conn);
    }
  };

  // Out of descriptors: stop polling for a second rather than spin on a readable listener.
  const pauseAccepting = (): void => {
    if (watch) addon.unwatch(watch);
    watch = undefined;
    pause = setTimeout(() => {
      pause = undefined;
      if (!closed) watch = addon.watch(fd, false, onReadable);
    }, 1000);
  };

  watch = addon.watch(fd, false, onReadable);
  return {
    port,
    close: async () => {
      if (closed) return;
      closed = true;
      clearTimeout(pause);
      if (watch) addon.unwatch(watch);
      watch = undefined;
      addon.close(fd);
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
  const fd = newSocket(addon);
  const failure = (e: unknown): VsockConnectError => {
    const code = codeOf(e) === 'ECONNRESET' ? 'ECONNREFUSED' : (codeOf(e) ?? 'EIO');
    const why = code === 'ECONNREFUSED' ? 'connection refused (nothing listens there)' : errorFrom(e).message;
    return new VsockConnectError(code, `cannot connect to ${target}: ${why}`, { cause: e });
  };
  const connected = (): Duplex => {
    try {
      return socketFromHandle(adoptFd(fd), { cid, port });
    } catch (e) {
      addon.close(fd);
      throw new VsockConnectError('EIO', `cannot use the connection to ${target}: ${errorFrom(e).message}`, { cause: e });
    }
  };

  let immediate: boolean;
  try {
    immediate = addon.connect(fd, cid, port);
  } catch (e) {
    addon.close(fd);
    throw failure(e);
  }
  if (immediate) return connected();

  return new Promise<Duplex>((resolve, reject) => {
    let done = false;
    let watch: VsockWatch | undefined;
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      if (watch) addon.unwatch(watch); // before libuv adopts the fd: one poller per fd
    };
    try {
      watch = addon.watch(fd, true, () => {
        if (done) return;
        finish();
        try {
          addon.connectResult(fd);
        } catch (e) {
          addon.close(fd);
          return reject(failure(e));
        }
        try {
          resolve(connected());
        } catch (e) {
          reject(e);
        }
      });
    } catch (e) {
      addon.close(fd);
      return reject(failure(e));
    }
    timer = setTimeout(() => {
      if (done) return;
      finish();
      addon.close(fd);
      reject(new VsockConnectError('ETIMEDOUT', `cannot connect to ${target}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
}
