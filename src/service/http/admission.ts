/**
 * Who may hold a connection when there are too many. Three limits, checked in this order for
 * each new connection:
 *
 * - per peer (vsock CID, tcp remote address; all unix callers together are one peer, as Node
 *   gives no peer credentials, so there the total limit is the only one);
 * - connections that have not authenticated (no request on them has yet) may hold at most
 *   maxConnections − reserve, the reserve (at most half) being kept for tenants;
 * - the total.
 *
 * At a limit, room is made among the connections that the limit counts: first those already
 * finished; then one still without a complete request (none yet, headers or body still
 * arriving) — the oldest of the peer that holds the most of them, so a flood from one peer
 * costs that peer its own connections; then the longest-idle kept-alive one, picked the same
 * way. A connection with a complete request being answered is never closed; when only those
 * are left, the new connection is refused.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Peer } from '../tenants/auth.js';

export interface AdmissionLimits {
  maxConnections: number;
  maxConnectionsPerPeer: number;
  reservedTenantConnections: number;
}

/** What a connection is doing, for the choice of which one to close. */
export type ConnState = 'finished' | 'headers' | 'body' | 'idle' | 'busy';

export type LimitReason = 'peer-limit' | 'unauthenticated-limit' | 'connection-limit';

export class Conn {
  /** When its wait for a complete request began (accepted, or the request's headers arrived). */
  since = performance.now();
  /** Requests on it whose answer is not finished. */
  active = 0;
  served = 0;
  idleSince = 0;
  /** Bytes read when it last became idle: more since means a new request has begun. */
  readAtIdle = 0;
  /** Its latest request (the body may still be arriving) and the answer to it. */
  req: IncomingMessage | undefined;
  res: ServerResponse | undefined;
  authenticated = false;

  constructor(
    readonly duplex: Duplex,
    readonly peer: Peer,
    readonly key: string,
  ) {}

  get state(): ConnState {
    const d = this.duplex;
    if (d.destroyed || d.writableEnded) return 'finished';
    if (this.active > 0) {
      if (this.req === undefined || this.req.complete) return 'busy';
      return d.readableEnded ? 'finished' : 'body';
    }
    if (d.readableEnded) return 'finished';
    if (this.served === 0) return 'headers';
    return bytesRead(d) > this.readAtIdle ? 'headers' : 'idle';
  }

  /** When it entered its current state (for "oldest"). */
  get stateSince(): number {
    return this.active === 0 && this.served > 0 ? this.idleSince : this.since;
  }
}

/** Bytes received on a socket (0 for a stream that does not count them). */
function bytesRead(d: Duplex): number {
  const n = (d as { bytesRead?: unknown }).bytesRead;
  return typeof n === 'number' ? n : 0;
}

/** The name connection limits count a peer under. */
export function peerKey(peer: Peer): string {
  if (peer.listener === 'vsock') return `vsock:${peer.cid ?? 'unknown'}`;
  if (peer.listener === 'tcp') return `tcp:${peer.address ?? 'unknown'}`;
  return 'unix';
}

export class Admission {
  private readonly conns = new Map<Duplex, Conn>();
  private readonly perPeer = new Map<string, number>();
  private unauthenticated = 0;

  constructor(
    private readonly limits: AdmissionLimits,
    /** Closes a connection chosen to make room (already no longer counted). */
    private readonly evict: (c: Conn, reason: LimitReason, state: ConnState) => void,
  ) {}

  /** Connections that have not authenticated may hold at most this many. */
  get unauthenticatedLimit(): number {
    const max = this.limits.maxConnections;
    return max - Math.min(this.limits.reservedTenantConnections, Math.floor(max / 2));
  }

  peerLimit(peer: Peer): number {
    const max = this.limits.maxConnections;
    return peer.listener === 'unix' ? max : Math.min(this.limits.maxConnectionsPerPeer, max);
  }

  get size(): number {
    return this.conns.size;
  }

  get(d: Duplex): Conn | undefined {
    return this.conns.get(d);
  }

  duplexes(): Duplex[] {
    return [...this.conns.keys()];
  }

  /** Counts a new connection in, making room if needed; or says which limit refuses it. */
  admit(duplex: Duplex, peer: Peer): Conn | LimitReason {
    const key = peerKey(peer);
    const checks: Array<[LimitReason, () => boolean, (c: Conn) => boolean]> = [
      ['peer-limit', () => (this.perPeer.get(key) ?? 0) >= this.peerLimit(peer), (c) => c.key === key],
      ['unauthenticated-limit', () => this.unauthenticated >= this.unauthenticatedLimit, (c) => !c.authenticated],
      ['connection-limit', () => this.conns.size >= this.limits.maxConnections, () => true],
    ];
    for (const [reason, full, among] of checks) {
      while (full()) if (!this.makeRoom(reason, among)) return reason;
    }
    const c = new Conn(duplex, peer, key);
    this.conns.set(duplex, c);
    this.perPeer.set(key, (this.perPeer.get(key) ?? 0) + 1);
    this.unauthenticated++;
    return c;
  }

  /** Stops counting a connection (closed, or chosen to make room). */
  remove(d: Duplex): Conn | undefined {
    const c = this.conns.get(d);
    if (!c) return undefined;
    this.conns.delete(d);
    const n = (this.perPeer.get(c.key) ?? 1) - 1;
    if (n > 0) this.perPeer.set(c.key, n);
    else this.perPeer.delete(c.key);
    if (!c.authenticated) this.unauthenticated--;
    return c;
  }

  /** A request on `d` authenticated: it now counts against the tenants' share. */
  authenticated(d: Duplex): void {
    const c = this.conns.get(d);
    if (!c || c.authenticated) return;
    c.authenticated = true;
    this.unauthenticated--;
  }

  /** One connection fewer among those `among` picks, or false when none may be closed. */
  private makeRoom(reason: LimitReason, among: (c: Conn) => boolean): boolean {
    const waiting = new Map<string, Conn[]>();
    const idle = new Map<string, Conn[]>();
    let freed = false;
    for (const c of [...this.conns.values()]) {
      if (!among(c)) continue;
      const state = c.state;
      if (state === 'finished') {
        // Closing anyway: free its place now, quietly.
        this.remove(c.duplex);
        c.duplex.destroy();
        freed = true;
      } else if (state === 'headers' || state === 'body') {
        push(waiting, c);
      } else if (state === 'idle') {
        push(idle, c);
      }
    }
    if (freed) return true;
    const victim = oldestOfBiggest(waiting) ?? oldestOfBiggest(idle);
    if (!victim) return false;
    const state = victim.state;
    this.remove(victim.duplex);
    this.evict(victim, reason, state);
    return true;
  }
}

function push(m: Map<string, Conn[]>, c: Conn): void {
  const l = m.get(c.key);
  if (l) l.push(c);
  else m.set(c.key, [c]);
}

/** The oldest connection of the peer that holds the most (on a tie, the older one). */
function oldestOfBiggest(byPeer: Map<string, Conn[]>): Conn | undefined {
  let best: Conn | undefined;
  let bestCount = 0;
  for (const list of byPeer.values()) {
    let oldest = list[0]!;
    for (const c of list) if (c.stateSince < oldest.stateSince) oldest = c;
    if (list.length > bestCount || (list.length === bestCount && oldest.stateSince < best!.stateSince)) {
      best = oldest;
      bestCount = list.length;
    }
  }
  return best;
}
