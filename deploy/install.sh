#!/bin/sh
# Installs the eve_tools_tpm2_* container tools, and optionally writes their config file.
# For images built without cloud-init; cloud-init (deploy/cloud-init.yaml) calls this too.
#
#   install.sh [--from DIR] [--prefix DIR] [--service ADDRESS] [--secret-file FILE | --secret-env]
#              [--config FILE] [--owner USER[:GROUP]] [--raw-tpm none|tcti|device]
#   install.sh --bundle OUT.tar.gz      (in a built checkout: make the tarball this script installs)
#   install.sh --uninstall [--prefix DIR]
#
# The tools are self-contained Node.js files (Node >= 18, no node_modules). The vsock addons
# (prebuilds/linux-{x64,arm64}-{glibc,musl}/vsock.node) are copied beside them; the tools pick
# the one for the machine at run time. For cloud-init with no network, prefer
# `eve-tpm-service tenant add --user-data FILE`. See docs/TOOLS.md, "Installing".
# --raw-tpm (root): tcti makes the cmd TCTI through eve_tools_tpm2_tcti the default of stock TPM
# software; device runs eve-tpm-vtpmd (a real /dev/tpmrmN) now and at boot, as the user-data does.
set -eu

TOOLS="eve_tools_tpm2_genaik eve_tools_tpm2_pubgetaik eve_tools_tpm2_sign eve_tools_tpm2_listkeys eve_tools_tpm2_evictaik eve_tools_tpm2_capabilities eve_tools_tpm2_pcrread eve_tools_tpm2_quote eve_tools_tpm2_ekpub eve_tools_tpm2_ekcert eve_tools_tpm2_activatecredential eve_tools_tpm2_certify eve_tools_usage eve_tools_tpm2_genkey eve_tools_tpm2_rsadecrypt eve_tools_tpm2_ecdh eve_tools_tpm2_csr eve_tools_tpm2_cert eve_tools_tpm2_tcti"

prog=$(basename "$0")
die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*"; }

here=$(cd "$(dirname "$0")" && pwd)
from=""
prefix=/usr/local
service=""
secret_file=""
secret_env=0
config=${EVE_TOOLS_CONFIG:-/etc/eve-tools/config.json}
owner=""
bundle=""
uninstall=0
raw_tpm=none
# The device daemon: in the bundle and installed beside the tools, run only with --raw-tpm device.
VTPMD=eve-tpm-vtpmd

need_arg() { [ $# -ge 2 ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --from) need_arg "$@"; from=$2; shift 2 ;;
    --prefix) need_arg "$@"; prefix=$2; shift 2 ;;
    --service) need_arg "$@"; service=$2; shift 2 ;;
    --secret-file) need_arg "$@"; secret_file=$2; shift 2 ;;
    --secret-env) secret_env=1; shift ;;
    --config) need_arg "$@"; config=$2; shift 2 ;;
    --owner) need_arg "$@"; owner=$2; shift 2 ;;
    --bundle) need_arg "$@"; bundle=$2; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    --raw-tpm) need_arg "$@"; raw_tpm=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

case "$raw_tpm" in none|tcti|device) ;; *) die "--raw-tpm must be one of none, tcti, device, got '$raw_tpm'" ;; esac

libdir=$prefix/lib/eve-tools
bindir=$prefix/bin

if [ "$uninstall" = 1 ]; then
  for t in $TOOLS $VTPMD; do rm -f "$bindir/$t"; done
  rm -rf "$libdir"
  say "removed the tools from $prefix (config $config left in place)"
  exit 0
fi

# Where the built files are: an unpacked bundle has bin/ beside this script; a checkout has dist/bin.
if [ -z "$from" ]; then
  if [ -f "$here/bin/eve_tools_tpm2_sign.cjs" ]; then from=$here
  elif [ -f "$here/../dist/bin/eve_tools_tpm2_sign.cjs" ]; then from=$(cd "$here/.." && pwd)/dist
  else die "no built tools found beside this script or in ../dist (run 'npx tsup' first, or pass --from DIR)"
  fi
