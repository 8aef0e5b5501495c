/**
 * The script the cloud-init user-data runs in the application VM (runcmd) after write_files
 * has put the tools bundle, the vsock addons and the config in place: checks Node, picks the
 * addon for this machine (or sets up the socat bridge), and writes the eve_tools_* commands.
 * Plain POSIX sh (dash, busybox): stock guests have nothing more. Needs no network.
 */
import { TOOL_NAMES, toolCommand } from '../protocol/tools.js';
import { ENVIRONMENT, TCTI_PROFILE } from '../../guest/vtpmd-setup.js';

/** Where the user-data puts the tools in the VM. */
export const GUEST_LIB = '/usr/local/lib/eve-tools';
export const GUEST_BIN = '/usr/local/bin';
export const GUEST_CONFIG = '/etc/eve-tools/config.json';
export const GUEST_BRIDGE_SOCKET = '/run/eve-tools.sock';
/** The commands written (eve_tools_tpm2_sign, eve_tools_usage). */
export const GUEST_TOOLS = TOOL_NAMES.map(toolCommand);

/**
 * How stock TPM software in the VM reaches the TPM (`tenant add --raw-tpm`): `tcti` makes the
 * cmd TCTI through eve_tools_tpm2_tcti the default of tpm2-tools and the tpm2-openssl provider;
 * `device` runs eve-tpm-vtpmd, a real /dev/tpmrmN through the kernel's vTPM proxy
 * (src/guest/vtpmd-setup.ts), for every TPM program.
 */
export const RAW_TPM_MODES = ['none', 'tcti', 'device'] as const;
export type RawTpm = (typeof RAW_TPM_MODES)[number];
/** The login shells' defaults; /etc/environment gets the same lines for everything pam_env starts. */
export const GUEST_TCTI_PROFILE = TCTI_PROFILE;
export const GUEST_ENVIRONMENT = ENVIRONMENT;
/** `--raw-tpm device`: the daemon bundle and the script that runs it (vtpmd-setup.ts). */
export const GUEST_VTPMD = `${GUEST_LIB}/eve-tpm-vtpmd.cjs`;
export const GUEST_VTPMD_SETUP = `${GUEST_LIB}/vtpmd-setup.sh`;

/** The variables `--raw-tpm tcti` sets in the VM. */
export function rawTpmEnv(): Record<string, string> {
  const tcti = `cmd:${GUEST_BIN}/${toolCommand('tcti')}`;
  return { TPM2TOOLS_TCTI: tcti, TPM2OPENSSL_TCTI: tcti };
}

/** A check the setup script ends with: the cmd TCTI is a separate Debian package. */
function tctiCheck(): string {
  return `cmd_tcti=""
for f in /usr/lib/*/libtss2-tcti-cmd.so.0 /usr/lib/libtss2-tcti-cmd.so.0 /usr/lib64/libtss2-tcti-cmd.so.0; do
  if [ -e "$f" ]; then cmd_tcti=$f; fi
done
if [ -z "$cmd_tcti" ]; then
  say "TPM2TOOLS_TCTI is set to ${rawTpmEnv().TPM2TOOLS_TCTI}, but tpm2-tss's cmd TCTI is missing: install libtss2-tcti-cmd0 (with tpm2-tools, python3-tpm2-pytss or tpm2-openssl as the app needs)"
fi
`;
}

export function guestSetupScript(rawTpm: RawTpm = 'none'): string {
  return `#!/bin/sh
# Written by eve-tpm-service tenant add: installs the eve_tools_* commands from ${GUEST_LIB}.
set -eu
lib=${GUEST_LIB}
bin=\${EVE_TOOLS_BIN:-${GUEST_BIN}}
config=${GUEST_CONFIG}
say() { echo "eve-tools: $*" >&2; }

command -v node >/dev/null 2>&1 || { say "node not found: the tools need Node.js 18 or later in the image (Debian/Ubuntu: apt-get install nodejs)"; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
  { say "node $(node --version) is too old: the tools need Node.js 18 or later"; exit 1; }

# The service address the config names; only a vsock one needs the addon or the bridge.
service=$(node -e 'try { process.stdout.write(String(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).service || "")) } catch {}' "$config")
case "$service" in vsock:*) ;; *) service="" ;; esac

case "$(uname -m)" in x86_64|amd64) arch=x64 ;; aarch64|arm64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
libc=glibc
if ldd --version 2>&1 | grep -qi musl || ls /lib/ld-musl-* >/dev/null 2>&1; then libc=musl; fi
addon=$lib/prebuilds/linux-$arch-$libc/vsock.node

envs=""
how="service at \${service:-the configured unix/tcp address}"
if [ -z "$service" ]; then :
elif [ -f "$addon" ]; then
  envs="EVE_TOOLS_VSOCK_ADDON=\\\${EVE_TOOLS_VSOCK_ADDON:-$addon}; export EVE_TOOLS_VSOCK_ADDON"
  how="vsock addon linux-$arch-$libc"
elif command -v socat >/dev/null 2>&1 && socat -V 2>/dev/null | grep -q 'WITH_VSOCK 1'; then
  # No addon for this machine: socat relays a root-only unix socket to the service's vsock
  # port, so the service still sees this VM's CID.
  target=VSOCK-CONNECT:$(echo "$service" | cut -d: -f2-3)
  listen="UNIX-LISTEN:${GUEST_BRIDGE_SOCKET},fork,mode=600,unlink-early"
  if [ -d /run/systemd/system ]; then
    cat >/etc/systemd/system/eve-tools-bridge.service <<UNIT
[Unit]
Description=eve-tools: unix socket to the TPM service over vsock
[Service]
ExecStart=$(command -v socat) $listen $target
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload && systemctl enable --now eve-tools-bridge.service
  else
    say "no systemd: socat bridge started now; start '$(command -v socat) $listen $target' at boot from this image's init"
    nohup socat "$listen" "$target" >/dev/null 2>&1 &
  fi
  envs="EVE_TOOLS_SERVICE=\\\${EVE_TOOLS_SERVICE:-unix:${GUEST_BRIDGE_SOCKET}}; export EVE_TOOLS_SERVICE"
  how="socat bridge ${GUEST_BRIDGE_SOCKET} -> $service"
else
  how="NO vsock: no addon for linux-$arch-$libc and no socat with vsock; install socat (>= 1.7.4) and rerun $lib/setup.sh"
fi

mkdir -p "$bin"
for t in ${GUEST_TOOLS.join(' ')}; do
  tmp=$bin/.$t.new
  printf '#!/bin/sh\\n%s\\nexec node %s %s "$@"\\n' "$envs" "$lib/eve-tools.cjs" "$t" >"$tmp"
  chmod 755 "$tmp"
  mv -f "$tmp" "$bin/$t"
done
say "installed ${GUEST_TOOLS.length} tools in $bin ($how)"
${rawTpm === 'tcti' ? tctiCheck() : ''}${rawTpm === 'device' ? `sh ${GUEST_VTPMD_SETUP}\n` : ''}`;
}
