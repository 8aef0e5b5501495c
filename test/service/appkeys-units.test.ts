/**
 * General keys' pieces that need no TPM (issue 12): registry entries parsed strictly (files
 * before issue 12 are AKs), the creation fields of POST /v1/keys, the parents directory's files.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keyShape, parseRegistry, serializeRegistry } from '../../src/service/keys/registry.js';
import { parseGeneralShape } from '../../src/service/keys/general-shape.js';
import { AppParents, parentFileName } from '../../src/service/keys/app-parents.js';
import { ServiceError } from '../../src/service/protocol/errors.js';

const base = { handle: '0x81010000', owner: '0123456789abcdef', tenant: 'app', hashAlg: 'sha256', name: '000b' + '00'.repeat(32), createdAt: '2026-01-01T00:00:00.000Z', state: 'committed', store: 'blobs' };
const file = (...keys: object[]): string => JSON.stringify({ version: 1, keys: keys.map((k, i) => ({ ...base, handle: `0x8101000${i}`, ...k })) });

describe('registry entries of general keys', () => {
  it('reads entries without kind as AKs, and general entries with their shape; writes them back the same', () => {
    const entries = parseRegistry(
      file({ type: 'ecc' }, { type: 'rsa', kind: 'general', usage: 'sign', scheme: 'rsapss', bits: 3072 }, { type: 'ecc', kind: 'general', usage: 'decrypt', scheme: 'ecdh', curve: 'P-384' }),
    );
    expect(entries.map(keyShape)).toEqual([
      { kind: 'ak', usage: 'sign', scheme: 'ecdsa', curve: 'P-256' },
      { kind: 'general', usage: 'sign', scheme: 'rsapss', bits: 3072 },
      { kind: 'general', usage: 'decrypt', scheme: 'ecdh', curve: 'P-384' },
    ]);
    expect(entries[0]).not.toHaveProperty('kind');
    expect(parseRegistry(serializeRegistry(entries))).toEqual(entries);
  });

  it.each([
    [{ type: 'ecc', usage: 'sign' }, /AK with general-key fields/],
    [{ type: 'ecc', kind: 'secret' }, /invalid kind/],
    [{ type: 'ecc', kind: 'general', scheme: 'ecdsa', curve: 'P-256' }, /invalid usage/],
    [{ type: 'rsa', kind: 'general', usage: 'sign', scheme: 'oaep', bits: 2048 }, /scheme that does not fit a rsa sign key/],
    [{ type: 'rsa', kind: 'general', usage: 'sign', scheme: 'rsassa' }, /invalid RSA key size/],
    [{ type: 'rsa', kind: 'general', usage: 'sign', scheme: 'rsassa', bits: 2048, curve: 'P-256' }, /invalid RSA key size/],
    [{ type: 'ecc', kind: 'general', usage: 'sign', scheme: 'ecdsa', curve: 'P-521' }, /invalid curve/],
    [{ type: 'ecc', kind: 'general', usage: 'sign', scheme: 'ecdsa', curve: 'P-256', bits: 256 }, /invalid curve/],
  ])('refuses %j', (entry, why) => {
    expect(() => parseRegistry(file(entry))).toThrow(why);
  });
});

describe('POST /v1/keys general fields', () => {
  const shape = (body: Record<string, unknown>, type: 'rsa' | 'ecc') => parseGeneralShape(body, type);
  const refusal = (body: Record<string, unknown>, type: 'rsa' | 'ecc'): ServiceError => {
    try {
      shape(body, type);
    } catch (e) {
      if (e instanceof ServiceError) return e;
      throw e;
    }
    throw new Error('expected a refusal');
  };

  it('fills in the defaults: sign, the first scheme that fits, RSA-2048 or P-256', () => {
    expect(shape({}, 'rsa')).toBeUndefined();
    expect(shape({ kind: 'ak' }, 'ecc')).toBeUndefined();
    expect(shape({ kind: 'general' }, 'rsa')).toEqual({ usage: 'sign', scheme: 'rsassa', bits: 2048 });
    expect(shape({ kind: 'general', usage: 'decrypt' }, 'rsa')).toEqual({ usage: 'decrypt', scheme: 'oaep', bits: 2048 });
    expect(shape({ kind: 'general' }, 'ecc')).toEqual({ usage: 'sign', scheme: 'ecdsa', curve: 'P-256' });
    expect(shape({ kind: 'general', usage: 'decrypt', curve: 'P-384' }, 'ecc')).toEqual({ usage: 'decrypt', scheme: 'ecdh', curve: 'P-384' });
  });

  it('refuses with 400s that say what fits; hostile values are named by their kind', () => {
    expect(refusal({ kind: 'general', scheme: 'rsapss', usage: 'decrypt' }, 'rsa').message).toMatch(/use oaep/);
    expect(refusal({ kind: 'general', bits: { toString: 1 } }, 'rsa').message).toMatch(/2048 or 3072/);
    expect(refusal({ kind: ['general'] }, 'rsa')).toMatchObject({ status: 400 });
    expect(refusal({ kind: 'general', usage: 'x'.repeat(10_000) }, 'ecc').message.length).toBeLessThan(300);
    expect(refusal({ scheme: 'rsassa' }, 'rsa').message).toMatch(/general keys only/);
  });
});

describe('the parents directory', () => {
  it('names files after records (legacy ones without a colon) and reports files that do not match', async () => {
    expect(parentFileName('0123456789abcdef')).toBe('0123456789abcdef.json');
    expect(parentFileName('legacy:app.1')).toBe('legacy-app.1.json');
    const dir = await mkdtemp(join(tmpdir(), 'parents-'));
    try {
      await writeFile(join(dir, 'fedcba9876543210.json'), JSON.stringify({ owner: '0123456789abcdef', public: '', private: '' }));
      await writeFile(join(dir, 'legacy-x.json'), '{ torn');
      const parents = new AppParents(dir);
      const problems = parents.loadAllSync();
      expect(problems.map((p) => p.file).sort()).toEqual(['fedcba9876543210.json', 'legacy-x.json']);
      expect(problems[0]!.problem).toMatch(/does not match the file name|JSON/);
      expect(parents.owners()).toEqual([]);
      // Kept for the operator: nothing is deleted at start-up.
      expect((await readdir(dir)).sort()).toEqual(['fedcba9876543210.json', 'legacy-x.json']);
      await parents.destroy('legacy:absent'); // absent: nothing
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
