/**
 * Where requests come in: unix socket (owner-only), loopback TCP, vsock. Every listener hands
 * its connections to the same HTTP front with the peer it knows about (the vsock CID is the
 * tenant's identity there; the tcp remote address; on unix nothing, since Node gives no peer
 * credentials, so all unix callers are one peer).
 *
 * The vsock adapter is imported only when a vsock listener is asked for, so a host without the
 * native addon or without AF_VSOCK can still serve unix/tcp, and a vsock listener that cannot
 * start gives one clear error instead of a crash.
 */
import { chmodSync, fstatSync, lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { formatAddress, type ListenAddress } from '../protocol/address.js';
import type { Peer } from '../tenants/auth.js';

export interface Listener {
  /** The address actually listened on (tcp port 0 resolved). */
  readonly address: string;
  close(): Promise<void>;
}

export class ListenError extends Error {
  override readonly name = 'ListenError';
}

export type OnConnection = (duplex: Duplex, peer: Peer) => void;

function serve(onConnection: OnConnection, peerOf: (sock: Socket) => Peer): Server {
  // allowHalfOpen as http.Server has it: a client may finish sending and still read the answer.
  const server = createServer({ allowHalfOpen: true }, (sock: Socket) => onConnection(sock, peerOf(sock)));
  return server;
}

/** The tcp peer's address, an IPv4-mapped IPv6 one written as plain IPv4 (one peer, one name). */
function tcpAddress(sock: Socket): string {
  const a = sock.remoteAddress ?? 'unknown';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

function listenOn(server: Server, target: { path: string } | { host: string; port: number } | { fd: number }, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(new ListenError(`cannot listen on ${what}: ${(e as { code?: string }).code ?? e.message}`));
    server.once('error', onError);
    server.listen(target, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** Stops accepting; open connections are the HTTP front's to drain, so do not wait for them. */
function closeServer(server: Server): Promise<void> {
  server.close();
  return Promise.resolve();
}

/** Whether something answers on the unix socket at `path`. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * A socket file left by a dead service is removed; a live one (another instance) or anything
 * that is not a socket (a file someone put there) is refused, never deleted.
 */
async function clearStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new ListenError(`${path} exists and is not a socket; refusing to replace it`);
  if (await socketAnswers(path)) throw new ListenError(`${path} is in use by a running server`);
  unlinkSync(path);
}

async function listenUnix(path: string, onConnection: OnConnection): Promise<Listener> {
  await clearStaleSocket(path);
  const server = serve(onConnection, () => ({ listener: 'unix' }));
  // bind() creates the socket file with the umask's permissions: make them owner-only from the
  // first instant, not after a chmod that a quick client could race.
  const oldMask = process.umask(0o177);
  try {
    await listenOn(server, { path }, `unix:${path}`);
  } finally {
    process.umask(oldMask);
  }
  chmodSync(path, 0o600);
  return {
    address: `unix:${path}`,
    async close() {
      await closeServer(server);
    },
  };
}

async function listenTcp(host: string, port: number, onConnection: OnConnection): Promise<Listener> {
  const server = serve(onConnection, (sock) => ({ listener: 'tcp', address: tcpAddress(sock) }));
  await listenOn(server, { host, port }, formatAddress({ kind: 'tcp', host, port }));
  const a = server.address();
  const actual = typeof a === 'object' && a ? a.port : port;
  return {
    address: formatAddress({ kind: 'tcp', host, port: actual }),
    async close() {
      await closeServer(server);
    },
  };
}

async function listenVsockPort(port: number, onConnection: OnConnection, maxConnections: number, onError: (e: Error) => void): Promise<Listener> {
  let vsock: typeof import('../vsock/index.js');
  try {
    vsock = await import('../vsock/index.js');
  } catch (e) {
    throw new ListenError(`vsock is not available in this build: ${(e as Error).message}`);
  }
  try {
    const l = await vsock.listenVsock(port, (duplex, peer) => onConnection(duplex, { listener: 'vsock', cid: peer.cid }), {
      maxConnections,
      onError,
    });
    return { address: `vsock:${port}`, close: () => l.close() };
  } catch (e) {
    throw new ListenError(`cannot listen on vsock:${port}: ${(e as Error).message}`);
  }
}

export async function openListener(
  a: Exclude<ListenAddress, { kind: 'systemd' }>,
  onConnection: OnConnection,
  opts: { maxConnections: number; onError: (e: Error) => void; allowNonLoopback?: boolean },
): Promise<Listener> {
  if (a.kind === 'fd') return listenFd(a.fd, onConnection, { ...opts, allowNonLoopback: opts.allowNonLoopback ?? false });
  if (a.kind === 'unix') return listenUnix(a.path, onConnection);
  if (a.kind === 'tcp') return listenTcp(a.host, a.port, onConnection);
  // The HTTP front enforces the limits (with a 503, and making room from slow and idle ones); the
  // vsock layer's own cap, which counts a socket until its close and refuses without an answer,
  // is only a backstop above it.
  return listenVsockPort(a.port, onConnection, opts.maxConnections * 2, opts.onError);
}

// --- Inherited sockets (fd:N, systemd socket activation) ---------------------------------

/**
 * Serves a listening socket this process inherited. libuv takes unix and tcp sockets (the
 * handle it makes tells which, and so which kind of peer the callers are); anything else it
 * refuses with EINVAL, and an AF_VSOCK socket is then handed to the vsock module, which checks
 * the family itself and learns each caller's CID from accept. The socket's owner (systemd)
 * chose its path, mode and address: nothing is unlinked or chmod-ed here. A tcp socket on a
 * non-loopback address is refused like a `tcp:` one unless allowNonLoopback.
 */
async function listenFd(fd: number, onConnection: OnConnection, opts: { maxConnections: number; onError: (e: Error) => void; allowNonLoopback: boolean }): Promise<Listener> {
  let isSocket: boolean;
  try {
    isSocket = fstatSync(fd).isSocket();
  } catch (e) {
    throw new ListenError(`cannot listen on fd:${fd}: descriptor not open (${(e as { code?: string }).code ?? (e as Error).message}); was the socket passed to this process?`);
  }
  if (!isSocket) throw new ListenError(`cannot listen on fd:${fd}: not a socket`);
  let kind: 'unix' | 'tcp' | undefined;
  // Set as soon as listen() resolves: before the event loop next polls for connections.
  const server = serve(onConnection, (sock) => (kind === 'tcp' ? { listener: 'tcp', address: tcpAddress(sock) } : { listener: 'unix' }));
  try {
    await listenOn(server, { fd }, `fd:${fd}`);
  } catch (e) {
    if (!/EINVAL/.test((e as Error).message)) throw e;
    return listenVsockFd(fd, onConnection, opts);
  }
  const a = server.address();
  kind = typeof a === 'object' && a !== null ? 'tcp' : 'unix';
  if (typeof a === 'object' && a !== null) {
    const shown = formatAddress({ kind: 'tcp', host: a.address, port: a.port });
    if (!opts.allowNonLoopback && !isLoopbackHost(a.address)) {
      server.close();
      throw new ListenError(`refusing to serve fd:${fd} (${shown}): not a loopback address (use --allow-non-loopback to force)`);
    }
    return { address: `fd:${fd} (${shown})`, close: () => closeServer(server) };
  }
  return { address: `fd:${fd} (unix)`, close: () => closeServer(server) };
}

function isLoopbackHost(host: string): boolean {
  return host.startsWith('127.') || host === '::1' || (host.startsWith('::ffff:127.') && host.includes('.'));
}

/** An AF_VSOCK socket (or something else libuv refused): the vsock module checks and serves it. */
async function listenVsockFd(fd: number, onConnection: OnConnection, opts: { maxConnections: number; onError: (e: Error) => void }): Promise<Listener> {
  let vsock: typeof import('../vsock/index.js');
  try {
    vsock = await import('../vsock/index.js');
  } catch (e) {
    throw new ListenError(`cannot listen on fd:${fd}: not a listening unix or tcp socket, and vsock is not available in this build: ${(e as Error).message}`);
  }
  try {
    const l = await vsock.listenVsockFd(fd, (duplex, peer) => onConnection(duplex, { listener: 'vsock', cid: peer.cid }), {
      maxConnections: opts.maxConnections * 2,
      onError: opts.onError,
    });
    return { address: `fd:${fd} (vsock:${l.port})`, close: () => l.close() };
  } catch (e) {
    if (e instanceof vsock.VsockUnavailableError) throw new ListenError(`cannot listen on fd:${fd}: not a listening unix or tcp socket, and ${e.message}`);
    throw new ListenError(`cannot listen on fd:${fd}: not a listening unix or tcp socket; as vsock: ${(e as Error).message}`);
  }
}
