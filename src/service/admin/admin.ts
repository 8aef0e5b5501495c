/**
 * Host-side administration (the service's bin, never reachable over the API): add, list and
 * remove tenants, purge the keys of removed ones. Every change of the tenants file is a
 * read-modify-write under its lock (`<file>.lock`), replaced atomically and durably,
 * owner-only, so concurrent commands never lose each other's changes.
 *
 * Keys belong to tenant records (tenants.ts): `tenant add` gives each tenant a new random uid;
 * `tenant remove` without --purge leaves the record's keys as orphans, which no later tenant
 * sees (not even one with the same name) and which `tenant purge --record` — or `tenant remove
 * --id NAME --purge` once NAME is no longer configured — deletes.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { BlobStore } from '../keys/blob-store.js';
import { AppParents, PARENTS_DIR } from '../keys/app-parents.js';
import { cloudInitUserData, type ToolsSource } from '../tenants/cloud-init.js';
import type { RawTpm } from '../tenants/guest-setup.js';
import type { ServiceConfig } from '../config.js';
import { KEYS_DIR, openCore, REGISTRY_FILE } from '../core.js';
import { writeFileDurable } from './durable-file.js';
import { formatHandle } from '../protocol/handles.js';
import { lockHolder, StateLockedError, withLock } from './lock.js';
import { filePurgeRequest, purgeRecord, takePurgeResult } from '../tenants/purge.js';
import { purgeRawState } from '../raw/purge-state.js';
import { refuseLostRegistry } from '../keys/recovery.js';
import { KeyRegistry, type KeyEntry } from '../keys/registry.js';
import { DEFAULT_MAX_KEYS, generateSecret, generateUid, hashSecret, isRecordId, parseTenants, recordOf, TENANT_ID, type Tenant } from '../tenants/tenants.js';

export class AdminError extends Error {
  override readonly name = 'AdminError';
}

/** How long a command waits for another one holding the tenants file's lock. */
const TENANTS_LOCK_WAIT_MS = 10_000;

async function readTenants(path: string): Promise<Tenant[]> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return [];
    throw new AdminError(`cannot read the tenants file ${path}: ${(e as Error).message}`);
  }
  try {
    return parseTenants(JSON.parse(text), DEFAULT_MAX_KEYS);
  } catch (e) {
    throw new AdminError(`cannot read the tenants file ${path}: ${(e as Error).message}`);
  }
}

/** The file's form of a tenant (only the fields it has). */
function fileForm(t: Tenant): Record<string, unknown> {
  const out: Record<string, unknown> = { id: t.id };
  if (t.uid !== undefined) out.uid = t.uid;
  if (t.cid !== undefined) out.cid = t.cid;
  if (t.secretHash !== undefined) out.secretHash = t.secretHash;
  out.maxKeys = t.maxKeys;
  if (t.cgroup !== undefined) out.cgroup = t.cgroup;
  if (t.netifs !== undefined) out.netifs = t.netifs;
  return out;
}

/**
 * Read-modify-write of the tenants file under its lock. `change` returns the new tenants (or
 * undefined: nothing to write) and a result.
 */
async function updateTenants<T>(path: string, change: (tenants: Tenant[]) => { tenants?: Tenant[]; result: T }): Promise<T> {
  return withLock(`${path}.lock`, TENANTS_LOCK_WAIT_MS, async () => {
    const { tenants, result } = change(await readTenants(path));
    if (tenants) {
      const json = { tenants: tenants.map(fileForm) };
      // Never write a file the service would refuse; its reason is a usage error (exit 2).
      try {
        parseTenants(json);
      } catch (e) {
        throw new AdminError((e as Error).message);
      }
      await writeFileDurable(path, JSON.stringify(json, null, 2) + '\n', 0o600);
    }
    return result;
  });
}

/** The registry of a state dir (admin: synchronous); a lost one with blob files left is refused. */
function loadRegistry(stateDir: string, keyStore: ServiceConfig['keyStore'] = 'blobs'): KeyRegistry {
  refuseLostRegistry(stateDir, BlobStore.fileHandlesIn(join(stateDir, KEYS_DIR)), keyStore);
  return KeyRegistry.loadSync(join(stateDir, REGISTRY_FILE));
}

