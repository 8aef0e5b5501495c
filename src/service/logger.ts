/**
 * pino, JSON, one line per event. Written synchronously to stderr (or the given stream), so
 * the last lines before a crash are not lost in a buffer.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, dest?: NodeJS.WritableStream): Logger {
  return pino(
    { level, base: { service: 'eve-tpm-service' }, timestamp: pino.stdTimeFunctions.isoTime },
    dest ?? pino.destination({ dest: 2, sync: true }),
  );
}
