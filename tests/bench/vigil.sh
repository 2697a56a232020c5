# vigil with its real content as an agent of the shared on-access benchmark
# (shared/bench/bench.sh): the numbers in docs/performance.md.
#
#   cargo build --release -p vigil
#   cp -r ../shared/bench /var/tmp/vigil-bench && cd /var/tmp/vigil-bench
#   sudo ./bench.sh --agents baseline,fan-allow,vigil --agent-file /path/to/vigil/tests/bench/vigil.sh
#
# (bench.sh names an agent file's agent after the file: vigil.)
#
# Like vigil-agent.sh (filesystem mark on $MNT, scan_on_open = "$VIGIL_SCAN_ON_OPEN", the probe
# sample's SHA-256 and a YARA rule for the test string $BENCH_SIG), plus the
# detection content a deployment loads: every hash list and YARA rule of the
# content folder (VIGIL_CONTENT, default ../shared/content beside the
# repository: the ESET and Elastic .hsb lists, the Elastic Linux and ESET
# rules; read at start, never copied into the repository) and the model bundle
# compiled into vigil (on by default). The content is checked before the run:
# a missing folder is an error, not a faster benchmark.
#
# VIGIL_SCAN_ON_OPEN picks which plain opens are scanned (default "all", so the
# text probes and burst_sig are detected); vigil-default.sh sets "executable",
# the shipped default.
VIGIL_SCAN_ON_OPEN=${VIGIL_SCAN_ON_OPEN:-all}
# VIGIL_PROFILE (optional) sets policy.profile: vigil-server.sh measures the
# "server" exec rules, which read /proc for every exec they see.
VIGIL_PROFILE=${VIGIL_PROFILE:-}
# VIGIL_CPUS (optional, a taskset CPU list) runs the daemon on those CPUs
# only: with bench.sh --wl-cpus on the same list, the harness's same-CPU
# placement test (docs/performance.md, "Open cold on this VM: where each
# microsecond goes").
VIGIL_CPUS=${VIGIL_CPUS:-}
AGENT_FS=tmpfs

# The repository: this file is tests/bench/vigil.sh in it.
VIGIL_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VIGIL_CONTENT=${VIGIL_CONTENT:-$(cd "$VIGIL_REPO/.." && pwd)/shared/content}
AGENT_DESC="vigil daemon: filesystem mark, scan_on_open=$VIGIL_SCAN_ON_OPEN, content $VIGIL_CONTENT, built-in model, probe hash + rule${VIGIL_CPUS:+, on CPUs $VIGIL_CPUS}"

vigil_bin() { echo "${VIGIL_BIN:-$VIGIL_REPO/target/release/vigil}"; }

agent_prepare() {
    local bin
    bin=$(vigil_bin)
    [ -x "$bin" ] || { echo "no vigil binary at $bin: run cargo build --release (or set VIGIL_BIN)" >&2; return 1; }
    [ -d "$VIGIL_CONTENT/hashes" ] && [ -d "$VIGIL_CONTENT/yara" ] \
        || { echo "no content folder at $VIGIL_CONTENT (hashes/, yara/): set VIGIL_CONTENT" >&2; return 1; }
    printf '%s  bench-probe-hash.bin\n' "$BENCH_HASH_SHA256" > "$AGENT_WORK/bench.sha256"
    printf 'rule bench_sig {\n  strings:\n    $s = "%s"\n  condition:\n    $s\n}\n' \
        "$BENCH_SIG" > "$AGENT_WORK/bench.yar"
    cat > "$AGENT_WORK/vigil.toml" <<TOML
[watch]
filesystems = ["$MNT"]
mounts = []
scan_on_open = "$VIGIL_SCAN_ON_OPEN"

[content]
hashes = ["$VIGIL_CONTENT/hashes", "$AGENT_WORK/bench.sha256"]
rules = ["$VIGIL_CONTENT/yara", "$AGENT_WORK/bench.yar"]
builtin = true
model = "builtin"

[daemon]
socket = "$AGENT_WORK/vigil.sock"

# A store per agent run: verdicts persisted by an earlier run (on the harness's
# ext2 image, which has a UUID) would make this run's cold workloads warm.
[cache]
dir = "$AGENT_WORK/cache"

[log]
events = "$AGENT_WORK/events.log"
level = "info"
TOML
    if [ -n "$VIGIL_PROFILE" ]; then
        printf '\n[policy]\nprofile = "%s"\n' "$VIGIL_PROFILE" >> "$AGENT_WORK/vigil.toml"
    fi
    # Fail here, with the loader's message, rather than as a probe mismatch.
    "$bin" check-config --config "$AGENT_WORK/vigil.toml" > "$AGENT_WORK/check-config.txt" 2>&1 \
        || { cat "$AGENT_WORK/check-config.txt" >&2; return 1; }
}

agent_start() {
    # Measured with RUST_BACKTRACE unset (error values are costly when it is set).
    # MALLOC_ARENA_MAX as the systemd unit sets it.
    local pin=()
    [ -z "$VIGIL_CPUS" ] || pin=(taskset -c "$VIGIL_CPUS")
    exec "${pin[@]}" env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" \
        "$(vigil_bin)" daemon --config "$AGENT_WORK/vigil.toml"
}

# Ready once the content is loaded and answering: the ELF probe carrying the
# test string is denied on exec (execs are scanned under every scan_on_open;
# the hash-listed probe is a data file, not scanned on open under "executable").
agent_ready() {
    [ "$("$BIN/probe" exec "$MNT/probe/sig-exec" | cut -d' ' -f1)" = DENY:EPERM ]
}

