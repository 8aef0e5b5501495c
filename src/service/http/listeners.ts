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
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { formatAddress, type Address } from '../address.js';
import type { Peer } from '../auth.js';

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

function listenOn(server: Server, target: { path: string } | { host: string; port: number }, what: string): Promise<void> {
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
  a: Address,
  onConnection: OnConnection,
  opts: { maxConnections: number; onError: (e: Error) => void },
): Promise<Listener> {
  if (a.kind === 'unix') return listenUnix(a.path, onConnection);
  if (a.kind === 'tcp') return listenTcp(a.host, a.port, onConnection);
  // The HTTP front enforces the limits (with a 503, and making room from slow and idle ones); the
  // vsock layer's own cap, which counts a socket until its close and refuses without an answer,
  // is only a backstop above it.
  return listenVsockPort(a.port, onConnection, opts.maxConnections * 2, opts.onError);
}
