#!/usr/bin/env bash
# Builds unionctl-overlay, the fuse-overlayfs drop-in, as a static executable (glibc
# static-pie) and prints its path. podman and buildah start the drop-in for every mount;
# without the dynamic loader (mapping libc and libgcc_s, resolving symbols) it is mounted
# ~0.3 ms sooner warm and ~2.5 ms sooner after drop_caches (benches/README.md).
# install.sh installs it when it is built.
#   scripts/build-dropin.sh
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
# --target: the flag then applies to the drop-in and its crates only, not to build scripts
# and proc macros (which cannot be static). A target dir of its own keeps the main build's
# artifacts from being rebuilt after each switch of flags.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet \
    --bin unionctl-overlay --target "$host" --target-dir target/static
echo "$PWD/target/static/$host/release/unionctl-overlay"
