#!/usr/bin/env bash
# Unpacks Debian 12's arm64 `nodejs` and the libraries it loads into a sysroot for qemu-aarch64-static
# (no install, no root needed once arm64 is a dpkg architecture with fresh lists). Prints the sysroot.
# Usage: arm64-node-sysroot.sh [dir]   (default: ${XDG_CACHE_HOME:-~/.cache}/eve-tpm-tools/arm64-node)
set -euo pipefail
dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/eve-tpm-tools/arm64-node}
if [ -x "$dir/usr/bin/node" ]; then echo "$dir"; exit 0; fi
dpkg --print-foreign-architectures | grep -qx arm64 || { echo "arm64-node-sysroot: run: dpkg --add-architecture arm64 && apt-get update" >&2; exit 1; }
pkgs=(nodejs libnode108 libc6 libgcc-s1 libstdc++6 libuv1 libssl3 libicu72 zlib1g libbrotli1 libc-ares2 libnghttp2-14)
debs=$(mktemp -d)
trap 'rm -rf "$debs"' EXIT
# Debian's node loads some builtins from /usr/share/nodejs (architecture-independent packages).
js=(node-cjs-module-lexer node-acorn node-undici)
(cd "$debs" && apt-get download -q "${pkgs[@]/%/:arm64}" "${js[@]}" >&2) || { echo "arm64-node-sysroot: apt-get download failed (apt-get update?)" >&2; exit 1; }
mkdir -p "$dir.tmp"
for d in "$debs"/*.deb; do dpkg -x "$d" "$dir.tmp"; done
rm -rf "$dir" && mv "$dir.tmp" "$dir"
echo "$dir"
