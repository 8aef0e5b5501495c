/**
 * What every tool shares: commander set-up with the common options, settings resolution, the
 * client, error reporting (one line on stderr, `--json` error object on stdout) and exit codes.
 *
 * A tool is a ToolDef; runTool() runs it against an IO object so tests can run a tool in-process
 * with fake streams and a fake client, and main() runs it against the real process.
 */
import { Command, CommanderError, Option } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import { parseSeconds } from './args.js';
import { resolveService, type ServiceSettings } from './config.js';
import { CliError, EXIT, EXIT_NAMES, commanderLine } from './errors.js';
import { removePendingTemps, writeStdout } from './output.js';
import { toCliError, type ClientFactory, type ClientLike } from './service.js';

export const VERSION: string = pkg.version;

export interface OutStream extends NodeJS.WritableStream {
  isTTY?: boolean;
  columns?: number;
}

export interface CliIO {
  env: NodeJS.ProcessEnv;
  stdout: OutStream;
  stderr: OutStream;
  stdin: NodeJS.ReadableStream;
  /** How to make a client; main() passes the real ServiceClient. */
  createClient: ClientFactory;
}

export interface CommonOptions {
  service?: string;
  secretFile?: string;
  timeout?: string;
  json?: boolean;
}

export interface ToolContext {
  io: CliIO;
  name: string;
  json: boolean;
  /** Resolved lazily: --help and usage errors never read the config file. */
  settings(): ServiceSettings;
  /** The client, created on first use with the resolved settings. */
  client(): Promise<ClientLike>;
  /** Prints to stdout and waits until it is handed over. */
  print(text: string): Promise<void>;
  printJson(value: unknown): Promise<void>;
  /** One stderr line prefixed with the tool name. */
  warn(text: string): void;
  /** Sets the handle named in error messages ("key 0x81010000 is not yours"). */
  about(handle: string): void;
}

export interface ToolDef<O = Record<string, unknown>> {
  name: string;
  summary: string;
  /** Adds the tool's own options and help text. */
  configure(cmd: Command): void;
  run(opts: O & CommonOptions, ctx: ToolContext): Promise<void>;
}

const COMMON_HELP = `
Service address and secret (flag > environment > config file > default):
  --service, EVE_TOOLS_SERVICE       vsock:CID:PORT (default vsock:2:8877), unix:/PATH, tcp:HOST:PORT
  --secret-file, EVE_TOOLS_SECRET    the application's secret (file content / value)
  EVE_TOOLS_CONFIG                   config file (default /etc/eve-tools/config.json; none: no file)

Exit status: 0 ok, 1 general, 2 usage, 3 identity/key not yours, 4 service unreachable,
  5 unsupported, 6 file, 7 TPM error, 8 timeout, 9 busy, 10 quota/conflict, 130 interrupted.
  See README.md (EXIT STATUS).`;

function buildProgram<O>(def: ToolDef<O>, io: CliIO, onAction: (opts: Record<string, unknown>) => Promise<void>): Command {
  const cmd = new Command(def.name);
  cmd
    .description(def.summary)
    .helpOption('-h, --help', 'print this help and exit')
    .helpCommand(false)
    .allowExcessArguments(false)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      writeErr: (s) => void io.stderr.write(s),
      // Errors are printed by us, as one line, after commander throws.
      outputError: () => {},
      getOutHelpWidth: () => io.stdout.columns ?? 80,
      getErrHelpWidth: () => io.stderr.columns ?? 80,
    });
  def.configure(cmd);
  cmd
    .addOption(new Option('--service <address>', 'service address: vsock:CID:PORT, unix:/PATH or tcp:HOST:PORT'))
    .addOption(new Option('--secret-file <file>', "file holding the application's secret"))
    .addOption(new Option('--timeout <seconds>', 'give up after this many seconds without progress'))
    .addOption(new Option('--json', 'print the result (or the error) as JSON on stdout'))
    .version(`${def.name} ${VERSION}`, '-v, --version', 'print the version and exit')
    .addHelpText('after', COMMON_HELP)
    .action(async (opts: Record<string, unknown>) => onAction(opts));
  return cmd;
}

