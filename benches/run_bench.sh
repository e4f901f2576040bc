#!/usr/bin/env bash
# Start-to-exit time of a container running /bin/true on a busybox rootfs:
# `unionctl run --rm --rootfs bb /bin/true` (union mount included) beside crun, runc and
# `bwrap --unshare-all`, measured in one hyperfine run. Prints medians and the ratio to
# bwrap as a markdown table. Run as root: benches/run_bench.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
[ "$(id -u)" = 0 ] || { echo "run_bench.sh: run as root" >&2; exit 1; }

. scripts/apt.sh
apt_need busybox-static crun runc bubblewrap hyperfine

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

names=(unionctl crun runc bwrap)
cmds=(
  "$bin --root $store run --rm --rootfs $bb /bin/true"
  "crun run --bundle $bundle bench-crun"
  "runc run --bundle $bundle bench-runc"
  "bwrap --unshare-all --ro-bind $bb / --proc /proc --dev /dev /bin/true"
)

# 1. hyperfine, one command after the other (its own statistics, on stderr).
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/hyperfine.json" \
  -n "${names[0]}" "${cmds[0]}" -n "${names[1]}" "${cmds[1]}" \
  -n "${names[2]}" "${cmds[2]}" -n "${names[3]}" "${cmds[3]}" >&2

# 2. The table: the four commands interleaved round by round, so that a change in the
# machine's load hits all of them alike; medians of wall time from spawn to exit.
python3 - "$runs" "$work/hyperfine.json" "${names[@]}" -- "${cmds[@]}" <<'EOF2'
import json, shlex, statistics, subprocess, sys, time
runs = int(sys.argv[1])
hf = {r["command"]: r["median"] * 1000 for r in json.load(open(sys.argv[2]))["results"]}
sep = sys.argv.index("--")
names, cmds = sys.argv[3:sep], [shlex.split(c) for c in sys.argv[sep + 1:]]
times = {n: [] for n in names}
for _ in range(runs):
    for n, c in zip(names, cmds):
        t0 = time.perf_counter()
        subprocess.run(c, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        times[n].append((time.perf_counter() - t0) * 1000)
med = {n: statistics.median(v) for n, v in times.items()}
base, base_hf = med["bwrap"], hf["bwrap"]
print("| command | median, interleaved (ms) | vs bwrap | hyperfine median (ms) | vs bwrap |")
print("|---|---|---|---|---|")
for n in names:
    print(f"| {n} | {med[n]:.1f} | {med[n] / base:.2f}x | {hf[n]:.1f} | {hf[n] / base_hf:.2f}x |")
EOF2
