/**
 * The sh script that makes eve-tpm-vtpmd the VM's TPM device for good: loads tpm_vtpm_proxy,
 * runs the daemon now and at every boot under the init the VM really has (systemd: a unit with
 * Restart=on-failure; OpenRC: an init.d script under supervise-daemon; neither: started now, and
 * a message saying how to start it at boot), then waits, bounded, for the device the daemon
 * reports in its ready file. One source for both ways in: the cloud-init user-data of `tenant
 * add --raw-tpm device` writes it (guest-setup.ts), and deploy/install.sh `--raw-tpm device`
 * gets it from `eve-tpm-vtpmd --setup-script`. Plain POSIX sh (dash, busybox).
 *
 * TPM2TOOLS_TCTI: left unset when the device is /dev/tpmrm0 (tpm2-tss's default TCTI opens
 * /dev/tpmrm0). When the VM has another TPM there (e.g. EVE's per-VM vTPM), the new device is
 * /dev/tpmrmN and the script writes TPM2TOOLS_TCTI / TPM2OPENSSL_TCTI=device:/dev/tpmrmN to
 * profile.d and /etc/environment, and says so.
 */

/** The daemon writes "/dev/tpmN /dev/tpmrmN" here once the device can be opened. */
export const VTPMD_READY_FILE = '/run/eve-tpm-vtpmd.ready';
/** The service name under systemd and OpenRC. */
export const VTPMD_SERVICE = 'eve-tpm-vtpmd';
/** Its process id when started by hand (no systemd, no OpenRC). */
export const VTPMD_PID_FILE = '/run/eve-tpm-vtpmd.pid';
/** Its log under OpenRC and when started by hand (systemd: the journal). */
export const VTPMD_LOG = '/var/log/eve-tpm-vtpmd.log';
/** The TCTI defaults written when the device is not /dev/tpmrm0 (the same files as `--raw-tpm tcti`). */
export const TCTI_PROFILE = '/etc/profile.d/eve-tools-tpm2.sh';
export const ENVIRONMENT = '/etc/environment';
/** Seconds the script waits for the device (EVE_TPM_VTPMD_WAIT overrides). */
export const VTPMD_WAIT_S = 60;

const shQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The script for the daemon bundle at `daemon` (an absolute path in the VM). */
export function vtpmdSetupScript(daemon: string): string {
  return `#!/bin/sh
# Written by eve-tpm-service (eve-tpm-vtpmd --setup-script): makes ${VTPMD_SERVICE} the TPM
# device of this VM, now and at every boot. See docs/FIREWALL.md "The guest's TPM device".
set -eu
daemon=${shQuote(daemon)}
ready=${VTPMD_READY_FILE}
log=${VTPMD_LOG}
wait_s=\${EVE_TPM_VTPMD_WAIT:-${VTPMD_WAIT_S}}
say() { echo "eve-tools: $*" >&2; }

node=$(command -v node) || { say "node not found: ${VTPMD_SERVICE} needs Node.js 18 or later in the image"; exit 1; }
[ -f "$daemon" ] || { say "no $daemon: the TPM device daemon was not installed"; exit 1; }
[ "$(id -u)" = 0 ] || { say "the TPM device needs root: run this as root"; exit 1; }

# The kernel's vTPM proxy: /dev/vtpmx appears once the module is loaded.
modprobe_cmd=$(command -v modprobe || echo /sbin/modprobe)
if [ ! -c /dev/vtpmx ]; then
  if ! out=$("$modprobe_cmd" tpm_vtpm_proxy 2>&1); then
    say "cannot load the kernel module tpm_vtpm_proxy (\${out:-modprobe failed}): this VM's kernel needs CONFIG_TCG_VTPM_PROXY (a module in Debian's and Ubuntu's generic kernels); no TPM device was made"
    exit 1
  fi
  i=0
  while [ ! -c /dev/vtpmx ] && [ "$i" -lt 10 ]; do sleep 1; i=$((i + 1)); done
  [ -c /dev/vtpmx ] || { say "tpm_vtpm_proxy is loaded but /dev/vtpmx did not appear"; exit 1; }
fi

rm -f "$ready"
mkdir -p "$(dirname "$ready")"
pid=""
if [ -d /run/systemd/system ]; then
  cat >/etc/systemd/system/${VTPMD_SERVICE}.service <<UNIT
[Unit]
Description=eve-tpm-vtpmd: this VM's TPM device, commands through the host's TPM service
[Service]
ExecStartPre=-$modprobe_cmd tpm_vtpm_proxy
ExecStart=$node $daemon --ready-file $ready
Restart=on-failure
RestartSec=5
[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable ${VTPMD_SERVICE}.service
  systemctl restart ${VTPMD_SERVICE}.service
  how="systemd unit ${VTPMD_SERVICE}.service, started at boot"
  logs="journalctl -u ${VTPMD_SERVICE}"
elif command -v openrc-run >/dev/null 2>&1 && command -v rc-update >/dev/null 2>&1; then
  cat >/etc/init.d/${VTPMD_SERVICE} <<RC
#!/sbin/openrc-run
description="eve-tpm-vtpmd: this VM's TPM device, commands through the host's TPM service"
supervisor=supervise-daemon
respawn_delay=5
command="$node"
command_args="$daemon --ready-file $ready"
output_log="$log"
error_log="$log"
start_pre() { $modprobe_cmd -q tpm_vtpm_proxy || true; }
RC
  chmod 755 /etc/init.d/${VTPMD_SERVICE}
  rc-update add ${VTPMD_SERVICE} default >/dev/null
  rc-service ${VTPMD_SERVICE} restart >&2
  how="OpenRC service ${VTPMD_SERVICE}, started at boot"
  logs=$log
else
  mkdir -p "$(dirname "$log")"
  "$node" "$daemon" --ready-file "$ready" >>"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >${VTPMD_PID_FILE}
  how="pid $pid in ${VTPMD_PID_FILE}; started now, NOT at boot: neither systemd nor OpenRC found; have this image's init run, as root, '$modprobe_cmd tpm_vtpm_proxy; $node $daemon --ready-file $ready >>$log 2>&1 &'"
  logs=$log
fi

# The device the daemon reports (the kernel numbers it: /dev/tpmrm0 unless the VM has a TPM already).
i=0
while [ ! -s "$ready" ]; do
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
    say "${VTPMD_SERVICE} exited before its device came up: $(tail -n 3 "$log" 2>/dev/null | tr '\\n' ' ')(see $logs)"
    exit 1
  fi
  if [ "$i" -ge "$wait_s" ]; then
    say "no TPM device from ${VTPMD_SERVICE} within $wait_s s (see $logs)"
    exit 1
  fi
  sleep 1
  i=$((i + 1))
done
read -r tpm tpmrm <"$ready"

if [ "$tpmrm" = /dev/tpmrm0 ]; then
  tcti="stock TPM software finds it with no settings (tpm2-tss's default TCTI is /dev/tpmrm0)"
else
  # Another TPM (e.g. EVE's per-VM vTPM) holds /dev/tpmrm0: make tpm2-tss's default this device.
  if [ -f ${ENVIRONMENT} ]; then
    grep -v -e '^TPM2TOOLS_TCTI=' -e '^TPM2OPENSSL_TCTI=' ${ENVIRONMENT} >${ENVIRONMENT}.eve-new || true
    cat ${ENVIRONMENT}.eve-new >${ENVIRONMENT}
    rm -f ${ENVIRONMENT}.eve-new
  fi
  printf 'TPM2TOOLS_TCTI="device:%s"\\nTPM2OPENSSL_TCTI="device:%s"\\n' "$tpmrm" "$tpmrm" >>${ENVIRONMENT}
  mkdir -p "$(dirname ${TCTI_PROFILE})"
  printf '# Written by eve-tpm-vtpmd setup: this VM has another TPM at /dev/tpmrm0.\\nexport TPM2TOOLS_TCTI="device:%s"\\nexport TPM2OPENSSL_TCTI="device:%s"\\n' "$tpmrm" "$tpmrm" >${TCTI_PROFILE}
  tcti="this VM has another TPM at /dev/tpmrm0: TPM2TOOLS_TCTI=device:$tpmrm set in ${TCTI_PROFILE} and ${ENVIRONMENT}; point other TPM software at $tpmrm"
fi
say "TPM device $tpm + $tpmrm up ($how; logs: $logs); $tcti"
`;
}
