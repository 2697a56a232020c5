# Sourced by the bench scripts that run `vigil daemon` themselves
# (cold-start.sh, first-exec.sh): its configuration and its start and stop.
#
# The caller sets WORK (a private directory; the daemon watches the filesystem
# mounted at $WORK/mnt), VIGIL (the binary), BENCH (its name, for messages)
# and content (the [content] lines for the hash lists and rules beside the
# built-in ones; empty for a default install). DAEMON holds the daemon's pid
# (timeout's, which passes signals on) while it runs; the caller's cleanup
# kills it by that pid.

# bench_config PERSISTENT: writes $WORK/vigil.toml, the persistent verdict
# cache on (true) or off (false), in $WORK/cache.
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
