#!/usr/bin/env bash
# Installs the unionctl binary and the `unionctl-overlay` symlink to it, the name under
# which it takes fuse-overlayfs' command line (podman/buildah's mount_program, and
# `mount -t fuse.unionctl-overlay`, whose helper looks in /usr/local/bin, /usr/bin, ...).
# It also installs the man pages and the bash completion.
#   scripts/install.sh [BINARY [DIR]]   # default: target/release/unionctl into /usr/local/bin
set -euo pipefail
bin="${1:-$(dirname "$0")/../target/release/unionctl}"
dir="${2:-/usr/local/bin}"
[ -x "$bin" ] || { echo "install.sh: $bin: no such binary (cargo build --release first)" >&2; exit 1; }
install -D -m 0755 "$bin" "$dir/unionctl"
ln -sf unionctl "$dir/unionctl-overlay"
man="${MANDIR:-/usr/local/share/man/man1}"
"$dir/unionctl" man "$man"
completions=/usr/share/bash-completion/completions
mkdir -p "$completions"
"$dir/unionctl" completion bash > "$completions/unionctl"
echo "installed $dir/unionctl, $dir/unionctl-overlay -> unionctl, man pages in $man, bash completion"
