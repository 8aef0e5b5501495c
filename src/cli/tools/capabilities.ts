import type { Capabilities } from '../../service/protocol/messages.js';
import type { ToolDef } from '../run.js';

/** Rows of cells, columns padded to their widest cell (the last one not padded). */
function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join('  ')).join('\n');
}

export function capabilitiesText(c: Capabilities): string {
  const k = c.quota.keys;
  const facts = table([
    ['tenant', c.tenant],
    ['keys', `${k.used} of ${k.max} used, ${k.left} left`],
    ['key types', c.keyTypes.join(', ')],
    // An older service sends no hashAlgsFrom; "vocabulary": the TPM could not be asked yet.
    ['hashes', c.hashAlgsFrom === 'vocabulary' ? `${c.hashAlgs.join(', ')} (the API's; the TPM was not reachable to say which it has)` : c.hashAlgs.join(', ')],
    ['sign formats', c.signFormats.join(', ')],
    ['public formats', c.publicFormats.join(', ')],
  ]);
  const ops = table([['OPERATION', 'METHOD', 'PATH'], ...c.operations.map((o) => [o.op, o.method, o.path])]);
  return `${facts}\n\n${ops}`;
}

export const capabilities: ToolDef = {
  name: 'eve_tools_tpm2_capabilities',
  summary: 'Show what this application may do: the service operations, key types, hashes and formats, and its key quota.',
  configure(cmd) {
    cmd.addHelpText(
      'after',
      '\nExample:\n  $ eve_tools_tpm2_capabilities\n  tenant          app\n  keys            1 of 8 used, 7 left\n  key types       rsa, ecc\n  hashes          sha1, sha256, sha384, sha512\n  ...',
    );
  },
  async run(_opts, ctx) {
    const client = await ctx.client();
    const c = await client.request('capabilities', {});
    if (ctx.json) {
      // The documented fields only, whatever a newer service adds.
      const { tenant, operations, keyTypes, hashAlgs, hashAlgsFrom, signFormats, publicFormats, quota } = c;
      await ctx.printJson({ tenant, operations, keyTypes, hashAlgs, ...(hashAlgsFrom === undefined ? {} : { hashAlgsFrom }), signFormats, publicFormats, quota });
      return;
    }
    await ctx.print(capabilitiesText(c));
  },
};