export interface AddTenantOptions {
  tenantsFile: string;
  id: string;
  cid?: number;
  maxKeys?: number;
  /** Where the app's resource usage is read (docs/SERVICE.md, "Resource usage"). */
  cgroup?: string;
  netifs?: string[];
  /** Address written into the VM's config (default vsock:2:8877). */
  service?: string;
  /**
   * What the VM's cloud-init user-data installs the tools from (cloud-init.ts): the embedded
   * bundle and addons, or a tarball URL with its sha256. None: no user-data is made.
   */
  tools?: ToolsSource;
  /** What the user-data makes stock TPM software use (cloud-init.ts); default none. */
  rawTpm?: RawTpm;
}

/** Checks a tarball URL and its sha256 together: both or neither, never a placeholder. */
export function toolsUrlSource(url: string | undefined, sha256: string | undefined): { url: string; sha256: string } | undefined {
  if (url === undefined && sha256 === undefined) return undefined;
  if (url === undefined || sha256 === undefined) throw new AdminError(`--tools-url and --tools-sha256 go together: ${url === undefined ? '--tools-url' : '--tools-sha256'} is missing`);
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw new AdminError(`--tools-url must be an http(s) URL without spaces, got '${url}'`);
  if (!/^[0-9a-fA-F]{64}$/.test(sha256)) throw new AdminError('--tools-sha256 must be 64 hex digits (sha256sum of the tarball)');
  return { url, sha256: sha256.toLowerCase() };
}

export async function addTenant(o: AddTenantOptions): Promise<{ secret: string; userData?: string; tenant: Tenant }> {
  if (!TENANT_ID.test(o.id)) throw new AdminError(`tenant id must match ${TENANT_ID.source}`);
  const secret = generateSecret();
  const tenant = await updateTenants(o.tenantsFile, (tenants) => {
    if (tenants.some((t) => t.id === o.id)) throw new AdminError(`tenant ${o.id} already exists`);
    if (o.cid !== undefined && tenants.some((t) => t.cid === o.cid)) throw new AdminError(`CID ${o.cid} already belongs to another tenant`);
    let uid = generateUid();
    while (tenants.some((t) => t.uid === uid)) uid = generateUid();
    const t: Tenant = { id: o.id, uid, secretHash: hashSecret(secret), maxKeys: o.maxKeys ?? DEFAULT_MAX_KEYS };
    if (o.cid !== undefined) t.cid = o.cid;
    if (o.cgroup !== undefined) t.cgroup = o.cgroup;
    if (o.netifs !== undefined && o.netifs.length > 0) t.netifs = o.netifs;
    return { tenants: [...tenants, t], result: t };
  });
  const userData = o.tools && cloudInitUserData({ tenantId: o.id, secret, service: o.service ?? 'vsock:2:8877', tools: o.tools, rawTpm: o.rawTpm });
  return { secret, tenant, ...(userData !== undefined ? { userData } : {}) };
}

export interface SetUsageOptions {
  tenantsFile: string;
  id: string;
  /** A new cgroup; null: none. Undefined: unchanged. */
  cgroup?: string | null;
  /** New interfaces (empty: none). Undefined: unchanged. */
  netifs?: string[];
}

/** Sets where a tenant's resource usage is read (EVE: when the app instance starts); the running service reloads it. */
export async function setTenantUsage(o: SetUsageOptions): Promise<Tenant> {
  return updateTenants(o.tenantsFile, (tenants) => {
    const i = tenants.findIndex((t) => t.id === o.id);
    if (i < 0) throw new AdminError(`no tenant ${o.id} in ${o.tenantsFile}`);
    const t: Tenant = { ...tenants[i]! };
    if (o.cgroup === null) delete t.cgroup;
    else if (o.cgroup !== undefined) t.cgroup = o.cgroup;
    if (o.netifs !== undefined) {
      if (o.netifs.length === 0) delete t.netifs;
      else t.netifs = o.netifs;
    }
    return { tenants: tenants.map((x, j) => (j === i ? t : x)), result: t };
  });
}

