/**
 * The key registry: which tenant record owns which handle, and where each key is in its life.
 * A key belongs to a record (`owner`: the tenant's uid, or `legacy:<id>` for a tenant without
 * one, see tenants.ts), never to a name: `tenant` is only the name it had, for logs and lists.
 * Creation and deletion are two-phase so that a crash at any instant can be resolved at
 * start-up (see recovery.ts):
 *
 *   (absent) → pending-create → committed → pending-delete → (absent)
 *
 * The file is rewritten atomically and durably on every change; changes are serialized, and
 * memory shows a change only once it is on disk.
 */
import { readFileSync } from 'node:fs';
import { writeFileDurable } from '../admin/durable-file.js';
import { formatHandle, isPersistentHandle, parseHandle } from '../protocol/handles.js';
import { HASH_ALG, type HashName, type KeyType } from '../protocol/params.js';
import { ECC_CURVES, GENERAL_SCHEMES, RSA_BITS, type EccCurve, type KeyKind, type KeyScheme, type KeyUsage, type RsaBits } from '../protocol/vocabulary.js';
import { isRecordId, LEGACY_RECORD, recordOf, type Tenant } from '../tenants/tenants.js';

export type KeyState = 'pending-create' | 'committed' | 'pending-delete';
/** `blobs`: wrapped blobs in the state dir, loaded when used; `tpm`: also a persistent object. */
export type KeyStoreKind = 'blobs' | 'tpm';

export interface KeyEntry {
  handle: number;
  /** The tenant record owning the key (absent in files of the previous version: `legacy:<tenant>`). */
  owner: string;
  /** The owner's name when the key was made (display only). */
  tenant: string;
  type: KeyType;
  hashAlg: HashName;
  /** The key's TPM Name, hex. */
  name: string;
  createdAt: string;
  state: KeyState;
  store: KeyStoreKind;
  /** Absent in files before issue 12: an AK (see keyShape). */
  kind?: KeyKind;
  /** General keys: what the key does, its fixed scheme and size. */
  usage?: KeyUsage;
  scheme?: KeyScheme;
  bits?: RsaBits;
  curve?: EccCurve;
}

/** What a key is, with an AK's implicit values filled in (RSA-2048 RSASSA or P-256 ECDSA signing keys). */
export interface KeyShape {
  kind: KeyKind;
  usage: KeyUsage;
  scheme: KeyScheme;
  bits?: RsaBits;
  curve?: EccCurve;
}

export function keyShape(e: KeyEntry): KeyShape {
  if (e.kind !== 'general') return e.type === 'rsa' ? { kind: 'ak', usage: 'sign', scheme: 'rsassa', bits: 2048 } : { kind: 'ak', usage: 'sign', scheme: 'ecdsa', curve: 'P-256' };
  const size = e.type === 'rsa' ? { bits: e.bits ?? 2048 } : { curve: e.curve ?? 'P-256' };
  return { kind: 'general', usage: e.usage ?? 'sign', scheme: e.scheme ?? (e.type === 'rsa' ? 'rsassa' : 'ecdsa'), ...size };
}

const STATES: readonly KeyState[] = ['pending-create', 'committed', 'pending-delete'];

export class RegistryFormatError extends Error {
  override readonly name: string = 'RegistryFormatError';
}

/** registry.json is absent while key blob files exist: it was lost, not never written. */
export class RegistryMissingError extends RegistryFormatError {
  override readonly name = 'RegistryMissingError';
}

function parseEntry(raw: unknown, i: number): KeyEntry {
  const where = `keys[${i}]`;
  if (typeof raw !== 'object' || raw === null) throw new RegistryFormatError(`${where} is not an object`);
  const r = raw as Record<string, unknown>;
  let handle: number;
  try {
    handle = parseHandle(r.handle);
  } catch {
    throw new RegistryFormatError(`${where}.handle is not a handle`);
  }
  if (!isPersistentHandle(handle)) throw new RegistryFormatError(`${where}.handle is not persistent`);
  const ok =
    typeof r.tenant === 'string' &&
    (r.type === 'rsa' || r.type === 'ecc') &&
    typeof r.hashAlg === 'string' &&
    Object.hasOwn(HASH_ALG, r.hashAlg) &&
    typeof r.name === 'string' &&
    /^[0-9a-f]*$/.test(r.name) &&
    typeof r.createdAt === 'string' &&
    STATES.includes(r.state as KeyState) &&
    (r.store === 'blobs' || r.store === 'tpm');
  if (!ok) throw new RegistryFormatError(`${where} (${formatHandle(handle)}) has missing or invalid fields`);
  const owner = r.owner === undefined ? LEGACY_RECORD + (r.tenant as string) : r.owner;
  if (!isRecordId(owner)) throw new RegistryFormatError(`${where} (${formatHandle(handle)}) has an invalid owner`);
  const entry: KeyEntry = {
    handle,
    owner,
    tenant: r.tenant as string,
    type: r.type as KeyType,
    hashAlg: r.hashAlg as HashName,
    name: r.name as string,
    createdAt: r.createdAt as string,
    state: r.state as KeyState,
    store: r.store as KeyStoreKind,
  };
  const shape = parseShape(r, entry.type);
  if (typeof shape === 'string') throw new RegistryFormatError(`${where} (${formatHandle(handle)}) ${shape}`);
  return { ...entry, ...shape };
}

