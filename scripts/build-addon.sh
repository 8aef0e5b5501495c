#!/usr/bin/env bash
# Builds the vsock addon (native/vsock/vsock.c) for linux x64/arm64 x glibc/musl with Debian's
# cross toolchains, and checks each result with readelf. Output: <out>/linux-<arch>-<libc>/vsock.node
# (default out: prebuilds/). Needs: gcc, gcc-aarch64-linux-gnu, musl-tools, musl-dev:arm64
# (dpkg --add-architecture arm64), binutils, and Node's headers (node_api.h, uv.h).
# Usage: scripts/build-addon.sh [out-dir] [target ...]   targets: x64-glibc x64-musl arm64-glibc arm64-musl
#        scripts/build-addon.sh --check <target> <file>   (only the readelf checks)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-prebuilds}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x64-glibc x64-musl arm64-glibc arm64-musl)

src=native/vsock/vsock.c
nodeinc=${NODE_INCLUDE:-$(node -p "require('path').resolve(process.execPath, '../../include/node')")}
[ -f "$nodeinc/node_api.h" ] && [ -f "$nodeinc/uv.h" ] || { echo "build-addon: no node_api.h/uv.h in $nodeinc (set NODE_INCLUDE)" >&2; exit 1; }
# Headers only declare N-API and libuv; both are resolved from the node binary at load time.
cflags=(-std=c11 -O2 -fPIC -Wall -Wextra -Werror -fvisibility=hidden -I"$nodeinc")
ldflags=(-shared -s -Wl,-z,relro,-z,now,-z,noexecstack)

need() { command -v "$1" >/dev/null || { echo "build-addon: $1 not found (apt-get install $2)" >&2; exit 1; }; }

# gcc with musl's headers and libc instead of glibc's (what musl-gcc does for the host arch).
musl_cc() { # <gcc> <musl-triplet> args...
  local cc=$1 triplet=$2; shift 2
  local inc=/usr/include/$triplet lib=/usr/lib/$triplet
  [ -f "$lib/libc.so" ] || { echo "build-addon: $lib/libc.so missing (apt-get install musl-dev:${triplet%%-*}; arm64 needs dpkg --add-architecture arm64)" >&2; exit 1; }
  "$cc" -nostdinc -isystem "$("$cc" -print-file-name=include)" -isystem "$inc" "$@" -nostdlib -L"$lib" -lc
}

build() { # <target> <output>
  case $1 in
    x64-glibc) need gcc gcc; gcc "${cflags[@]}" "${ldflags[@]}" -o "$2" "$src" ;;
    x64-musl) need gcc gcc; musl_cc gcc x86_64-linux-musl "${cflags[@]}" "${ldflags[@]}" -o "$2" "$src" ;;
    arm64-glibc) need aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu; aarch64-linux-gnu-gcc "${cflags[@]}" "${ldflags[@]}" -o "$2" "$src" ;;
    arm64-musl) need aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu; musl_cc aarch64-linux-gnu-gcc aarch64-linux-musl "${cflags[@]}" "${ldflags[@]}" -o "$2" "$src" ;;
    *) echo "build-addon: unknown target $1" >&2; exit 1 ;;
  esac
}

# readelf facts: machine, the libc it needs, the N-API entry point, no glibc symbol newer than 2.28.
check() { # <target> <file>
  local t=$1 f=$2 machine libc
  case $t in x64-*) machine='Advanced Micro Devices X86-64' ;; arm64-*) machine='AArch64' ;; *) echo "build-addon: unknown target $t" >&2; exit 1 ;; esac
  case $t in *-glibc) libc='libc.so.6' ;; *-musl) libc='libc.so' ;; esac
  readelf -h "$f" | grep -q "Machine: *$machine" || { echo "build-addon: $f is not $machine" >&2; exit 1; }
  readelf -h "$f" | grep -q 'Type: *DYN' || { echo "build-addon: $f is not a shared object" >&2; exit 1; }
  readelf -d "$f" | grep -q "NEEDED.*\[$libc\]" || { echo "build-addon: $f does not need $libc" >&2; exit 1; }
  readelf -d "$f" | grep NEEDED | grep -qv "\[$libc\]" && { echo "build-addon: $f needs more than $libc" >&2; exit 1; }
  readelf --dyn-syms -W "$f" | grep -Eq 'FUNC +GLOBAL +DEFAULT +[0-9]+ napi_register_module_v1$' || { echo "build-addon: $f does not export napi_register_module_v1" >&2; exit 1; }
  if [ "${t#*-}" = glibc ]; then
    local newest
    newest=$(readelf --dyn-syms -W "$f" | grep -o 'GLIBC_[0-9.]*' | sort -t. -k1,1 -k2,2n | tail -1)
    [ -z "$newest" ] || [ "$(printf '%s\nGLIBC_2.28\n' "$newest" | sort -V | tail -1)" = GLIBC_2.28 ] || { echo "build-addon: $f needs $newest (> GLIBC_2.28)" >&2; exit 1; }
  fi
  echo "build-addon: linux-$t ok: $machine, needs $libc, exports napi_register_module_v1 ($(stat -c %s "$f") bytes)"
}

if [ "$out" = --check ]; then
  [ ${#targets[@]} -eq 2 ] || { echo "usage: $0 --check <target> <file>" >&2; exit 2; }
  check "${targets[0]}" "${targets[1]}"
  exit 0
fi

for t in "${targets[@]}"; do
  mkdir -p "$out/linux-$t"
  build "$t" "$out/linux-$t/vsock.node"
  check "$t" "$out/linux-$t/vsock.node"
done
