#!/usr/bin/env bash
# Times the image store beside tar, umoci, skopeo and podman in one run (issue 5):
#   1. unpack of the debootstrap minbase rootfs tar: unionctl import vs tar -x vs umoci unpack
#   2. commit of a 100 MiB change in a ~200 MiB image (and of a 1 MiB change), beside
#      tar -c of the same upper dir and umoci repack of the same change
#   3. save and load of the committed image vs skopeo copy (and podman load)
# Every timed step ends with `sync -f` on the work dir, so all tools are timed until
# their data is on disk. Page cache is warm (inputs are read once before).
# Usage: sudo benches/image_bench.sh [-n REPS] [--unionctl PATH]
set -euo pipefail
cd "$(dirname "$0")/.."
reps=3
bin="${UNIONCTL_BIN:-$PWD/target/release/unionctl}"
while [ $# -gt 0 ]; do
  case "$1" in
    -n) reps="$2"; shift 2 ;;
    --unionctl) bin="$2"; shift 2 ;;
    *) echo "usage: $0 [-n REPS] [--unionctl PATH]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release" >&2; exit 1; }
./scripts/install-deps.sh

cache=/var/tmp/unionctl-cache
rootfs="$cache/bookworm-minbase"
tarball="$cache/bookworm-minbase.tar"
if [ ! -e "$rootfs/usr/bin/apt-get" ]; then
  flock "$cache/.minbase.lock" sh -c "test -e $rootfs/usr/bin/apt-get || { rm -rf $cache/minbase.build && \
    debootstrap --variant=minbase bookworm $cache/minbase.build http://deb.debian.org/debian >/dev/null && \
    rm -rf $rootfs && mv $cache/minbase.build $rootfs; }"
fi
if [ ! -e "$tarball" ]; then
  flock "$cache/.minbase.lock" sh -c "test -e $tarball || { tar --xattrs --xattrs-include='*' --numeric-owner \
    -C $rootfs -cf $tarball.tmp . && mv $tarball.tmp $tarball; }"
fi

work=$(mktemp -d /var/tmp/unionctl-image-bench.XXXXXX)
runroot=$(mktemp -d /tmp/ucib.XXXXXX)   # podman wants a short run dir
trap 'rm -rf "$work" "$runroot"' EXIT
cp "$bin" "$work/unionctl"              # rebuilding during a run is harmless
uc="$work/unionctl"
pod() { podman --root "$work/podman" --runroot "$runroot" --storage-driver vfs "$@"; }
cat "$tarball" > /dev/null

