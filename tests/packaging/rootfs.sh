#!/usr/bin/env bash
# Prints the path of a minimal Debian bookworm root with systemd (debootstrap
# --variant=minbase), building it once into a cache directory:
#
#   tests/packaging/rootfs.sh [CACHE_DIR]   # default /var/cache/vigil-test
#
# The mirror is the one apt on this machine uses (first bookworm "URIs:" in
# /etc/apt/sources.list.d/*.sources or "deb" line in /etc/apt/sources.list*),
# unless VIGIL_TEST_MIRROR is set. The root is built under a temporary name and
# renamed when complete, so an interrupted build is never used. The cache key
# is the package list: change it and a new root is built.
set -euo pipefail

cache=${1:-/var/cache/vigil-test}
suite=bookworm
# systemd + systemd-sysv: a real PID 1 for `systemd-nspawn --boot`; dbus for
# systemctl inside the booted container.
include=systemd,systemd-sysv,dbus
key=$(printf '%s %s minbase' "$suite" "$include" | sha256sum | cut -c1-12)
root="$cache/$suite-$key"

die() { echo "rootfs.sh: $*" >&2; exit 1; }

if [ -x "$root/usr/lib/systemd/systemd" ] && [ -e "$root/.vigil-complete" ]; then
    echo "$root"
    exit 0
fi

mirror=${VIGIL_TEST_MIRROR:-}
if [ -z "$mirror" ]; then
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        # deb822 stanzas: the URIs of the first stanza whose Suites has $suite.
        mirror=$(awk -v s="$suite" '
            /^[[:space:]]*$/ { if (u != "" && ok) { print u; exit } u = ""; ok = 0; next }
            /^URIs:/ { u = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
            END { if (u != "" && ok) print u }' "$f" | head -n1)
        [ -n "$mirror" ] && break
    done
fi
if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | awk -v s="$suite" '$1 == "deb" && $3 == s { print $2; exit }' || true)
fi
[ -n "$mirror" ] || die "no apt mirror for $suite found in /etc/apt/sources.list*; set VIGIL_TEST_MIRROR"
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"

mkdir -p "$cache"
tmp="$root.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "rootfs.sh: debootstrap $suite from $mirror into $root" >&2
start=$(date +%s)
timeout 900 debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror" \
    > "$cache/debootstrap-$key.log" 2>&1 \
    || die "debootstrap failed (log: $cache/debootstrap-$key.log)"
# No downloaded .debs in the cache copy: every test copies this tree.
rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_Packages 2>/dev/null || true
touch "$tmp/.vigil-complete"
mv "$tmp" "$root"
trap - EXIT
echo "rootfs.sh: built in $(( $(date +%s) - start )) s" >&2
echo "$root"
