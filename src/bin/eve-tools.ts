/**
 * eve-tools: every eve_tools_* tool in one file (commander and the client bundled once),
 * small enough to embed in cloud-init user-data. It runs the tool its invoked name says
 * (`eve_tools_tpm2_sign` as a symlink to, or a wrapper around, this file), or the tool named by
 * its first argument: `eve-tools sign …` / `eve-tools eve_tools_tpm2_sign …` / `eve-tools usage`.
 */
import { basename } from 'node:path';
import { createServiceClient } from '../cli/client.js';
import { main, type ToolDef } from '../cli/run.js';
import { TOOL_DEFS } from '../cli/tools/index.js';
import { TOOL_NAMES } from '../service/protocol/tools.js';

/** By command (eve_tools_tpm2_sign, eve_tools_usage) and by short name (sign, usage). */
const TOOLS = new Map<string, ToolDef<never>>(TOOL_NAMES.flatMap((n) => [[TOOL_DEFS[n].name, TOOL_DEFS[n]] as const, [n, TOOL_DEFS[n]] as const]));

const toolNamed = (name: string): ToolDef<never> | undefined => TOOLS.get(name);

const invoked = basename(process.argv[1] ?? '').replace(/\.(?:c?js)$/, '');
let tool = toolNamed(invoked);
if (!tool) {
  // Called by its own name: the tool is the first argument, removed before the tool parses.
  const arg = process.argv[2];
  tool = arg === undefined ? undefined : toolNamed(arg);
  if (!tool) {
    const names = TOOL_NAMES.join(', ');
    const usage = `usage: eve-tools TOOL [options] (TOOL: ${names}), or run it by its command (eve_tools_tpm2_TOOL, eve_tools_usage)\n`;
    if (arg === '-h' || arg === '--help') {
      process.stdout.write(usage);
      process.exit(0);
    }
    process.stderr.write(arg === undefined ? usage : `eve-tools: unknown tool '${arg}' (one of: ${names}); try 'eve-tools TOOL --help'\n`);
    process.exit(2);
  }
  process.argv.splice(2, 1);
}
main(tool, createServiceClient);
