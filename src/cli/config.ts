/**
 * Where the service is and which secret to present.
 *
 * Precedence, per setting: flag > environment > config file > default. The config file is read
 * only when a flag or variable leaves something open, so a fully specified command line never
 * depends on (or warns about) a file it does not use.
 */
import { readFileSync, statSync } from 'node:fs';
import { parseAddress } from '../service/protocol/address.js';
import { CliError, EXIT, errnoText, fileError, usageError } from './errors.js';

export const DEFAULT_SERVICE = 'vsock:2:8877';
export const DEFAULT_CONFIG_PATH = '/etc/eve-tools/config.json';
/** EVE_TOOLS_CONFIG=none: no config file at all (scripts and tests that must never read /etc). */
export const NO_CONFIG = 'none';

export type Source = 'flag' | 'env' | 'config' | 'default';

export interface ServiceSettings {
  address: string;
  addressSource: Source;
  secret: string | undefined;
  /** Where the secret came from, for error messages ("the secret from EVE_TOOLS_SECRET …"). */
  secretSource: string | undefined;
  /** Non-fatal problems, each one stderr line. */
  warnings: string[];
}

export interface ServiceFlags {
  service?: string;
  secretFile?: string;
}

/**
 * Checks `vsock:CID:PORT`, `unix:/path`, `tcp:HOST:PORT` with the client's own parser, so the
 * tools never accept a spelling the client would reject; `where` names the source in the message.
 */
export function validateAddress(address: string, where: string): string {
  const a = address.trim();
  try {
    parseAddress(a, 'connect');
  } catch (e) {
    throw usageError(`${where}: ${(e as Error).message}`);
  }
  return a;
}

/** `mode 0644`-style text. */
const modeText = (mode: number): string => `mode ${(mode & 0o777).toString(8).padStart(4, '0')}`;

const KNOWN_CONFIG_KEYS: readonly string[] = ['service', 'secret'];

interface ConfigFile {
  service?: string;
  secret?: string;
}

/** `named`: the path came from EVE_TOOLS_CONFIG, so its absence is a mistake to report, not the default's "no file". */
function readConfig(path: string, warnings: string[], named: boolean): ConfigFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && named) {
      throw new CliError(`config file ${path} (EVE_TOOLS_CONFIG) does not exist; set EVE_TOOLS_CONFIG=${NO_CONFIG} to use no config file`, EXIT.USAGE, 'CONFIG');
    }
    if (code === 'ENOENT') return undefined;
    // Unreadable (typically root-only while the app runs as another user): say so, go on without it.
    warnings.push(`warning: cannot read config file ${path}: ${errnoText(e)}; ignoring it`);
    return undefined;
  }
  try {
    const st = statSync(path);
    if ((st.mode & 0o077) !== 0) {
      warnings.push(`warning: config file ${path} is readable by group or others (${modeText(st.mode)}); run: chmod 600 ${path}`);
    }
  } catch {
    // Raced with a delete: we already have its content.
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new CliError(`config file ${path} is not valid JSON: ${(e as Error).message}`, EXIT.USAGE, 'CONFIG');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CliError(`config file ${path} must hold a JSON object such as {"service": "...", "secret": "..."}`, EXIT.USAGE, 'CONFIG');
  }
  const obj = parsed as Record<string, unknown>;
  // A misspelt key ("servce") would otherwise leave its setting at the default without a word.
  const unknown = Object.keys(obj).filter((k) => !KNOWN_CONFIG_KEYS.includes(k));
  if (unknown.length > 0) {
    warnings.push(`warning: config file ${path}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')} ignored; the keys are "service" and "secret"`);
  }
  for (const k of ['service', 'secret'] as const) {
    if (obj[k] !== undefined && typeof obj[k] !== 'string') {
      throw new CliError(`config file ${path}: "${k}" must be a string`, EXIT.USAGE, 'CONFIG');
    }
  }
  return { service: obj.service as string | undefined, secret: obj.secret as string | undefined };
}

/** Reads a secret file: the whole content less trailing whitespace (a final newline is normal). */
export function readSecretFile(path: string, warnings: string[]): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw fileError('cannot read secret file', path, e);
  }
  const secret = text.replace(/\s+$/, '');
  if (secret === '') throw usageError(`--secret-file: secret file '${path}' is empty`);
  if (/[\r\n]/.test(secret)) throw usageError(`--secret-file: secret file '${path}' holds more than one line`);
  try {
    const st = statSync(path);
    if ((st.mode & 0o077) !== 0) {
      warnings.push(`warning: secret file ${path} is readable by group or others (${modeText(st.mode)}); run: chmod 600 ${path}`);
    }
  } catch {
    // nothing to add
  }
  return secret;
}

export function resolveService(flags: ServiceFlags, env: NodeJS.ProcessEnv): ServiceSettings {
  const warnings: string[] = [];
  let address: string | undefined;
  let addressSource: Source | undefined;
  let secret: string | undefined;
  let secretSource: string | undefined;

  if (flags.service !== undefined) {
    address = validateAddress(flags.service, '--service');
    addressSource = 'flag';
  } else if (env.EVE_TOOLS_SERVICE) {
    address = validateAddress(env.EVE_TOOLS_SERVICE, 'EVE_TOOLS_SERVICE');
    addressSource = 'env';
  }
  if (flags.secretFile !== undefined) {
    secret = readSecretFile(flags.secretFile, warnings);
    secretSource = `secret file ${flags.secretFile}`;
  } else if (env.EVE_TOOLS_SECRET) {
    secret = env.EVE_TOOLS_SECRET;
    secretSource = 'EVE_TOOLS_SECRET';
  }

  if ((address === undefined || secret === undefined) && env.EVE_TOOLS_CONFIG !== NO_CONFIG) {
    const path = env.EVE_TOOLS_CONFIG || DEFAULT_CONFIG_PATH;
    const cfg = readConfig(path, warnings, Boolean(env.EVE_TOOLS_CONFIG));
    if (cfg) {
      if (address === undefined && cfg.service !== undefined) {
        address = validateAddress(cfg.service, `config file ${path}`);
        addressSource = 'config';
      }
      if (secret === undefined && cfg.secret !== undefined && cfg.secret !== '') {
        secret = cfg.secret;
        secretSource = `config file ${path}`;
      }
    }
  }

  return {
    address: address ?? DEFAULT_SERVICE,
    addressSource: addressSource ?? 'default',
    secret,
    secretSource,
    warnings,
  };
}
