/**
 * eve-tpm-service: the host microservice giving application VMs policed TPM access, and its
 * host-side administration.
 *
 *   eve-tpm-service [serve] --tpm /dev/tpmrm0 --listen vsock:8877 --tenants FILE --state-dir DIR
 *   eve-tpm-service tenant add --id APP [--cid N] [--max-keys N] --tenants FILE
 *   eve-tpm-service tenant list --tenants FILE [--state-dir DIR]
 *   eve-tpm-service tenant remove --id APP [--purge] --tenants FILE [--state-dir DIR]
 *   eve-tpm-service tenant purge --record RECORD --tenants FILE [--state-dir DIR]
 *   eve-tpm-service tenant set --id APP [--cgroup PATH | --no-cgroup] [--netif NAME]... [--no-netif] --tenants FILE
 *   eve-tpm-service registry rebuild [--state-dir DIR] [--key-store tpm] [--tenants FILE]
 *   eve-tpm-service stats [--json | --prometheus] [--state-dir DIR]
 *
 * --state-dir defaults to serve's (/var/lib/eve-tpm-service, or --config's stateDir).
 * Exit codes: 0 done (also after a SIGTERM/SIGINT drain), 1 runtime failure, 2 bad
 * configuration or arguments (one line on stderr, never the help), 3 a listener or the state
 * directory could not be opened.
 */
import '../service/heap-bounds-set.js'; // first: V8's heap bounded before anything allocates (heap-bounds.ts)
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { KeyListing, PurgeReport } from '../service/admin/admin.js';
import { statsSocketPath } from '../service/usage/stats-socket.js';
import type { Stats } from '../service/usage/stats.js';
import { ConfigError, readConfigFile, resolveConfig, type ServiceConfig } from '../service/config.js';
import { ListenError } from '../service/http/listeners.js';
import { StateLockedError } from '../service/admin/lock.js';
import { createLogger } from '../service/logger.js';
import { startService } from '../service/service.js';
import { formatHandle } from '../service/protocol/handles.js';
import { RegistryFormatError } from '../service/keys/registry.js';
import { VERSION } from '../service/protocol/version.js';
import type { TenantAddArgs } from '../service/tenants/tenant-add.js';

// The host-side commands' modules load when their command runs: `serve` never needs them, and
// each module evaluated at start stays in the resident service's memory (issue 13, P6).
const admin = () => import('../service/admin/admin.js');

const EXIT = { OK: 0, FAILURE: 1, CONFIG: 2, START: 3 } as const;

