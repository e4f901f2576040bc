#!/usr/bin/env bash
# Builds the layer corpus of the union FS benchmark (issue 3), once, under the cache dir.
#
#   benches/fs_corpus.sh [--quick] [--print]
#
# Full corpus (~47k entries, ~1.4 GiB):
#   bottom/  a debootstrap bookworm minbase rootfs, big.bin (1 GiB), dir10k/ (10k files)
#   top/     small/ (20k small files in 100 dirs), dir10k/ (10k more files: the merged
#            dir10k/ has 20k entries)
#   untar.tar  10k small files in 100 dirs, the "untar" workload's input
#   corpus.env what the benchmark needs to know about this corpus
# --quick builds a small corpus of the same shape (fake rootfs, 64 MiB file, 1k-entry dirs)
# for smoke runs. Prints the corpus directory on stdout. Building again is a no-op: the
# result appears atomically (built in a temp dir, renamed into place).
set -euo pipefail

CACHE=${UNIONCTL_CACHE:-/var/tmp/unionctl-cache}/fs-corpus
# Bump when the layout changes so stale corpora are rebuilt.
LAYOUT_VERSION=2
kind=full
for arg in "$@"; do
  case "$arg" in
    --quick) kind=quick ;;
    --print) ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "fs_corpus.sh: unknown argument '$arg' (expected --quick)" >&2; exit 2 ;;
  esac
done

dest=$CACHE/$kind
if [ -f "$dest/corpus.env" ] && grep -qx "LAYOUT_VERSION=$LAYOUT_VERSION" "$dest/corpus.env"; then
  echo "$dest"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "fs_corpus.sh: building the corpus needs root (debootstrap, device files); run as root" >&2
  exit 1
fi

mkdir -p "$CACHE"
tmp=$(mktemp -d "$CACHE/.build-$kind.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log() { echo "fs_corpus: $*" >&2; }

# Writes COUNT files named PREFIX-NNNNN of SIZE bytes (or varying sizes when SIZE=vary)
# into DIR, with shell builtins only so 20k files take seconds, not minutes.
fill_dir() {
  local dir=$1 prefix=$2 count=$3 size=$4 i n
  mkdir -p "$dir"
  for ((i = 0; i < count; i++)); do
    if [ "$size" = vary ]; then n=$((512 + (i * 2654435761 % 7680))); else n=$size; fi
    printf '%s' "${PAYLOAD:0:n}" >"$dir/$(printf '%s-%05d' "$prefix" "$i")"
  done
}
# 8 KiB of printable random text to slice file contents from.
PAYLOAD=$(head -c 6144 /dev/urandom | base64 -w0)

# A deep tree of small files standing in for a rootfs in the quick corpus.
fake_rootfs() {
  local root=$1 d
  for d in usr/bin usr/lib/x86_64-linux-gnu usr/share/doc usr/share/locale/de/LC_MESSAGES etc var/lib/dpkg/info; do
    mkdir -p "$root/$d"
  done
  local i
  for ((i = 0; i < 10; i++)); do
    fill_dir "$root/usr/share/doc/pkg$i" doc 40 vary
    fill_dir "$root/usr/lib/x86_64-linux-gnu/mod$i" lib 30 vary
  done
  fill_dir "$root/usr/bin" bin 150 vary
  fill_dir "$root/etc" conf 100 vary
  fill_dir "$root/var/lib/dpkg/info" list 100 vary
  ln -s usr/bin "$root/bin"
  ln -s usr/lib "$root/lib"
  ln -s ../usr/bin/bin-00000 "$root/etc/alternative"
}

if [ "$kind" = full ]; then
  big_mib=1024 flat=10000 small_dirs=100 small_per_dir=200 untar_dirs=100 untar_per_dir=100
else
  big_mib=64 flat=1000 small_dirs=20 small_per_dir=100 untar_dirs=10 untar_per_dir=100
fi

mkdir -p "$tmp/bottom" "$tmp/top"
if [ "$kind" = full ]; then
  rootfs_cache=$CACHE/bookworm-minbase
  if [ ! -f "$rootfs_cache/.complete" ]; then
    command -v debootstrap >/dev/null || {
      log "installing debootstrap"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    log "debootstrap --variant=minbase bookworm (about 30 s)"
    rm -rf "$rootfs_cache.tmp"
    if ! debootstrap --variant=minbase bookworm "$rootfs_cache.tmp" >"$CACHE/debootstrap.log" 2>&1; then
      echo "fs_corpus.sh: debootstrap failed, see $CACHE/debootstrap.log" >&2
      tail -5 "$CACHE/debootstrap.log" >&2
      exit 1
    fi
    touch "$rootfs_cache.tmp/.complete"
    rm -rf "$rootfs_cache"
    mv "$rootfs_cache.tmp" "$rootfs_cache"
  fi
  log "copying the rootfs into the bottom layer"
  cp -a "$rootfs_cache/." "$tmp/bottom/"
  rm -f "$tmp/bottom/.complete"
  # apt's cached .debs would double the rootfs; an installed system has none.
  rm -rf "$tmp/bottom/var/cache/apt/archives/"*.deb
else
  fake_rootfs "$tmp/bottom"
fi

log "bottom: big.bin ($big_mib MiB), dir10k ($flat files)"
head -c "$((big_mib * 1024 * 1024))" /dev/urandom >"$tmp/bottom/big.bin"
fill_dir "$tmp/bottom/dir10k" lower "$flat" 64
log "top: small ($((small_dirs * small_per_dir)) files), dir10k ($flat files)"
for ((d = 0; d < small_dirs; d++)); do
  fill_dir "$tmp/top/small/$(printf 'd%03d' "$d")" f "$small_per_dir" vary
done
fill_dir "$tmp/top/dir10k" upper "$flat" 64
# A file of the top layer that shadows one of the rootfs, so the corpus exercises lookups
# that stop at the top layer.
mkdir -p "$tmp/top/etc" && echo "unionctl-bench" >"$tmp/top/etc/hostname"

log "untar.tar ($((untar_dirs * untar_per_dir)) files)"
mkdir -p "$tmp/untar-src"
for ((d = 0; d < untar_dirs; d++)); do
  fill_dir "$tmp/untar-src/tree/$(printf 'u%03d' "$d")" x "$untar_per_dir" vary
done
tar -C "$tmp/untar-src" -cf "$tmp/untar.tar" tree
rm -rf "$tmp/untar-src"

# The "rm -rf a large lower tree" target: the rootfs' usr (or the fake one's).
rm_tree=usr
entries=$(find "$tmp/bottom" "$tmp/top" -mindepth 1 | wc -l)
bytes=$(du -sb "$tmp/bottom" "$tmp/top" | awk '{s += $1} END {print s}')
rm_entries=$(find "$tmp/bottom/$rm_tree" | wc -l)
cat >"$tmp/corpus.env" <<EOF
LAYOUT_VERSION=$LAYOUT_VERSION
KIND=$kind
ENTRIES=$entries
BYTES=$bytes
BIG=big.bin
BIG_MIB=$big_mib
MERGED_DIR=dir10k
MERGED_DIR_ENTRIES=$((2 * flat))
SMALL_DIR=small
RM_TREE=$rm_tree
RM_TREE_ENTRIES=$rm_entries
UNTAR_FILES=$((untar_dirs * untar_per_dir))
EOF
chmod 755 "$tmp"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
log "done: $entries entries, $((bytes / 1024 / 1024)) MiB in $dest"
echo "$dest"
