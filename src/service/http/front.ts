/**
 * The HTTP front shared by all listeners: one http.Server fed with connections from any
 * listener, with limits on header size and time, keep-alive, number of connections, and a
 * drain for shutdown. Malformed HTTP gets a JSON 400/408 and the connection is closed.
 *
 * The connection limit counts open connections; when it is reached, connections that can carry
 * no more requests (the client has closed its side) and then the longest-idle kept-alive one
 * (answered, no request in flight) make room before a new one is refused with 503.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Peer } from '../auth.js';
import { badRequest, methodNotAllowed, requestTimeout, serviceBusy, type ServiceError } from '../errors.js';
import { rawErrorResponse } from './respond.js';

export interface FrontOptions {
  headersTimeoutMs: number;
  /** Whole request, body included (streamed signs are bounded by their own deadline). */
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse, peer: Peer) => void;

export class HttpFront {
  readonly server: Server;
  private readonly peers = new WeakMap<Duplex, Peer>();
  /** Open connections: requests in flight, requests answered, idle since (ms). */
  private readonly conns = new Map<Duplex, { active: number; served: number; idleSince: number }>();
  private active = 0;
  private idleWaiters: Array<() => void> = [];
  draining = false;

  constructor(
    private readonly opts: FrontOptions,
    handler: RequestHandler,
    private readonly log: Logger,
  ) {
    this.server = createServer(
      {
        headersTimeout: opts.headersTimeoutMs,
        requestTimeout: opts.requestTimeoutMs,
        keepAliveTimeout: opts.keepAliveTimeoutMs,
        // The timeouts above are enforced by a periodic sweep; sweep often enough to matter.
        connectionsCheckingInterval: Math.min(1000, opts.headersTimeoutMs),
        maxHeaderSize: 8192,
        requireHostHeader: false,
        joinDuplicateHeaders: false,
      },
      (req, res) => {
        const peer = this.peers.get(req.socket) ?? { listener: 'unix' };
        const conn = this.conns.get(req.socket);
        if (conn) conn.active++;
        this.active++;
        res.once('close', () => {
          if (conn) {
            conn.active--;
            conn.served++;
            conn.idleSince = Date.now();
          }
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
    this.server.on('upgrade', refuseRaw(400, 'Bad Request', badRequest('protocol upgrades are not supported')));
    this.server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      if (!socket.writable) return void socket.destroy();
      const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_HEADERS_TIMEOUT';
      const e = timeout ? requestTimeout('the request took too long to arrive') : badRequest(`malformed HTTP request (${err.code ?? 'parse error'})`);
      socket.end(rawErrorResponse(e.status, timeout ? 'Request Timeout' : 'Bad Request', e));
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }

  /** Takes a connection from a listener (or refuses it when there are too many). */
  accept = (duplex: Duplex, peer: Peer): void => {
    duplex.on('error', () => {}); // a reset by the peer is not our error
    if (!this.draining && this.conns.size >= this.opts.maxConnections) this.makeRoom();
    if (this.draining || this.conns.size >= this.opts.maxConnections) {
      const e = serviceBusy(this.draining ? 'the service is shutting down' : 'too many connections');
      duplex.end(rawErrorResponse(503, 'Service Unavailable', e));
      setTimeout(() => duplex.destroy(), 1000).unref();
      this.log.warn({ event: 'connection-refused', listener: peer.listener, cid: peer.cid, open: this.conns.size }, e.message);
      return;
    }
    this.conns.set(duplex, { active: 0, served: 0, idleSince: 0 });
    this.peers.set(duplex, peer);
    duplex.once('close', () => this.conns.delete(duplex));
    this.server.emit('connection', duplex);
  };

  /**
   * At the limit: closes the connections with no request in flight that are finished (the
   * client closed its side, or the connection is destroyed but its close not yet processed);
   * if none, the longest-idle kept-alive one. A connection that has not sent its first request
   * yet is never taken (the header timeout deals with those).
   */
  private makeRoom(): void {
    let oldest: Duplex | undefined;
    let oldestSince = Infinity;
    let freed = 0;
    for (const [d, c] of this.conns) {
      if (c.active > 0) continue;
      if (d.destroyed || d.readableEnded) {
        this.conns.delete(d);
        d.destroy();
        freed++;
      } else if (c.served > 0 && c.idleSince < oldestSince) {
        oldest = d;
        oldestSince = c.idleSince;
      }
    }
    if (freed === 0 && oldest !== undefined) {
      this.conns.delete(oldest);
      oldest.destroy();
    }
  }

  get connections(): number {
    return this.conns.size;
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
    for (const c of this.conns.keys()) c.destroy();
    this.server.close();
  }
}
