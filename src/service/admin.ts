/**
 * Host-side administration (the service's bin, never reachable over the API): add, list and
 * remove tenants. The tenants file is replaced atomically and durably, owner-only.
 */
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { cloudInitSnippet } from './cloud-init.js';
import type { ServiceConfig } from './config.js';
import { openCore, REGISTRY_FILE } from './core.js';
import { writeFileDurable } from './durable-file.js';
import { formatHandle } from './handles.js';
import { lockHolder } from './lock.js';
import { purgeTenantKeys, readPurgeRequests, writePurgeRequests } from './purge.js';
import { KeyRegistry } from './registry.js';
import { DEFAULT_MAX_KEYS, generateSecret, hashSecret, parseTenants, TENANT_ID, type Tenant } from './tenants.js';
import { join } from 'node:path';

export class AdminError extends Error {
  override readonly name = 'AdminError';
}

function readTenants(path: string): Tenant[] {
  if (!existsSync(path)) return [];
  try {
    return parseTenants(JSON.parse(readFileSync(path, 'utf8')), DEFAULT_MAX_KEYS);
  } catch (e) {
    throw new AdminError(`cannot read the tenants file ${path}: ${(e as Error).message}`);
  }
}

async function writeTenants(path: string, tenants: readonly Tenant[]): Promise<void> {
  // Never write a file the service would refuse; its reason is a usage error (exit 2).
  try {
    parseTenants({ tenants });
  } catch (e) {
    throw new AdminError((e as Error).message);
  }
  await writeFileDurable(path, JSON.stringify({ tenants }, null, 2) + '\n', 0o600);
}

export interface AddTenantOptions {
  tenantsFile: string;
  id: string;
  cid?: number;
  maxKeys?: number;
  /** Address written into the VM's config (default vsock:2:8877). */
  service?: string;
  /** Where the VM downloads the tools tarball, and its sha256 (for the cloud-init snippet). */
  toolsUrl?: string;
  toolsSha256?: string;
}

export async function addTenant(o: AddTenantOptions): Promise<{ secret: string; snippet: string; tenant: Tenant }> {
  if (!TENANT_ID.test(o.id)) throw new AdminError(`tenant id must match ${TENANT_ID.source}`);
  const tenants = readTenants(o.tenantsFile);
  if (tenants.some((t) => t.id === o.id)) throw new AdminError(`tenant ${o.id} already exists`);
  if (o.cid !== undefined && tenants.some((t) => t.cid === o.cid)) throw new AdminError(`CID ${o.cid} already belongs to another tenant`);
  const secret = generateSecret();
  const tenant: Tenant = { id: o.id, secretHash: hashSecret(secret), maxKeys: o.maxKeys ?? DEFAULT_MAX_KEYS };
  if (o.cid !== undefined) tenant.cid = o.cid;
  await writeTenants(o.tenantsFile, [...tenants, tenant]);
  return { secret, tenant, snippet: cloudInitSnippet({ tenantId: o.id, secret, service: o.service ?? 'vsock:2:8877', toolsUrl: o.toolsUrl, toolsSha256: o.toolsSha256 }) };
}

export interface TenantListing {
  id: string;
  cid?: number;
  maxKeys: number;
  hasSecret: boolean;
  keys: Array<{ handle: string; type: string; hashAlg: string; state: string; store: string; createdAt: string }>;
}

/** Tenants with their keys (from the registry); keys of tenants no longer configured too. */
export function listTenants(tenantsFile: string, stateDir: string): TenantListing[] {
  const tenants = readTenants(tenantsFile);
  const registry = KeyRegistry.loadSync(join(stateDir, REGISTRY_FILE));
  const out = new Map<string, TenantListing>();
  for (const t of tenants) {
    const l: TenantListing = { id: t.id, maxKeys: t.maxKeys, hasSecret: t.secretHash !== undefined, keys: [] };
    if (t.cid !== undefined) l.cid = t.cid;
    out.set(t.id, l);
  }
  for (const e of registry.all()) {
    let l = out.get(e.tenant);
    if (!l) out.set(e.tenant, (l = { id: e.tenant, maxKeys: 0, hasSecret: false, keys: [] }));
    l.keys.push({ handle: formatHandle(e.handle), type: e.type, hashAlg: e.hashAlg, state: e.state, store: e.store, createdAt: e.createdAt });
  }
  return [...out.values()];
}

export interface RemoveTenantOptions {
  tenantsFile: string;
  id: string;
  purge: boolean;
  config: ServiceConfig;
  log: Logger;
  /** How long to wait for a running service to carry out the purge. */
  waitMs?: number;
}

/**
 * Removes the tenant from the tenants file (it can no longer authenticate) and, with purge,
 * deletes its keys: directly when the service is stopped, through the running service (purge
 * request + SIGHUP) otherwise. Returns the number of keys purged (or left, without purge).
 */
export async function removeTenant(o: RemoveTenantOptions): Promise<{ purged: number; remaining: number }> {
  const tenants = readTenants(o.tenantsFile);
  const known = tenants.some((t) => t.id === o.id);
  const registry = KeyRegistry.loadSync(join(o.config.stateDir, REGISTRY_FILE));
  const owned = registry.ofTenant(o.id).length;
  if (!known && owned === 0) throw new AdminError(`no tenant ${o.id} and no keys of it`);
  if (known) await writeTenants(o.tenantsFile, tenants.filter((t) => t.id !== o.id));
  if (!o.purge) return { purged: 0, remaining: owned };

  const pid = lockHolder(o.config.stateDir);
  if (pid !== undefined) {
    await writePurgeRequests(o.config.stateDir, [...(await readPurgeRequests(o.config.stateDir)), o.id]);
    process.kill(pid, 'SIGHUP');
    const until = Date.now() + (o.waitMs ?? 60_000);
    while (Date.now() < until) {
      await sleep(100);
      if (!(await readPurgeRequests(o.config.stateDir)).includes(o.id)) {
        const left = KeyRegistry.loadSync(join(o.config.stateDir, REGISTRY_FILE)).ofTenant(o.id).length;
        return { purged: owned - left, remaining: left };
      }
    }
    throw new AdminError(`the running service (pid ${pid}) did not carry out the purge in time; see its log`);
  }
  const core = await openCore(o.config, o.log);
  try {
    const purged = await purgeTenantKeys(core.keys, core.registry, o.id, o.log);
    return { purged, remaining: core.registry.ofTenant(o.id).length };
  } finally {
    await core.close();
  }
}
