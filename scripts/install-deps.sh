#!/usr/bin/env bash
# Installs the system packages and cargo tools the demo and the tests need, when missing.
set -euo pipefail
. "$(dirname "$0")/apt.sh"
apt_need fuse3 attr skopeo umoci podman busybox-static debootstrap zstd
# File-system conformance tests (tests/pjdfstest.rs): the pjdfstest suite, and the user and
# group named in the [dummy_auth] section of tests/pjdfstest.toml.
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
if ! command -v pjdfstest >/dev/null 2>&1 && [ ! -x "$cargo_bin/pjdfstest" ]; then
  cargo install -q pjdfstest
fi
if [ "$(id -u)" = 0 ]; then
  getent group tests >/dev/null || groupadd tests
  id -u tests >/dev/null 2>&1 || useradd -M -g tests -d /nonexistent -s /usr/sbin/nologin tests
fi
# Container runner tests: a busybox-static rootfs, a debootstrap minbase rootfs, and
# newuidmap/newgidmap for rootless sub-id ranges.
apt_need busybox-static debootstrap uidmap
# Seccomp (crates/runner/src/seccomp, tests/seccomp.rs): libseccomp to build against,
# podman's profile as a real-world input, gcc and a static libc for the syscall probe.
apt_need libseccomp-dev golang-github-containers-common gcc libc6-dev
# Rootless tests (rootless_mount, runner_rootless, and the image/registry tests that run as
# a user): the user unionctl-test with a home, sub-id ranges in /etc/subuid and /etc/subgid
# (for newuidmap/newgidmap), and /dev/fuse open to users as desktop distributions have it.
# The tests check this and fail pointing here; they never set it up themselves.
if [ "$(id -u)" = 0 ]; then
  test_user=unionctl-test
  id -u "$test_user" >/dev/null 2>&1 || useradd -m -s /bin/sh "$test_user"
  home="$(getent passwd "$test_user" | cut -d: -f6)"
  if [ ! -d "$home" ]; then
    mkdir -p "$home"
    chown "$test_user:" "$home"
  fi
  # A range of 65536 ids after every range already given out (and not below 100000).
  next_free() { awk -F: 'BEGIN { m = 100000 } { e = $2 + $3; if (e > m) m = e } END { print m }' "$1" 2>/dev/null || echo 100000; }
  for f in /etc/subuid /etc/subgid; do
    touch "$f"
    if ! grep -q "^$test_user:" "$f"; then
      echo "$test_user:$(next_free "$f"):65536" >>"$f"
    fi
  done
  chmod 0666 /dev/fuse
  # Keep it so across reboots where udev runs.
  if [ -d /etc/udev ]; then
    mkdir -p /etc/udev/rules.d
    echo 'KERNEL=="fuse", MODE="0666"' >/etc/udev/rules.d/60-unionctl-fuse.rules
  fi
fi
# The test runner (scripts/test.sh); machines here ship it, build it where they do not.
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install -q --locked cargo-nextest
fi
# Registry tests (tests/registry.rs): a real registry (started per test on a free
# 127.0.0.1 port, never through its systemd service), htpasswd for Basic auth, curl,
# openssl and python3 for the TLS + token server test.
apt_need docker-registry apache2-utils curl openssl
command -v python3 >/dev/null 2>&1 || apt_install python3-minimal
