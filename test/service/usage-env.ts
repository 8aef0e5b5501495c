/**
 * The service in this process on a fresh swtpm, with tenants that name usage sources (cgroup
 * directories and interfaces in fixture trees, or none), and a recorder of the TPM commands
 * sent, so a test can prove a usage reading never reaches the TPM.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tpm } from '../../src/tpm/index.js';
import { resolveConfig } from '../../src/service/config.js';
import { createLogger } from '../../src/service/logger.js';
import { startService, type RunningService } from '../../src/service/service.js';
import { ServiceClient } from '../../src/service/client/client.js';
import { generateSecret, hashSecret } from '../../src/service/tenants/tenants.js';
import { startSwtpm, type SwtpmInstance } from '../helpers/swtpm.js';

export interface UsageTenant {
  id: string;
  cgroup?: string;
  netifs?: string[];
}

export interface UsageEnv {
  dir: string;
  stateDir: string;
  tenantsFile: string;
  unix: string;
  service: RunningService;
  commands: string[];
  secrets: Record<string, string>;
  client(tenant: string): ServiceClient;
  stop(): Promise<void>;
}

export async function startUsageEnv(dir: string, tenants: UsageTenant[], netRoot: string): Promise<UsageEnv> {
  const swtpm: SwtpmInstance = await startSwtpm();
  const commands: string[] = [];
  const tpm = new Tpm(swtpm.transport(), { onExchange: (e) => commands.push(e.command) });
  const secrets: Record<string, string> = {};
  const records = tenants.map((t) => {
    secrets[t.id] = generateSecret();
    return { ...t, secretHash: hashSecret(secrets[t.id]!), maxKeys: 8 };
  });
  const tenantsFile = join(dir, 'tenants.json');
  await writeFile(tenantsFile, JSON.stringify({ tenants: records }), { mode: 0o600 });
  const stateDir = join(dir, 'state');
  const config = resolveConfig({}, { tpm: `swtpm:unix:${swtpm.sockPath}`, listen: [`unix:${join(dir, 'svc.sock')}`], tenants: tenantsFile, stateDir, logLevel: 'silent' });
  const service = await startService(config, { tpm, logger: createLogger('silent'), netRoot });
  const unix = service.addresses[0]!;
  return {
    dir,
    stateDir,
    tenantsFile,
    unix,
    service,
    commands,
    secrets,
    client: (tenant) => new ServiceClient({ address: unix, secret: secrets[tenant], timeoutMs: 30_000 }),
    async stop() {
      await service.close().catch(() => {});
      await swtpm.stop();
    },
  };
}

export const tempDir = (): Promise<string> => mkdtemp(join(tmpdir(), 'usage-svc-'));
export const removeDir = (d: string): Promise<void> => rm(d, { recursive: true, force: true });
