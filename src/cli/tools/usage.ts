import type { Usage } from '../../service/protocol/messages.js';
import { parseSeconds, parseUint } from '../args.js';
import { usageError } from '../errors.js';
import type { ToolDef } from '../run.js';
import { intervalOf, usageLine, usageTable } from './usage-view.js';

interface UsageOptions {
  watch?: string;
  count?: string;
}

/** Clears a terminal and puts the cursor home: --watch redraws in place. */
const CLEAR = '\x1b[H\x1b[2J';

export const usage: ToolDef<UsageOptions> = {
  name: 'eve_tools_usage',
  summary: "Show this application's resource usage as the host sees it (CPU, memory, network, disk) and its share of the TPM.",
  configure(cmd) {
    cmd
      .option('--watch <seconds>', 'read again every SECONDS: redraws on a terminal, one line per reading otherwise')
      .option('--count <n>', 'with --watch: stop after N readings')
      .addHelpText(
        'after',
        '\nCPU % and rates are over the interval between two readings (--watch). --json prints the raw\n' +
          'counters and the time of each reading (one JSON object per line with --watch).\n\n' +
          'Example:\n  $ eve_tools_usage --watch 5 --count 3 | cat\n  2025-01-01T12:00:00.000Z cpu_s=12.345 mem_bytes=104857600 ...',
      );
  },
  async run(opts, ctx) {
    const intervalMs = opts.watch === undefined ? undefined : parseSeconds(opts.watch, '--watch');
    let count = 1;
    if (opts.count !== undefined) {
      if (intervalMs === undefined) throw usageError('--count needs --watch SECONDS');
      const n = parseUint(opts.count, 1_000_000);
      if (n === undefined || n < 1) throw usageError(`--count: '${opts.count}' is not a number of readings between 1 and 1000000`);
      count = n;
    } else if (intervalMs !== undefined) count = Number.POSITIVE_INFINITY;

    const client = await ctx.client();
    const tty = ctx.io.stdout.isTTY === true && !ctx.json;
    let prev: Usage | undefined;
    for (let i = 0; i < count; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, intervalMs));
      const u = await client.request('usage', {});
      const iv = intervalOf(prev, u);
      prev = u;
      if (ctx.json) await ctx.printJson(u);
      else if (intervalMs === undefined) await ctx.print(usageTable(u, iv));
      else if (tty) await ctx.print(`${CLEAR}${usageTable(u, iv)}`);
      else await ctx.print(usageLine(u, iv));
    }
  },
};
