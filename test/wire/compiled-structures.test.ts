/**
 * Compiled codecs against the interpreted ones (their reference), for every structure of the
 * schema table: on random valid values (same bytes, same decoded value), on corrupted values
 * (same TpmEncodeError: message and path), and on damaged or arbitrary bytes (same
 * TpmDecodeError: message, path and offset — or the same value), decoded also in the middle of
 * a reader that has a path already, which both must leave where it was on failure.
 *
 * Counts: HOT_RUNS for the structures of the hot command frames, RUNS for the rest;
 * EVE_FUZZ_RUNS=100000 runs the 10⁵ per structure for every property.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { STRUCTURES } from '../../src/tpm/structures.js';
import { decode, encode, type AnyCodec } from '../../src/tpm/wire/codec.js';
import { interpreted } from '../../src/tpm/wire/compile.js';
import { Reader } from '../../src/tpm/wire/reader.js';
import { arbitraryOf } from '../fuzz/arbitraries.js';
import { corrupted, damaged, expectSame, fuzzRuns, fuzzTimeout, outcome, type Outcome } from './compiled-helpers.js';

/** What the bench's frames carry (TPM2B_PUBLIC, TPMT_SIGNATURE, …): the most runs. */
const HOT = new Set(['TPM2B_PUBLIC', 'TPMT_PUBLIC', 'TPMT_SIGNATURE', 'TPM2B_SENSITIVE_CREATE', 'TPM2B_CREATION_DATA', 'TPMT_TK_HASHCHECK', 'TPML_PCR_SELECTION', 'TPMT_SIG_SCHEME']);
const HOT_RUNS = fuzzRuns(3000);
const RUNS = fuzzRuns(600);

const entries = Object.entries(STRUCTURES);

/** Decodes `bytes` after a 3-byte prefix, under a path: the reader's offset and path after. */
function inReader(c: AnyCodec, bytes: Uint8Array): Outcome & { after: [number, string] } {
  const buf = new Uint8Array(bytes.length + 3);
  buf.set(bytes, 3);
  const r = new Reader(buf);
  r.offset = 3;
  r.path.push('outer');
  const o = outcome(() => c.decode(r));
  return { ...o, after: [r.offset, r.path.join('.')] };
}

describe.each(entries)('compiled %s', (name, codec) => {
  const ref = interpreted(codec);
  const runs = HOT.has(name) ? HOT_RUNS : RUNS;
  const valid = arbitraryOf(codec);

  it('encodes and decodes valid values as the interpreted codec does', { timeout: fuzzTimeout }, () => {
    fc.assert(
      fc.property(valid, (v) => {
        const bytes = encode(ref, v);
        const mine = encode(codec, v);
        if (Buffer.compare(mine, bytes) !== 0) expect(mine).toStrictEqual(bytes);
        expectSame(outcome(() => decode(codec, bytes)), outcome(() => decode(ref, bytes)));
      }),
      { numRuns: runs },
    );
  });

  it('refuses corrupted values with the same error and path', { timeout: fuzzTimeout }, () => {
    const seen = { ok: 0, failed: 0 };
    fc.assert(
      fc.property(corrupted(valid), (v) => {
        expectSame(
          outcome(() => encode(codec, v)),
          outcome(() => encode(ref, v)),
          seen,
        );
      }),
      { numRuns: runs },
    );
    expect(seen.failed).toBeGreaterThan(0);
  });

  it('decodes damaged and arbitrary bytes to the same value or the same error', { timeout: fuzzTimeout }, () => {
    const seen = { ok: 0, failed: 0 };
    const bytes = fc.oneof({ arbitrary: damaged(valid.map((v) => encode(ref, v))), weight: 4 }, { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 1 });
    fc.assert(
      fc.property(bytes, (b) => {
        expectSame(outcome(() => decode(codec, b)), outcome(() => decode(ref, b)), seen);
        const mine = inReader(codec, b);
        const theirs = inReader(ref, b);
        expectSame(mine, theirs);
        // A failed decode consumes nothing and leaves the path as it was.
        if (!mine.ok) expect(mine.after).toEqual([3, 'outer']);
      }),
      { numRuns: runs },
    );
    expect(seen.failed).toBeGreaterThan(0);
  });
});

it('covers every structure of the schema table', () => {
  expect(entries.length).toBeGreaterThan(30);
});
