/**
 * `eve-tpm-vtpmd`: the guest daemon that gives every TPM program a real device. It makes
 * /dev/tpmN + /dev/tpmrmN through the kernel's vTPM proxy and answers each command the kernel
 * sends to that chip through a FrameChannel: the host service's raw channel (its firewall), or a
 * pass-through to a TPM (`--tpm`, for tests and development). The kernel's own start-up commands
 * (SelfTest or Startup, GetCapability, later GetRandom for hwrng) take the same way; only the
 * proxy's SET_LOCALITY is answered here (docs/FIREWALL.md "The guest's TPM device").
 *
 * Exit status: 0 stopped by SIGTERM/SIGINT (the device is gone); 1 the kernel dropped the device
 * (registration failed: see dmesg) or it did not come up in time; 2 usage; 3 the device cannot
 * be made (no /dev/vtpmx, not root); 4 the channel cannot be used.
 */
import { promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pkg from '../../package.json' with { type: 'json' };
import { rcText } from '../tpm/rc.js';
import { resolveService } from '../cli/config.js';
import { ChannelUnreachableError, openPassThrough, type FrameChannel } from './frame-channel.js';
import { openRawChannel } from './raw-channel.js';
import { vtpmdSetupScript } from './vtpmd-setup.js';
import { commandCode, responseCode, TPM2_CC_SET_LOCALITY, VtpmDevice, VtpmProxyError, VTPMX_PATH } from './vtpm-proxy.js';

export const PROG = 'eve-tpm-vtpmd';
export const VTPMD_EXIT = { OK: 0, DEVICE_LOST: 1, USAGE: 2, NO_DEVICE: 3, NO_CHANNEL: 4 } as const;

const USAGE = `Usage: ${PROG} [--service ADDRESS] [--secret-file FILE] [--vtpmx PATH] [--ready-timeout S] [--ready-file FILE] [--trace]
       ${PROG} --tpm SPEC [--vtpmx PATH] [--ready-timeout S] [--ready-file FILE] [--trace]
       ${PROG} --setup-script

Creates a TPM 2.0 device (/dev/tpmN and /dev/tpmrmN) with the kernel's vTPM proxy and forwards
every command sent to it. Applications open /dev/tpmrmN (tpm2-tools:
TPM2TOOLS_TCTI=device:/dev/tpmrmN). Needs root and the module tpm_vtpm_proxy
(modprobe tpm_vtpm_proxy). Runs until SIGTERM or SIGINT; the device disappears then.

  --service ADDRESS     the host service (vsock:CID:PORT, unix:PATH, tcp:HOST:PORT); as for the
  --secret-file FILE    eve_tools_tpm2_* tools: flag > EVE_TOOLS_SERVICE / EVE_TOOLS_SECRET >
                        /etc/eve-tools/config.json (EVE_TOOLS_CONFIG) > vsock:2:8877
  --tpm SPEC            instead of the service, pass-through to this TPM (tests, development):
                        the raw chip /dev/tpm0 (/dev/tpmrmN above it is the resource manager),
                        or swtpm:unix:PATH, swtpm:tcp:HOST:PORT
  --vtpmx PATH          the proxy's control device (default ${VTPMX_PATH})
  --ready-timeout S     seconds to wait for the kernel to register the device (default 60)
  --ready-file FILE     once ready, write "/dev/tpmN /dev/tpmrmN" to FILE (removed on exit)
  --setup-script        print the sh script that loads tpm_vtpm_proxy and runs this daemon now
                        and at boot (systemd, OpenRC or by hand); deploy/install.sh runs it
  --trace               one line on stderr per command: code, response code
  -h, --help, --version

Prints "${PROG}: ready /dev/tpmN /dev/tpmrmN" on stdout once the device can be opened.
Exit status: 0 stopped by a signal; 1 the kernel dropped the device or it did not come up;
2 usage (or FILE cannot be written); 3 the device cannot be made; 4 the service (or --tpm)
cannot be used. Every exit says why on stderr.`;

export interface VtpmdIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  /** Aborting stops the daemon (the bin aborts on SIGTERM/SIGINT). */
  signal: AbortSignal;
}

const hex = (n: number): string => (n < 0 ? 'none' : `0x${n.toString(16).padStart(8, '0')}`);

