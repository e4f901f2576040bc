#!/usr/bin/env bash
# Start-to-exit time of a container running /bin/true on a busybox rootfs:
# `unionctl run --rm --rootfs bb /bin/true` (union mount included) beside crun, runc and
# `bwrap --unshare-all`, measured in one hyperfine run. Prints medians and the ratio to
# bwrap as a markdown table. Run as root: benches/run_bench.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
[ "$(id -u)" = 0 ] || { echo "run_bench.sh: run as root" >&2; exit 1; }

need=()
for pkg in busybox-static crun runc bubblewrap hyperfine; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release -q
bin="$PWD/target/release/unionctl"
cache=/var/tmp/unionctl-cache
bb="$cache/bench-busybox"
if [ ! -x "$bb/bin/true" ]; then
  rm -rf "$bb.tmp"
  mkdir -p "$bb.tmp/bin" "$bb.tmp/etc" "$bb.tmp/proc" "$bb.tmp/sys" "$bb.tmp/dev" "$bb.tmp/tmp"
  cp "$(command -v busybox)" "$bb.tmp/bin/busybox"
  for a in $("$bb.tmp/bin/busybox" --list); do
    [ -e "$bb.tmp/bin/$a" ] || ln -s busybox "$bb.tmp/bin/$a"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$bb.tmp/etc/passwd"
  echo 'root:x:0:' > "$bb.tmp/etc/group"
  mv "$bb.tmp" "$bb"
fi

work=$(mktemp -d /tmp/unionctl-run-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
store="$work/store"
bundle="$work/bundle"
mkdir -p "$store" "$bundle"
(cd "$bundle" && runc spec)
python3 - "$bundle/config.json" "$bb" <<'EOF'
import json, sys
path, rootfs = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
c["root"] = {"path": rootfs, "readonly": True}
json.dump(c, open(path, "w"), indent=1)
EOF

# crun 1.8 refuses hybrid hosts whose cgroup2 tree still has a controller (hugetlb here):
# bind hugetlb to a v1 hierarchy so the v2 tree has none.
if [ -s /sys/fs/cgroup/unified/cgroup.controllers ] && [ ! -d /sys/fs/cgroup/hugetlb ] &&
   grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb ||
    echo "warning: could not move hugetlb to cgroup v1; crun may fail" >&2
fi

hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/result.json" \
  -n unionctl "$bin --root $store run --rm --rootfs $bb /bin/true" \
  -n crun "crun run --bundle $bundle bench-crun" \
  -n runc "runc run --bundle $bundle bench-runc" \
  -n bwrap "bwrap --unshare-all --ro-bind $bb / --proc /proc --dev /dev /bin/true" >&2

python3 - "$work/result.json" <<'EOF'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
med = {r["command"]: r["median"] * 1000 for r in res}
base = med["bwrap"]
print(f"| command | median (ms) | vs bwrap |")
print(f"|---|---|---|")
for r in res:
    name = r["command"]
    print(f"| {name} | {med[name]:.1f} | {med[name] / base:.2f}x |")
EOF
