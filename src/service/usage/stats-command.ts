/**
 * `eve-tpm-service stats [--json] [--prometheus]`: asks the running service's stats socket
 * (stats-socket.ts) and prints every app's figures, as a table, JSON or Prometheus text.
 */
import { request } from 'node:http';
import type { Usage } from '../protocol/messages.js';
import type { Stats } from './stats.js';

export class StatsUnavailable extends Error {
  override readonly name = 'StatsUnavailable';
}

export function fetchStats(socketPath: string, path: '/stats' | '/metrics', timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode === 200) resolve(text);
        else reject(new StatsUnavailable(`the stats socket ${socketPath} answered ${res.statusCode}: ${text.trim()}`));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new StatsUnavailable(`the stats socket ${socketPath} did not answer in ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e instanceof StatsUnavailable) return reject(e);
      const why =
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? 'is the service running with this --state-dir?'
          : e.code === 'EACCES'
            ? 'it is root-only: run as root'
            : e.message;
      reject(new StatsUnavailable(`cannot reach the stats socket ${socketPath}: ${why}`));
    });
    req.end();
  });
}

const mib = (b: number | undefined): string => (b === undefined ? '-' : (b / 1048576).toFixed(1));

function row(u: Usage): string[] {
  const cg = u.cgroup.available ? u.cgroup : undefined;
  const cpu = cg?.cpu.available ? (cg.cpu.usageUsec / 1e6).toFixed(2) : '-';
  const mem = cg?.memory.available ? cg.memory : undefined;
  const io = cg?.io.available ? cg.io : undefined;
  const net = u.network.available ? u.network : undefined;
  const refused = u.tpm.requests.reduce((n, r) => n + r.refused, 0);
  const requests = u.tpm.requests.reduce((n, r) => n + r.count, 0);
  return [
    u.tenant,
    cpu,
    mib(mem?.currentBytes),
    mib(mem?.peakBytes),
    mib(net?.rxBytes),
    mib(net?.txBytes),
    mib(io?.readBytes),
    mib(io?.writeBytes),
    `${requests}/${refused}`,
    u.tpm.tpmTimeMs.toFixed(0),
    `${u.tpm.keys.held}/${u.tpm.keys.max}`,
    `${u.tpm.queueWaits.count}/${u.tpm.queueWaits.maxMs.toFixed(0)}`,
  ];
}

/** One line per app; '-' where a figure is not configured or could not be read. */
export function statsText(s: Stats): string {
  if (s.tenants.length === 0) return `no tenants (${s.timestamp})\n`;
  const rows = [['TENANT', 'CPU_S', 'MEM_MIB', 'PEAK_MIB', 'RX_MIB', 'TX_MIB', 'READ_MIB', 'WRITE_MIB', 'REQ/REFUSED', 'TPM_MS', 'KEYS', 'WAITS/MAX_MS'], ...s.tenants.map(row)];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join('  '));
  const notes = s.tenants.flatMap((u) => [u.cgroup, u.network].filter((g) => !g.available).map((g) => `  ${u.tenant}: ${(g as { reason: string }).reason}`));
  return `${lines.join('\n')}\n${notes.length ? `\n${notes.join('\n')}\n` : ''}\nat ${s.timestamp}; TPM counters since ${s.since}\n`;
}
