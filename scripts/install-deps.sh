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
# The test runner (scripts/test.sh); machines here ship it, build it where they do not.
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install -q --locked cargo-nextest
fi
# Registry tests (tests/registry.rs): a real registry (started per test on a free
# 127.0.0.1 port, never through its systemd service), htpasswd for Basic auth, curl,
# openssl and python3 for the TLS + token server test.
apt_need docker-registry apache2-utils curl openssl
command -v python3 >/dev/null 2>&1 || apt_install python3-minimal
