/**
 * tpm2-decode: TPM 2.0 command/response bytes (hex) → annotated JSON, for debugging TPM traffic.
 * Decodes with the library's own strict unmarshallers, so it accepts exactly what the library
 * accepts and says where anything else breaks (structure path and byte offset).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { TpmDecodeError } from '../tpm/wire/errors.js';
import {
  decodeCommandFrame,
  decodeResponseFrame,
  decodeStructure,
  lookupCommand,
  lookupStructure,
  parseHex,
  roundtrip,
  toJson,
  type RoundtripReport,
} from '../tpm/decode/index.js';
import { COMMANDS } from '../tpm/commands.js';
import { STRUCTURES } from '../tpm/structures.js';

/** Exit codes (documented in --help). */
const EXIT = { OK: 0, UNDECODABLE: 1, USAGE: 2, ROUNDTRIP: 3 } as const;

class UsageError extends Error {}

interface Opts {
  command?: string;
  response?: string | boolean;
  cc?: string;
  sessions?: string;
  structure?: string;
  roundtrip?: boolean;
  compact?: boolean;
}

const commandList = () => [...COMMANDS.values()].map((c) => c.name).join(', ');

function program(): Command {
  return new Command('tpm2-decode')
    .description('Decode TPM 2.0 command and response frames (hex) into annotated JSON.')
    .argument('[hex...]', 'frame bytes in hex (whitespace and a leading 0x allowed); read from stdin when omitted')
    .option('--command <hex>', 'the command frame (pairs with --response <hex>)')
    .option('--response [hex]', 'decode a response frame (needs --cc unless a command is given too)')
    .option('--cc <code>', 'command code of the response: hex (0x15d), decimal (349) or a name (Sign, TPM2_Sign)')
    .option('--sessions <n>', 'number of sessions the command carried (default: read from the response)')
    .addOption(new Option('--structure <name>', 'decode one structure instead of a frame, e.g. TPM2B_PUBLIC, TPMT_SIGNATURE'))
    .option('--roundtrip', 're-encode the decoded JSON and report whether the bytes are identical')
    .option('--compact', 'print JSON on one line')
    .addHelpText(
      'after',
      `
Forms:
  tpm2-decode CMDHEX                       decode a command frame
  tpm2-decode --response --cc Sign RSPHEX  decode a response to the given command
  tpm2-decode CMDHEX RSPHEX                decode a command and its response
  tpm2-decode --command CMDHEX --response RSPHEX
  tpm2-decode --structure TPM2B_PUBLIC HEX decode one structure
  echo CMDHEX | tpm2-decode                hex from stdin

Output: JSON. Byte strings are lowercase hex, UINT64 decimal strings, handles / codes /
attribute words "0x%08x" strings; algorithm IDs, tags, handles and attributes get a sibling
<field>Name / <field>Flags text. A union shows its selected arm, named by its selector field.
An error response shows rc, kind, index, base code name and tpm2-tss's text.

Exit status: 0 decoded (also for a TPM error response); 1 bytes that do not decode (the
message names the structure path and byte offset); 2 bad usage or input (not hex, odd length,
unknown command name or structure); 3 --roundtrip found a difference.

Commands: ${commandList()}
Structures: ${Object.keys(STRUCTURES).join(', ')}
`,
    )
    // Commander's own error lines are replaced by ours (one line, tpm2-decode: prefix).
    .configureOutput({ outputError: () => {} })
    .exitOverride()
    .showHelpAfterError(false);
}

function readStdin(): string {
  if (process.stdin.isTTY) throw new UsageError('no hex given (pass it as an argument or on stdin; see --help)');
  return readFileSync(0, 'utf8');
}

function hexArg(text: string, what: string): Uint8Array {
  try {
    return parseHex(text);
  } catch (e) {
    throw new UsageError(`${what}: ${e instanceof TpmDecodeError ? e.reason : String(e)}`);
  }
}

