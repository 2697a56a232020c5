#!/usr/bin/env bash
# Reads the .rpm back (rpm -qip / -qlp / --configfiles / --scripts) and
# installs, then erases it in a scratch `rpm --root`: a copy of the cached
# Debian root (tests/packaging/rootfs.sh) on a tmpfs in a private mount
# namespace, so the scriptlets run for real (chrooted: systemd-tmpfiles,
# systemctl preset) without touching the host. Nothing is started: the root is
# not booted.
#
#   sudo tests/packaging/rpm-test.sh VIGIL.rpm [ROOTFS_CACHE_DIR]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "rpm-test.sh: $*" >&2; exit 1; }
failures=0
ok() { echo "ok - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else echo "not ok - $what"; failures=$((failures + 1)); fi; }

if [ "${VIGIL_RPM_TEST_INNER:-}" != 1 ]; then
    [ "$(id -u)" = 0 ] || die "must run as root"
    [ $# -ge 1 ] && [ -f "$1" ] || die "usage: rpm-test.sh VIGIL.rpm [ROOTFS_CACHE_DIR]"
    command -v rpm >/dev/null || die "rpm not found (apt-get install rpm)"
    rpm_file=$(realpath "$1")
    echo "---- rpm -qip"
    rpm -qip "$rpm_file"
    files=$(rpm -qlp "$rpm_file")
    echo "---- rpm -qlp"
    echo "$files"
    for f in /usr/bin/vigil /etc/vigil/vigil.toml /usr/lib/systemd/system/vigil.service \
        /usr/lib/systemd/system/vigil-update.service /usr/lib/systemd/system/vigil-update.timer \
        /usr/lib/systemd/user/vigil-notifier.service /usr/lib/tmpfiles.d/vigil.conf \
        /usr/lib/systemd/system-preset/90-vigil.preset /usr/share/man/man8/vigil.8.gz \
        /usr/share/doc/vigil/copyright /var/lib/vigil/quarantine; do
        check "rpm lists $f" grep -qx "$f" <<<"$files"
    done
    check "vigil.toml is a config file" grep -qx /etc/vigil/vigil.toml <<<"$(rpm -qp --configfiles "$rpm_file")"
    check "vigil.toml is %config(noreplace)" grep -qx 'cn /etc/vigil/vigil.toml' \
        <<<"$(rpm -qp --queryformat '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm_file")"
    check "scriptlets present" grep -q 'systemctl --no-reload preset vigil.service' <<<"$(rpm -qp --scripts "$rpm_file")"
    check "requires libc" grep -q 'libc.so.6' <<<"$(rpm -qpR "$rpm_file")"
    triggers=$(rpm -qp --filetriggers "$rpm_file")
    for t in transfiletriggerun transfiletriggerin transfiletriggerpostun; do
        check "file trigger $t on /" grep -qx "$t scriptlet (using /bin/sh) -- /" <<<"$triggers"
    done
    root=$("$here/rootfs.sh" "${2:-/var/cache/vigil-test}")
    VIGIL_RPM_TEST_INNER=1 VIGIL_ROOTFS="$root" VIGIL_FAILURES=$failures \
        exec timeout -k 10 300 unshare --mount --propagation private -- "$0" "$rpm_file"
fi

# ---- inside the private mount namespace
failures=${VIGIL_FAILURES:-0}
rpm_file=$1
work=$(mktemp -d /tmp/vigil-rpm.XXXXXX)
trap 'umount -l "$work" 2>/dev/null || true; rmdir "$work" 2>/dev/null || true' EXIT
mount -t tmpfs -o size=1536m,mode=0755 vigil-rpm-test "$work"
root="$work/root"
cp -a "$VIGIL_ROOTFS" "$root"
r() { rpm --root "$root" --dbpath /var/lib/rpm "$@"; }
r --initdb
# --nodeps: the Debian root's libraries are not in its (empty) rpm database.
check "rpm --root -i" r -i --nodeps "$rpm_file"
check "rpm -V: installed files match the package" r -V --nodeps vigil
check "binary installed" test -x "$root/usr/bin/vigil"
check "binary runs in the root" chroot "$root" /usr/bin/vigil --version
check "%post: quarantine 0700" test "$(stat -c %a "$root/var/lib/vigil/quarantine")" = 700
check "%post: preset enabled vigil.service" test -L "$root/etc/systemd/system/multi-user.target.wants/vigil.service"
check "%post: preset enabled vigil-update.timer" test -L "$root/etc/systemd/system/timers.target.wants/vigil-update.timer"
check "%post: preset enabled the user notifier" test -L "$root/etc/systemd/user/default.target.wants/vigil-notifier.service"
# The trust store in step with rpm: with a store in the root, a transaction
# installing or erasing package files runs vigil's file triggers (chrooted:
# `vigil trust begin` before an erase, `vigil trust update` after), which
# rewrite the store and leave no upgrade window open. The Debian root has no
# rpm program: the update warns and keeps the (empty) rpm part.
store="$root/var/lib/vigil/trust.db"
check "vigil trust update in the root (its dpkg database)" chroot "$root" /usr/bin/vigil trust update --no-reload
cat >"$work/trigger.spec" <<'SPEC'
Name: vigil-trigger-test
Version: 1
Release: 1
Summary: vigil file trigger test
License: MIT
BuildArch: noarch
%description
A file under /usr/bin, to set off vigil's file triggers.
%install
mkdir -p %{buildroot}/usr/bin
printf '#!/bin/sh\nexit 0\n' >%{buildroot}/usr/bin/vigil-trigger-test
chmod 0755 %{buildroot}/usr/bin/vigil-trigger-test
%files
/usr/bin/vigil-trigger-test
SPEC
rpmbuild -bb --quiet --define "_topdir $work/trigger" --define "_rpmdir $work/trigger/rpms" \
    --define "__os_install_post %{nil}" --define "_build_id_links none" "$work/trigger.spec"
trigger_rpm=$(find "$work/trigger/rpms" -name '*.rpm' | head -n1)
touch -d @0 "$store"
out=$(r -i --nodeps "$trigger_rpm" 2>&1); echo "$out"
check "install of another package: %transfiletriggerin rewrote the store" test "$(stat -c %Y "$store")" != 0
check "the trigger's update found the root's rpm database" grep -q 'rpm database .* no `rpm` program' <<<"$out"
touch -d @0 "$store"
out=$(r -e vigil-trigger-test 2>&1); echo "$out"
check "erase: %transfiletriggerpostun rewrote the store" test "$(stat -c %Y "$store")" != 0
check "no upgrade window left open" test ! -e "$store.pending"
echo "# admin edit" >>"$root/etc/vigil/vigil.toml"
echo marker >"$root/var/lib/vigil/quarantine/rpm-test-item"
check "rpm --root -e" r -e vigil
check "binary gone after erase" test ! -e "$root/usr/bin/vigil"
check "%preun: vigil.service disabled" test ! -e "$root/etc/systemd/system/multi-user.target.wants/vigil.service"
check "%preun: vigil-update.timer disabled" test ! -e "$root/etc/systemd/system/timers.target.wants/vigil-update.timer"
check "edited config kept as .rpmsave" test -f "$root/etc/vigil/vigil.toml.rpmsave"
check "quarantine kept after erase" test -f "$root/var/lib/vigil/quarantine/rpm-test-item"
check "rpm database empty after erase" sh -c "! rpm --root '$root' --dbpath /var/lib/rpm -q vigil >/dev/null"

[ "$failures" = 0 ] || die "$failures check(s) failed"
echo "rpm-test.sh: all checks passed"
