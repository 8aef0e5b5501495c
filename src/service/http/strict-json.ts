/**
 * JSON as the API accepts it: valid UTF-8, valid JSON, and no object with the same key twice
 * (JSON.parse silently keeps the last one, which lets a request say two things at once).
 */
import { badRequest } from '../errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** The first key that appears twice in one object of already-valid JSON `text`, if any. */
export function duplicateKey(text: string): string | undefined {
  const stack: Array<{ keys: Set<string> | null; expectKey: boolean }> = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string; // decodes escapes: "\u0061" is "a"
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
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badRequest('the body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest('the body must be a JSON object');
  const dup = duplicateKey(text);
  if (dup !== undefined) throw badRequest(`field ${JSON.stringify(dup.slice(0, 40))} appears more than once`);
  for (const k of Object.keys(value)) {
    if (!allowed.includes(k)) throw badRequest(`unknown field ${JSON.stringify(k.slice(0, 40))} (allowed: ${allowed.join(', ') || 'none'})`);
  }
  return value as Record<string, unknown>;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard, padded base64 only (Buffer.from would quietly skip anything else). */
export function decodeBase64(v: unknown, what: string): Uint8Array {
  if (typeof v !== 'string' || !BASE64.test(v)) throw badRequest(`${what} must be standard padded base64`);
  return new Uint8Array(Buffer.from(v, 'base64'));
}
