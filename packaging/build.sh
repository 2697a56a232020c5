#!/usr/bin/env bash
# Builds the .deb and the .rpm from one staged tree:
#
#   packaging/build.sh [OUT_DIR]        # default target/packages
#
# VIGIL_PACKAGE_PROFILE (default "release") picks the cargo profile; the test
# suite passes "dev" to reuse the binary `cargo test` already built (same files,
# scripts and units; only the optimisation differs). Needs cargo, clang (the
# exec guard's eBPF program; build time only), dpkg-deb, dpkg-shlibdeps
# (dpkg-dev), rpmbuild (rpm), strip (binutils), python3.
#
# Packages are built with dpkg-deb and rpmbuild directly rather than
# cargo-deb/cargo-generate-rpm: both come with apt (no `cargo install` of two
# tools, minutes of CI), and the maintainer scripts, conffiles and unit paths
# are spelled out here instead of in tool-specific metadata. Reproducible:
# file times, archive times and the rpm build time come from SOURCE_DATE_EPOCH
# (the last commit's time unless set).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

die() { echo "packaging/build.sh: $*" >&2; exit 1; }
for tool in cargo clang dpkg-deb dpkg-shlibdeps rpmbuild strip python3 gzip; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install clang dpkg-dev rpm binutils python3)"
done

out=$(realpath -m "${1:-target/packages}")
profile=${VIGIL_PACKAGE_PROFILE:-release}
case "$profile" in
    dev) profile_dir=debug ;;
    *) profile_dir=$profile ;;
esac
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || die "no workspace version in Cargo.toml"
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
source_date_epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
arch=$(dpkg --print-architecture)
host=$(rustc -vV | sed -n 's/^host: //p')

echo "== cargo build --profile $profile (vigil, man pages)"
if [ "$profile" = dev ]; then
    # Exactly what `cargo test --workspace` builds (same feature unification,
    # examples included): nothing to compile after the test run.
    cargo test --workspace --locked --no-run
else
    # Two invocations: the example's dev-dependencies must not change the
    # features the shipped binary is built with.
    cargo build --locked --profile "$profile" -p vigil --bin vigil
    cargo build --locked --profile "$profile" -p vigil --example manpage
