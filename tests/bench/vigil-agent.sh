# vigil as an agent of the shared on-access benchmark (shared/bench/bench.sh).
#
#   cp -r ../shared/bench /var/tmp/vigil-bench && cd /var/tmp/vigil-bench
#   sudo ./bench.sh --agents baseline,vigil-agent --agent-file /path/to/vigil/tests/bench/vigil-agent.sh
#
# (bench.sh names an agent file's agent after the file: vigil-agent.)
#
# Starts `vigil daemon` (the release binary: cargo build --release, or set
# VIGIL_BIN) watching the test filesystem ($MNT, a filesystem mark), scanning
# every open (scan_on_open = "all"), with a hash list holding the probe sample
# ($BENCH_HASH_SHA256) so the hash probe is denied, and a YARA rule for the
# test string ($BENCH_SIG) so sig.txt, sig-exec and burst_sig are denied. The
# built-in test signature stays on. Config, control socket and the JSON event
# log live in $AGENT_WORK.
AGENT_DESC="vigil daemon: filesystem mark, scan_on_open=all, SHA-256 list + YARA rule for the probes"
AGENT_FS=tmpfs

# The repository: this file is tests/bench/vigil-agent.sh in it.
VIGIL_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

agent_prepare() {
    local bin=${VIGIL_BIN:-$VIGIL_REPO/target/release/vigil}
    [ -x "$bin" ] || { echo "no vigil binary at $bin: run cargo build --release (or set VIGIL_BIN)" >&2; return 1; }
    printf '%s  bench-probe-hash.bin\n' "$BENCH_HASH_SHA256" > "$AGENT_WORK/bench.sha256"
    # A YARA rule for the harness's test string (sig.txt, sig-exec, burst_sig).
    printf 'rule bench_sig {\n  strings:\n    $s = "%s"\n  condition:\n    $s\n}\n' \
        "$BENCH_SIG" > "$AGENT_WORK/bench.yar"
    cat > "$AGENT_WORK/vigil.toml" <<TOML
[watch]
filesystems = ["$MNT"]
mounts = []
scan_on_open = "all"

[content]
hashes = ["$AGENT_WORK/bench.sha256"]
rules = ["$AGENT_WORK/bench.yar"]
builtin = true

[daemon]
socket = "$AGENT_WORK/vigil.sock"

[log]
events = "$AGENT_WORK/events.log"
level = "info"
TOML
}

agent_start() {
    # The benchmark measures with RUST_BACKTRACE unset (error values are costly
    # when it is set).
    exec env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE \
        "${VIGIL_BIN:-$VIGIL_REPO/target/release/vigil}" daemon --config "$AGENT_WORK/vigil.toml"
}

# Ready once the content is loaded and answering: the hash-listed probe is denied.
agent_ready() {
    [ "$("$BIN/probe" open "$MNT/probe/hash.bin" | cut -d' ' -f1)" = DENY:EPERM ]
}
