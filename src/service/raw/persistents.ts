/**
 * An app's virtual persistent handles (docs/FIREWALL.md "Persistent handles"): EvictControl by
 * an app records *how* the object was made — a recipe — never a chip NV slot. A recipe is a
 * primary of the app's owner or endorsement hierarchy (its template: re-derived on demand, the
 * same key every time) or a Load of blobs under a parent recipe. The first command that names
 * the handle makes the object (its Name checked against the one recorded, so a recipe can never
 * stand for another object) and saves its context; later commands load that context
 * (persistent-ops.ts), and the recipe is used again only when it no longer loads (TPM Reset).
 */
import { CreatePrimary, FlushContext, Load, TPM_RC, TpmError, type TpmRunner } from '../../tpm/index.js';
import { TPM2B_SENSITIVE_CREATE, TPML_PCR_SELECTION, TPMT_PUBLIC } from '../../tpm/structures.js';
import { decode, encode, type Infer } from '../../tpm/wire/codec.js';
import { appTemplate } from '../../firewall/primary.js';
import type { Transients } from '../tpm/transients.js';
import type { Timed } from './budgets.js';

/** How an object of the app is made again; byte fields are hex of their TPM encodings. */
export type Recipe =
  | { readonly kind: 'primary'; readonly hierarchy: number; readonly inSensitive: string; readonly inPublic: string }
  | { readonly kind: 'load'; readonly parent: Recipe; readonly inPrivate: string; readonly inPublic: string };

/** One virtual persistent handle of an app, as kept in its state file. */
export interface PersistentRecord {
  readonly handle: number;
  /** The object's Name (hex): the re-made object must have it. */
  readonly name: string;
  readonly recipe: Recipe;
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

/** The recipe of an owner/endorsement primary as the app asked for it (its template, not the chip's). */
export function primaryRecipe(hierarchy: number, inSensitive: Infer<typeof TPM2B_SENSITIVE_CREATE>, inPublic: TPMT_PUBLIC): Recipe {
  return { kind: 'primary', hierarchy, inSensitive: hex(encode(TPM2B_SENSITIVE_CREATE, inSensitive)), inPublic: hex(encode(TPMT_PUBLIC, inPublic)) };
}

export function loadRecipe(parent: Recipe, inPrivate: Uint8Array, inPublic: TPMT_PUBLIC): Recipe {
  return { kind: 'load', parent, inPrivate: hex(inPrivate), inPublic: hex(encode(TPMT_PUBLIC, inPublic)) };
}

/** Whether `v` is a recipe as written by this module (state files are checked when read). */
export function isRecipe(v: unknown, depth = 0): v is Recipe {
  if (typeof v !== 'object' || v === null || depth > 16) return false;
  const r = v as Record<string, unknown>;
  const isHex = (s: unknown): boolean => typeof s === 'string' && /^([0-9a-f]{2})*$/.test(s);
  if (r.kind === 'primary') return typeof r.hierarchy === 'number' && isHex(r.inSensitive) && isHex(r.inPublic);
  return r.kind === 'load' && isHex(r.inPrivate) && isHex(r.inPublic) && isRecipe(r.parent, depth + 1);
}

const NO_PCRS = decode(TPML_PCR_SELECTION, new Uint8Array(4));

/** Whether the recipe starts from an RSA primary: making it again is an RSA key generation (budgets.ts). */
export function rsaRoot(recipe: Recipe): boolean {
  let r = recipe;
  while (r.kind === 'load') r = r.parent;
  return r.inPublic.startsWith('0001'); // TPMT_PUBLIC.type first: TPM_ALG_RSA
}

/** Runs `f` again while the chip has no object slot and a lender frees one (as the rest of the raw channel does). */
export async function withSlot<T>(job: TpmRunner, transients: Transients, f: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await f();
    } catch (e) {
      if (e instanceof TpmError && e.is(TPM_RC.OBJECT_MEMORY) && (await transients.lender?.reclaim(job))) continue;
      throw e;
    }
  }
}

/**
 * Makes the object of `recipe` on the chip (inside the app's queue job) and returns its
 * transient handle and Name. A parent made on the way is flushed again. An RSA primary's
 * CreatePrimary runs through `charge` (the app's keygen budget).
 */
export async function materialize(
  chip: TpmRunner,
  job: TpmRunner,
  transients: Transients,
  app: string,
  recipe: Recipe,
  charge: Timed = (work) => work(),
): Promise<{ handle: number; name: Uint8Array }> {
  if (recipe.kind === 'primary') {
    const inPublic = appTemplate(app, decode(TPMT_PUBLIC, bytes(recipe.inPublic)));
    const input = {
      primaryHandle: recipe.hierarchy,
      inSensitive: decode(TPM2B_SENSITIVE_CREATE, bytes(recipe.inSensitive)),
      inPublic,
      outsideInfo: new Uint8Array(0),
      creationPCR: NO_PCRS,
    } as unknown as Parameters<typeof chip.run<typeof CreatePrimary>>[1];
    const create = (): Promise<{ objectHandle: number; name: Uint8Array }> => withSlot(job, transients, () => chip.run(CreatePrimary, input));
    const out = rsaRoot(recipe) ? await charge(create) : await create();
    return { handle: out.objectHandle, name: out.name };
  }
  const parent = await materialize(chip, job, transients, app, recipe.parent, charge);
  try {
    const input = { parentHandle: parent.handle, inPrivate: bytes(recipe.inPrivate), inPublic: decode(TPMT_PUBLIC, bytes(recipe.inPublic)) } as unknown as Parameters<
      typeof chip.run<typeof Load>
    >[1];
    const out = await withSlot(job, transients, () => chip.run(Load, input));
    return { handle: out.objectHandle, name: out.name };
  } finally {
    await chip.run(FlushContext, { flushHandle: parent.handle }).catch(() => undefined);
  }
}

/** Recipes of objects the app made lately, by Name (hex): what EvictControl may persist. Bounded. */
export class RecentRecipes {
  private readonly byName = new Map<string, Recipe>();
  constructor(private readonly max = 64) {}

  add(name: Uint8Array, recipe: Recipe): void {
    const k = hex(name);
    this.byName.delete(k);
    this.byName.set(k, recipe);
    if (this.byName.size > this.max) this.byName.delete(this.byName.keys().next().value as string);
  }

  get(name: Uint8Array): Recipe | undefined {
    return this.byName.get(hex(name));
  }
}
