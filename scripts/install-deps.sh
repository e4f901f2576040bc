#!/usr/bin/env bash
# Installs the system packages and cargo tools the demo and the tests need, when missing.
set -euo pipefail
need=()
for pkg in fuse3 attr skopeo umoci podman busybox-static debootstrap zstd; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