export interface KeyListing {
  handle: string;
  type: string;
  hashAlg: string;
  state: string;
  store: string;
  createdAt: string;
}

export interface TenantListing {
  id: string;
  /** The record owning its keys: its uid, or `legacy:<id>`. */
  record: string;
  cid?: number;
  maxKeys: number;
  hasSecret: boolean;
  /** Where its resource usage is read, when set. */
  cgroup?: string;
  netifs?: string[];
  keys: KeyListing[];
}

/** Keys whose record no configured tenant has: left by `tenant remove` without --purge. */
export interface OrphanListing {
  record: string;
  /** The name the record's tenant had (a record with only an app parent left: the record itself). */
  tenant: string;
  keys: KeyListing[];
  /** The record still has an app parent (general keys' storage key; purging it is the crypto-erase). */
  appParent?: true;
}

const keyListing = (e: KeyEntry): KeyListing => ({
  handle: formatHandle(e.handle),
  type: e.type,
  hashAlg: e.hashAlg,
  state: e.state,
  store: e.store,
  createdAt: e.createdAt,
});

/** Configured tenants with their keys, and the orphaned records with theirs (from the registry). */
export async function listTenants(tenantsFile: string, stateDir: string): Promise<{ tenants: TenantListing[]; orphans: OrphanListing[] }> {
  const tenants = await readTenants(tenantsFile);
  const registry = loadRegistry(stateDir);
  const byRecord = new Map<string, TenantListing>();
  const listed = tenants.map((t) => {
    const l: TenantListing = { id: t.id, record: recordOf(t), maxKeys: t.maxKeys, hasSecret: t.secretHash !== undefined, keys: [] };
    if (t.cid !== undefined) l.cid = t.cid;
    if (t.cgroup !== undefined) l.cgroup = t.cgroup;
    if (t.netifs !== undefined) l.netifs = t.netifs;
    byRecord.set(l.record, l);
    return l;
  });
  const orphans = new Map<string, OrphanListing>();
  for (const e of registry.all()) {
    const owner = byRecord.get(e.owner);
    if (owner) {
      owner.keys.push(keyListing(e));
      continue;
    }
    let o = orphans.get(e.owner);
    if (!o) orphans.set(e.owner, (o = { record: e.owner, tenant: e.tenant, keys: [] }));
    o.keys.push(keyListing(e));
  }
  // A record whose keys are gone but whose app parent is left (tenant removed without --purge
  // after its last general key was deleted, or a crash between making the parent and the key).
  for (const owner of AppParents.ownersIn(join(stateDir, PARENTS_DIR))) {
    if (byRecord.has(owner)) continue;
    const o = orphans.get(owner) ?? { record: owner, tenant: owner, keys: [] };
    o.appParent = true;
    orphans.set(owner, o);
  }
  return { tenants: listed, orphans: [...orphans.values()] };
}

export interface PurgeOptions {
  tenantsFile: string;
  config: ServiceConfig;
  log: Logger;
  /** How long to wait for a running service to carry out the purge. */
  waitMs?: number;
}

export interface PurgeReport {
  record: string;
  purged: number;
  /** Creations under way for the record that the purge made undo themselves. */
  undone: number;
  remaining: number;
}

async function refuseConfigured(tenantsFile: string, record: string): Promise<void> {
  const holder = (await readTenants(tenantsFile)).find((t) => recordOf(t) === record);
  if (holder) throw new AdminError(`record ${record} belongs to the configured tenant ${holder.id}; remove the tenant first: tenant remove --id ${holder.id} --purge`);
}

/**
 * Deletes the keys of `record`, which no configured tenant may have: directly when the service
 * is stopped (this command then holds the state lock), through the running service otherwise
 * (purge request + SIGHUP; the service checks the record against its own tenants again).
 */
