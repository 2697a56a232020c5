# Sourced by the bench scripts that run `vigil daemon` themselves
# (cold-start.sh, first-exec.sh): the binary, a work directory and its
# cleanup, the content lines, the daemon's configuration, its start and stop.
#
# The caller sets REPO (the checkout) and BENCH (its name, for messages), then
# calls bench_enter, then bench_setup, which sets VIGIL (the binary) and WORK
# (a private directory; the daemon watches the filesystem mounted at
# $WORK/mnt). content holds the [content] lines for the hash lists and
# rules beside the built-in ones (empty for a default install; see
# bench_content). DAEMON holds the daemon's pid (timeout's, which passes
# signals on) while it runs; the cleanup kills it by that pid.

# bench_enter LIMIT ARGS...: refuses to run but as root; otherwise runs the
# calling script again, once, inside a private mount namespace under a
# timeout of LIMIT seconds, and returns in that second run.
bench_enter() {
    [ "$(id -u)" = 0 ] || { echo "$BENCH.sh: run as root (fanotify, mount namespaces)" >&2; exit 1; }
    [ -z "${VIGIL_BENCH_INNER:-}" ] || return 0
    local limit=$1
    shift
    exec timeout -k 10 "$limit" unshare --mount --propagation private \
        env VIGIL_BENCH_INNER=1 bash "$0" "$@"
}

# bench_setup: VIGIL from VIGIL_BIN, else the checkout's release build, else
# its debug build; WORK a fresh directory under /var/tmp, removed at exit
# (after the daemon is killed and $WORK/mnt unmounted).
bench_setup() {
    VIGIL=${VIGIL_BIN:-}
    if [ -z "$VIGIL" ]; then
        VIGIL=$REPO/target/release/vigil
        [ -x "$VIGIL" ] || VIGIL=$REPO/target/debug/vigil
    fi
    [ -x "$VIGIL" ] || { echo "$BENCH.sh: no vigil binary (set VIGIL_BIN)" >&2; exit 1; }
    WORK=$(mktemp -d "/var/tmp/vigil-$BENCH.XXXXXX")
    DAEMON=""
    content=""
    trap bench_cleanup EXIT
}

bench_cleanup() {
    if [ -n "$DAEMON" ]; then kill -KILL "$DAEMON" 2>/dev/null || true; fi
    umount "$WORK/mnt" 2>/dev/null || true
    rm -rf "$WORK"
}

# bench_content DIR: the [content] lines for DIR's hashes/ and yara/; fails
# (content left empty) when DIR lacks either.
bench_content() {
    [ -d "$1/hashes" ] && [ -d "$1/yara" ] || return 1
    content="hashes = [\"$1/hashes\"]
rules = [\"$1/yara\"]"
}

# bench_config PERSISTENT [TRUST]: writes $WORK/vigil.toml, the persistent
# verdict cache on (true) or off (false), in $WORK/cache; with TRUST true the
# trust store is $WORK/trust.db (a script builds it), otherwise a path where
# no store exists, so the machine's own store is never read.
bench_config() {
    cat > "$WORK/vigil.toml" <<TOML
[watch]
filesystems = ["$WORK/mnt"]
mounts = []
scan_on_open = "executable"

[content]
$content
allow = []
builtin = true
model = "builtin"

[daemon]
socket = "$WORK/vigil.sock"

[quarantine]
dir = "$WORK/quarantine"

[guard]
uncovered = "off"
network = "off"

[cache]
persistent = $1
dir = "$WORK/cache"

[policy]
trust_db = "$WORK/$([ "${2:-false}" = true ] && echo trust.db || echo no-trust.db)"

[log]
events = "none"
level = "info"
TOML
}

# Starts the daemon on $WORK/vigil.toml under a timeout; returns once it is ready.
start_daemon() {
    : > "$WORK/daemon.err"
    env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE timeout -k 5 900 \
        "$VIGIL" daemon --config "$WORK/vigil.toml" 2> "$WORK/daemon.err" &
    DAEMON=$!
    for _ in $(seq 1 600); do
        grep -q ' ready ' "$WORK/daemon.err" && return 0
        kill -0 "$DAEMON" 2>/dev/null || { cat "$WORK/daemon.err" >&2; exit 1; }
        sleep 0.1
    done
    echo "$BENCH: daemon not ready" >&2; cat "$WORK/daemon.err" >&2; exit 1
}

stop_daemon() {
    kill -TERM "$DAEMON"
    wait "$DAEMON" || true
    DAEMON=""
}
