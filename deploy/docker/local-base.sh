#!/usr/bin/env bash
# Local stand-ins for the image's two base images, for a machine that reaches Debian's packages but no
# registry of container images (PYTHON_IMAGE and NODE_IMAGE in deploy/docker/Dockerfile):
#
#   localhost/workermon-base/python:3.11   Debian bookworm (debootstrap, minbase) + python3 + python3-venv
#   localhost/workermon-base/node:20       the same + this machine's Node.js and npm (Debian's are too old)
#
# Both carry this machine's CA bundle and point SSL_CERT_FILE, PIP_CERT and NODE_EXTRA_CA_CERTS at it,
# so a build behind a TLS-inspecting proxy reaches PyPI and npm as the machine does. Then:
#
#   podman build -f deploy/docker/Dockerfile -t workermon \
#     --build-arg PYTHON_IMAGE=localhost/workermon-base/python:3.11 \
#     --build-arg NODE_IMAGE=localhost/workermon-base/node:20 .
#
# Needs root, podman, debootstrap, node and npm. An image that exists already is kept (--force redoes
# both). DEBIAN_MIRROR overrides the mirror (default http://deb.debian.org/debian).
set -euo pipefail

PYTHON_BASE=localhost/workermon-base/python:3.11
NODE_BASE=localhost/workermon-base/node:20
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

force=0
[ "${1:-}" = "--force" ] && force=1
have() { [ "$force" = 0 ] && podman image exists "$1"; }
if have "$PYTHON_BASE" && have "$NODE_BASE"; then
  echo "local-base: $PYTHON_BASE and $NODE_BASE exist"
  exit 0
fi
for tool in podman debootstrap node npm; do
  command -v "$tool" >/dev/null || { echo "local-base: $tool is required" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

echo "local-base: debootstrap bookworm (minbase, python3) from $MIRROR"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/*
[ -f "$CA_BUNDLE" ] && cp "$CA_BUNDLE" "$root$CA_BUNDLE"

import_as() {  # import NAME: the rootfs as an image with the environment the official images set
  tar -C "$root" -c . | podman import --quiet \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" \
    --change "ENV SSL_CERT_FILE=$CA_BUNDLE" \
    --change "ENV PIP_CERT=$CA_BUNDLE" \
    --change "ENV NODE_EXTRA_CA_CERTS=$CA_BUNDLE" \
    --change 'CMD ["/bin/bash"]' \
    - "$1" >/dev/null
  echo "local-base: $1"
}
import_as "$PYTHON_BASE"

# Node.js: this machine's binary (same Debian release, so the same C library) and its npm.
npm_root="$(npm root -g)/npm"
mkdir -p "$root/usr/local/bin" "$root/usr/local/lib/node_modules"
cp "$(command -v node)" "$root/usr/local/bin/node"
cp -a "$npm_root" "$root/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
import_as "$NODE_BASE"
