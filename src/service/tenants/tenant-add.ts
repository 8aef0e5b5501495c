/**
 * `eve-tpm-service tenant add` behind its command line: adds the tenant, makes the VM's
 * cloud-init user-data (cloud-init.ts) and says what it did. The secret and machine-readable
 * results go to stdout, everything for a human to stderr.
 */
import { realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { addTenant, AdminError, toolsUrlSource } from '../admin/admin.js';
import { loadEmbeddedTools, ToolsPayloadError, type ToolsSource } from './cloud-init.js';
import { writeFileDurable } from '../admin/durable-file.js';
import { RAW_TPM_MODES, type RawTpm } from './guest-setup.js';

export interface TenantAddArgs {
  id: string;
  tenants: string;
  cid?: number;
  maxKeys?: number;
  /** The app's cgroup (hierarchy path or directory, v1 or v2) and host-side interfaces (resource usage). */
  cgroup?: string;
  netif?: string[];
  serviceAddress: string;
  /** Where to write the user-data; `-` for stdout. */
  userData?: string;
  toolsUrl?: string;
  toolsSha256?: string;
  /** The multi-call tools bundle (default: eve-tools.cjs beside this executable). */
  toolsBundle?: string;
  /** Folder of prebuilt addons, prebuilds/linux-ARCH-LIBC/vsock.node (default: the package's). */
  prebuilds?: string;
  /** `--raw-tpm`: none (default), tcti (the cmd TCTI is the default) or device (eve-tpm-vtpmd's /dev/tpmrmN). */
  rawTpm?: string;
  json?: boolean;
}

export interface TenantAddOutput {
  stdout: string;
  stderr: string;
}

/** The folder of the running executable (dist/bin), through npm's bin symlinks. */
function executableDir(): string {
  return dirname(realpathSync(process.argv[1] ?? '.'));
}

function toolsSource(a: TenantAddArgs, rawTpm: RawTpm | undefined): ToolsSource | undefined {
  const url = toolsUrlSource(a.toolsUrl, a.toolsSha256);
  if (url) return url;
  if (a.userData === undefined) return undefined;
  const bin = executableDir();
  try {
    return { embed: loadEmbeddedTools(a.toolsBundle ?? resolve(bin, 'eve-tools.cjs'), a.prebuilds ?? resolve(bin, '../../prebuilds'), { vtpmd: rawTpm === 'device' }) };
  } catch (e) {
    if (e instanceof ToolsPayloadError) throw new AdminError(e.message);
    throw e;
  }
}

export async function tenantAdd(a: TenantAddArgs): Promise<TenantAddOutput> {
  if (a.userData === '-' && a.json) throw new AdminError('--user-data - and --json both want stdout: give --user-data a file');
  if (a.userData === undefined && (a.toolsUrl !== undefined || a.toolsSha256 !== undefined)) {
    toolsUrlSource(a.toolsUrl, a.toolsSha256); // half a pair is named first
    throw new AdminError('--tools-url and --tools-sha256 need --user-data FILE');
  }
  if (a.userData === undefined && (a.toolsBundle !== undefined || a.prebuilds !== undefined)) throw new AdminError('--tools-bundle and --prebuilds need --user-data FILE');
  const rawTpm = rawTpmMode(a);
  // Everything the user-data needs is read before the tenant exists, so a missing build adds nothing.
  const tools = toolsSource(a, rawTpm);
  const r = await addTenant({ tenantsFile: a.tenants, id: a.id, cid: a.cid, maxKeys: a.maxKeys, cgroup: a.cgroup, netifs: a.netif, service: a.serviceAddress, tools, rawTpm });
  let stderr = `Tenant ${a.id} added${a.cid === undefined ? '' : ` (CID ${a.cid})`}, quota ${r.tenant.maxKeys} keys, record ${r.tenant.uid}.\n`;
  let written: string | undefined;
  if (r.userData !== undefined && a.userData !== '-') {
    written = resolve(a.userData!);
    try {
      await writeFileDurable(written, r.userData, 0o600);
    } catch (e) {
      // The tenant exists now: its secret must still reach the operator.
      throw new TenantAddWriteError(`cannot write the user-data ${written}: ${(e as Error).message}; the tenant was added, its secret is on stdout`, r.secret);
    }
    stderr += `cloud-init user-data (${r.userData.length} bytes, holds the secret) written to ${written}, mode 0600.\n`;
  } else if (r.userData === undefined) {
    stderr += 'No user-data written: --user-data FILE writes cloud-init user-data that installs the tools and this secret in the VM.\n';
  }
  if (a.userData === '-') return { stdout: r.userData!, stderr };
  if (a.json) {
    const out = { tenant: a.id, record: r.tenant.uid, cid: a.cid ?? null, maxKeys: r.tenant.maxKeys, secret: r.secret, userData: written ?? null, tenantsFile: resolve(a.tenants) };
    return { stdout: `${JSON.stringify(out)}\n`, stderr };
  }
  return { stdout: `Secret (shown only now; only its hash is stored):\n  ${r.secret}\n`, stderr };
}

function rawTpmMode(a: TenantAddArgs): RawTpm | undefined {
  if (a.rawTpm === undefined) return undefined;
  if (!(RAW_TPM_MODES as readonly string[]).includes(a.rawTpm)) throw new AdminError(`--raw-tpm must be one of ${RAW_TPM_MODES.join(', ')}, got '${a.rawTpm}'`);
  if (a.userData === undefined) throw new AdminError('--raw-tpm needs --user-data FILE');
  return a.rawTpm as RawTpm;
}

/** The tenant was added but its user-data could not be written (exit 1, secret still shown). */
export class TenantAddWriteError extends Error {
  override readonly name = 'TenantAddWriteError';
  constructor(
    message: string,
    readonly secret: string,
  ) {
    super(message);
  }
}