declare -A samples
# timeit NAME SETUP CMD: runs SETUP (untimed), then CMD; sync -f; records seconds.
timeit() {
  local name="$1" setup="$2" cmd="$3" t0 t1
  bash -c "$setup" >/dev/null 2>&1
  sync
  t0=$(date +%s.%N)
  bash -c "$cmd" >/dev/null 2>"$work/step.err" || { echo "$name failed:" >&2; cat "$work/step.err" >&2; exit 1; }
  sync -f "$work"
  t1=$(date +%s.%N)
  samples[$name]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}') "
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {printf "%.2f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

export uc work tarball
export -f pod 2>/dev/null || true
export runroot

# -- fixtures shared by the steps -----------------------------------------------------
store="$work/store"
"$uc" --root "$store" import "$tarball" deb:base >/dev/null
id=$("$uc" --root "$store" inspect deb:base | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"][7:])')
lower=$("$uc" --root "$store" inspect deb:base | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["GraphDriver"]["Data"]["LowerDirs"][0])')
# OCI layout of the base image for umoci
"$uc" --root "$store" save --format oci-archive -o "$work/base-oci.tar" deb:base
mkdir "$work/base-layout" && tar -C "$work/base-layout" -xf "$work/base-oci.tar"
# the change: 100 files of 1 MiB (random), and a 1 MiB one
mkdir -p "$work/change100/opt/data" "$work/change1/opt/data"
for i in $(seq 1 100); do head -c 1048576 /dev/urandom > "$work/change100/opt/data/f$i"; done
cp "$work/change100/opt/data/f1" "$work/change1/opt/data/f1"
mkctr() { # mkctr NAME CHANGE_DIR: a container record over deb:base with that upper
  local cid; cid=$(printf '%s' "$1" | sha256sum | cut -c1-64)
  rm -rf "$store/containers/$cid"; mkdir -p "$store/containers/$cid"
  cp -a "$2" "$store/containers/$cid/upper"
  printf '{"id":"%s","name":"%s","image":"%s","rootfs":null,"lowers":["%s"],"status":"exited","pid":null,"config":{}}' \
    "$cid" "$1" "$id" "$lower" > "$store/containers/$cid/state.json"
}
export -f mkctr; export store id lower

for r in $(seq 1 "$reps"); do
  echo "== repetition $r/$reps" >&2
  # 1. unpack
  timeit "unpack: tar -x" "rm -rf $work/x; mkdir $work/x" \
    "tar --xattrs --xattrs-include='*' --numeric-owner -C $work/x -xpf $tarball"
  timeit "unpack: unionctl import" "rm -rf $work/s1" "$uc --root $work/s1 import $tarball deb"
  timeit "unpack: umoci unpack" "rm -rf $work/bundle" "umoci unpack --image $work/base-layout:deb:base $work/bundle"
  # 2. commit
  timeit "commit 100 MiB: unionctl commit" "mkctr c100 $work/change100" "$uc --root $store commit c100 deb:c100"
  timeit "commit 1 MiB: unionctl commit" "mkctr c1 $work/change1" "$uc --root $store commit c1 deb:c1"
  timeit "commit 100 MiB: tar -c of the upper" "" "tar -C $work/change100 -cf $work/upper.tar ."
  timeit "commit 100 MiB: umoci repack" \
    "rm -rf $work/rb $work/rl; cp -a $work/base-layout $work/rl; umoci unpack --image $work/rl:deb:base $work/rb && cp -a $work/change100/opt $work/rb/rootfs/" \
    "umoci repack --image $work/rl:deb:c100 $work/rb"
  # 3. save / load of the committed image (2 layers, ~310 MB)
  timeit "save: unionctl save (docker-archive)" "rm -f $work/img.tar" "$uc --root $store save -o $work/img.tar deb:c100"
  timeit "save: skopeo copy oci: -> docker-archive:" "rm -f $work/sk.tar" \
    "skopeo copy -q oci:$store:deb:c100 docker-archive:$work/sk.tar:deb:c100"
  timeit "load: unionctl load" "rm -rf $work/s2" "$uc --root $work/s2 load -i $work/img.tar"
  timeit "load: skopeo copy docker-archive: -> oci:" "rm -rf $work/sk-layout" \
    "skopeo copy -q docker-archive:$work/img.tar oci:$work/sk-layout:deb:c100"
  timeit "load: podman load (vfs)" "rm -rf $work/podman" \
    "podman --root $work/podman --runroot $runroot --storage-driver vfs load -i $work/img.tar"
done

size_base=$(du -sm "$lower" | cut -f1)
echo
echo "image bench $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), medians of $reps, rootfs tar $(( $(stat -c %s "$tarball") / 1048576 )) MiB (${size_base} MiB unpacked)"
echo
echo "| step | seconds |"
echo "|---|---|"
for k in "unpack: tar -x" "unpack: unionctl import" "unpack: umoci unpack" \
         "commit 100 MiB: unionctl commit" "commit 1 MiB: unionctl commit" "commit 100 MiB: tar -c of the upper" "commit 100 MiB: umoci repack" \
         "save: unionctl save (docker-archive)" "save: skopeo copy oci: -> docker-archive:" \
         "load: unionctl load" "load: skopeo copy docker-archive: -> oci:" "load: podman load (vfs)"; do
  echo "| $k | $(echo "${samples[$k]}" | median) |"
done
