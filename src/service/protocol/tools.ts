/**
 * The container tools, by short name: the one list the multi-call binary, the guest installer
 * written by `tenant add`, deploy/install.sh and package.json's bins follow (a test checks the
 * last two, which are not TypeScript). Adding a tool: its module in src/cli/tools/, its bin file
 * src/bin/eve_tools_tpm2_NAME.ts, a name here, and the same name in those two files.
 */
export const TOOL_PREFIX = 'eve_tools_tpm2_';
export const TOOL_NAMES = ['genaik', 'pubgetaik', 'sign', 'listkeys', 'evictaik', 'capabilities', 'pcrread', 'quote', 'ekpub', 'ekcert', 'activatecredential', 'certify'] as const;
export type ToolName = (typeof TOOL_NAMES)[number];
/** A tool's command name, as installed: eve_tools_tpm2_sign. */
export const toolCommand = (name: ToolName): string => TOOL_PREFIX + name;
