#!/usr/bin/env bash
# Installs the system packages and cargo tools the demo and the tests need, when missing.
set -euo pipefail
need=()
for pkg in fuse3 attr; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Container runner tests: a busybox-static rootfs, a debootstrap minbase rootfs, and
# newuidmap/newgidmap for rootless sub-id ranges.
need=()
for pkg in busybox-static debootstrap uidmap; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
