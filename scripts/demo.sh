#!/usr/bin/env bash
# Mounts the bundled fixtures/ layers (base below, app on top) and shows the merged view.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release -q
bin="$PWD/target/release/unionctl"
tmp=$(mktemp -d /tmp/unionctl-demo.XXXXXX)
mkdir -p "$tmp/upper" "$tmp/merged"
cleanup() { "$bin" umount "$tmp/merged" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
"$bin" mount --lower fixtures/app:fixtures/base --upper "$tmp/upper" "$tmp/merged"
echo "== merged view of fixtures/app over fixtures/base"
(cd "$tmp/merged" && find . | sort)
echo "== layers of the union, top first:"; "$bin" layers "$tmp/merged"
echo "== /etc/os-release (app overrides base):"; cat "$tmp/merged/etc/os-release"
echo "== which layer supplies it:"; "$bin" which "$tmp/merged/etc/os-release"
echo "== /etc/secret is whited out by app:"; ls "$tmp/merged/etc/secret" 2>&1 || true
echo "== /var/cache is opaque in app:"; ls "$tmp/merged/var/cache"
echo "== write through the union (copy-up of /etc/motd):"
echo "changed" >> "$tmp/merged/etc/motd"
rm "$tmp/merged/bin/hello"
echo "== the upper layer now holds the copied-up motd and a whiteout for bin/hello:"
(cd "$tmp/upper" && find . -printf '%y %p\n' | sort -k2)
