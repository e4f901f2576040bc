#!/usr/bin/env bash
# Runs the overlayfs upstream test suite (github.com/amir73il/unionmount-testsuite) on
# unionctl through its fuse-overlayfs drop-in (`./run --ov --fuse=unionctl-overlay`), in
# the modes that apply to a FUSE union: plain, layers rotated into the lower stack
# (--ov=10), inode checks (--verify), layers on several file systems (--maxfs) and
# trailing slashes (--ts=1). Not part of scripts/test.sh: the suite is not packaged, so
# give a checkout of it. Run as root; it installs unionctl with scripts/install.sh (mount
# looks for fuse.unionctl-overlay's helper in /usr/local/bin and the system dirs).
#   scripts/unionmount-testsuite.sh SUITE_DIR [MODE...]    # MODE e.g. "--ov=10 --verify"
set -euo pipefail
suite="${1:?usage: $0 SUITE_DIR [MODE...]}"; shift
[ -x "$suite/run" ] || { echo "$0: $suite/run: not the unionmount-testsuite checkout" >&2; exit 2; }
here="$(cd "$(dirname "$0")/.." && pwd)"
(cd "$here" && cargo build --release --quiet) && "$here/scripts/install.sh" >/dev/null
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=("" "=10" " --verify" "=10 --verify" "=3 --maxfs=2" " --ts=1")
base="$(mktemp -d /var/tmp/unionmount-testsuite.XXXXXX)"
trap 'rm -rf "$base"' EXIT
chmod 755 "$base"   # the suite drops to user bin for its permission tests
mkdir -p "$base/base" "$base/mnt"
failed=0
for m in "${modes[@]}"; do
    # --ov[=N] first, then --fuse, then the flags: the suite's own argument order.
    ov="--ov${m%% *}"; rest=""; [[ "$m" == *" "* ]] && rest="${m#* }"
    log="$base/run.log"
    if (cd "$suite" && UNIONMOUNT_BASEDIR="$base/base" UNIONMOUNT_MNTPOINT="$base/mnt" \
            unshare -m ./run $ov --fuse=unionctl-overlay $rest) > "$log" 2>&1; then
        echo "PASS $ov $rest ($(grep -ac '^TEST ' "$log") subtests)"
    else
        failed=1
        echo "FAIL $ov $rest:"
        tail -5 "$log" | sed 's/^/    /'
    fi
done
exit $failed
