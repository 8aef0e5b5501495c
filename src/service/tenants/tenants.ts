/**
 * Tenants (application instances) and how they prove who they are. The tenants file holds
 * only a hash of each secret; secrets are 32 random bytes, so a single SHA-256 is as strong as
 * a slow KDF here (nothing to brute-force) and costs nothing per request.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface Tenant {
  /** The name: shown in logs and listings, used by the admin commands. */
  id: string;
  /**
   * The tenant record: what owns its keys (registry entries and blob files name it). Given by
   * `tenant add`, random and never reused, so a later tenant with the same id owns nothing of
   * this one. A tenant without uid (written before records existed) is the legacy record
   * `legacy:<id>` — see recordOf.
   */
  uid?: string;
  /** vsock CID the hypervisor gave the application's VM. */
  cid?: number;
  /** `sha256:<64 hex>` of the tenant's secret. */
  secretHash?: string;
  maxKeys: number;
  /** The app's cgroup on the host: its hierarchy path or its directory, v1 or v2 (usage: docs/SERVICE.md, "Resource usage"). */
  cgroup?: string;
  /** The app's host-side network interfaces (usage). */
  netifs?: string[];
}

export const DEFAULT_MAX_KEYS = 8;
export const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** A record id `tenant add` gives: 16 lower-case hex digits (64 random bits). */
export const TENANT_UID = /^[0-9a-f]{16}$/;
/** Prefix of the record of a tenant without uid; ':' never occurs in an id or a uid. */
export const LEGACY_RECORD = 'legacy:';
const SECRET_HASH = /^sha256:[0-9a-f]{64}$/;
/** Longest Authorization secret looked at; longer ones are refused before hashing. */
export const MAX_SECRET_LENGTH = 256;

export function generateSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function generateUid(): string {
  return randomBytes(8).toString('hex');
}

/** The record that owns the tenant's keys: its uid, or `legacy:<id>` when it has none. */
export function recordOf(t: Pick<Tenant, 'id' | 'uid'>): string {
  return t.uid ?? LEGACY_RECORD + t.id;
}

/** Whether `s` names a record: a uid, or `legacy:` and a tenant id. */
export function isRecordId(s: unknown): s is string {
  return typeof s === 'string' && (TENANT_UID.test(s) || (s.startsWith(LEGACY_RECORD) && TENANT_ID.test(s.slice(LEGACY_RECORD.length))));
}

export function hashSecret(secret: string): string {
  return 'sha256:' + createHash('sha256').update(secret, 'utf8').digest('hex');
}

function digestOf(secretHash: string): Buffer {
  return Buffer.from(secretHash.slice(7), 'hex');
}

