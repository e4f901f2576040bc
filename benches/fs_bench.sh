#!/usr/bin/env bash
# Union FS benchmark of issue 3: unionctl vs kernel overlayfs vs fuse-overlayfs, interleaved.
#
#   benches/fs_bench.sh [--quick] [--rootless] [-n N] [--fs unionctl,kernel,fuse-overlayfs]
#                       [--only WORKLOAD,...] [--no-extras] [--profile perf|strace] [--timeout S]
#
# Run as root. Installs what it needs (fuse-overlayfs, debootstrap, linux-perf, strace) when
# missing, builds the corpus once (benches/fs_corpus.sh, cached under
# /var/tmp/unionctl-cache/fs-corpus), then runs benches/fs_bench.py, which prints the table.
# The unionctl binary is $UNIONCTL_BIN, else target/release/unionctl (build it first); the
# drop-in is the one install.sh would install (the build of scripts/build-dropin.sh).
# Not part of the test suite. See benches/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" != 0 ]; then
  echo "fs_bench.sh: run as root (drops caches, mounts, creates the rootless user)" >&2
  exit 2
fi

quick=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=(--quick) ;;
    -h | --help) sed -n '2,11p' "$0"; exec /usr/bin/python3 "$here/fs_bench.py" --help ;;
  esac
done

need=()
for pair in fuse-overlayfs:fuse-overlayfs debootstrap:debootstrap perf:linux-perf strace:strace \
  fusermount3:fuse3 setpriv:util-linux; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "fs_bench.sh: installing ${need[*]}" >&2
  . "$here/../scripts/apt.sh"
  apt_install "${need[@]}"
fi

corpus=$("$here/fs_corpus.sh" "${quick[@]}")
exec /usr/bin/python3 "$here/fs_bench.py" --corpus "$corpus" "$@"
