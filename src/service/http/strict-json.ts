/**
 * JSON as the API accepts it: valid UTF-8, valid JSON, and no object with the same key twice
 * (JSON.parse silently keeps the last one, which lets a request say two things at once). The
 * shape is bounded before JSON.parse builds anything: nesting depth (deep values make later
 * code recurse) and the number of values (a 1.5 MB body of `[],` would become hundreds of
 * thousands of objects). API bodies are flat objects of a few scalars, so the caps are loose.
 */
import { describeValue } from '../protocol/describe-value.js';
import { badRequest } from '../protocol/errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Deepest nesting of arrays/objects accepted. */
export const MAX_JSON_DEPTH = 32;
/** Most values (elements and members, counted by their separators) accepted in one body. */
export const MAX_JSON_VALUES = 1024;

/**
 * Refuses text nested deeper than MAX_JSON_DEPTH or with more than MAX_JSON_VALUES values.
 * Runs on text that may not be JSON at all: one bounded pass, strings skipped.
 */
export function checkJsonShape(text: string): void {
  let depth = 0;
  let values = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      i++;
      while (i < text.length && text.charCodeAt(i) !== 0x22) i += text.charCodeAt(i) === 0x5c /* \ */ ? 2 : 1;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > MAX_JSON_DEPTH) throw badRequest(`the body is nested more than ${MAX_JSON_DEPTH} levels deep`);
      values++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      if (--depth < 0) throw badRequest('the body is not valid JSON');
    } else if (c === 0x2c /* , */) values++;
    if (values > MAX_JSON_VALUES) throw badRequest(`the body holds more than ${MAX_JSON_VALUES} JSON values`);
  }
}

/** The first key that appears twice in one object of already-valid JSON `text`, if any. */
export function duplicateKey(text: string): string | undefined {
  const stack: Array<{ keys: Set<string> | null; expectKey: boolean }> = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      if (j >= text.length) return undefined; // not JSON: JSON.parse says so
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        // Escapes decoded ("\u0061" is "a"); a key without any is its own text.
        const raw = text.slice(i + 1, j);
        const key = raw.includes('\\') ? (JSON.parse(text.slice(i, j + 1)) as string) : raw;
        if (top.keys.has(key)) return key;
        top.keys.add(key);
        top.expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */) stack.push({ keys: new Set(), expectKey: true });
    else if (c === 0x5b /* [ */) stack.push({ keys: null, expectKey: false });
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
    else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return undefined;
}

/** Parses a request body that must be one JSON object whose keys are all in `allowed`. */
export function parseJsonObject(bytes: Uint8Array, allowed: readonly string[]): Record<string, unknown> {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw badRequest('the body is not valid UTF-8');
  }
  checkJsonShape(text);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badRequest('the body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest(`the body must be a JSON object, not ${describeValue(value)}`);
  const dup = duplicateKey(text);
  if (dup !== undefined) throw badRequest(`field ${describeValue(dup)} appears more than once`);
  // Own keys only ("__proto__" is one when JSON.parse makes it), copied onto an object without
  // a prototype, so an absent field reads as undefined and never as something inherited.
  const out = Object.create(null) as Record<string, unknown>;
  for (const k of Object.keys(value)) {
    if (!allowed.includes(k)) throw badRequest(`unknown field ${describeValue(k)} (allowed: ${allowed.join(', ') || 'none'})`);
    out[k] = (value as Record<string, unknown>)[k];
  }
  return out;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard, padded base64 only (Buffer.from would quietly skip anything else). */
export function decodeBase64(v: unknown, what: string): Uint8Array {
  if (typeof v !== 'string') throw badRequest(`${what} must be a base64 string, not ${describeValue(v)}`);
  if (!BASE64.test(v)) throw badRequest(`${what} must be standard padded base64`);
  return new Uint8Array(Buffer.from(v, 'base64'));
}