async function purgeRecordKeys(o: PurgeOptions, record: string, name: string): Promise<PurgeReport> {
  await refuseConfigured(o.tenantsFile, record);
  let pid = lockHolder(o.config.stateDir);
  if (pid === undefined) {
    try {
      const core = await openCore(o.config, o.log);
      try {
        const report = await purgeRecord(core.keys, record, name, o.log);
        // What the running service's purge does too: the record's raw-channel state and NV indices.
        await purgeRawState(o.config.stateDir, core.queue, record, o.log);
        return { record, ...report };
      } finally {
        await core.close();
      }
    } catch (e) {
      if (!(e instanceof StateLockedError)) throw e;
      pid = e.pid; // the service started meanwhile: ask it
    }
  }
  const id = await filePurgeRequest(o.config.stateDir, record, name);
  try {
    process.kill(pid, 'SIGHUP');
  } catch (e) {
    throw new AdminError(`cannot signal the service (pid ${pid}): ${(e as Error).message}; the purge request stays filed for its next start`);
  }
  const until = Date.now() + (o.waitMs ?? 60_000);
  while (Date.now() < until) {
    await sleep(100);
    const r = await takePurgeResult(o.config.stateDir, id);
    if (!r) continue;
    if (r.error !== undefined) throw new AdminError(`the service refused the purge: ${r.error}`);
    return { record, purged: r.purged, undone: r.undone, remaining: r.remaining };
  }
  throw new AdminError(`the running service (pid ${pid}) did not carry out the purge in time; see its log`);
}

export interface RemoveTenantOptions extends PurgeOptions {
  id: string;
  purge: boolean;
}

/**
 * Removes tenant `id` from the tenants file (it can no longer authenticate; its keys become
 * orphans of its record) and, with purge, deletes them. With purge and no tenant `id`
 * configured, purges the orphaned record that had that name, if there is exactly one.
 */
export async function removeTenant(o: RemoveTenantOptions): Promise<PurgeReport> {
  const registry = loadRegistry(o.config.stateDir, o.config.keyStore); // refuses a lost one before any change
  const removed = await updateTenants(o.tenantsFile, (tenants) => {
    const t = tenants.find((x) => x.id === o.id);
    return t ? { tenants: tenants.filter((x) => x !== t), result: t } : { result: undefined };
  });
  if (removed) {
    const record = recordOf(removed);
    if (!o.purge) return { record, purged: 0, undone: 0, remaining: registry.ofRecord(record).length };
    return purgeRecordKeys(o, record, removed.id);
  }
  const configured = new Set((await readTenants(o.tenantsFile)).map(recordOf));
  const orphaned = [...new Set(registry.all().filter((e) => e.tenant === o.id && !configured.has(e.owner)).map((e) => e.owner))];
  if (orphaned.length === 0) throw new AdminError(`no tenant ${o.id} and no keys of it`);
  if (!o.purge) throw new AdminError(`no tenant ${o.id}; keys of a removed tenant of that name are left (record ${orphaned.join(', ')}); delete them with --purge`);
  if (orphaned.length > 1) {
    throw new AdminError(`keys of ${orphaned.length} removed tenants named ${o.id} are left (records ${orphaned.join(', ')}); purge one with: tenant purge --record RECORD`);
  }
  return purgeRecordKeys(o, orphaned[0]!, o.id);
}

/** `tenant purge --record R`: deletes the keys of an orphaned record. */
export async function purgeOrphans(o: PurgeOptions & { record: string }): Promise<PurgeReport> {
  if (!isRecordId(o.record)) throw new AdminError(`${JSON.stringify(o.record)} is not a record id (16 hex digits, or legacy:ID)`);
  await refuseConfigured(o.tenantsFile, o.record);
  const keys = loadRegistry(o.config.stateDir, o.config.keyStore).ofRecord(o.record);
  const parent = AppParents.ownersIn(join(o.config.stateDir, PARENTS_DIR)).includes(o.record);
  if (keys.length === 0 && !parent) throw new AdminError(`no keys of record ${o.record}`);
  // With no keys left, the purge still destroys the record's app parent.
  return purgeRecordKeys(o, o.record, keys[0]?.tenant ?? o.record);
}
