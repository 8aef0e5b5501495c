/**
 * Exit codes and the one error type the tools throw.
 *
 * Codes 0–5 mean what they mean for tpm2-tools (tool_rc: success, general, option, auth, TCTI,
 * unsupported), so scripts written against tpm2-tools keep working; 6 and up are ours.
 */
import type { CommanderError } from 'commander';

export const EXIT = {
  OK: 0,
  /** Unexpected: a bug, or an answer from the service that makes no sense. */
  GENERAL: 1,
  /** Bad command line: unknown flag, bad value, missing option; bad config file. */
  USAGE: 2,
  /** The service refused who we are or what we asked for: bad secret, key not ours. */
  AUTH: 3,
  /** The service could not be reached (the tpm2-tools "TCTI error"). */
  UNREACHABLE: 4,
  /** Valid request the key cannot do, e.g. a hash that does not match the key's scheme. */
  UNSUPPORTED: 5,
  /** A local file could not be read or written. */
  FILE: 6,
  /** The TPM answered an error, or the service cannot reach its TPM. */
  TPM: 7,
  /** The request took too long (client timeout or the service's deadline). */
  TIMEOUT: 8,
  /** The service is busy; try again later. */
  BUSY: 9,
  /** No room or a conflicting state: key quota reached, handle pool exhausted, key being deleted. */
  CONFLICT: 10,
  /** Interrupted by SIGINT/SIGTERM (128 + signal number, as shells report it). */
  SIGINT: 130,
  SIGTERM: 143,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Short words for --json error output, one per exit code. */
export const EXIT_NAMES: Readonly<Record<number, string>> = {
  [EXIT.GENERAL]: 'general',
  [EXIT.USAGE]: 'usage',
  [EXIT.AUTH]: 'auth',
  [EXIT.UNREACHABLE]: 'unreachable',
  [EXIT.UNSUPPORTED]: 'unsupported',
  [EXIT.FILE]: 'file',
  [EXIT.TPM]: 'tpm',
  [EXIT.TIMEOUT]: 'timeout',
  [EXIT.BUSY]: 'busy',
  [EXIT.CONFLICT]: 'conflict',
  [EXIT.SIGINT]: 'interrupted',
  [EXIT.SIGTERM]: 'interrupted',
};

/** A failure to report as one line on stderr and exit with `exitCode`. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    /** Machine-readable code for --json (service error code when there is one). */
    readonly code: string = EXIT_NAMES[exitCode] ?? 'error',
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, EXIT.USAGE, 'USAGE');
}

/** Node's errno codes in words people recognise (the default messages carry syscall noise). */
const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory',
  ENOTDIR: 'a path component is not a directory',
  ENOSPC: 'no space left on device',
  EROFS: 'read-only file system',
  EDQUOT: 'disk quota exceeded',
  EEXIST: 'file exists',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'file name too long',
  ELOOP: 'too many levels of symbolic links',
  EIO: 'input/output error',
  EXDEV: 'cross-device link',
};

export function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string' && ERRNO_TEXT[err.code]) return ERRNO_TEXT[err.code]!;
  if (err && typeof err.message === 'string') return err.message;
  return String(e);
}

/** A CliError for a local file operation: `cannot read message file 'm.txt': no such file or directory`. */
export function fileError(what: string, path: string, e: unknown): CliError {
  const code = (e as NodeJS.ErrnoException)?.code;
  return new CliError(`${what} '${path}': ${errnoText(e)}`, EXIT.FILE, 'FILE', code ? { errno: code } : {});
}

/** Commander's own message as one line: "unknown option '--x' (Did you mean --y?)". */
export function commanderLine(e: CommanderError): string {
  return e.message
    .replace(/^error:\s*/, '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ');
}
