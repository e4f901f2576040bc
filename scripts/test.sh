#!/usr/bin/env bash
# Runs every test: unit tests, real FUSE mounts, kernel overlayfs comparisons, pjdfstest,
# containers. Installs what it needs first. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --all-targets
export UNIONCTL_BIN="$PWD/target/release/unionctl"
# FUSE and namespace tests mount things: keep them on few threads.
cargo test --release -- --test-threads=2
