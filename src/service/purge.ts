/**
 * Purging a removed application's keys. With the service stopped the admin command purges
 * directly; with it running the admin command files a request here and signals the service
 * (SIGHUP), which purges — only tenants that are also gone from the tenants file, so a request
 * can never destroy the keys of a configured application.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileDurable } from './durable-file.js';
import { formatHandle } from './handles.js';
import type { KeyManager } from './keys.js';
import type { KeyRegistry } from './registry.js';

export const PURGE_FILE = 'purge-requests.json';

export async function readPurgeRequests(stateDir: string): Promise<string[]> {
  try {
    const j = JSON.parse(await fsp.readFile(join(stateDir, PURGE_FILE), 'utf8')) as { tenants?: unknown };
    return Array.isArray(j.tenants) ? j.tenants.filter((t): t is string => typeof t === 'string') : [];
  } catch {
    return [];
  }
}

export async function writePurgeRequests(stateDir: string, tenants: readonly string[]): Promise<void> {
  await writeFileDurable(join(stateDir, PURGE_FILE), JSON.stringify({ tenants: [...new Set(tenants)] }) + '\n');
}

/** Deletes every committed key of `tenantId` (two-phase, like a tenant's own DELETE). */
export async function purgeTenantKeys(keys: KeyManager, registry: KeyRegistry, tenantId: string, log: Logger): Promise<number> {
  let n = 0;
  for (const entry of registry.ofTenant(tenantId)) {
    if (entry.state !== 'committed') continue;
    await keys.remove({ id: tenantId, maxKeys: 0 }, entry);
    log.info({ event: 'audit', tenant: tenantId, op: 'purge', handle: formatHandle(entry.handle), decision: 'grant', reason: 'tenant removed by the host administrator' }, 'purged a key');
    n++;
  }
  return n;
}
