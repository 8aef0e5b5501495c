/**
 * Purging the keys of a tenant record that is no longer configured. With the service stopped
 * the admin command purges directly; with it running the admin command files a request in
 * `purge-requests.json` and signals the service (SIGHUP), which purges — only records no
 * configured tenant has, so a request can never destroy the keys of a configured application —
 * and files the result there for the command to report. Both write the file, each time under
 * its lock (read-modify-write), replaced atomically.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileDurable } from '../admin/durable-file.js';
import { formatHandle } from '../protocol/handles.js';
import type { KeyManager, PurgeOutcome } from '../keys/keys.js';
import { withLock } from '../admin/lock.js';
import { isRecordId, LEGACY_RECORD } from './tenants.js';

export const PURGE_FILE = 'purge-requests.json';
/** How long a writer of the request file waits for the other one. */
const LOCK_WAIT_MS = 10_000;
/** Results kept for commands that have not read theirs (a command killed while waiting). */
const MAX_RESULTS = 32;

export interface PurgeRequest {
  /** Random: lets the command find its own result. */
  id: string;
  record: string;
  /** The name the record had, for logs. */
  tenant: string;
}

export interface PurgeResult extends PurgeRequest {
  purged: number;
  /** Creations under way when the purge began, undone. */
  undone: number;
  /** Keys of the record still there (a step failed; recovery finishes pending deletes). */
  remaining: number;
  /** Why nothing was purged (the record is configured again, or the purge failed). */
  error?: string;
}

export interface PurgeFile {
  requests: PurgeRequest[];
  results: PurgeResult[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parsePurgeFile(text: string): PurgeFile {
  const j = JSON.parse(text) as unknown;
  if (!isObject(j)) return { requests: [], results: [] };
  // The previous version filed bare tenant ids; its tenants were all legacy records.
  const legacy = Array.isArray(j.tenants) ? j.tenants.filter((t): t is string => typeof t === 'string' && isRecordId(LEGACY_RECORD + t)) : [];
  const requests = (Array.isArray(j.requests) ? j.requests : []).filter(
    (r): r is PurgeRequest => isObject(r) && typeof r.id === 'string' && isRecordId(r.record) && typeof r.tenant === 'string',
  );
  const results = (Array.isArray(j.results) ? j.results : []).filter((r): r is PurgeResult => isObject(r) && typeof r.id === 'string' && typeof r.purged === 'number');
  return { requests: [...requests, ...legacy.map((t) => ({ id: `legacy-${t}`, record: LEGACY_RECORD + t, tenant: t }))], results };
}

/** The request file as it is now (absent or unreadable: empty). No lock: it is replaced atomically. */
export async function readPurgeFile(stateDir: string): Promise<PurgeFile> {
  try {
    return parsePurgeFile(await fsp.readFile(join(stateDir, PURGE_FILE), 'utf8'));
  } catch {
    return { requests: [], results: [] };
  }
}

/** Read-modify-write of the request file under its lock. */
export function updatePurgeFile<T>(stateDir: string, mutate: (f: PurgeFile) => T): Promise<T> {
  const path = join(stateDir, PURGE_FILE);
  return withLock(`${path}.lock`, LOCK_WAIT_MS, async () => {
    const f = await readPurgeFile(stateDir);
    const out = mutate(f);
    await writeFileDurable(path, JSON.stringify({ requests: f.requests, results: f.results.slice(-MAX_RESULTS) }) + '\n');
    return out;
  });
}

/** Files a request; returns its id. */
export async function filePurgeRequest(stateDir: string, record: string, tenant: string): Promise<string> {
  const id = randomBytes(8).toString('hex');
  await updatePurgeFile(stateDir, (f) => void f.requests.push({ id, record, tenant }));
  return id;
}

/** Takes the result of request `id` out of the file, if the service has filed it. */
export async function takePurgeResult(stateDir: string, id: string): Promise<PurgeResult | undefined> {
  if (!(await readPurgeFile(stateDir)).results.some((r) => r.id === id)) return undefined;
  return updatePurgeFile(stateDir, (f) => {
    const r = f.results.find((x) => x.id === id);
    f.results = f.results.filter((x) => x.id !== id);
    return r;
  });
}

/** Files the results of requests carried out, and drops those requests. */
export async function filePurgeResults(stateDir: string, results: readonly PurgeResult[]): Promise<void> {
  const done = new Set(results.map((r) => r.id));
  await updatePurgeFile(stateDir, (f) => {
    f.requests = f.requests.filter((r) => !done.has(r.id));
    f.results.push(...results);
  });
}

/**
 * Deletes every key of `record` (whose tenant the caller has checked is gone), waiting for
 * that record's creations and deletions under way, so that the counts are what happened.
 */
export async function purgeRecord(keys: KeyManager, record: string, tenant: string, log: Logger): Promise<PurgeOutcome> {
  const hadParent = keys.hasAppParent(record);
  const out = await keys.purge(record, (e) =>
    log.info(
      { event: 'audit', tenant: e.tenant, record, op: 'purge', handle: formatHandle(e.handle), decision: 'grant', reason: 'tenant removed by the host administrator' },
      'purged a key',
    ),
  );
  log.info({ event: 'purged', tenant, record, keys: out.purged, undone: out.undone, remaining: out.remaining }, 'purged the keys of a removed tenant');
  if (hadParent && !keys.hasAppParent(record)) log.info({ event: 'audit', tenant, record, op: 'purge', decision: 'grant' }, "destroyed the app's parent key: copies of its general keys can never be loaded again");
  return out;
}
