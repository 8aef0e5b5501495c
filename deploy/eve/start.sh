#!/bin/sh
# Entrypoint of the EVE container: state and tenants on EVE's persistent partition, the
# service on vsock port 8877 of the host (CID 2 as the app VMs see it), /dev/tpmrm0.
# EVE_TPM_SERVICE_ROOT, _TPM and _LISTEN override the defaults (tests, a second instance);
# further arguments go to `eve-tpm-service serve` as they are.
set -eu
root=${EVE_TPM_SERVICE_ROOT:-/persist/eve-tpm-service}
tpm=${EVE_TPM_SERVICE_TPM:-/dev/tpmrm0}
listen=${EVE_TPM_SERVICE_LISTEN:-vsock:8877}
here=$(cd "$(dirname "$0")" && pwd)

umask 077
mkdir -p "$root/state"
# The service needs a tenants file; an empty one until `eve-tpm-service tenant add` fills it.
# Made complete under a temporary name and linked into place: never half-written, and never
# replacing a file an admin command made meanwhile.
if [ ! -e "$root/tenants.json" ]; then
  tmp="$root/.tenants.json.$$"
  printf '{ "tenants": [] }\n' >"$tmp"
  ln "$tmp" "$root/tenants.json" 2>/dev/null || true
  rm -f "$tmp"
fi

exec node "$here/eve-tpm-service.cjs" serve \
  --tpm "$tpm" --listen "$listen" \
  --tenants "$root/tenants.json" --state-dir "$root/state" "$@"
