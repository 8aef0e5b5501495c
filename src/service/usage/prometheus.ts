/**
 * Stats in the Prometheus text exposition format (version 0.0.4): one family per figure, one
 * sample per app (label `tenant`). A figure the host could not read has no sample.
 */
import type { Usage } from '../protocol/messages.js';
import type { Stats } from './stats.js';

type Labels = Record<string, string>;
interface Family {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
  samples: Array<{ labels: Labels; value: number }>;
}

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labelText = (l: Labels): string => `{${Object.entries(l).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;

const FAMILIES: ReadonlyArray<[string, Family['type'], string]> = [
  ['eve_app_cpu_seconds_total', 'counter', 'CPU time charged to the app cgroup (cpu.stat usage_usec; v1 cpuacct.usage)'],
  ['eve_app_cpu_user_seconds_total', 'counter', 'User CPU time of the app cgroup'],
  ['eve_app_cpu_system_seconds_total', 'counter', 'System CPU time of the app cgroup'],
  ['eve_app_cpu_throttled_seconds_total', 'counter', 'Time the app cgroup was throttled'],
  ['eve_app_memory_bytes', 'gauge', 'Memory charged to the app cgroup (memory.current; v1 memory.usage_in_bytes)'],
  ['eve_app_memory_peak_bytes', 'gauge', 'Highest memory charged to the app cgroup (memory.peak; v1 memory.max_usage_in_bytes)'],
  ['eve_app_io_read_bytes_total', 'counter', 'Bytes read by the app cgroup, per device (io.stat; v1 blkio)'],
  ['eve_app_io_write_bytes_total', 'counter', 'Bytes written by the app cgroup, per device (io.stat; v1 blkio)'],
  ['eve_app_pids', 'gauge', 'Tasks in the app cgroup (pids.current)'],
  ['eve_app_network_receive_bytes_total', 'counter', 'Bytes the app received, per host-side interface'],
  ['eve_app_network_transmit_bytes_total', 'counter', 'Bytes the app sent, per host-side interface'],
  ['eve_app_tpm_requests_total', 'counter', 'Requests of the app answered by eve-tpm-service, per operation'],
  ['eve_app_tpm_refused_total', 'counter', 'Requests of the app refused (4xx/5xx), per operation'],
  ['eve_app_tpm_time_seconds_total', 'counter', 'TPM time spent on the app jobs'],
  ['eve_app_tpm_keys', 'gauge', 'Keys the app holds'],
  ['eve_app_tpm_keys_max', 'gauge', 'Key quota of the app'],
  ['eve_app_tpm_queue_waits_total', 'counter', 'App TPM jobs that waited in the queue'],
  ['eve_app_tpm_queue_wait_seconds_total', 'counter', 'Time app TPM jobs waited in the queue'],
  ['eve_app_tpm_queue_wait_max_seconds', 'gauge', 'Longest wait of an app TPM job in the queue'],
];

function samplesOf(u: Usage, add: (name: string, labels: Labels, value: number | undefined) => void): void {
  const t = { tenant: u.tenant };
  const s = (usec: number | undefined): number | undefined => (usec === undefined ? undefined : usec / 1e6);
  if (u.cgroup.available) {
    const { cpu, memory, io, pids } = u.cgroup;
    if (cpu.available) {
      add('eve_app_cpu_seconds_total', t, s(cpu.usageUsec));
      add('eve_app_cpu_user_seconds_total', t, s(cpu.userUsec));
      add('eve_app_cpu_system_seconds_total', t, s(cpu.systemUsec));
      add('eve_app_cpu_throttled_seconds_total', t, s(cpu.throttledUsec));
    }
    if (memory.available) {
      add('eve_app_memory_bytes', t, memory.currentBytes);
      add('eve_app_memory_peak_bytes', t, memory.peakBytes);
    }
    if (io.available) {
      for (const d of io.devices) {
        add('eve_app_io_read_bytes_total', { ...t, device: d.device }, d.readBytes);
        add('eve_app_io_write_bytes_total', { ...t, device: d.device }, d.writeBytes);
      }
    }
    if (pids.available) add('eve_app_pids', t, pids.current);
  }
  if (u.network.available) {
    for (const i of u.network.interfaces) {
      if (!i.available) continue;
      add('eve_app_network_receive_bytes_total', { ...t, interface: i.name }, i.rxBytes);
      add('eve_app_network_transmit_bytes_total', { ...t, interface: i.name }, i.txBytes);
    }
  }
  for (const r of u.tpm.requests) {
    add('eve_app_tpm_requests_total', { ...t, op: r.op }, r.count);
    add('eve_app_tpm_refused_total', { ...t, op: r.op }, r.refused);
  }
  add('eve_app_tpm_time_seconds_total', t, u.tpm.tpmTimeMs / 1000);
  add('eve_app_tpm_keys', t, u.tpm.keys.held);
  add('eve_app_tpm_keys_max', t, u.tpm.keys.max);
  add('eve_app_tpm_queue_waits_total', t, u.tpm.queueWaits.count);
  add('eve_app_tpm_queue_wait_seconds_total', t, u.tpm.queueWaits.totalMs / 1000);
  add('eve_app_tpm_queue_wait_max_seconds', t, u.tpm.queueWaits.maxMs / 1000);
}

export function prometheusText(stats: Stats): string {
  const families = new Map<string, Family>(FAMILIES.map(([name, type, help]) => [name, { name, type, help, samples: [] }]));
  for (const u of stats.tenants) {
    samplesOf(u, (name, labels, value) => {
      if (value !== undefined) families.get(name)!.samples.push({ labels, value });
    });
  }
  let out = '';
  for (const f of families.values()) {
    out += `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n`;
    for (const x of f.samples) out += `${f.name}${labelText(x.labels)} ${x.value}\n`;
  }
  return out;
}
