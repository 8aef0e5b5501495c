import { parseHandle } from '../args.js';
import type { ToolDef } from '../run.js';

interface Opts {
  key: string;
}

export const evictaik: ToolDef<Opts> = {
  name: 'eve_tools_tpm2_evictaik',
  summary: "Delete one of this application's keys; its handle may then be given to a new key.",
  configure(cmd) {
    cmd
      .requiredOption('-k, --key <handle>', 'persistent handle of the key, e.g. 0x81010000')
      .addHelpText('after', '\nExample:\n  $ eve_tools_tpm2_evictaik -k 0x81010000\n  AIK Pair evicted from persistent handle 0x81010000');
  },
  async run(opts, ctx) {
    const handle = parseHandle(opts.key, '-k');
    ctx.about(handle);
    const client = await ctx.client();
    await client.deleteKey(handle);
    if (ctx.json) await ctx.printJson({ handle, evicted: true });
    else await ctx.print(`AIK Pair evicted from persistent handle ${handle}`);
  },
};
