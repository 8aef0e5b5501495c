/**
 * Who is calling. On vsock the peer CID (set by the host kernel, unforgeable from inside a
 * guest) names the tenant, and a tenant that also has a secret must present it. On unix and
 * tcp listeners the secret alone identifies. Every failure is the same 401.
 */
import { badRequest, unauthenticated } from '../protocol/errors.js';
import { MAX_SECRET_LENGTH, type Tenant, type TenantDirectory } from './tenants.js';

export type ListenerKind = 'vsock' | 'unix' | 'tcp';

export interface Peer {
  listener: ListenerKind;
  /** vsock only: the peer's CID as the adapter reported it. */
  cid?: number;
  /** tcp only: the remote address (connection limits count per address). */
  address?: string;
}

const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]+)$/;

/** The secret of an `Authorization: Bearer` header; refuses several or malformed ones. */
export function bearerSecret(rawHeaders: readonly string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'authorization') continue;
    if (value !== undefined) throw badRequest('more than one Authorization header');
    value = rawHeaders[i + 1]!;
  }
  if (value === undefined) return undefined;
  const m = BEARER.exec(value);
  if (!m || m[1]!.length > MAX_SECRET_LENGTH) throw unauthenticated('the Authorization header must be "Bearer <secret>"');
  return m[1]!;
}

export function authenticate(directory: TenantDirectory, peer: Peer, secret: string | undefined): Tenant {
  if (peer.listener === 'vsock') {
    if (peer.cid === undefined) throw unauthenticated('the vsock peer has no CID');
    const byCid = directory.byCid(peer.cid);
    if (byCid) {
      if (!byCid.secretHash) return byCid;
      if (secret !== undefined && directory.secretMatches(byCid, secret)) return byCid;
      throw unauthenticated();
    }
    // A tenant provisioned without a CID may still be reached over vsock with its secret; a
    // tenant bound to a CID never from another one.
    const bySecret = secret === undefined ? undefined : directory.bySecret(secret, (t) => t.cid === undefined);
    if (bySecret) return bySecret;
    throw unauthenticated();
  }
  const t = secret === undefined ? undefined : directory.bySecret(secret);
  if (!t) throw unauthenticated();
  return t;
}
