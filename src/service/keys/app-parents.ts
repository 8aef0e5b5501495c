/**
 * The apps' storage parents (issue 12): one per tenant record, its TPM-wrapped blobs in
 * `<state-dir>/parents/`, made on the record's first general key. General keys are children of
 * their app's parent; destroying the parent's blob file when the record is purged is the
 * crypto-erase: no copy of a child's blobs can be loaded again (see tpm/ops/app-parent.ts).
 *
 * One file per record, named after it (`<record>.json`, a legacy record `legacy-<id>.json`),
 * naming the record inside too; read once at start-up and kept in memory, so that no request
 * reads the disk.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { appParentTemplate, matchesTemplate, parseBlobs, type KeyBlobs } from '../../tpm/index.js';
import { namesInSync, removeFileDurable, writeFileDurable } from '../admin/durable-file.js';
import { isRecordId, LEGACY_RECORD } from '../tenants/tenants.js';
import type { BlobFileProblem } from './blob-store.js';

export const PARENTS_DIR = 'parents';

/** `legacy:` holds a colon: a file name spells it `legacy-` (tenant ids never start with one). */
export function parentFileName(owner: string): string {
  return (owner.startsWith(LEGACY_RECORD) ? `legacy-${owner.slice(LEGACY_RECORD.length)}` : owner) + '.json';
}

/** The record a parent file belongs to, from its name alone (admin listings; contents unread). */
export function ownerOfFile(name: string): string | undefined {
  if (!name.endsWith('.json')) return undefined;
  const base = name.slice(0, -'.json'.length);
  const owner = base.startsWith('legacy-') ? LEGACY_RECORD + base.slice('legacy-'.length) : base;
  return isRecordId(owner) && parentFileName(owner) === name ? owner : undefined;
}

export class AppParents {
  private readonly parents = new Map<string, KeyBlobs>();
  /** Parents being made, per record: a second creation waits for the first's. */
  private readonly making = new Map<string, Promise<KeyBlobs>>();

  constructor(readonly dir: string) {}

  fileOf(owner: string): string {
    return join(this.dir, parentFileName(owner));
  }

  /** The record's parent blobs, if it has one. */
  get(owner: string): KeyBlobs | undefined {
    return this.parents.get(owner);
  }

  /** Records with a parent. */
  owners(): string[] {
    return [...this.parents.keys()];
  }

  /**
   * The record's parent, made first by `create` (a TPM job of the caller's) and written durably
   * if it has none; concurrent calls for one record make one parent.
   */
  ensure(owner: string, create: () => Promise<KeyBlobs>): Promise<KeyBlobs> {
    const have = this.parents.get(owner);
    if (have) return Promise.resolve(have);
    const under = this.making.get(owner);
    if (under) return under;
    const p = (async () => {
      const blobs = await create();
      const json = JSON.stringify({ owner, public: Buffer.from(blobs.public).toString('base64'), private: Buffer.from(blobs.private).toString('base64') });
      await writeFileDurable(this.fileOf(owner), json + '\n');
      const kept = { public: blobs.public.slice(), private: blobs.private.slice() };
      this.parents.set(owner, kept);
      return kept;
    })();
    this.making.set(owner, p);
    const done = (): void => void this.making.delete(owner);
    p.then(done, done);
    return p;
  }

  /** Crypto-erase of the record's general keys: removes its parent's file durably (absent: nothing). */
  async destroy(owner: string): Promise<void> {
    await this.making.get(owner)?.catch(() => {});
    await removeFileDurable(this.fileOf(owner));
    this.parents.delete(owner);
  }

  /** Records with a parent file in `dir` (absent: none), from the file names. Admin only: synchronous. */
  static ownersIn(dir: string): string[] {
    return namesInSync(dir, ownerOfFile);
  }

  /** Start-up: reads every parent file (synchronously). Unreadable ones are reported, not loaded. */
  loadAllSync(): BlobFileProblem[] {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const problems: BlobFileProblem[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith('.json')) continue;
      try {
        const j = JSON.parse(readFileSync(join(this.dir, name), 'utf8')) as Record<string, unknown>;
        if (!isRecordId(j.owner) || parentFileName(j.owner) !== name) throw new Error('its owner record is missing or does not match the file name');
        if (typeof j.public !== 'string' || typeof j.private !== 'string') throw new Error('missing blobs');
        const blobs: KeyBlobs = { public: new Uint8Array(Buffer.from(j.public, 'base64')), private: new Uint8Array(Buffer.from(j.private, 'base64')) };
        if (!matchesTemplate(parseBlobs(blobs).publicArea, appParentTemplate())) throw new Error('not an app parent');
        this.parents.set(j.owner, blobs);
      } catch (e) {
        problems.push({ file: name, problem: (e as Error).message });
      }
    }
    return problems;
  }
}