/** Runs with the given arguments; returns the exit code and what to print. */
function run(argv: string[]): { code: number; out?: string } {
  const cli = program();
  try {
    cli.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version print themselves and exit 0; anything else is a usage error.
      if (e.exitCode === 0) return { code: EXIT.OK };
      throw new UsageError(e.message.replace(/^error: /, ''));
    }
    throw e;
  }
  const o = cli.opts<Opts>();
  const positional = cli.args;
  const print = (v: unknown) => JSON.stringify(toJson(v), null, o.compact ? undefined : 2);
  const report: Record<string, RoundtripReport> = {};
  const result: Record<string, unknown> = {};

  if (o.structure !== undefined) {
    if (o.command !== undefined || o.response !== undefined) throw new UsageError('--structure cannot be combined with --command/--response');
    if (!lookupStructure(o.structure)) throw new UsageError(`unknown structure ${o.structure} (known: ${Object.keys(STRUCTURES).join(', ')})`);
    // One structure only, so several arguments are pieces of its hex (`... 00000001 40000001`).
    const bytes = hexArg(positional.length > 0 ? positional.join('') : readStdin(), 'structure');
    const view = decodeWith('structure', () => decodeStructure(o.structure!, bytes));
    if (o.roundtrip) report.structure = roundtrip('structure', view, bytes);
    return finish(view, report, o, print);
  }

  // Which hex is which: --command/--response values first, then positionals, then stdin.
  const rest = [...positional];
  let commandHex = o.command;
  let responseHex: string | undefined;
  if (typeof o.response === 'string') {
    responseHex = o.response;
    if (commandHex === undefined) commandHex = rest.shift();
  } else if (o.response === true) {
    // Bare --response: with two positionals (or --command) the last is the response.
    if (commandHex === undefined && rest.length === 2) commandHex = rest.shift();
    responseHex = rest.shift() ?? readStdin();
  } else {
    if (commandHex === undefined) commandHex = rest.shift() ?? readStdin();
    responseHex = rest.shift();
  }
  if (rest.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(rest[0]!.slice(0, 20))}: give at most a command and a response`);

  let code: number | string | undefined;
  let sessions: number | undefined;
  if (o.sessions !== undefined) {
    if (!/^[0-3]$/.test(o.sessions)) throw new UsageError(`--sessions must be 0..3, got ${o.sessions}`);
    sessions = Number(o.sessions);
  }
  if (o.cc !== undefined) {
    const d = lookupCommand(o.cc);
    if (!d) throw new UsageError(`unknown command code ${o.cc} (known: ${commandList()})`);
    code = d.code;
  }

  if (commandHex !== undefined) {
    const bytes = hexArg(commandHex, 'command');
    const view = decodeWith('command', () => decodeCommandFrame(bytes));
    if (o.roundtrip) report.command = roundtrip('command', view, bytes);
    result.command = view;
    if (code !== undefined && lookupCommand(code)?.name !== view.command) {
      throw new UsageError(`--cc ${o.cc} does not match the command's code ${view.commandCode} (${view.command})`);
    }
    code = view.commandCode;
    sessions ??= view.sessions.length;
  }
  if (responseHex !== undefined) {
    if (code === undefined) throw new UsageError('decoding a response needs --cc <code> (or the command frame)');
    const bytes = hexArg(responseHex, 'response');
    const c = code;
    const view = decodeWith('response', () => decodeResponseFrame(bytes, c, sessions));
    if (o.roundtrip) report.response = roundtrip('response', view, bytes);
    result.response = view;
  }
  const single = Object.keys(result).length === 1 ? Object.values(result)[0] : result;
  return finish(single, report, o, print);
}

function decodeWith<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof TpmDecodeError) throw new DecodeFailure(`cannot decode ${what}: ${e.message}`);
    throw e;
  }
}

class DecodeFailure extends Error {}

function finish(view: unknown, report: Record<string, RoundtripReport>, o: Opts, print: (v: unknown) => string): { code: number; out: string } {
  if (!o.roundtrip) return { code: EXIT.OK, out: print(view) };
  const parts = Object.values(report);
  const identical = parts.every((p) => p.identical);
  const rt = parts.length === 1 ? parts[0]! : { identical, ...report };
  return { code: identical ? EXIT.OK : EXIT.ROUNDTRIP, out: print({ ...(view as object), roundtrip: rt }) };
}

function main(): void {
  try {
    const { code, out } = run(process.argv.slice(2));
    if (out !== undefined) process.stdout.write(out + '\n');
    if (code === EXIT.ROUNDTRIP) process.stderr.write('tpm2-decode: re-encoding did not reproduce the input bytes\n');
    process.exitCode = code;
  } catch (e) {
    const usage = e instanceof UsageError;
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`tpm2-decode: ${msg.replace(/\s*\n\s*/g, ' ')}\n`);
    process.exitCode = usage ? EXIT.USAGE : EXIT.UNDECODABLE;
  }
}

main();