fi
for t in $TOOLS; do
  [ -f "$from/bin/$t.cjs" ] || die "missing $from/bin/$t.cjs"
done
if [ "$raw_tpm" = device ] && [ ! -f "$from/bin/$VTPMD.cjs" ]; then
  die "--raw-tpm device needs the device daemon $from/bin/$VTPMD.cjs (a bundle from an older build has none)"
fi
# The addons: in an unpacked bundle in prebuilds/, in a checkout in ../prebuilds/.
addon_dir=""
for d in "$from/prebuilds" "$from/../prebuilds"; do
  if ls "$d"/linux-*/vsock.node >/dev/null 2>&1; then addon_dir=$(cd "$d" && pwd); break; fi
done

if [ -n "$bundle" ]; then
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage/eve-tools/bin"
  for t in $TOOLS; do cp "$from/bin/$t.cjs" "$stage/eve-tools/bin/"; done
  if [ -f "$from/bin/$VTPMD.cjs" ]; then cp "$from/bin/$VTPMD.cjs" "$stage/eve-tools/bin/"; fi
  cp "$0" "$stage/eve-tools/install.sh"
  chmod 755 "$stage/eve-tools/install.sh"
  if [ -n "$addon_dir" ]; then cp -R "$addon_dir" "$stage/eve-tools/prebuilds"; fi
  case "$bundle" in /*) out=$bundle ;; *) out=$(pwd)/$bundle ;; esac
  tar -C "$stage" -czf "$out" eve-tools
  say "wrote $out$( [ -n "$addon_dir" ] && echo " (with the vsock addons: $(cd "$addon_dir" && echo linux-* | tr ' ' ','))")"
  exit 0
fi

# Node >= 18 runs the tools (Debian 12 and Ubuntu 24.04 ship 18); older ones fail in confusing ways.
if ! command -v node >/dev/null 2>&1; then
  die "node not found: install Node.js 18 or later first (e.g. apt-get install nodejs, apk add nodejs)"
fi
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
  die "node $(node --version) is too old: the tools need Node.js 18 or later"

mkdir -p "$libdir/bin" "$bindir"
installed=$TOOLS
if [ -f "$from/bin/$VTPMD.cjs" ]; then installed="$TOOLS $VTPMD"; fi
for t in $installed; do
  # Copy then rename so a running tool never sees a half-written file.
  cp "$from/bin/$t.cjs" "$libdir/bin/.$t.cjs.new"
  chmod 755 "$libdir/bin/.$t.cjs.new"
  mv -f "$libdir/bin/.$t.cjs.new" "$libdir/bin/$t.cjs"
  # A symlink, so require() of the addon resolves from $libdir (node follows it to the real path).
  ln -sf "$libdir/bin/$t.cjs" "$bindir/$t"
done

case "$(uname -m)" in x86_64|amd64) arch=x64 ;; aarch64|arm64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
libc=glibc
if ldd --version 2>&1 | grep -qi musl || ls /lib/ld-musl-* >/dev/null 2>&1; then libc=musl; fi
# The tools look for prebuilds/<platform>/vsock.node in the folders above them: $libdir/prebuilds.
rm -rf "$libdir/prebuilds" "$libdir/node_modules"
if [ -n "$addon_dir" ]; then cp -R "$addon_dir" "$libdir/prebuilds"; fi
if [ -f "$libdir/prebuilds/linux-$arch-$libc/vsock.node" ]; then
  vsock="vsock addon linux-$arch-$libc"
else
  vsock="no vsock addon for linux-$arch-$libc: use the socat bridge, a unix socket or tcp (see docs/TOOLS.md, 'Without the vsock addon')"
fi
say "installed $(echo $TOOLS | wc -w) tools in $bindir ($vsock)"

# Config file: only when asked to write one, so a reinstall never drops a provisioned secret.
secret=""
if [ -n "$secret_file" ]; then
  [ -r "$secret_file" ] || die "cannot read secret file '$secret_file'"
  secret=$(cat "$secret_file")
elif [ "$secret_env" = 1 ]; then
  secret=${EVE_TOOLS_SECRET:-}
  [ -n "$secret" ] || die "--secret-env given but EVE_TOOLS_SECRET is empty"
fi
if [ -n "$service" ] || [ -n "$secret" ]; then
  [ "$config" != none ] || die "EVE_TOOLS_CONFIG=none means no config file: unset it (or name a path) to write the service address and secret"
  cfgdir=$(dirname "$config")
  mkdir -p "$cfgdir"
  tmp=$(mktemp "$cfgdir/.config.json.XXXXXX")
  chmod 600 "$tmp"
  # JSON-escape with node (present by now) rather than trusting the secret to have no quotes.
  # Settings not given now are kept from an existing config file.
  EVE_CFG=$config EVE_SVC=$service EVE_SEC=$secret node -e '
    let o = {};
    try { o = JSON.parse(require("fs").readFileSync(process.env.EVE_CFG, "utf8")); } catch {}
    if (o === null || typeof o !== "object" || Array.isArray(o)) o = {};
    if (process.env.EVE_SVC) o.service = process.env.EVE_SVC;
    if (process.env.EVE_SEC) o.secret = process.env.EVE_SEC;
    process.stdout.write(JSON.stringify(o, null, 2) + "\n");
  ' >"$tmp"
  [ -z "$owner" ] || chown "$owner" "$tmp"
  mv -f "$tmp" "$config"
  say "wrote $config (mode 0600${owner:+, owner $owner})"
fi

# Stock TPM software (root: the files are system-wide). The messages are those of the user-data's.
if [ "$raw_tpm" = tcti ]; then
  tcti="cmd:$bindir/eve_tools_tpm2_tcti"
  mkdir -p /etc/profile.d
  printf '# Written by eve-tools install.sh --raw-tpm tcti: stock TPM software uses the TPM service.\nexport TPM2TOOLS_TCTI="%s"\nexport TPM2OPENSSL_TCTI="%s"\n' "$tcti" "$tcti" >/etc/profile.d/eve-tools-tpm2.sh
  if [ -f /etc/environment ]; then
    grep -v -e '^TPM2TOOLS_TCTI=' -e '^TPM2OPENSSL_TCTI=' /etc/environment >/etc/environment.eve-new || true
    cat /etc/environment.eve-new >/etc/environment
    rm -f /etc/environment.eve-new
  fi
  printf 'TPM2TOOLS_TCTI="%s"\nTPM2OPENSSL_TCTI="%s"\n' "$tcti" "$tcti" >>/etc/environment
  say "TPM2TOOLS_TCTI=$tcti set in /etc/profile.d/eve-tools-tpm2.sh and /etc/environment"
  cmd_tcti=""
  for f in /usr/lib/*/libtss2-tcti-cmd.so.0 /usr/lib/libtss2-tcti-cmd.so.0 /usr/lib64/libtss2-tcti-cmd.so.0; do
    if [ -e "$f" ]; then cmd_tcti=$f; fi
  done
  if [ -z "$cmd_tcti" ]; then
    say "TPM2TOOLS_TCTI is set to $tcti, but tpm2-tss's cmd TCTI is missing: install libtss2-tcti-cmd0 (with tpm2-tools, python3-tpm2-pytss or tpm2-openssl as the app needs)"
  fi
elif [ "$raw_tpm" = device ]; then
  # The daemon prints its own setup script (src/guest/vtpmd-setup.ts), the one the user-data runs.
  node "$libdir/bin/$VTPMD.cjs" --setup-script >"$libdir/vtpmd-setup.sh"
  sh "$libdir/vtpmd-setup.sh"
fi
