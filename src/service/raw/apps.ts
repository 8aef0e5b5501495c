/**
 * The firewall's per-app state (firewall/app.ts AppState), one per tenant record, shared by all
 * of the app's raw connections. Each app gets its own NV range of 256 indices in
 * 0x01000000–0x013FFFFF (below EVE's 0x01500000–0x019FFFFF), placed by a hash of its record,
 * two apps whose hashes meet placed apart by probing. With a state directory, an app's slot and
 * its virtual persistent handles are kept in `<state>/raw/<sha256(record)>.json`, so a range
 * never moves to another app after a restart (docs/FIREWALL.md "NV").
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { APP_PERSISTENT, AppState, DEFAULT_LIMITS, EVE_PERSISTENT, inRange, type HandleRange } from '../../firewall/app.js';
import { monotonic } from '../../firewall/clock.js';
import { DaTotal } from '../../firewall/limits.js';
import { removeFileDurable, writeFileDurable } from '../admin/durable-file.js';
import { isRecipe, RecentRecipes, type PersistentRecord } from './persistents.js';
import { KEPT_FILE } from './kept-file.js';

const NV_BASE = 0x01000000;
const NV_PER_APP = 0x100;
const NV_SLOTS = 0x4000; // 0x01000000–0x013FFFFF

/** Where an app's NV range starts when nothing else is placed there. */
export const homeSlot = (record: string): number => createHash('sha256').update('EVE-APP-NV\0').update(record).digest().readUInt32BE(0) % NV_SLOTS;
const fileOf = (record: string): string => `${createHash('sha256').update(record).digest('hex')}.json`;

interface StateFile {
  version: 1;
  record: string;
  nvSlot: number;
  persistents: PersistentRecord[];
}

/** One app as the service keeps it: the firewall's state, its persistent records, its recent recipes. */
export class RawApp {
  readonly recent = new RecentRecipes();
  private readonly records = new Map<number, PersistentRecord>();
  private writing: Promise<void> = Promise.resolve();

  constructor(
    readonly state: AppState,
    private readonly slot: number,
    private readonly path: string | undefined,
    records: readonly PersistentRecord[],
  ) {
    for (const r of records) {
      this.records.set(r.handle, r);
      state.persistents.set(r.handle, undefined);
    }
  }

  record(handle: number): PersistentRecord | undefined {
    return this.records.get(handle);
  }

  /** Adds or removes a persistent handle; resolves once the state file says so. */
  async persist(r: PersistentRecord): Promise<void> {
    this.records.set(r.handle, r);
    this.state.persistents.set(r.handle, undefined);
    await this.save().catch((e: unknown) => {
      // Not on disk: not persisted (the app gets an error, the records stay as the file says).
      this.records.delete(r.handle);
      this.state.persistents.delete(r.handle);
      throw e;
    });
  }

  async evict(handle: number): Promise<void> {
    const r = this.records.get(handle);
    this.records.delete(handle);
    this.state.persistents.delete(handle);
    await this.save().catch((e: unknown) => {
      if (r) {
        this.records.set(handle, r);
        this.state.persistents.set(handle, undefined);
      }
      throw e;
    });
  }

  /** Writes the state file (one write at a time, the latest state last). */
  save(): Promise<void> {
    const path = this.path;
    if (!path) return Promise.resolve();
    const body = (): string => JSON.stringify({ version: 1, record: this.state.app, nvSlot: this.slot, persistents: [...this.records.values()] } satisfies StateFile);
    this.writing = this.writing.catch(() => undefined).then(() => writeFileDurable(path, body()));
    return this.writing;
  }

  /** Resolves when the latest write is done (rejects if it failed). */
  saved(): Promise<void> {
    return this.writing;
  }
}

export class RawApps {
  private readonly byRecord = new Map<string, RawApp>();
  private readonly slots = new Map<number, string>();
  private readonly kept = new Map<string, { slot: number; persistents: PersistentRecord[] }>();
  /** All apps' authorization failures together (docs/FIREWALL.md "DA safety"; the chip's figures: da-figures.ts). */
  readonly daTotal = new DaTotal(monotonic);

  /** `dir`: where the apps' state files are (none: kept in memory only, as in unit tests). */
  constructor(private readonly dir?: string) {}

  /** Reads the state files at start (before any connection). A file that does not parse is logged and its slot left unplaced. */
  static async load(dir: string, log?: Logger): Promise<RawApps> {
    const apps = new RawApps(dir);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    for (const name of (await fsp.readdir(dir)).sort()) {
      if (!name.endsWith('.json') || name === KEPT_FILE) continue;
      try {
        const j = JSON.parse(await fsp.readFile(join(dir, name), 'utf8')) as Partial<StateFile>;
        const slot = j.nvSlot;
        if (typeof j.record !== 'string' || fileOf(j.record) !== name || typeof slot !== 'number' || !Number.isInteger(slot) || slot < 0 || slot >= NV_SLOTS) throw new Error('not a raw app state file');
        if (apps.slots.has(slot)) throw new Error(`NV slot ${slot} is already another app's`);
        const persistents = (Array.isArray(j.persistents) ? j.persistents : []).filter(
          (p): p is PersistentRecord =>
            typeof p?.handle === 'number' && inRange(p.handle, APP_PERSISTENT) && !EVE_PERSISTENT.includes(p.handle) && typeof p.name === 'string' && isRecipe(p.recipe),
        );
        apps.slots.set(slot, j.record);
        apps.kept.set(j.record, { slot, persistents });
      } catch (e) {
        log?.error({ event: 'raw-state-bad', file: join(dir, name), err: (e as Error).message }, `a raw app state file was not read: ${(e as Error).message}`);
      }
    }
    return apps;
  }

  /** The app's state, made on its first raw connection (its placement written at once: await `saved()`). */
  of(record: string): AppState {
    return this.app(record).state;
  }

  app(record: string): RawApp {
    let app = this.byRecord.get(record);
    if (app) return app;
    const kept = this.kept.get(record);
    const slot = kept?.slot ?? this.place(record);
    const first = NV_BASE + slot * NV_PER_APP;
    const range: HandleRange = { first, last: first + NV_PER_APP - 1 };
    app = new RawApp(new AppState(record, range, DEFAULT_LIMITS, monotonic, this.daTotal), slot, this.dir && join(this.dir, fileOf(record)), kept?.persistents ?? []);
    this.byRecord.set(record, app);
    if (!kept) void app.save().catch(() => undefined); // a failure shows in saved()
    return app;
  }

  /** The NV range of a record that has raw state (placed now or kept from before), else undefined. */
  rangeOf(record: string): HandleRange | undefined {
    const app = this.byRecord.get(record);
    if (app) return app.state.nvRange;
    const slot = this.kept.get(record)?.slot;
    if (slot === undefined) return undefined;
    const first = NV_BASE + slot * NV_PER_APP;
    return { first, last: first + NV_PER_APP - 1 };
  }

  /** Forgets a purged record: its slot is free again, its state file removed. */
  async forget(record: string): Promise<void> {
    const app = this.byRecord.get(record);
    const slot = this.kept.get(record)?.slot ?? [...this.slots].find(([, r]) => r === record)?.[0];
    this.byRecord.delete(record);
    this.kept.delete(record);
    if (slot !== undefined) this.slots.delete(slot);
    await app?.saved().catch(() => undefined);
    if (this.dir) await removeFileDurable(join(this.dir, fileOf(record)));
  }

  private place(record: string): number {
    let slot = homeSlot(record);
    while (this.slots.has(slot)) slot = (slot + 1) % NV_SLOTS;
    this.slots.set(slot, record);
    return slot;
  }
}