export async function runTool<O>(def: ToolDef<O>, argv: string[], io: CliIO): Promise<number> {
  let json = argv.includes('--json');
  let handle: string | undefined;
  let settings: ServiceSettings | undefined;
  let client: ClientLike | undefined;
  let opts: CommonOptions = {};

  const warn = (text: string): void => void io.stderr.write(`${def.name}: ${text}\n`);
  const getSettings = (): ServiceSettings => {
    if (!settings) {
      settings = resolveService({ service: opts.service, secretFile: opts.secretFile }, io.env);
      for (const w of settings.warnings) warn(w);
    }
    return settings;
  };

  const ctx: ToolContext = {
    io,
    name: def.name,
    get json() {
      return json;
    },
    settings: getSettings,
    async client() {
      if (!client) {
        const s = getSettings();
        const timeoutMs = opts.timeout !== undefined ? parseSeconds(opts.timeout) : undefined;
        client = await io.createClient({
          address: s.address,
          ...(s.secret !== undefined ? { secret: s.secret } : {}),
          ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        });
      }
      return client;
    },
    print: (text) => writeStdout(text.endsWith('\n') ? text : `${text}\n`, io.stdout),
    printJson: (value) => writeStdout(`${JSON.stringify(value)}\n`, io.stdout),
    warn,
    about(h) {
      handle = h;
    },
  };

  const program = buildProgram(def, io, async (o) => {
    opts = o as CommonOptions;
    json = opts.json === true;
    if (opts.timeout !== undefined) parseSeconds(opts.timeout); // usage error before any work
    await def.run(o as O & CommonOptions, ctx);
  });

  try {
    // Commander checks required options before unknown ones; a typo (`--mesage`) should be
    // reported as itself, not as the missing option it was meant to be. A throwaway copy of the
    // program finds unknown options without running anything.
    const isHelp = (a: string) => a === '-h' || a === '--help';
    const unknown = buildProgram(def, io, async () => {})
      .parseOptions(argv)
      .unknown.find((a) => a.startsWith('-') && a !== '-' && !isHelp(a));
    // unknownOption is commander's own reporter (with its "Did you mean" suggestion); untyped.
    if (unknown !== undefined && !argv.some(isHelp)) (program as unknown as { unknownOption(flag: string): never }).unknownOption(unknown);
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.OK;
  } catch (e) {
    let err: CliError;
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') {
        return EXIT.OK;
      }
      err = new CliError(`${commanderLine(e)} (see --help)`, EXIT.USAGE, 'USAGE');
    } else {
      err = toCliError(e, { settings: settings ?? fallbackSettings(), ...(handle ? { handle } : {}) });
    }
    report(def.name, err, json, io);
    return err.exitCode;
  } finally {
    await client?.close?.();
  }
}

function fallbackSettings(): ServiceSettings {
  return { address: 'the TPM service', addressSource: 'default', secret: undefined, secretSource: undefined, warnings: [] };
}

function report(name: string, err: CliError, json: boolean, io: CliIO): void {
  // Exactly one line: a multi-line message from below would break log scrapers and `2>&1 | head -1`.
  const line = err.message.replace(/\s*\n\s*/g, ' ');
  io.stderr.write(`${name}: ${line}\n`);
  if (json) {
    const body = { error: { code: err.code, exitCode: err.exitCode, kind: EXIT_NAMES[err.exitCode] ?? 'error', message: line, ...err.details } };
    io.stdout.write(`${JSON.stringify(body)}\n`);
  }
}

/** Runs a tool as the process: real streams, signals, exit code. */
export function main<O>(def: ToolDef<O>, createClient: ClientFactory): void {
  const io: CliIO = {
    env: process.env,
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    createClient,
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    // Leave no temp file behind and say why we stopped; the output file was never touched.
    removePendingTemps();
    if (process.stderr.isTTY) process.stderr.write('\n');
    process.stderr.write(`${def.name}: interrupted (${sig}); no output was written\n`);
    process.exit(sig === 'SIGINT' ? EXIT.SIGINT : EXIT.SIGTERM);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // A closed stdout (`| head`) is not worth a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(EXIT.GENERAL);
  });
  runTool(def, process.argv.slice(2), io).then(
    (code) => exitAfterFlush(code),
    (e: unknown) => {
      process.stderr.write(`${def.name}: unexpected error: ${e instanceof Error ? e.message : String(e)}\n`);
      exitAfterFlush(EXIT.GENERAL);
    },
  );
}

/** Exit once stdout and stderr are drained; an open vsock reader thread must not keep us alive. */
function exitAfterFlush(code: number): void {
  let pending = 2;
  const done = (): void => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}
