/**
 * A request value named in an error message, safely: never String(v) on an object (a body can
 * carry {"toString":1}, and a deeply nested array makes join() recurse until the stack runs
 * out), strings cut short, and everything outside printable ASCII written as \uXXXX so that
 * look-alikes ("ｒｓａ", "rsa\u200b") are visibly not what they resemble.
 */

/** Code points of a string shown at most. */
const MAX_SHOWN = 40;

/** `s` as a quoted, escaped, bounded literal: "ab\u00e9…". */
export function quoteText(s: string): string {
  let out = '"';
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    if (n++ === MAX_SHOWN) return out + '"…';
    const c = s.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) out += '\\' + s[i];
    else if (c >= 0x20 && c < 0x7f) out += s[i];
    else out += '\\u' + c.toString(16).padStart(4, '0');
  }
  return out + '"';
}

/** A short, side-effect-free description of any value: its text for scalars, its kind otherwise. */
export function describeValue(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return quoteText(v);
    case 'number':
      return Object.is(v, -0) ? '-0' : Number.isFinite(v) ? `${v}` : 'a number out of range';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'undefined':
      return 'nothing';
    case 'object':
      return v === null ? 'null' : Array.isArray(v) ? 'an array' : 'an object';
    default:
      return `a ${typeof v}`;
  }
}
