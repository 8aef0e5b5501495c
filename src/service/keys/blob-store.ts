/**
 * The keys' TPM-wrapped blobs (TPM2B_PUBLIC and TPM2B_PRIVATE, encrypted by the EK: useless
 * outside this TPM), one file per handle in `<state-dir>/keys/`, kept in memory as well so
 * that no request reads the disk. Kept in both key-store modes: they are what lets recovery
 * re-create a persistent object. Each file also names the key's owner record, so that a lost
 * registry can be rebuilt from the files (rebuild.ts).
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseBlobs, type KeyBlobs, type TPMT_PUBLIC } from '../../tpm/index.js';
import { namesInSync, removeFileDurable, writeFileDurable } from '../admin/durable-file.js';
import { formatHandle, parseHandle } from '../protocol/handles.js';
import { isRecordId, LEGACY_RECORD } from '../tenants/tenants.js';

const FILE = /^(0x[0-9a-f]{8})\.json$/;

export interface StoredBlobs extends KeyBlobs {
  /** The tenant record owning the key (files of the previous version: `legacy:<tenant>`). */
  owner: string;
  /** Its name when the key was made (display only). */
  tenant: string;
  publicArea: TPMT_PUBLIC;
}

export interface BlobFileProblem {
  file: string;
  problem: string;
}

export class BlobStore {
  private readonly cache = new Map<number, StoredBlobs>();
  /** Handles with a blob file on disk, readable or not: never handed to a new key. */
  private readonly files = new Set<number>();

  constructor(readonly dir: string) {}

  fileOf(handle: number): string {
    return join(this.dir, `${formatHandle(handle)}.json`);
  }

  get(handle: number): StoredBlobs | undefined {
    return this.cache.get(handle);
  }

  handles(): number[] {
    return [...this.cache.keys()];
  }

  /** Whether a file for `handle` exists (even an unreadable one). */
  hasFile(handle: number): boolean {
    return this.files.has(handle);
  }

  /** Handles of every blob file, readable or not. */
  fileHandles(): number[] {
    return [...this.files];
  }

  /** The owner is in the file too, so that a lost registry can be rebuilt from the files. */
  async write(handle: number, who: { owner: string; tenant: string }, blobs: KeyBlobs): Promise<void> {
    const { publicArea } = parseBlobs(blobs);
    const { owner, tenant } = who;
    this.files.add(handle);
    const json = JSON.stringify({
      handle: formatHandle(handle),
      owner,
      tenant,
      public: Buffer.from(blobs.public).toString('base64'),
      private: Buffer.from(blobs.private).toString('base64'),
    });
    await writeFileDurable(this.fileOf(handle), json + '\n');
    this.cache.set(handle, { owner, tenant, public: blobs.public.slice(), private: blobs.private.slice(), publicArea });
  }

  async remove(handle: number): Promise<void> {
    await removeFileDurable(this.fileOf(handle));
    this.cache.delete(handle);
    this.files.delete(handle);
  }

  /** Handles of the blob files in `dir` (absent: none), without reading them. Admin only: synchronous. */
  static fileHandlesIn(dir: string): number[] {
    return namesInSync(dir, (n) => {
      const m = FILE.exec(n);
      return m ? parseHandle(m[1]) : undefined;
    });
  }

  /** Start-up: reads every blob file (synchronously). Unreadable files are reported, not loaded. */
  loadAllSync(): BlobFileProblem[] {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const problems: BlobFileProblem[] = [];
    for (const name of readdirSync(this.dir)) {
      const m = FILE.exec(name);
      if (!m) continue;
      const handle = parseHandle(m[1]);
      this.files.add(handle);
      try {
        const j = JSON.parse(readFileSync(join(this.dir, name), 'utf8')) as Record<string, unknown>;
        if (j.handle !== m[1] || typeof j.tenant !== 'string' || typeof j.public !== 'string' || typeof j.private !== 'string') {
          throw new Error('missing or mismatching fields');
        }
        const owner = j.owner === undefined ? LEGACY_RECORD + j.tenant : j.owner;
        if (!isRecordId(owner)) throw new Error('invalid owner');
        const blobs: KeyBlobs = {
          public: new Uint8Array(Buffer.from(j.public, 'base64')),
          private: new Uint8Array(Buffer.from(j.private, 'base64')),
        };
        const { publicArea } = parseBlobs(blobs);
        this.cache.set(handle, { ...blobs, owner, tenant: j.tenant, publicArea });
      } catch (e) {
        problems.push({ file: name, problem: (e as Error).message });
      }
    }
    return problems;
  }
}
