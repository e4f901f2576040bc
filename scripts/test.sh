#!/usr/bin/env bash
# Runs every test: unit tests, real FUSE mounts, kernel overlayfs comparisons, pjdfstest,
# containers. Installs what it needs first. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --workspace --all-targets
export UNIONCTL_BIN="$PWD/target/release/unionctl"
# The drop-in as install.sh installs it; tests/dropin.rs runs podman through it.
UNIONCTL_OVERLAY_BIN=$(./scripts/build-dropin.sh)
export UNIONCTL_OVERLAY_BIN
# FUSE and namespace tests mount things: two at a time (.config/nextest.toml), each test
# in its own process.
cargo nextest run --release --workspace
