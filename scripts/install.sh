#!/usr/bin/env bash
# Installs the unionctl binary and `unionctl-overlay`, which takes fuse-overlayfs' command
# line (podman/buildah's mount_program, and `mount -t fuse.unionctl-overlay`, whose helper
# looks in /usr/local/bin, /usr/bin, ...): the one scripts/build-dropin.sh built
# (unless older than the next), else the small binary built beside unionctl (the drop-in
# alone, which starts faster than unionctl), else a symlink to unionctl (the same command
# line).
# It also installs the man pages and the bash completion.
#   scripts/install.sh [BINARY [DIR]]   # default: target/release/unionctl into /usr/local/bin
set -euo pipefail
bin="${1:-$(dirname "$0")/../target/release/unionctl}"
dir="${2:-/usr/local/bin}"
[ -x "$bin" ] || { echo "install.sh: $bin: no such binary (cargo build --release first)" >&2; exit 1; }
install -D -m 0755 "$bin" "$dir/unionctl"
dropin="$bin-overlay"
# build-dropin.sh's build, unless the drop-in was rebuilt since (it would be out of date).
small=$(ls -t "$(dirname "$bin")"/../dropin/*/dropin/unionctl-overlay 2>/dev/null | head -1 || true)
if [ -n "$small" ] && { [ ! -e "$dropin" ] || [ ! "$dropin" -nt "$small" ]; }; then
    dropin=$small
fi
if [ -x "$dropin" ]; then
    install -m 0755 "$dropin" "$dir/unionctl-overlay.tmp" && mv -f "$dir/unionctl-overlay.tmp" "$dir/unionctl-overlay"
else
    ln -sf unionctl "$dir/unionctl-overlay"
fi
man="${MANDIR:-/usr/local/share/man/man1}"
"$dir/unionctl" man "$man"
completions=/usr/share/bash-completion/completions
mkdir -p "$completions"
"$dir/unionctl" completion bash > "$completions/unionctl"
echo "installed $dir/unionctl, $dir/unionctl-overlay, man pages in $man, bash completion"