/** Runs the daemon until `io.signal` aborts or the device is lost; resolves with the exit status. */
export async function runVtpmd(argv: string[], io: VtpmdIO): Promise<number> {
  const err = (s: string): void => void io.stderr.write(`${PROG}: ${s}\n`);
  let opts: {
    tpm?: string;
    service?: string;
    'secret-file'?: string;
    vtpmx?: string;
    'ready-timeout'?: string;
    'ready-file'?: string;
    'setup-script'?: boolean;
    trace?: boolean;
    help?: boolean;
    version?: boolean;
  };
  try {
    opts = parseArgs({
      args: argv,
      options: {
        tpm: { type: 'string' },
        service: { type: 'string' },
        'secret-file': { type: 'string' },
        vtpmx: { type: 'string' },
        'ready-timeout': { type: 'string' },
        'ready-file': { type: 'string' },
        'setup-script': { type: 'boolean' },
        trace: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    err(`${(e as Error).message} (try --help)`);
    return VTPMD_EXIT.USAGE;
  }
  if (opts.help) {
    io.stdout.write(`${USAGE}\n`);
    return VTPMD_EXIT.OK;
  }
  if (opts.version) {
    io.stdout.write(`${PROG} ${pkg.version}\n`);
    return VTPMD_EXIT.OK;
  }
  if (opts['setup-script']) {
    // For the daemon as installed: this very file, where install.sh put it.
    io.stdout.write(vtpmdSetupScript(resolve(process.argv[1] ?? PROG)));
    return VTPMD_EXIT.OK;
  }
  if (opts.tpm !== undefined && (opts.service !== undefined || opts['secret-file'] !== undefined)) {
    err('--tpm and --service/--secret-file exclude each other: commands go to one place (try --help)');
    return VTPMD_EXIT.USAGE;
  }
  const readyTimeout = Number(opts['ready-timeout'] ?? 60);
  if (!(Number.isFinite(readyTimeout) && readyTimeout > 0 && readyTimeout <= 3600)) {
    err(`--ready-timeout must be a number of seconds in (0, 3600], got ${opts['ready-timeout']}`);
    return VTPMD_EXIT.USAGE;
  }

  if (opts.tpm && /tpmrm\d+$/.test(opts.tpm)) {
    // Measured in the qemu guest: the new device's own resource manager above a second one
    // fails on sessions (each virtualizes them; the lower one answers EINVAL).
    err(`warning: ${opts.tpm} is a resource manager, and /dev/tpmrmN above it is another; prefer the raw chip (/dev/tpm0)`);
  }
  let channel: FrameChannel;
  try {
    if (opts.tpm !== undefined) channel = await openPassThrough(opts.tpm);
    else {
      const settings = resolveService({ service: opts.service, secretFile: opts['secret-file'] }, process.env);
      for (const w of settings.warnings) err(w);
      channel = await openRawChannel(settings.address, settings.secret);
    }
  } catch (e) {
    err(e instanceof Error ? e.message : String(e));
    return e instanceof ChannelUnreachableError ? VTPMD_EXIT.NO_CHANNEL : VTPMD_EXIT.USAGE;
  }
  let device: VtpmDevice;
  try {
    device = new VtpmDevice({ control: opts.vtpmx ?? VTPMX_PATH, onDropped: (why) => err(why) });
  } catch (e) {
    await channel.close();
    err(e instanceof VtpmProxyError ? e.message : String(e));
    return VTPMD_EXIT.NO_DEVICE;
  }

  let last = '';
  device.serve(async (command) => {
    const cc = commandCode(command);
    // A channel failure rejects: VtpmDevice answers TPM_RC_FAILURE and says so on stderr.
    const response = cc === TPM2_CC_SET_LOCALITY ? responseCode(0) : await channel.transact(command);
    const rc = commandCode(response);
    last = `${hex(cc)} answered ${hex(rc)}`;
    if (opts.trace) err(`trace ${hex(cc)} ${command.length} bytes -> ${hex(rc)} ${response.length} bytes${cc === TPM2_CC_SET_LOCALITY ? ' (answered here)' : rc ? ` ${rcText(rc)}` : ''}`);
    return response;
  });

  const stop = (): Promise<void> => {
    device.close();
    return channel.close();
  };
  const aborted = new Promise<'signal'>((r) => {
    if (io.signal.aborted) r('signal');
    else io.signal.addEventListener('abort', () => r('signal'), { once: true });
  });
  const ended = device.ended.then(() => 'ended' as const);

  const waiting = new AbortController(); // stops the wait for the node once the race is decided
  const up = await Promise.race([waitForNode(device.rmPath, readyTimeout * 1000, [io.signal, waiting.signal]), ended, aborted]);
  waiting.abort();
  if (up !== true) {
    await stop();
    if (up === 'signal') {
      err(`stopped by ${signalName(io.signal)} before ${device.rmPath} came up`);
      return VTPMD_EXIT.OK;
    }
    err(
      up === 'ended'
        ? `the kernel dropped ${device.devicePath} while registering it${last ? ` (last: ${last})` : ''}; see dmesg`
        : `${device.rmPath} did not appear within ${readyTimeout} s${last ? ` (last: ${last})` : ''}`,
    );
    return VTPMD_EXIT.DEVICE_LOST;
  }
  const readyFile = opts['ready-file'];
  if (readyFile !== undefined) {
    try {
      // Whole or absent: a reader (the setup script) never sees half a line.
      await fsp.writeFile(`${readyFile}.tmp`, `${device.devicePath} ${device.rmPath}\n`);
      await fsp.rename(`${readyFile}.tmp`, readyFile);
    } catch (e) {
      await stop();
      err(`cannot write the ready file ${readyFile}: ${(e as Error).message}; ${device.rmPath} removed, exiting`);
      return VTPMD_EXIT.USAGE;
    }
  }
  io.stdout.write(`${PROG}: ready ${device.devicePath} ${device.rmPath} (commands to ${channel.description})\n`);

  const why = await Promise.race([ended, aborted]);
  await stop();
  if (readyFile !== undefined) await fsp.rm(readyFile, { force: true }).catch(() => {});
  if (why === 'signal') {
    err(`stopped by ${signalName(io.signal)}: ${device.devicePath} and ${device.rmPath} removed`);
    return VTPMD_EXIT.OK;
  }
  err(`the kernel dropped ${device.devicePath}; see dmesg; exiting`);
  return VTPMD_EXIT.DEVICE_LOST;
}

/** The abort reason when it is a signal name (the bin aborts with 'SIGTERM'/'SIGINT'). */
const signalName = (s: AbortSignal): string => (typeof s.reason === 'string' ? s.reason : 'a signal');

/** True once `path` exists; false when the time is up or a signal aborts. */
async function waitForNode(path: string, ms: number, signals: AbortSignal[]): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!signals.some((s) => s.aborted) && Date.now() < deadline) {
    try {
      await fsp.access(path);
      return true;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  return false;
}
