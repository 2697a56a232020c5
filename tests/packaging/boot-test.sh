#!/usr/bin/env bash
# Installs the .deb into a clean Debian bookworm root and boots it with
# systemd-nspawn: systemd must start vigil (READY=1), an exec of the EICAR file
# must be denied, the watchdog must restart a stuck daemon, and apt remove /
# purge must leave what they should (checks: tests/packaging/in-container.sh).
#
#   sudo tests/packaging/boot-test.sh VIGIL.deb [ROOTFS_CACHE_DIR]
#
# Safety: the container root is a copy of the cached debootstrap root on a
# tmpfs mounted here, inside a private mount namespace (unshare -m), so the
# daemon in the container marks that tmpfs and nothing of the host's; its
# configuration is limited to "/" (the tmpfs) by a drop-in. The boot runs under
# timeout; a stalled daemon can only stall processes inside the container.
#
# nspawn's own seccomp filter refuses fanotify_init with EPERM (it is not in
# its allow list, even with CAP_SYS_ADMIN); --system-call-filter= adds
# fanotify_init and fanotify_mark back, as a container meant to run vigil needs.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "boot-test.sh: $*" >&2; exit 1; }

BOOT_TIMEOUT=${VIGIL_BOOT_TIMEOUT:-300}

if [ "${VIGIL_BOOT_TEST_INNER:-}" != 1 ]; then
    [ "$(id -u)" = 0 ] || die "must run as root"
    [ $# -ge 1 ] && [ -f "$1" ] || die "usage: boot-test.sh VIGIL.deb [ROOTFS_CACHE_DIR]"
    for tool in systemd-nspawn unshare timeout debootstrap; do
        command -v "$tool" >/dev/null || die "$tool not found (apt-get install systemd-container util-linux debootstrap)"
    done
    root=$("$here/rootfs.sh" "${2:-/var/cache/vigil-test}")
    VIGIL_BOOT_TEST_INNER=1 VIGIL_ROOTFS="$root" \
        exec unshare --mount --propagation private -- "$0" "$(realpath "$1")"
fi

# ---- inside the private mount namespace
deb=$1
work=$(mktemp -d /tmp/vigil-boot.XXXXXX)
cleanup() {
    umount -l "$work" 2>/dev/null || true
    rmdir "$work" 2>/dev/null || true
}
trap cleanup EXIT
mount -t tmpfs -o size=1536m,mode=0755 vigil-boot-test "$work"
root="$work/root"
SECONDS=0
cp -a "$VIGIL_ROOTFS" "$root"
rm -f "$root/.vigil-complete"
mkdir -p "$root/vigil-test"
cp "$deb" "$root/vigil-test/vigil.deb"
install -m 0755 "$here/in-container.sh" "$root/vigil-test/in-container.sh"
echo "vigil-boot-test" >"$root/etc/hostname"
cat >"$root/etc/systemd/system/vigil-boot-test.service" <<'UNIT'
[Unit]
Description=vigil package boot test
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/vigil-test/in-container.sh
TimeoutStartSec=240
# Power off whatever happened, so the boot never waits for the outer timeout.
ExecStopPost=/bin/systemctl poweroff --no-block
[Install]
WantedBy=multi-user.target
UNIT
ln -s /etc/systemd/system/vigil-boot-test.service \
    "$root/etc/systemd/system/multi-user.target.wants/vigil-boot-test.service"
echo "boot-test.sh: container root copied to tmpfs in $SECONDS s" >&2

rc=0
# CAP_SYS_RESOURCE, which a host's PID 1 has: without it the container's
# systemd cannot raise a hard limit such as the unit's LimitNICE=.
timeout -k 10 "$BOOT_TIMEOUT" systemd-nspawn -q --register=no --keep-unit \
    --resolv-conf=off --timezone=off --link-journal=no --private-network \
    --system-call-filter="fanotify_init fanotify_mark" --capability=CAP_SYS_RESOURCE \
    -D "$root" --boot --console=pipe >"$work/console.log" 2>&1 || rc=$?
echo "boot-test.sh: container exited with $rc ($SECONDS s since the copy started)" >&2

echo "---- in-container log"
cat "$root/vigil-test/log" 2>/dev/null || echo "(no log)"
echo "---- result"
cat "$root/vigil-test/result" 2>/dev/null || echo "(no result)"
if ! grep -q '^done$' "$root/vigil-test/result" 2>/dev/null; then
    echo "---- console"
    tail -n 80 "$work/console.log"
    die "the in-container test did not finish (nspawn exit $rc)"
fi
if grep -q '^not ok' "$root/vigil-test/result"; then
    die "$(grep -c '^not ok' "$root/vigil-test/result") check(s) failed"
fi
echo "boot-test.sh: all $(grep -c '^ok' "$root/vigil-test/result") checks passed"