fi
bin="target/$profile_dir/vigil"
# Only now: build scripts (cc) rerun when SOURCE_DATE_EPOCH changes, so setting
# it for cargo would rebuild what `cargo test` built.
export SOURCE_DATE_EPOCH=$source_date_epoch

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# stage ROOT UNIT_DIR: the installed tree. Debian bookworm keeps system units in
# /lib/systemd/system (merged-/usr moratorium); rpm distributions use /usr/lib.
stage() {
    local root=$1 unitdir=$2
    install -D -m 0755 "$bin" "$root/usr/bin/vigil"
    strip --strip-unneeded "$root/usr/bin/vigil"
    install -D -m 0644 packaging/vigil.toml "$root/etc/vigil/vigil.toml"
    install -d -m 0755 "$root/etc/vigil/conf.d"
    install -D -m 0644 systemd/vigil.service "$root$unitdir/vigil.service"
    install -D -m 0644 systemd/vigil-update.service "$root$unitdir/vigil-update.service"
    install -D -m 0644 systemd/vigil-update.timer "$root$unitdir/vigil-update.timer"
    install -D -m 0644 systemd/vigil-notifier.service "$root/usr/lib/systemd/user/vigil-notifier.service"
    install -D -m 0644 systemd/90-vigil.preset "$root/usr/lib/systemd/system-preset/90-vigil.preset"
    install -D -m 0644 systemd/90-vigil-user.preset "$root/usr/lib/systemd/user-preset/90-vigil-user.preset"
    install -D -m 0644 systemd/vigil.tmpfiles "$root/usr/lib/tmpfiles.d/vigil.conf"
    install -D -m 0644 README.md "$root/usr/share/doc/vigil/README.md"
    install -m 0644 "$work/copyright" "$root/usr/share/doc/vigil/copyright"
    install -d -m 0755 "$root/usr/share/man/man8"
    "target/$profile_dir/examples/manpage" "$work/man" "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)"
    for page in "$work"/man/*.8; do
        gzip -9n < "$page" > "$root/usr/share/man/man8/$(basename "$page").gz"
        chmod 0644 "$root/usr/share/man/man8/$(basename "$page").gz"
    done
}

cargo metadata --format-version 1 --locked --filter-platform "$host" \
    | python3 packaging/copyright.py > "$work/copyright"
mkdir -p "$out"

# ---------------------------------------------------------------- .deb
echo "== .deb"
deb_version="$version-1"
d="$work/deb"
stage "$d" /lib/systemd/system
install -d -m 0755 "$d/DEBIAN"
sed -e "s/@VERSION@/$deb_version/" -e "s/@COMMIT@/$commit/" \
    -e "s/@DATE@/$(date -u -R -d "@$SOURCE_DATE_EPOCH")/" packaging/debian/changelog.in \
    | gzip -9n > "$d/usr/share/doc/vigil/changelog.Debian.gz"
chmod 0644 "$d/usr/share/doc/vigil/changelog.Debian.gz"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$d/DEBIAN/"
install -m 0644 packaging/debian/conffiles packaging/debian/triggers "$d/DEBIAN/"
# apt hooks keeping the trust store in step with apt runs; the dpkg file
# trigger (DEBIAN/triggers) covers a plain dpkg -i. rpm's are file triggers in
# the spec.
install -D -m 0644 packaging/apt/80vigil-trust "$d/etc/apt/apt.conf.d/80vigil-trust"
install -D -m 0644 packaging/debian/lintian-overrides "$d/usr/share/lintian/overrides/vigil"
# dpkg-shlibdeps wants a source tree's debian/control.
mkdir -p "$work/src/debian"
printf 'Source: vigil\n\nPackage: vigil\nArchitecture: any\n' > "$work/src/debian/control"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "$d/usr/bin/vigil" | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no library dependencies"
installed_size=$(du -sk --exclude=DEBIAN "$d" | cut -f1)
sed -e "s/@VERSION@/$deb_version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
    -e "s/@SHLIBS@/$shlibs/" packaging/debian/control.in > "$d/DEBIAN/control"
(cd "$d" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
    | xargs -0 md5sum) > "$d/DEBIAN/md5sums"
chmod 0644 "$d/DEBIAN/md5sums"
find "$d" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
deb="$out/vigil_${deb_version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$d" "$deb" >/dev/null

# ---------------------------------------------------------------- .rpm
echo "== .rpm"
r="$work/rpmroot"
stage "$r" /usr/lib/systemd/system
install -d -m 0755 "$r/var/lib/vigil/content"
install -d -m 0700 "$r/var/lib/vigil/quarantine"
install -d -m 0750 "$r/var/log/vigil"
find "$r" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
sed -e "s/@VERSION@/$version/" -e "s|@STAGE@|$r|" packaging/rpm/vigil.spec.in > "$work/vigil.spec"
rpmbuild -bb --quiet \
    --define "_topdir $work/rpmbuild" \
    --define "_rpmdir $work/rpms" \
    --define "_build_id_links none" \
    --define "debug_package %{nil}" \
    --define "__os_install_post %{nil}" \
    --define "_buildhost reproducible" \
    --define "use_source_date_epoch_as_buildtime 1" \
    --define "clamp_mtime_to_source_date_epoch 1" \
    --define "_binary_payload w9.xzdio" \
    "$work/vigil.spec"
rpm_file=$(find "$work/rpms" -name '*.rpm' | head -n1)
[ -n "$rpm_file" ] || die "rpmbuild wrote no package"
cp "$rpm_file" "$out/"

for f in "$deb" "$out/$(basename "$rpm_file")"; do
    echo "$(du -k "$f" | cut -f1) KiB  $f"
done
