/**
 * The admin-only stats socket: a unix socket in the state directory (0700), itself 0600, so only
 * the host's root reaches it; tenants reach only the API listeners, which have no such route.
 * HTTP on it: GET /stats (JSON, Stats) for `eve-tpm-service stats`, GET /metrics (Prometheus
 * text) for a scraper. Every configured tenant's usage is read afresh per request.
 */
import { chmod, unlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Tenant } from '../tenants/tenants.js';
import { prometheusText } from './prometheus.js';
import type { Stats } from './stats.js';
import type { UsageReader } from './usage.js';

export const STATS_SOCKET = 'stats.sock';
export const statsSocketPath = (stateDir: string): string => join(stateDir, STATS_SOCKET);

export interface StatsSocketDeps {
  reader: UsageReader;
  /** The tenants as last (re)loaded. */
  tenants(): readonly Tenant[];
  since: Date;
  log: Logger;
}

export async function readStats(d: Pick<StatsSocketDeps, 'reader' | 'tenants' | 'since'>): Promise<Stats> {
  const timestamp = new Date().toISOString();
  const tenants = await Promise.all(d.tenants().map((t) => d.reader.read(t)));
  return { timestamp, since: d.since.toISOString(), tenants };
}

export class StatsSocket {
  private constructor(
    private readonly server: Server,
    readonly path: string,
  ) {}

  /** Listens at `path` (a stale socket of an earlier run, whose state lock we now hold, is replaced). */
  static async open(path: string, d: StatsSocketDeps): Promise<StatsSocket> {
    const server = createServer((req, res) => {
      const send = (status: number, type: string, body: string): void => {
        res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
        res.end(body);
      };
      const target = (req.url ?? '').split('?')[0];
      if (req.method !== 'GET' || (target !== '/stats' && target !== '/metrics')) {
        return send(404, 'text/plain; charset=utf-8', 'the stats socket serves GET /stats (JSON) and GET /metrics (Prometheus text)\n');
      }
      readStats(d).then(
        (s) => (target === '/stats' ? send(200, 'application/json', JSON.stringify(s)) : send(200, 'text/plain; version=0.0.4; charset=utf-8', prometheusText(s))),
        (e: unknown) => {
          d.log.warn({ event: 'stats-failed', err: (e as Error).message }, 'stats reading failed');
          send(500, 'text/plain; charset=utf-8', `stats reading failed: ${(e as Error).message}\n`);
        },
      );
    });
    await unlink(path).catch(() => {});
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    try {
      await chmod(path, 0o600);
    } catch (e) {
      server.close();
      throw e;
    }
    return new StatsSocket(server, path);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
    await unlink(this.path).catch(() => {});
  }
}
