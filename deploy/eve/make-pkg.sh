#!/bin/sh
# Assembles a linuxkit package directory for EVE's pkg/ tree: build.yml and the Dockerfile at
# its top, and beside them the sources the Dockerfile copies, in this repository's layout.
# Usage: deploy/eve/make-pkg.sh DEST   (DEST must not exist; e.g. ../eve/pkg/eve-tpm-service)
set -eu
dest=${1:-}
[ -n "$dest" ] || { echo "usage: deploy/eve/make-pkg.sh DEST" >&2; exit 2; }
[ ! -e "$dest" ] || { echo "make-pkg: $dest already exists; give a new directory" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/../.." && pwd)

mkdir -p "$dest/deploy/eve" "$dest/native"
cp "$repo/deploy/eve/build.yml" "$repo/deploy/eve/Dockerfile" "$dest/"
cp "$repo/deploy/eve/start.sh" "$repo/deploy/eve/eve-tpm-service" "$dest/deploy/eve/"
cp "$repo/package.json" "$repo/package-lock.json" "$repo/tsconfig.json" "$repo/tsup.config.ts" "$dest/"
cp -R "$repo/src" "$dest/src"
cp -R "$repo/native/vsock" "$dest/native/vsock"
# A local node-gyp build of the addon is for this machine, not for the image.
rm -rf "$dest/native/vsock/build"
echo "make-pkg: $dest ready (build it with: linuxkit pkg build $dest)"
