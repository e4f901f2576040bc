#!/usr/bin/env bash
# Builds unionctl-overlay, the fuse-overlayfs drop-in, small, and prints its path. podman
# and buildah start the drop-in for every mount, often with it out of the page cache: a
# cold start reads the whole binary (the disk's read-ahead covers it), ~1 ms per MB here,
# and a warm one pays for each shared library the loader maps. So: the `dropin` profile
# (Cargo.toml: size-optimised, one codegen unit, fat LTO, abort on panic), glibc shared (it
# is always in the page cache), and libgcc's unwinder linked in rather than libgcc_s.so
# (one library less to map, and its constructor runs cpuid over a dozen times, each a VM
# exit of ~7 us on a virtual machine). 0.9 MB instead of 2.2 (static glibc) or 1.2 (release).
# install.sh installs it when it is built; the tests and the benches use it.
#   scripts/build-dropin.sh
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
out=target/dropin
flags=()
# rustc asks for -lgcc_s by name; a libgcc_s.a that is libgcc_eh.a (what gcc's
# -static-libgcc links) answers it first.
eh=$(${CC:-cc} -print-file-name=libgcc_eh.a 2>/dev/null || true)
if [ -f "$eh" ]; then
    mkdir -p "$out/libgcc"
    ln -sf "$eh" "$out/libgcc/libgcc_s.a"
    flags+=(-L "native=$PWD/$out/libgcc")
fi
# --target: the flags then apply to the drop-in and its crates only, not to build scripts
# and proc macros. A target dir of its own keeps the main build's artifacts. (Encoded:
# a path may hold spaces.)
CARGO_ENCODED_RUSTFLAGS="$(IFS=$'\x1f'; echo "${flags[*]}")" cargo build --profile dropin --quiet \
    --bin unionctl-overlay --target "$host" --target-dir "$out"
echo "$PWD/$out/$host/dropin/unionctl-overlay"
