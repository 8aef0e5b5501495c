/**
 * The tenants of a running service: read at start, read again when the file changes (looked at
 * every 2 s: `tenant add` works without a restart) or on SIGHUP, and the purge requests the
 * admin command filed carried out on each reload (purge.ts). A reload that finds the file
 * invalid keeps the previous tenants.
 */
import { readFileSync, statSync, promises as fsp } from 'node:fs';
import type { Logger } from 'pino';
import { ConfigError, type ServiceConfig } from '../config.js';
import type { KeyManager } from '../keys/keys.js';
import type { KeyRegistry } from '../keys/registry.js';
import { filePurgeResults, purgeRecord, readPurgeFile, type PurgeResult } from './purge.js';
import { parseTenants, recordOf, TenantDirectory, type Tenant } from './tenants.js';

const SINGLE_TENANT_ID = 'default';
const WATCH_INTERVAL_MS = 2000;

/** What carrying out purges needs of the core. */
export interface PurgeTarget {
  keys: KeyManager;
  registry: KeyRegistry;
  /** The record's raw channel state (NV indices, kept file): raw/channel.ts RawChannel.purge. */
  rawPurge?: (record: string) => Promise<number>;
  /** After each good reload: a removed tenant's raw connections end at once (RawChannel.tenantsChanged). */
  rawTenantsChanged?: () => void;
}

export class LiveTenants {
  /** Single-tenant mode: every caller is this tenant. */
  readonly single: Tenant | undefined;
  private current: TenantDirectory;
  private target: PurgeTarget | undefined;
  private reloading: Promise<void> = Promise.resolve();
  private lastStamp = '';
  private watch: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: Pick<ServiceConfig, 'singleTenant' | 'tenants' | 'defaultMaxKeys' | 'stateDir'>,
    private readonly log: Logger,
  ) {
    this.single = config.singleTenant ? { id: SINGLE_TENANT_ID, maxKeys: config.defaultMaxKeys } : undefined;
    if (config.singleTenant) {
      this.current = new TenantDirectory([]);
      return;
    }
    // The stamp of the file as loaded is the watch's baseline (taken before the read: a change
    // made meanwhile shows as a newer stamp and is reloaded), so an edit made right after the
    // start is not mistaken for the baseline. Start-up, before serving: sync is fine here.
    const path = config.tenants!;
    try {
      const st = statSync(path);
      this.current = new TenantDirectory(parseTenants(JSON.parse(readFileSync(path, 'utf8')), config.defaultMaxKeys));
      this.lastStamp = `${st.mtimeMs}:${st.size}`;
    } catch (e) {
      // Missing, unreadable, not JSON or not a tenants file: the operator's to mend, said with the file's name.
      const code = (e as NodeJS.ErrnoException).code;
      throw new ConfigError(`tenants file ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { cause: e });
    }
  }

  get directory(): TenantDirectory {
    return this.current;
  }

  /** A key commits only while its owner's record is configured (see KeyManager.purge). */
  ownerAlive(record: string): boolean {
    return this.config.singleTenant || this.current.ofRecord(record) !== undefined;
  }

  /** Purges may now be carried out; the file is watched from now on. */
  start(target: PurgeTarget): void {
    this.target = target;
    if (this.config.singleTenant) return;
    this.watch = setInterval(() => void this.look(), WATCH_INTERVAL_MS);
    this.watch.unref();
  }

  /** The watch's one look: reloads when the file is not the one last loaded (an unreadable file waits). */
  async look(): Promise<void> {
    if (this.config.singleTenant) return;
    const st = await fsp.stat(this.config.tenants!).catch(() => undefined);
    if (st && `${st.mtimeMs}:${st.size}` !== this.lastStamp) await this.reload();
  }

  /** One reload at a time, in order. */
  reload(): Promise<void> {
    const run = (): Promise<void> => this.reloadNow();
    return (this.reloading = this.reloading.then(run, run));
  }

  stopWatching(): void {
    clearInterval(this.watch);
  }

  /** Resolves when no reload is running. */
  async settled(): Promise<void> {
    await this.reloading.catch(() => {});
  }

  private async reloadNow(): Promise<void> {
    const { config, log } = this;
    // Purge requests are read before the tenants: the admin command removes a tenant before it
    // files the purge of its record, so the tenants read next already lack every record asked for.
    const requested = (await readPurgeFile(config.stateDir)).requests;
    if (!config.singleTenant) {
      try {
        const st = await fsp.stat(config.tenants!);
        const text = await fsp.readFile(config.tenants!, 'utf8');
        this.current = new TenantDirectory(parseTenants(JSON.parse(text), config.defaultMaxKeys));
        this.lastStamp = `${st.mtimeMs}:${st.size}`;
        log.info({ event: 'tenants-reloaded', tenants: this.current.tenants.length }, 'tenants reloaded');
        this.target?.rawTenantsChanged?.();
      } catch (e) {
        log.error({ event: 'tenants-reload-failed', err: (e as Error).message }, 'the tenants file is invalid; keeping the previous tenants');
      }
    }
    // Every record purged here is one no tenant has now, and from now on (ownerAlive) no key of
    // it can commit. Each request gets a result for the admin command.
    const target = this.target;
    if (requested.length === 0 || target === undefined) return;
    const results: PurgeResult[] = [];
    for (const r of requested) {
      const holder = this.single !== undefined && r.record === recordOf(this.single) ? this.single : this.current.ofRecord(r.record);
      if (holder) {
        log.warn({ event: 'purge-refused', tenant: holder.id, record: r.record }, 'purge requested for the record of a configured tenant; refused');
        results.push({ ...r, purged: 0, undone: 0, remaining: target.registry.ofRecord(r.record).length, error: `record ${r.record} belongs to the configured tenant ${holder.id}` });
        continue;
      }
      try {
        results.push({ ...r, ...(await purgeRecord(target.keys, r.record, r.tenant, log)) });
        await target.rawPurge?.(r.record).catch((e: unknown) => log.error({ event: 'raw-purge-failed', record: r.record, err: (e as Error).message }, 'could not remove the raw channel state of a purged record'));
      } catch (e) {
        log.error({ event: 'purge-failed', tenant: r.tenant, record: r.record, err: (e as Error).message }, 'purge failed');
        results.push({ ...r, purged: 0, undone: 0, remaining: target.registry.ofRecord(r.record).length, error: (e as Error).message });
      }
    }
    try {
      await filePurgeResults(config.stateDir, results);
    } catch (e) {
      // The requests stay filed; the next reload carries them out again (nothing left to do).
      log.error({ event: 'purge-failed', err: (e as Error).message }, 'could not file the purge results');
    }
  }
}
