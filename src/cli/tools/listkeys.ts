import type { KeySummary } from '../service.js';
import type { ToolDef } from '../run.js';

/** The key's size: RSA bits or the ECC curve (absent from a service before issue 12: blank). */
const sizeOf = (k: KeySummary): string => (k.type === 'rsa' ? (k.bits !== undefined ? String(k.bits) : '') : (k.curve ?? ''));

export const listkeys: ToolDef = {
  name: 'eve_tools_tpm2_listkeys',
  summary: "List this application's keys: handle, kind, type, usage, scheme, hash, creation time.",
  configure(cmd) {
    cmd.addHelpText(
      'after',
      '\nExample:\n  $ eve_tools_tpm2_listkeys\n  HANDLE      TYPE  HASH    CREATED\n  0x81010000  rsa   sha256  2025-01-01T12:00:00.000Z\n' +
        '\nWith general keys (genkey) among them, the table also has KIND, SIZE, USAGE and SCHEME:\n' +
        '  HANDLE      KIND     TYPE  SIZE   USAGE    SCHEME  HASH    CREATED\n' +
        '  0x81010000  ak       rsa   2048   sign     rsassa  sha256  2025-01-01T12:00:00.000Z\n' +
        '  0x81010001  general  ecc   P-256  decrypt  ecdh    sha256  2025-01-01T12:00:05.000Z',
    );
  },
  async run(_opts, ctx) {
    const client = await ctx.client();
    const keys = await client.listKeys();
    if (ctx.json) {
      await ctx.printJson({
        keys: keys.map((k) => ({
          handle: k.handle,
          kind: k.kind,
          type: k.type,
          usage: k.usage,
          scheme: k.scheme,
          ...(k.bits !== undefined ? { bits: k.bits } : {}),
          ...(k.curve !== undefined ? { curve: k.curve } : {}),
          hashAlg: k.hashAlg,
          name: k.name,
          createdAt: k.createdAt,
        })),
      });
      return;
    }
    if (keys.length === 0) {
      await ctx.print('no keys (create one with eve_tools_tpm2_genaik)');
      return;
    }
    // AKs alone keep the table of before (scripts read it); general keys need the kind and usage.
    const full = keys.some((k) => k.kind !== 'ak');
    const rows = full
      ? [['HANDLE', 'KIND', 'TYPE', 'SIZE', 'USAGE', 'SCHEME', 'HASH', 'CREATED'], ...keys.map((k) => [k.handle, k.kind, k.type, sizeOf(k), k.usage, k.scheme, k.hashAlg, k.createdAt ?? ''])]
      : [['HANDLE', 'TYPE', 'HASH', 'CREATED'], ...keys.map((k) => [k.handle, k.type, k.hashAlg, k.createdAt ?? ''])];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
    await ctx.print(rows.map((r) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join('  ')).join('\n'));
  },
};
