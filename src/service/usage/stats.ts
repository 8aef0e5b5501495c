/** The host's view of every app at once: what the stats socket serves (stats-socket.ts). */
import type { Usage } from '../protocol/messages.js';

export interface Stats {
  /** ISO 8601 time of the reading. */
  timestamp: string;
  /** ISO 8601 start of the service's TPM counters. */
  since: string;
  /** One reading per configured tenant, in the tenants file's order. */
  tenants: Usage[];
}
