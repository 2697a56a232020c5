#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit tests, doc tests
# and the end-to-end tests (tests/e2e), which start the real daemon on private
# tmpfs mounts and therefore need root; then the packaging tests
# (tests/packaging/run.sh: .deb/.rpm build, lintian, systemd-analyze security,
# rpm install into a scratch root, and a systemd-nspawn boot of the .deb).
#
#   sudo scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "scripts/test.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (sudo scripts/test.sh): the end-to-end tests \
start vigil daemon on private tmpfs mounts (fanotify permission events, mount namespaces)"

# What the tests need on a fresh Debian/Ubuntu machine, installed here so that
# this one command works there (CI's .ci/run calls exactly this script).
# clang: compiles the exec guard's eBPF program (agent/build.rs);
# build-essential: cc for the test programs and C build scripts; pkg-config for
# -sys crates; util-linux: unshare (private tmpfs) and setpriv (non-root tests);
# coreutils: timeout, md5sum; python3: the mmap-patch e2e test; xvfb, dbus,
# dunst (dunstctl): the notifier e2e test's real notification server;
# python3-venv, xz-utils, gpg and openssh-client: the model training smoke run
# (a venv for the pinned trainer, .deb unpacking, and the two benign donor
# binaries of the mutation suite); curl: the `curl … | sh` e2e test;
# e2fsprogs: mkfs.ext4 for the persistent-cache e2e tests (an ext4 image on a
# loop device has the stable UUID a tmpfs lacks); autoconf: the `configure`
# workload of the benchmark (tests/bench/workloads/configure.sh generates its
# configure script with it; make and cc come with build-essential).
# Packaging tests (tests/packaging): dpkg-dev (dpkg-shlibdeps), rpm
# (rpmbuild), lintian, debootstrap (a bookworm root) and systemd-container
# (systemd-nspawn). VIGIL_NO_APT=1 skips the install (the
# checks below then name whatever is missing).
APT_PACKAGES="clang build-essential pkg-config util-linux coreutils ca-certificates python3 \
    xvfb dbus dunst python3-venv xz-utils gpg openssh-client curl e2fsprogs autoconf \
    dpkg-dev rpm lintian debootstrap systemd-container"
if [ -z "${VIGIL_NO_APT:-}" ] && command -v apt-get >/dev/null 2>&1; then
    missing=""
    for p in $APT_PACKAGES; do
        [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "scripts/test.sh: installing$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
    fi
fi

# rustup's cargo, also when this shell read no profile (CI).
if ! command -v cargo >/dev/null 2>&1 && [ -d "${CARGO_HOME:-${HOME:-/root}/.cargo}/bin" ]; then
    export PATH="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin:$PATH"
fi
# Under sudo, cargo installed by rustup for the calling user is not on root's PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -n "${SUDO_USER:-}" ]; then
    user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    if [ -x "$user_home/.cargo/bin/cargo" ]; then
        export PATH="$user_home/.cargo/bin:$PATH"
        export RUSTUP_HOME="${RUSTUP_HOME:-$user_home/.rustup}"
    fi
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust >= 1.85 with rustup (https://rustup.rs)"
for tool in clang cc unshare nsenter setpriv timeout md5sum python3 curl Xvfb dbus-daemon dunst dunstctl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install $APT_PACKAGES)"
done
for tool in dpkg-deb dpkg-shlibdeps rpmbuild lintian systemd-nspawn debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install $APT_PACKAGES)"
done

step() { echo; echo "== $* (at ${SECONDS} s)"; }

# The kernel never times out a permission event; with its fanotify watchdog on,
# it at least logs (dmesg) a listener that leaves one unanswered for 30 s, so a
# hung test leaves a trace. Restored on exit.
WATCHDOG=/proc/sys/fs/fanotify/watchdog_timeout
if [ -w "$WATCHDOG" ] && [ "$(cat "$WATCHDOG")" = 0 ]; then
    echo 30 > "$WATCHDOG"
    trap 'echo 0 > "$WATCHDOG"' EXIT
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit, doc and end-to-end tests)"
cargo test --workspace --locked --no-fail-fast

# The training pipeline end to end on a few Debian packages and the shared
# corpus (features, training, ONNX export, the tract check, the mutation suite
# and the card), with the binary the tests just built.
CORPUS=${VIGIL_CORPUS:-$PWD/../shared/corpus}
step "model training smoke run (models/train/train.sh --smoke)"
if [ -r "$CORPUS/linux-malware-train.tar.xz" ]; then
    cargo build --locked -p vigil
    VIGIL_BIN=$PWD/target/debug/vigil VIGIL_CORPUS=$CORPUS models/train/train.sh --smoke
else
    echo "SKIPPED: no malware corpus at $CORPUS (set VIGIL_CORPUS)"
fi

step "packaging tests (tests/packaging/run.sh)"
tests/packaging/run.sh
echo; echo "scripts/test.sh: everything passed in ${SECONDS} s"
