#!/usr/bin/env bash
# Build the gossipmq base image without any container registry:
#   debootstrap (Debian bookworm, minbase) -> tar -> `docker import`.
# The tag is a hash of this script (the recipe), so the image is rebuilt only
# when the recipe changes. Prints the tag on stdout (last line); logs go to stderr.
# Env: GOSSIPMQ_DEBIAN_MIRROR overrides the mirror; GOSSIPMQ_ROOTFS_DIR the scratch dir.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
recipe_hash="$(sha256sum "$here/build_base.sh" | cut -c1-12)"
tag="gossipmq-base:${recipe_hash}"
log() { echo "[build_base] $*" >&2; }

if docker image inspect "$tag" >/dev/null 2>&1; then
  log "$tag already present, skipping"
  echo "$tag"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq debootstrap >&2
fi

mirror="${GOSSIPMQ_DEBIAN_MIRROR:-}"
if [[ -z "$mirror" ]]; then
  # deb822 files ("URIs: ...") first, then one-line "deb URL suite ..." entries;
  # take the first Debian (non-security) mirror.
  mirror="$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
            | awk '{print $2}' | grep -v security | head -n1 || true)"
  if [[ -z "$mirror" ]]; then
    mirror="$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
              | awk '{print $2}' | grep -E 'debian/?$' | grep -v security | head -n1 || true)"
  fi
  mirror="${mirror:-http://deb.debian.org/debian}"
fi

rootfs="${GOSSIPMQ_ROOTFS_DIR:-/var/tmp/gossipmq-rootfs-${recipe_hash}}"
rm -rf "$rootfs"
mkdir -p "$rootfs"
trap 'rm -rf "$rootfs"' EXIT

log "debootstrap bookworm from $mirror into $rootfs"
start=$(date +%s)
debootstrap --variant=minbase \
  --include=python3,python3-venv,iproute2,iptables,procps,ca-certificates \
  bookworm "$rootfs" "$mirror" >&2
# keep the image small: no apt lists / caches
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

log "importing as $tag"
tar -C "$rootfs" -c . | docker import \
  -c 'CMD ["/bin/bash"]' \
  -c 'LABEL org.opencontainers.image.title=gossipmq-base' \
  - "$tag" >&2
log "done in $(( $(date +%s) - start ))s"
echo "$tag"
