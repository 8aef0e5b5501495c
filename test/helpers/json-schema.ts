/**
 * A small JSON Schema (2020-12) validator for the tests: the subset docs/openapi.json uses —
 * type, properties, required, additionalProperties, enum, const, pattern, minLength/maxLength,
 * items, minItems, minimum/maximum, oneOf/anyOf/allOf and `$ref` to `#/…` in the same document.
 * A keyword it does not know is an error, never ignored: a schema that says more than this
 * validator checks would otherwise pass for stricter than it is.
 */

export type Schema = boolean | { [k: string]: unknown };

/** Keywords that only annotate (no effect on validity). */
const ANNOTATIONS = new Set(['description', 'title', 'examples', 'example', 'format', 'contentMediaType', 'contentEncoding', 'deprecated', 'readOnly', 'writeOnly', 'default', '$comment', '$defs']);
const CHECKED = new Set([
  '$ref', 'type', 'properties', 'required', 'additionalProperties', 'enum', 'const', 'pattern', 'minLength', 'maxLength',
  'items', 'minItems', 'maxItems', 'minimum', 'maximum', 'oneOf', 'anyOf', 'allOf',
]);

/** The value at a `#/a/b` JSON pointer (RFC 6901) in `root`, or an Error. */
export function resolvePointer(root: unknown, ref: string): unknown {
  if (!ref.startsWith('#')) throw new Error(`only same-document references are supported: ${ref}`);
  let at: unknown = root;
  for (const raw of ref.slice(1).split('/').slice(1)) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (at === null || typeof at !== 'object' || !Object.hasOwn(at, key)) throw new Error(`unresolved $ref ${ref}`);
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function hasType(v: unknown, t: string): boolean {
  switch (t) {
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'object':
      return typeOf(v) === 'object';
    default:
      return typeOf(v) === t;
  }
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The errors of `value` against `schema` (empty: valid). `root` resolves `$ref`s. */
export function validate(schema: Schema, value: unknown, root: unknown = schema, path = '$'): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${path}: no value is allowed here`];
  const errs: string[] = [];
  for (const k of Object.keys(schema)) {
    if (!CHECKED.has(k) && !ANNOTATIONS.has(k)) throw new Error(`json-schema: keyword "${k}" at ${path} is not supported by this validator`);
  }
  const s = schema as Record<string, unknown>;
  if (typeof s.$ref === 'string') errs.push(...validate(resolvePointer(root, s.$ref) as Schema, value, root, path));
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.some((t) => hasType(value, t))) return [...errs, `${path}: expected ${types.join(' or ')}, got ${typeOf(value)}`];
  }
  if (s.enum !== undefined && !(s.enum as unknown[]).some((e) => deepEqual(e, value))) errs.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(s.enum)}`);
  if (s.const !== undefined && !deepEqual(s.const, value)) errs.push(`${path}: expected ${JSON.stringify(s.const)}, got ${JSON.stringify(value)}`);
  if (typeof value === 'string') {
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(value)) errs.push(`${path}: ${JSON.stringify(value.slice(0, 80))} does not match /${s.pattern}/`);
    if (typeof s.minLength === 'number' && [...value].length < s.minLength) errs.push(`${path}: shorter than ${s.minLength}`);
    if (typeof s.maxLength === 'number' && [...value].length > s.maxLength) errs.push(`${path}: longer than ${s.maxLength}`);
  }
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) errs.push(`${path}: ${value} < minimum ${s.minimum}`);
    if (typeof s.maximum === 'number' && value > s.maximum) errs.push(`${path}: ${value} > maximum ${s.maximum}`);
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === 'number' && value.length < s.minItems) errs.push(`${path}: fewer than ${s.minItems} items`);
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) errs.push(`${path}: more than ${s.maxItems} items`);
    if (s.items !== undefined) value.forEach((v, i) => errs.push(...validate(s.items as Schema, v, root, `${path}[${i}]`)));
  }
  if (typeOf(value) === 'object') {
    const o = value as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, Schema>;
    for (const r of (s.required ?? []) as string[]) if (!Object.hasOwn(o, r)) errs.push(`${path}: required property "${r}" is missing`);
    for (const [k, v] of Object.entries(o)) {
      if (Object.hasOwn(props, k)) errs.push(...validate(props[k]!, v, root, `${path}.${k}`));
      else if (s.additionalProperties !== undefined) {
        const extra = validate(s.additionalProperties as Schema, v, root, `${path}.${k}`);
        if (extra.length > 0) errs.push(s.additionalProperties === false ? `${path}: property "${k}" is not in the schema` : extra[0]!);
      }
    }
  }
  if (s.allOf !== undefined) for (const sub of s.allOf as Schema[]) errs.push(...validate(sub, value, root, path));
  if (s.anyOf !== undefined) {
    const results = (s.anyOf as Schema[]).map((sub) => validate(sub, value, root, path));
    if (!results.some((r) => r.length === 0)) errs.push(`${path}: matches none of anyOf (${results.map((r) => r[0]).join(' | ')})`);
  }
  if (s.oneOf !== undefined) {
    const results = (s.oneOf as Schema[]).map((sub) => validate(sub, value, root, path));
    const ok = results.filter((r) => r.length === 0).length;
    if (ok !== 1) errs.push(`${path}: matches ${ok} of oneOf, not exactly one${ok === 0 ? ` (${results.map((r) => r[0]).join(' | ')})` : ''}`);
  }
  return errs;
}

/** Every `$ref` string anywhere in `doc`, with where it is. */
export function allRefs(doc: unknown, path = '$'): Array<{ ref: string; at: string }> {
  if (doc === null || typeof doc !== 'object') return [];
  const out: Array<{ ref: string; at: string }> = [];
  for (const [k, v] of Object.entries(doc)) {
    if (k === '$ref' && typeof v === 'string') out.push({ ref: v, at: path });
    else out.push(...allRefs(v, `${path}.${k}`));
  }
  return out;
}

/**
 * Keywords anywhere in `schema` that validate() would not understand, as `path: keyword`
 * (validate() only meets the subschemas a value leads it to; this walks all of them).
 */
export function unsupportedKeywords(schema: unknown, path = '$'): string[] {
  if (typeof schema === 'boolean') return [];
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) return [`${path}: not a schema`];
  const out: string[] = [];
  for (const [k, v] of Object.entries(schema)) {
    if (!CHECKED.has(k) && !ANNOTATIONS.has(k)) out.push(`${path}: ${k}`);
    else if (k === 'properties') for (const [p, sub] of Object.entries(v as object)) out.push(...unsupportedKeywords(sub, `${path}.properties.${p}`));
    else if (k === 'items' || k === 'additionalProperties') out.push(...unsupportedKeywords(v, `${path}.${k}`));
    else if (k === 'oneOf' || k === 'anyOf' || k === 'allOf') (v as unknown[]).forEach((sub, i) => out.push(...unsupportedKeywords(sub, `${path}.${k}[${i}]`)));
  }
  return out;
}