function integer(v: string): number {
  if (!/^(?:0x[0-9a-fA-F]{1,8}|[0-9]{1,15})$/.test(v)) throw new InvalidArgumentError('expected a non-negative integer (decimal or 0x-hex)');
  return v.startsWith('0x') ? Number.parseInt(v.slice(2), 16) : Number(v);
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

function fail(message: string, code: number): never {
  process.stderr.write(`eve-tpm-service: ${message}\n`);
  process.exit(code);
}

/** Config from defaults ← --config file ← flags; flags commander left undefined do not count. */
function configFrom(opts: Record<string, unknown>): ServiceConfig {
  const file = typeof opts.config === 'string' ? readConfigFile(opts.config) : {};
  const { config: _c, ...flags } = opts;
  return resolveConfig(file, flags as Partial<Record<keyof ServiceConfig, unknown>>);
}

/** A file-system error on the state directory (cannot create, not a directory, permission): exit 3, like a lock. */
function inStateDir(e: unknown, stateDir: string): boolean {
  const p = (e as NodeJS.ErrnoException | undefined)?.path;
  return typeof p === 'string' && (p === stateDir || p.startsWith(`${stateDir}/`));
}

async function serve(opts: Record<string, unknown>): Promise<void> {
  let config: ServiceConfig;
  try {
    config = configFrom(opts);
  } catch (e) {
    if (e instanceof ConfigError) fail(e.message, EXIT.CONFIG);
    throw e;
  }
  const log = createLogger(config.logLevel);
  // Signals are taken from the start: one that arrives while the service is still starting
  // (a supervisor stopping it early) drains it once started, instead of killing it midway.
  let service: Awaited<ReturnType<typeof startService>> | undefined;
  let stopping: string | undefined;
  const drain = (s: NonNullable<typeof service>, signal: string): void => {
    log.info({ event: 'signal', signal }, `received ${signal}; draining`);
    s.close().then(
      () => process.exit(EXIT.OK),
      (e: unknown) => {
        log.error({ event: 'stop-failed', err: e }, 'error while stopping');
        process.exit(EXIT.FAILURE);
      },
    );
  };
  const stop = (signal: string): void => {
    if (stopping) {
      // A second signal while still starting: stop now, as before signals were taken early.
      if (!service) {
        log.warn({ event: 'signal', signal }, `received ${signal} again while starting; exiting now`);
        process.exit(EXIT.FAILURE);
      }
      return;
    }
    stopping = signal;
    if (service) drain(service, signal);
    else log.info({ event: 'signal', signal }, `received ${signal} while starting; draining once started`);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    service = await startService(config, { logger: log });
  } catch (e) {
    if (e instanceof ConfigError) fail(`cannot start: ${e.message}`, EXIT.CONFIG);
    if (e instanceof ListenError || e instanceof StateLockedError || e instanceof RegistryFormatError || inStateDir(e, config.stateDir)) {
      log.fatal({ event: 'start-failed', err: (e as Error).message }, (e as Error).message);
      fail(`cannot start: ${(e as Error).message}`, EXIT.START);
    }
    log.fatal({ event: 'start-failed', err: e }, 'cannot start');
    fail(`cannot start: ${(e as Error).message}`, EXIT.FAILURE);
  }
  const started = service;
  if (stopping) drain(started, stopping);
  process.on('SIGHUP', () => void started.reload());
  process.on('uncaughtException', (e) => {
    log.fatal({ event: 'crash', err: e }, 'uncaught exception');
    process.exit(EXIT.FAILURE);
  });
}

/** Errors of the commands' own making (by name: their modules load lazily, see above) are usage errors. */
const USAGE_ERRORS = new Set(['AdminError', 'RebuildError']);

function adminError(e: unknown): never {
  if (e instanceof ConfigError || e instanceof StateLockedError || e instanceof RegistryFormatError || (e instanceof Error && USAGE_ERRORS.has(e.name))) {
    fail((e as Error).message, EXIT.CONFIG);
  }
  fail((e as Error).message ?? String(e), EXIT.FAILURE);
}

const program = new Command('eve-tpm-service')
  .description('TPM operations for EVE application VMs over vsock: tenant isolation, crash-safe key ownership, fair TPM queue')
  .version(`eve-tpm-service ${VERSION}`, '-v, --version', 'print the version and exit')
  .helpOption('-h, --help', 'print this help and exit')
  .showSuggestionAfterError(true)
  // Copied to every subcommand created below: usage errors are printed by reportUsage(), as one line.
  .configureOutput({ outputError: () => {}, writeErr: () => {} })
  .exitOverride();

program
  .command('serve', { isDefault: true })
  .description('run the service (the default command)')
  .option('--config <file>', 'JSON file with the same keys as these flags (camelCase); flags override it')
  .option('--tpm <spec>', 'TPM: device path (default /dev/tpmrm0), swtpm:unix:PATH or swtpm:tcp:HOST:PORT')
  .option('--listen <address>', 'vsock:PORT (default vsock:8877), unix:PATH, tcp:127.0.0.1:PORT, fd:N or systemd (inherited sockets); repeatable', collect)
  .option('--tenants <file>', 'tenants file (JSON); required unless --single-tenant')
  .option('--state-dir <dir>', 'where the key registry and key blobs live (default /var/lib/eve-tpm-service)')
  .option('--pool-start <handle>', 'first persistent handle handed to tenants (default 0x81010000)', integer)
  .option('--pool-size <n>', 'number of handles in the pool (default 0x10000)', integer)
  .addOption(new Option('--key-store <mode>', 'blobs: keys kept as wrapped blobs (default); tpm: persistent TPM objects').choices(['blobs', 'tpm']))
  .option('--tpm-free-floor <n>', 'tpm key store: persistent slots kept free for EVE (default 2)', integer)
  .option('--device-ak <handle>', "the device's attestation key, signer of device-certify (default 0x81000003)", integer)
  .addOption(new Option('--log-level <level>', 'log level (default info)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
  .option('--single-tenant', 'DEVELOPMENT ONLY: no identity; every caller is the tenant "default"')
  .option('--allow-non-loopback', 'allow tcp listeners on non-loopback addresses')
  .option('--default-max-keys <n>', 'key quota of tenants that set none (default 8)', integer)
  .option('--deadline-ms <ms>', 'deadline of a request (default 30000)', integer)
  .option('--stream-deadline-ms <ms>', 'deadline of a streamed sign (default 600000)', integer)
  .option('--headers-timeout-ms <ms>', 'time allowed for the complete request header block (default 5000)', integer)
  .option('--body-timeout-ms <ms>', 'longest pause inside a request body (default 10000)', integer)
  .option('--min-body-bytes-per-sec <n>', 'slowest request body kept after the grace period, 0 = any (default 1024)', integer)
  .option('--body-rate-grace-ms <ms>', 'time before the minimum body rate applies, and its window (default 5000)', integer)
  .option('--max-connections <n>', 'connections served at once (default 256; idle and incomplete ones make room)', integer)
  .option('--max-connections-per-peer <n>', 'connections one peer (vsock CID, tcp address) may hold (default 32)', integer)
  .option('--reserved-tenant-connections <n>', 'connections kept for authenticated callers (default 64)', integer)
  .option('--queue-capacity <n>', 'TPM jobs waiting in total (default 256)', integer)
  .option('--queue-per-tenant <n>', 'TPM jobs one tenant may have waiting (default 64)', integer)
  .option('--hash-slots <n>', 'hash sequences loaded in the TPM at once; more are context-saved (default 1)', integer)
  .option('--object-cache <n>', 'keys kept loaded or context-saved between uses, 0 = off (default 32)', integer)
  .option('--max-sequences <n>', 'streamed signs open at once, loaded or context-saved (default 32)', integer)
  .option('--sequences-per-tenant <n>', 'streamed signs one tenant may have open at once (default 4)', integer)
  .option('--max-stream-bytes <n>', 'largest streamed message, 0 = unlimited (default 0)', integer)
  .option('--drain-timeout-ms <ms>', 'how long SIGTERM waits for requests in flight (default 30000)', integer)
  .action(async (opts: Record<string, unknown>) => serve(opts));

const tenant = program.command('tenant').description('manage tenants (host-side only)');

/** Config for the commands that touch the state dir: --config file, then these flags. */
const stateConfig = (o: { config?: string; stateDir?: string; tpm?: string; keyStore?: string; tenants: string }): ServiceConfig =>
  configFrom({ config: o.config, stateDir: o.stateDir, tpm: o.tpm, keyStore: o.keyStore, tenants: o.tenants, listen: ['unix:/nonexistent'] });

const purgeLine = (r: PurgeReport): string =>
  `${r.purged} key(s) purged${r.undone ? ` (${r.undone} creation(s) under way undone)` : ''}${r.remaining ? `, ${r.remaining} left (see the service log; recovery finishes them)` : ''}`;

tenant
  .command('add')
  .description("add a tenant: generates its secret (printed once, stored only as a hash); --user-data writes the VM's cloud-init user-data")
  .requiredOption('--id <id>', 'tenant (application instance) id')
  .requiredOption('--tenants <file>', 'tenants file (created if absent)')
  .option('--cid <n>', 'vsock CID of the application VM', integer)
  .option('--max-keys <n>', 'key quota (default 8)', integer)
  .option('--cgroup <path>', "the app's cgroup on the host (hierarchy path, e.g. /eve-user-apps/APP, or directory; v1 or v2), for its resource usage")
  .option('--netif <name>', "a host-side network interface of the app, for its resource usage; repeatable", collect)
  .option('--service-address <address>', 'service address as seen from the VM', 'vsock:2:8877')
  .option('--user-data <file>', 'write cloud-init user-data installing the tools, addons, config and secret with no network (mode 0600; - for stdout)')
  .option('--tools-bundle <file>', 'tools bundle to embed (default eve-tools.cjs beside this executable)')
  .option('--prebuilds <dir>', 'vsock addons to embed, DIR/linux-ARCH-LIBC/vsock.node (default the package\'s prebuilds/)')
  .option('--tools-url <url>', 'instead of embedding: the VM downloads this tarball (deploy/install.sh --bundle); needs --tools-sha256')
  .option('--tools-sha256 <hex>', 'sha256 of that tarball; needs --tools-url')
  .option('--raw-tpm <mode>', 'stock TPM software in the VM: tcti (tpm2-tools, tpm2-pytss, tpm2-openssl default to the cmd TCTI through eve_tools_tpm2_tcti), device (eve-tpm-vtpmd makes /dev/tpmrmN for every TPM program) or none (default); needs --user-data')
  .option('--json', 'print {tenant, record, cid, maxKeys, secret, userData, tenantsFile} as JSON on stdout')
  .action(async (o: TenantAddArgs) => {
    const { tenantAdd, TenantAddWriteError } = await import('../service/tenants/tenant-add.js');
    try {
      const out = await tenantAdd(o);
      process.stderr.write(out.stderr);
      process.stdout.write(out.stdout);
    } catch (e) {
      if (e instanceof TenantAddWriteError) {
        process.stdout.write(`Secret (shown only now; only its hash is stored):\n  ${e.secret}\n`);
        fail(e.message, EXIT.FAILURE);
      }
      adminError(e);
    }
  });

tenant
  .command('list')
  .description('list tenants and their keys, and the keys of removed tenants (orphans), from the registry')
  .requiredOption('--tenants <file>', 'tenants file')
  .option('--config <file>', 'service config file (for --state-dir)')
  .option('--state-dir <dir>', 'service state directory (default /var/lib/eve-tpm-service)')
  .option('--json', 'print JSON')
  .action(async (o: { tenants: string; config?: string; stateDir?: string; json?: boolean }) => {
    try {
      const stateDir = stateConfig(o).stateDir;
      const list = await (await admin()).listTenants(o.tenants, stateDir);
      if (o.json) return void process.stdout.write(JSON.stringify(list, null, 2) + '\n');
      if (list.tenants.length === 0 && list.orphans.length === 0) return void process.stdout.write('no tenants\n');
      const keyLines = (keys: KeyListing[]): string => keys.map((k) => `  ${k.handle} ${k.type} ${k.hashAlg} ${k.state} ${k.store} ${k.createdAt}\n`).join('');
      for (const t of list.tenants) {
        const cid = t.cid === undefined ? '' : ` cid=${t.cid}`;
        const usage = `${t.cgroup === undefined ? '' : ` cgroup=${t.cgroup}`}${t.netifs === undefined ? '' : ` netifs=${t.netifs.join(',')}`}`;
        process.stdout.write(`${t.id} record=${t.record}${cid} maxKeys=${t.maxKeys}${t.hasSecret ? ' secret=yes' : ''}${usage} keys=${t.keys.length}\n${keyLines(t.keys)}`);
      }
      for (const r of list.orphans) {
        process.stdout.write(
          `ORPHANED record ${r.record} (was ${r.tenant}) keys=${r.keys.length}${r.appParent ? ' app-parent=yes' : ''}: its tenant was removed; ` +
            `delete them with: eve-tpm-service tenant purge --record ${r.record} --tenants ${o.tenants} --state-dir ${stateDir}\n${keyLines(r.keys)}`,
        );
      }
    } catch (e) {
      adminError(e);
    }
  });

tenant
  .command('remove')
  .description("remove a tenant (its keys stay, as orphans of its record); with --purge also delete its keys — or, for a name no longer configured, the keys its removed tenant left")
  .requiredOption('--id <id>', 'tenant id')
  .requiredOption('--tenants <file>', 'tenants file')
  .option('--purge', "delete the tenant's keys")
  .option('--config <file>', 'service config file (for --state-dir, --tpm, --key-store)')
  .option('--state-dir <dir>', 'service state directory (default /var/lib/eve-tpm-service)')
  .option('--tpm <spec>', 'TPM (used only when the service is stopped and keys live in the TPM)')
  .action(async (o: { id: string; tenants: string; purge?: boolean; config?: string; stateDir?: string; tpm?: string }) => {
    try {
      const config = stateConfig(o);
      const r = await (await admin()).removeTenant({ tenantsFile: o.tenants, id: o.id, purge: o.purge === true, config, log: createLogger('warn') });
      process.stdout.write(
        o.purge
          ? `Tenant ${o.id} removed; ${purgeLine(r)}.\n`
          : `Tenant ${o.id} removed; ${r.remaining} key(s) kept as orphans of record ${r.record}` +
              (r.remaining ? ` (no tenant sees them; delete them with: eve-tpm-service tenant purge --record ${r.record} --tenants ${o.tenants} --state-dir ${config.stateDir}).\n` : '.\n'),
      );
    } catch (e) {
      adminError(e);
    }
  });

tenant
  .command('purge')
  .description('delete the keys of a removed tenant (an orphaned record, see tenant list)')
  .requiredOption('--record <record>', 'the record id tenant list shows (16 hex digits, or legacy:ID)')
  .requiredOption('--tenants <file>', 'tenants file (the record must not be a configured tenant\'s)')
  .option('--config <file>', 'service config file (for --state-dir, --tpm, --key-store)')
  .option('--state-dir <dir>', 'service state directory (default /var/lib/eve-tpm-service)')
  .option('--tpm <spec>', 'TPM (used only when the service is stopped and keys live in the TPM)')
  .action(async (o: { record: string; tenants: string; config?: string; stateDir?: string; tpm?: string }) => {
    try {
      const r = await (await admin()).purgeOrphans({ tenantsFile: o.tenants, record: o.record, config: stateConfig(o), log: createLogger('warn') });
      process.stdout.write(`Record ${r.record}: ${purgeLine(r)}.\n`);
    } catch (e) {
      adminError(e);
    }
  });

tenant
  .command('set')
  .description("set where a tenant's resource usage is read (EVE: when the app instance starts); the running service picks it up")
  .requiredOption('--id <id>', 'tenant id')
  .requiredOption('--tenants <file>', 'tenants file')
  .option('--cgroup <path>', "the app's cgroup on the host (hierarchy path or directory; v1 or v2)")
  .option('--no-cgroup', 'forget the cgroup')
  .option('--netif <name>', 'a host-side network interface of the app (repeatable; replaces the list)', collect)
  .option('--no-netif', 'forget the interfaces')
  .action(async (o: { id: string; tenants: string; cgroup?: string | false; netif?: string[] | false }) => {
    try {
      const { AdminError, setTenantUsage } = await admin();
      if (o.cgroup === undefined && o.netif === undefined) throw new AdminError('tenant set needs --cgroup PATH, --no-cgroup, --netif NAME or --no-netif');
      const t = await setTenantUsage({
        tenantsFile: o.tenants,
        id: o.id,
        ...(o.cgroup === undefined ? {} : { cgroup: o.cgroup === false ? null : o.cgroup }),
        ...(o.netif === undefined ? {} : { netifs: o.netif === false ? [] : o.netif }),
      });
      process.stdout.write(`Tenant ${t.id}: cgroup ${t.cgroup ?? 'none'}, interfaces ${t.netifs?.join(', ') ?? 'none'}.\n`);
    } catch (e) {
      adminError(e);
    }
  });

program
  .command('stats')
  .description("every app's resource usage and TPM share, from the running service's admin-only stats socket (STATE_DIR/stats.sock)")
  .option('--config <file>', 'service config file (for --state-dir)')
  .option('--state-dir <dir>', 'service state directory (default /var/lib/eve-tpm-service)')
  .option('--json', 'print the raw readings as JSON')
  .option('--prometheus', 'print the Prometheus text the socket serves at /metrics')
  .action(async (o: { config?: string; stateDir?: string; json?: boolean; prometheus?: boolean }) => {
    const { fetchStats, statsText, StatsUnavailable } = await import('../service/usage/stats-command.js');
    try {
      if (o.json && o.prometheus) {
        const { AdminError } = await admin();
        throw new AdminError('--json and --prometheus: choose one');
      }
      const config = configFrom({ config: o.config, stateDir: o.stateDir, singleTenant: true, listen: ['unix:/nonexistent'] });
      const socket = statsSocketPath(config.stateDir);
      if (o.prometheus) return void process.stdout.write(await fetchStats(socket, '/metrics'));
      const text = await fetchStats(socket, '/stats');
      process.stdout.write(o.json ? `${text}\n` : statsText(JSON.parse(text) as Stats));
    } catch (e) {
      if (e instanceof StatsUnavailable) fail(e.message, EXIT.FAILURE);
      adminError(e);
    }
  });

const registry = program.command('registry').description('repair the key registry (service stopped)');

registry
  .command('rebuild')
  .description('re-create the registry entries of key blob files that have none (after registry.json was lost); takes the state lock')
  .option('--state-dir <dir>', "service state directory (default: --config's, else /var/lib/eve-tpm-service)")
  .addOption(new Option('--key-store <mode>', "the service's key store (default: --config's, else blobs)").choices(['blobs', 'tpm']))
  .option('--config <file>', 'service config file (for --state-dir, --key-store)')
  .option('--tenants <file>', 'tenants file: mark restored keys whose record no tenant has')
  .action(async (o: { stateDir?: string; keyStore?: string; config?: string; tenants?: string }) => {
    try {
      const config = configFrom({ config: o.config, stateDir: o.stateDir, keyStore: o.keyStore, singleTenant: true, listen: ['unix:/nonexistent'] });
      const r = await (await import('../service/keys/rebuild.js')).rebuildRegistry(config.stateDir, config.keyStore);
      const configured = o.tenants ? new Map((await (await admin()).listTenants(o.tenants, config.stateDir)).tenants.map((t) => [t.record, t.id])) : undefined;
      process.stdout.write(`Registry ${config.stateDir}/registry.json: ${r.restored.length} key(s) restored from their blob files, ${r.kept} entr(y/ies) already there.\n`);
      for (const e of r.restored) {
        const who = configured === undefined ? '' : configured.has(e.owner) ? ` (tenant ${configured.get(e.owner)!})` : ' (ORPHANED: no configured tenant has this record)';
        process.stdout.write(`  ${formatHandle(e.handle)} ${e.type} ${e.hashAlg} ${e.store} record ${e.owner} was ${e.tenant}${who}\n`);
      }
      for (const p of r.skipped) process.stdout.write(`  skipped ${p.file}: ${p.problem} (left in place)\n`);
    } catch (e) {
      adminError(e);
    }
  });

/** "eve-tpm-service tenant list": the command as the user typed it, for "see … --help". */
const commandPath = (c: Command): string => (c.parent ? `${commandPath(c.parent)} ${c.name()}` : c.name());

/**
 * Each command reports its own usage errors as one line with exit 2, as the tools do. Commander
 * checks required options before unknown ones; a typo (`--tenats`) is reported as itself.
 */
function reportUsage(cmd: Command): void {
  cmd.exitOverride((e: CommanderError) => {
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || (e.code === 'commander.help' && e.exitCode === 0)) process.exit(EXIT.OK);
    if (e.code === 'commander.missingMandatoryOptionValue') {
      const typo = cmd.args.find((a) => a.startsWith('-') && a !== '-');
      if (typo !== undefined) (cmd as unknown as { unknownOption(flag: string): never }).unknownOption(typo);
    }
    const line =
      e.code === 'commander.help'
        ? `${cmd.name()} needs a subcommand: ${cmd.commands.map((c) => c.name()).join(', ')}`
        : e.message.replace(/^error:\s*/, '').split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
    fail(`${line} (see ${commandPath(cmd)} --help)`, EXIT.CONFIG);
  });
  for (const c of cmd.commands) reportUsage(c);
}
reportUsage(program);

// `serve` is the default command, so commander would read `eve-tpm-service tenants add` as serve
// with stray arguments; a first word that is no command is reported as an unknown command.
const first = process.argv[2];
if (first !== undefined && !first.startsWith('-') && first !== 'help' && !program.commands.some((c) => c.name() === first)) {
  (program as unknown as { args: string[] }).args = [first];
  (program as unknown as { unknownCommand(): never }).unknownCommand();
}
program.parseAsync(process.argv).catch((e: unknown) => fail((e as Error).message, EXIT.FAILURE));
