#!/usr/bin/env bash
# Builds vigil, installs it and runs the daemon in the foreground, on a fresh
# Debian or Ubuntu machine, as root:
#
#   sudo scripts/run-daemon.sh
#
# 1. installs the build dependencies (apt-get install build-essential pkg-config
#    clang; clang compiles the exec guard's eBPF program);
# 2. checks that cargo >= 1.85 is available;
# 3. cargo build --release --locked, installs the binary as /usr/local/bin/vigil;
# 4. writes /etc/vigil/vigil.toml from packaging/vigil.toml (only if absent) and
#    creates /var/lib/vigil/content/ (drop hash lists there: the default config
#    loads every file in it);
# 5. exec vigil daemon --config /etc/vigil/vigil.toml (Ctrl-C or SIGTERM stops it).
#
# With the default config the daemon watches execs on the filesystems of /,
# /home, /tmp, /var/tmp and /dev/shm (and opens of ELF files and scripts),
# enforces, and knows the built-in test signature (the EICAR test file).
# Detections are JSON lines on stdout; logs go to stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MIN_RUST=1.85
BIN=/usr/local/bin/vigil
CONFIG=/etc/vigil/vigil.toml
CONTENT=/var/lib/vigil/content

die() { echo "scripts/run-daemon.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (sudo scripts/run-daemon.sh): it installs packages and the daemon needs root"

if command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y build-essential pkg-config clang \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y build-essential pkg-config clang; }
else
    echo "scripts/run-daemon.sh: no apt-get; make sure a C compiler, clang and pkg-config are installed" >&2
fi

# Under sudo, cargo installed by rustup for the calling user is not on root's PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -n "${SUDO_USER:-}" ]; then
    user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    if [ -x "$user_home/.cargo/bin/cargo" ]; then
        export PATH="$user_home/.cargo/bin:$PATH"
        export RUSTUP_HOME="${RUSTUP_HOME:-$user_home/.rustup}"
    fi
fi
command -v cargo >/dev/null 2>&1 \
    || die "cargo not found. vigil needs Rust >= $MIN_RUST: install it with rustup (https://rustup.rs), then run this again"
have=$(cargo --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$MIN_RUST" "${have%%-*}" | sort -V | head -1)" != "$MIN_RUST" ]; then
    die "cargo $have is too old: vigil needs Rust >= $MIN_RUST (rustup update, or install rustup from https://rustup.rs)"
fi

cargo build --release --locked -p vigil
install -D -m 0755 target/release/vigil "$BIN"

if [ ! -e "$CONFIG" ]; then
    install -D -m 0644 packaging/vigil.toml "$CONFIG"
    echo "wrote $CONFIG (from packaging/vigil.toml)"
else
    echo "keeping the existing $CONFIG"
fi
install -d -m 0755 "$CONTENT"

echo "starting: $BIN daemon --config $CONFIG"
# As the systemd unit does (systemd/vigil.service says why).
exec env MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" "$BIN" daemon --config "$CONFIG"
