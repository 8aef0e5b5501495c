import type { ToolDef } from '../run.js';

export const listkeys: ToolDef = {
  name: 'eve_tools_tpm2_listkeys',
  summary: "List this application's keys: handle, type, hash, creation time.",
  configure(cmd) {
    cmd.addHelpText(
      'after',
      '\nExample:\n  $ eve_tools_tpm2_listkeys\n  HANDLE      TYPE  HASH    CREATED\n  0x81010000  rsa   sha256  2025-01-01T12:00:00.000Z',
    );
  },
  async run(_opts, ctx) {
    const client = await ctx.client();
    const keys = await client.listKeys();
    if (ctx.json) {
      await ctx.printJson({
        keys: keys.map((k) => ({ handle: k.handle, type: k.type, hashAlg: k.hashAlg, name: k.name, createdAt: k.createdAt })),
      });
      return;
    }
    if (keys.length === 0) {
      await ctx.print('no keys (create one with eve_tools_tpm2_genaik)');
      return;
    }
    const rows = [['HANDLE', 'TYPE', 'HASH', 'CREATED'], ...keys.map((k) => [k.handle, k.type, k.hashAlg, k.createdAt ?? ''])];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
    await ctx.print(rows.map((r) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join('  ')).join('\n'));
  },
};