/** kind/usage/scheme/size of an entry: none (an AK of any version), or a general key's complete and consistent. */
function parseShape(r: Record<string, unknown>, type: KeyType): Pick<KeyEntry, 'kind' | 'usage' | 'scheme' | 'bits' | 'curve'> | string {
  const given = ['usage', 'scheme', 'bits', 'curve'].filter((f) => r[f] !== undefined);
  if (r.kind === undefined || r.kind === 'ak') return given.length === 0 ? (r.kind === 'ak' ? { kind: 'ak' } : {}) : `is an AK with general-key fields (${given.join(', ')})`;
  if (r.kind !== 'general') return 'has an invalid kind';
  if (r.usage !== 'sign' && r.usage !== 'decrypt') return 'has an invalid usage';
  const usage: KeyUsage = r.usage;
  if (!GENERAL_SCHEMES[type][usage].includes(r.scheme as KeyScheme)) return `has a scheme that does not fit a ${type} ${usage} key`;
  const scheme = r.scheme as KeyScheme;
  if (type === 'rsa') {
    if (!RSA_BITS.includes(r.bits as RsaBits) || r.curve !== undefined) return 'has an invalid RSA key size';
    return { kind: 'general', usage, scheme, bits: r.bits as RsaBits };
  }
  if (!ECC_CURVES.includes(r.curve as EccCurve) || r.bits !== undefined) return 'has an invalid curve';
  return { kind: 'general', usage, scheme, curve: r.curve as EccCurve };
}

/** Whether the entry is a general key (under its app's parent), not an AK (under the EK). */
export function isGeneral(e: Pick<KeyEntry, 'kind'>): boolean {
  return e.kind === 'general';
}

export function serializeRegistry(entries: Iterable<KeyEntry>): string {
  const keys = [...entries].sort((a, b) => a.handle - b.handle).map((e) => ({ ...e, handle: formatHandle(e.handle) }));
  return JSON.stringify({ version: 1, keys }, null, 2) + '\n';
}

export function parseRegistry(text: string): KeyEntry[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new RegistryFormatError(`not JSON: ${(e as Error).message}`);
  }
  const top = json as { version?: unknown; keys?: unknown };
  if (typeof json !== 'object' || json === null || top.version !== 1 || !Array.isArray(top.keys)) {
    throw new RegistryFormatError('expected { "version": 1, "keys": [...] }');
  }
  const entries = top.keys.map(parseEntry);
  const seen = new Set<number>();
  for (const e of entries) {
    if (seen.has(e.handle)) throw new RegistryFormatError(`handle ${formatHandle(e.handle)} appears twice`);
    seen.add(e.handle);
  }
  return entries;
}

export class KeyRegistry {
  private entries: Map<number, KeyEntry>;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    entries: Iterable<KeyEntry> = [],
  ) {
    this.entries = new Map([...entries].map((e) => [e.handle, e]));
  }

  /** Reads the registry file (absent: empty). Start-up and admin only: synchronous. */
  static loadSync(path: string): KeyRegistry {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return new KeyRegistry(path);
      throw e;
    }
    try {
      return new KeyRegistry(path, parseRegistry(text));
    } catch (e) {
      throw new RegistryFormatError(`key registry ${path}: ${(e as Error).message}`);
    }
  }

  get(handle: number): KeyEntry | undefined {
    return this.entries.get(handle);
  }

  all(): KeyEntry[] {
    return [...this.entries.values()].sort((a, b) => a.handle - b.handle);
  }

  /** Keys of a tenant record (configured or not). */
  ofRecord(record: string): KeyEntry[] {
    return this.all().filter((e) => e.owner === record);
  }

  ofTenant(tenant: Pick<Tenant, 'id' | 'uid'>): KeyEntry[] {
    return this.ofRecord(recordOf(tenant));
  }

  /**
   * Applies `mutate` to a copy of the entries, writes the copy durably, then makes it current.
   * Serialized: `mutate` sees every earlier update. If the write fails nothing changes.
   */
  update<T>(mutate: (draft: Map<number, KeyEntry>) => T): Promise<T> {
    const run = async (): Promise<T> => {
      const draft = new Map([...this.entries].map(([h, e]) => [h, { ...e }]));
      const result = mutate(draft);
      await writeFileDurable(this.path, serializeRegistry(draft.values()));
      this.entries = draft;
      return result;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => {});
    return p;
  }
}
