/**
 * The HTTP front shared by all listeners: one http.Server fed with connections from any
 * listener, with limits on header size and time, keep-alive, connections (see admission.ts),
 * and a drain for shutdown. Malformed HTTP gets a JSON 400/408 and the connection is closed.
 *
 * Header deadline: node:http's headersTimeout counts from the connection's start (a silent
 * connection is cut too) and, on a kept-alive connection, from the first byte of each next
 * request (the idle time between requests is the keep-alive timeout's). It is enforced by a
 * periodic sweep; sweeping every fifth of the timeout cuts a connection by 1.2 × the deadline.
 * An answer 408 (headers or body too slow) always ends the connection.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Peer } from '../tenants/auth.js';
import { badRequest, methodNotAllowed, requestTimeout, serviceBusy, type ServiceError } from '../protocol/errors.js';
import { Admission, peerKey, type Conn, type ConnState, type LimitReason } from './admission.js';
import { rawErrorResponse } from './respond.js';

export interface FrontOptions {
  headersTimeoutMs: number;
  /** Whole request, body included (streamed signs are bounded by their own deadline). */
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerPeer: number;
  reservedTenantConnections: number;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse, peer: Peer) => void;

export interface UpgradeHandler {
  wants(req: IncomingMessage): boolean;
  handle(req: IncomingMessage, socket: Duplex, head: Buffer, peer: Peer, front: { hold(socket: Duplex): void }): void;
}

export class HttpFront {
  readonly server: Server;
  private readonly peers = new WeakMap<Duplex, Peer>();
  private readonly admission: Admission;
  private active = 0;
  /** Connections closed with a last answer, waiting for the client to read it. */
  private lingering = 0;
  private idleWaiters: Array<() => void> = [];
  draining = false;