/** Validates the tenants file's JSON: `{ "tenants": [ { id, uid?, cid?, secretHash?, maxKeys? } ] }`. */
export function parseTenants(json: unknown, defaultMaxKeys = DEFAULT_MAX_KEYS): Tenant[] {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new TypeError('tenants file must be an object { "tenants": [...] }');
  const top = json as Record<string, unknown>;
  for (const k of Object.keys(top)) if (k !== 'tenants') throw new TypeError(`tenants file: unknown field ${JSON.stringify(k)}`);
  if (!Array.isArray(top.tenants)) throw new TypeError('tenants file: "tenants" must be an array');
  const ids = new Set<string>();
  const cids = new Set<number>();
  const records = new Set<string>();
  const secrets = new Map<string, number>();
  // One app's usage figures must never be another's: a cgroup or interface has one tenant.
  const usageSources = new Map<string, string>();
  return top.tenants.map((raw: unknown, i) => {
    const where = `tenants[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new TypeError(`${where} must be an object`);
    const r = raw as Record<string, unknown>;
    for (const k of Object.keys(r)) {
      if (!['id', 'uid', 'cid', 'secretHash', 'maxKeys', 'cgroup', 'netifs'].includes(k)) throw new TypeError(`${where}: unknown field ${JSON.stringify(k)}`);
    }
    if (typeof r.id !== 'string' || !TENANT_ID.test(r.id)) throw new TypeError(`${where}.id must match ${TENANT_ID.source}`);
    if (ids.has(r.id)) throw new TypeError(`${where}: duplicate id ${r.id}`);
    ids.add(r.id);
    const t: Tenant = { id: r.id, maxKeys: defaultMaxKeys };
    if (r.uid !== undefined) {
      if (typeof r.uid !== 'string' || !TENANT_UID.test(r.uid)) throw new TypeError(`${where}.uid must be 16 lower-case hex digits`);
      t.uid = r.uid;
    }
    // A legacy record is keyed by the id, so ids being unique makes every record unique too.
    if (records.has(recordOf(t))) throw new TypeError(`${where}: uid ${String(r.uid)} already belongs to another tenant`);
    records.add(recordOf(t));
    if (r.cid !== undefined) {
      // 0, 1 and 2 are the hypervisor, loopback and host; 0xffffffff is "any".
      if (!Number.isInteger(r.cid) || (r.cid as number) < 3 || (r.cid as number) >= 0xffffffff) throw new TypeError(`${where}.cid must be an integer in [3, 0xfffffffe]`);
      if (cids.has(r.cid as number)) throw new TypeError(`${where}: CID ${String(r.cid)} already belongs to another tenant`);
      cids.add(r.cid as number);
      t.cid = r.cid as number;
    }
    if (r.secretHash !== undefined) {
      if (typeof r.secretHash !== 'string' || !SECRET_HASH.test(r.secretHash)) throw new TypeError(`${where}.secretHash must be "sha256:" and 64 lower-case hex digits`);
      // Two tenants with one secret: whichever the secret named would be a guess.
      const other = secrets.get(r.secretHash);
      if (other !== undefined) throw new TypeError(`${where} has the same secret as tenants[${other}]; each tenant needs its own secret`);
      secrets.set(r.secretHash, i);
      t.secretHash = r.secretHash;
    }
    if (t.cid === undefined && t.secretHash === undefined) throw new TypeError(`${where}: a tenant needs a cid, a secretHash, or both`);
    if (r.maxKeys !== undefined) {
      if (!Number.isInteger(r.maxKeys) || (r.maxKeys as number) < 0 || (r.maxKeys as number) > 65536) throw new TypeError(`${where}.maxKeys must be an integer in [0, 65536]`);
      t.maxKeys = r.maxKeys as number;
    }
    if (r.cgroup !== undefined) t.cgroup = parseCgroupPath(r.cgroup, `${where}.cgroup`);
    if (r.netifs !== undefined) t.netifs = parseNetifs(r.netifs, `${where}.netifs`);
    for (const src of [...(t.cgroup === undefined ? [] : [`cgroup ${t.cgroup}`]), ...(t.netifs ?? []).map((n) => `interface ${n}`)]) {
      const other = usageSources.get(src);
      if (other !== undefined) throw new TypeError(`${where}: ${src} already belongs to tenant ${other}`);
      usageSources.set(src, t.id);
    }
    return t;
  });
}

/** An absolute, normalized directory path (no '.', '..' or empty segments): the app's cgroup. */
export function parseCgroupPath(v: unknown, where: string): string {
  if (typeof v !== 'string' || !/^(\/[^/\0]+)+$/.test(v) || v.split('/').some((s) => s === '.' || s === '..') || v.length > 4096) {
    throw new TypeError(`${where} must be an absolute directory path without '.' or '..' segments (the app's cgroup: its hierarchy path, e.g. /eve-user-apps/APP, or its directory under /sys/fs/cgroup)`);
  }
  return v;
}

/** Interface names (Linux: 1 to 15 bytes, no '/' or whitespace), each once. */
export function parseNetifs(v: unknown, where: string): string[] {
  if (!Array.isArray(v) || v.length > 64) throw new TypeError(`${where} must be a list of at most 64 interface names`);
  const names = v.map((n: unknown, i) => {
    if (typeof n !== 'string' || !NETIF.test(n)) throw new TypeError(`${where}[${i}] must be an interface name (1 to 15 of A-Z a-z 0-9 _ . : @ -)`);
    return n;
  });
  if (new Set(names).size !== names.length) throw new TypeError(`${where} names an interface twice`);
  return names;
}
const NETIF = /^(?!\.\.?$)[A-Za-z0-9_.:@-]{1,15}$/;

/** Looks tenants up by CID and by secret (constant time in the secret). */
export class TenantDirectory {
  private readonly byId = new Map<string, Tenant>();
  private readonly byCidMap = new Map<number, Tenant>();
  private readonly byRecord = new Map<string, Tenant>();
  /** Each tenant's secret digest, decoded once here rather than at every request. */
  private readonly digests = new Map<Tenant, Buffer>();

  constructor(readonly tenants: readonly Tenant[]) {
    for (const t of tenants) {
      this.byId.set(t.id, t);
      this.byRecord.set(recordOf(t), t);
      if (t.cid !== undefined) this.byCidMap.set(t.cid, t);
      if (t.secretHash) this.digests.set(t, digestOf(t.secretHash));
    }
  }

  get(id: string): Tenant | undefined {
    return this.byId.get(id);
  }

  /** The configured tenant owning `record`, if any (none: its keys are orphans). */
  ofRecord(record: string): Tenant | undefined {
    return this.byRecord.get(record);
  }

  byCid(cid: number): Tenant | undefined {
    return this.byCidMap.get(cid);
  }

  /** Whether `secret` is this tenant's (false when it has none). */
  secretMatches(t: Tenant, secret: string): boolean {
    if (!t.secretHash) return false;
    return timingSafeEqual(digestOf(hashSecret(secret)), this.digests.get(t) ?? digestOf(t.secretHash));
  }

  /** The tenant whose secret this is; every tenant is compared, so timing says nothing. */
  bySecret(secret: string, filter: (t: Tenant) => boolean = () => true): Tenant | undefined {
    const presented = digestOf(hashSecret(secret));
    let found: Tenant | undefined;
    for (const [t, digest] of this.digests) {
      if (timingSafeEqual(presented, digest) && filter(t)) found = t;
    }
    return found;
  }
}
