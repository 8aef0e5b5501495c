/**
 * The container tools, by short name: the one list the multi-call binary, the guest installer
 * written by `tenant add`, deploy/install.sh and package.json's bins follow (a test checks the
 * last two, which are not TypeScript). Adding a tool: its module in src/cli/tools/, its bin file
 * src/bin/COMMAND.ts, a name here (and in NOT_TPM if its subject is not the TPM), and its
 * command in those two files.
 */
/** Every tool's command starts so. */
export const TOOLS_PREFIX = 'eve_tools_';
/** The TPM tools' commands: eve_tools_tpm2_sign. */
export const TOOL_PREFIX = 'eve_tools_tpm2_';
export const TOOL_NAMES = ['genaik', 'pubgetaik', 'sign', 'listkeys', 'evictaik', 'capabilities', 'pcrread', 'quote', 'ekpub', 'ekcert', 'activatecredential', 'certify', 'usage', 'genkey', 'rsadecrypt', 'ecdh', 'csr', 'cert', 'tcti'] as const;
export type ToolName = (typeof TOOL_NAMES)[number];
/** Tools whose subject is not the TPM: their command is eve_tools_NAME (eve_tools_usage). */
export const NOT_TPM: readonly ToolName[] = ['usage'];
/** A tool's command name, as installed: eve_tools_tpm2_sign, eve_tools_usage. */
export const toolCommand = (name: ToolName): string => (NOT_TPM.includes(name) ? TOOLS_PREFIX : TOOL_PREFIX) + name;