  constructor(
    private readonly opts: FrontOptions,
    handler: RequestHandler,
    private readonly log: Logger,
    /** Upgrades it takes (the raw TPM channel, src/service/raw); any other is refused. */
    upgrade?: UpgradeHandler,
  ) {
    this.admission = new Admission(opts, (c, reason, state) => this.evict(c, reason, state));
    this.server = createServer(
      {
        headersTimeout: opts.headersTimeoutMs,
        requestTimeout: opts.requestTimeoutMs,
        keepAliveTimeout: opts.keepAliveTimeoutMs,
        // The timeouts above are enforced by a periodic sweep; sweep often enough to matter.
        connectionsCheckingInterval: Math.max(20, Math.min(1000, Math.round(opts.headersTimeoutMs / 5))),
        maxHeaderSize: 8192,
        requireHostHeader: false,
        joinDuplicateHeaders: false,
      },
      (req, res) => {
        const socket = req.socket;
        const peer = this.peers.get(socket);
        const conn = this.admission.get(socket);
        // A connection closed to make room may still finish parsing a request: not served.
        if (!conn || !peer || socket.writableEnded) return void socket.destroy();
        conn.active++;
        conn.req = req;
        conn.res = res;
        conn.since = performance.now();
        this.active++;
        res.once('finish', () => {
          // 408: the client was too slow; do not wait for it on this connection again.
          if (res.statusCode === 408) closeSoon(socket);
        });
        res.once('close', () => {
          conn.active--;
          conn.served++;
          conn.idleSince = performance.now();
          conn.readAtIdle = (socket as { bytesRead?: number }).bytesRead ?? 0;
          this.active--;
          if (this.active === 0) for (const w of this.idleWaiters.splice(0)) w();
        });
        if (this.draining) res.setHeader('Connection', 'close');
        handler(req, res, peer);
      },
    );
    this.server.maxRequestsPerSocket = 1000;
    // node:http starts its connection tracking (header/request timeouts, closeIdleConnections)
    // on 'listening'. Our listeners are separate servers, so this one never listens: start it.
    this.server.emit('listening');
    // CONNECT and Upgrade bypass the request handler; without these the socket would just drop.
    const refuseRaw = (status: number, reason: string, e: ServiceError) => (_req: IncomingMessage, socket: Duplex): void => {
      socket.on('error', () => {});
      socket.end(rawErrorResponse(status, reason, e));
      setTimeout(() => socket.destroy(), 1000).unref();
    };
    this.server.on('connect', refuseRaw(405, 'Method Not Allowed', methodNotAllowed('CONNECT is not supported')));
    const refuseUpgrade = refuseRaw(400, 'Bad Request', badRequest('protocol upgrades are not supported'));
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const peer = this.peers.get(socket);
      if (!upgrade || !peer || !upgrade.wants(req)) return refuseUpgrade(req, socket);
      upgrade.handle(req, socket, head, peer, this);
    });
    this.server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      if (!socket.writable) return void socket.destroy();
      const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_HEADERS_TIMEOUT';
      const e = timeout ? requestTimeout('the request took too long to arrive') : badRequest(`malformed HTTP request (${err.code ?? 'parse error'})`);
      if (timeout) this.logTimeout(socket);
      socket.end(rawErrorResponse(e.status, timeout ? 'Request Timeout' : 'Bad Request', e));
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }

  /** Takes a connection from a listener (or refuses it when there are too many). */
  accept = (duplex: Duplex, peer: Peer): void => {
    duplex.on('error', () => {}); // a reset by the peer is not our error
    const conn = this.draining ? 'draining' : this.admission.admit(duplex, peer);
    if (typeof conn === 'string') {
      const e = serviceBusy(
        conn === 'draining' ? 'the service is shutting down' : conn === 'peer-limit' ? 'too many connections from this peer' : 'too many connections',
      );
      this.closeWith(duplex, rawErrorResponse(503, 'Service Unavailable', e));
      duplex.resume(); // what it sent is dropped, so closing does not reset the answer away
      this.log.warn({ event: 'connection-refused', ...peerFields(peer), reason: conn, open: this.admission.size }, e.message);
      return;
    }
    this.peers.set(duplex, peer);
    duplex.once('close', () => this.admission.remove(duplex));
    this.server.emit('connection', duplex);
  };

  /** A request on this connection authenticated: it may use the tenants' reserve from now on. */
  authenticated(socket: Duplex): void {
    this.admission.authenticated(socket);
  }

  /** An upgraded connection of a tenant: counted as busy (never closed to make room) until it closes. */
  hold(socket: Duplex): void {
    this.admission.authenticated(socket);
    const conn = this.admission.get(socket);
    if (conn) conn.active++;
  }

  /** Closes a connection chosen to make room for a new one. */
  private evict(c: Conn, reason: LimitReason, state: ConnState): void {
    const slow = state !== 'idle';
    const fields = { event: 'connection-evicted', ...peerFields(c.peer), reason, state, open: this.admission.size };
    if (slow) this.log.warn(fields, 'closed a connection still without a complete request to make room');
    else this.log.info(fields, 'closed an idle kept-alive connection to make room');
    // An answer only where none has begun: a request whose answer is under way just ends.
    if (slow && !(c.active > 0 && c.res?.headersSent)) {
      this.closeWith(c.duplex, rawErrorResponse(503, 'Service Unavailable', serviceBusy('too many connections: this one had no complete request and was closed to make room')));
    } else {
      c.duplex.destroy();
    }
  }

  private logTimeout(socket: Duplex): void {
    const peer = this.peers.get(socket);
    this.log.warn({ event: 'connection-timeout', ...(peer ? peerFields(peer) : {}), reason: 'headers-deadline' }, 'the request headers did not arrive within the header deadline');
  }

  /**
   * Sends a last answer and closes once the client has read it and closed its side, or after a
   * second. Connections closed this way no longer count; so that a flood cannot pile them up,
   * beyond maxConnections of them the rest are closed as soon as the answer is written.
   */
  private closeWith(d: Duplex, answer: string): void {
    if (!d.writable) return void d.destroy();
    d.end(answer);
    if (this.lingering >= this.opts.maxConnections) {
      if (d.writableFinished) d.destroy();
      else d.once('finish', () => d.destroy());
      return;
    }
    this.lingering++;
    const timer = setTimeout(() => d.destroy(), 1000).unref();
    d.once('end', () => d.destroy());
    d.once('close', () => {
      clearTimeout(timer);
      this.lingering--;
    });
  }

  get connections(): number {
    return this.admission.size;
  }

  /** Stops taking requests, waits for those in flight (at most `timeoutMs`), closes the rest. */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    this.server.closeIdleConnections();
    if (this.active > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((r) => this.idleWaiters.push(r)),
        new Promise<void>((r) => (timer = setTimeout(r, timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    for (const c of this.admission.duplexes()) c.destroy();
    this.server.close();
  }
}

/** The fields that name a peer in the log. */
function peerFields(peer: Peer): Record<string, unknown> {
  return { peer: peerKey(peer), listener: peer.listener, cid: peer.cid, address: peer.address };
}

/** Ends a connection after its current answer (already written). */
function closeSoon(d: Duplex): void {
  if (d.destroyed) return;
  d.end();
  setTimeout(() => d.destroy(), 1000).unref();
}
