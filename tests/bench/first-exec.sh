#!/usr/bin/env bash
# Issue 18's "exec cold of a never-seen binary": the first exec of N distinct
# copies of one large static program, one at a time with a pause between them
# (so every exec is an isolated cold one, as a user's is), under a daemon that
# has seen none of them, against the same on fresh copies with no daemon, in
# one run. Prints per-exec medians and quartiles, the ratio, and the daemon's
# per-stage medians from `vigil stats`; last, one JSON line.
#
#   sudo tests/bench/first-exec.sh [N=60] [REPS=3]
#
# VIGIL_BIN (default target/release/vigil, else target/debug/vigil) is the
# daemon. VIGIL_CONTENT names a content folder (hashes/, yara/) loaded besides
# the built-in rules and model; unset: a default install's content (built-in
# rules and model only). PROGRAM is the program copied (default: a static
# `int main(void){return 0;}` built with `cc -static`, about 700 KiB, like the
# shared harness's `true_static`); each copy gets a distinct suffix.
#
# Safety: everything runs inside a private mount namespace (`unshare --mount`)
# under a timeout; the daemon watches only a tmpfs mounted there, runs under
# its own timeout and is stopped by pid.
set -euo pipefail

N=${1:-60}
REPS=${2:-3}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

BENCH=first-exec
# shellcheck source=tests/bench/daemon.sh
. "$REPO/tests/bench/daemon.sh"
bench_enter 1800 "$@"
bench_setup

PROGRAM=${PROGRAM:-}
if [ -z "$PROGRAM" ]; then
    printf 'int main(void) { return 0; }\n' > "$WORK/true.c"
    cc -static -O2 -o "$WORK/true_static" "$WORK/true.c" \
        || { echo "first-exec.sh: cc -static failed (set PROGRAM)" >&2; exit 1; }
    PROGRAM=$WORK/true_static
fi
[ -x "$PROGRAM" ] || { echo "first-exec.sh: PROGRAM $PROGRAM is not executable" >&2; exit 1; }

if [ -n "${VIGIL_CONTENT:-}" ]; then
    bench_content "$VIGIL_CONTENT" \
        || { echo "first-exec.sh: no hashes/ and yara/ in $VIGIL_CONTENT" >&2; exit 1; }
fi

mkdir -p "$WORK/mnt"
mount -t tmpfs -o size=512m tmpfs "$WORK/mnt"

# Fresh copies for one pass: $1 is the set's name.
copies() {
    mkdir -p "$WORK/mnt/$1"
    for i in $(seq 1 "$N"); do
        cp "$PROGRAM" "$WORK/mnt/$1/p$i"
        printf 'first-exec %s %s %s' "$1" "$i" "$RANDOM$RANDOM" >> "$WORK/mnt/$1/p$i"
    done
}

# One pass: each copy executed once, 50 ms apart; prints "median p25 p75" in µs.
pass() {
    python3 - "$WORK/mnt/$1" "$N" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
took = []
for i in range(1, n + 1):
    p = f"{d}/p{i}"
    t = time.perf_counter_ns()
    pid = os.posix_spawn(p, [p], {})
    _, status = os.waitpid(pid, 0)
    took.append((time.perf_counter_ns() - t) / 1000)
    if status != 0:
        sys.exit(f"{p} exited with {status}")
    time.sleep(0.05)
took.sort()
print(f"{took[n // 2]:.0f} {took[n // 4]:.0f} {took[3 * n // 4]:.0f}")
PY
}

bench_config false

stages() {
    "$VIGIL" stats --json --socket "$WORK/vigil.sock" | python3 -c '
import json, sys
d = json.load(sys.stdin)
l, c = d["latency_us"], d["counters"]
parts = ["%s=%d" % (k, c.get(k, 0)) for k in ("scans", "events_exec", "events_open")]
parts += ["%s_p50=%sus" % (k, l[k]["p50_us"]) for k in ("hash", "heuristics", "rules", "model", "total") if k in l]
print(" ".join(parts))'
}

echo "first-exec: $N copies of $PROGRAM ($(stat -c %s "$PROGRAM") bytes) per pass, content: ${VIGIL_CONTENT:-a default install}"
base="" vig=""
for rep in $(seq 1 "$REPS"); do
    copies "b$rep"
    copies "v$rep"
    read -r bm b25 b75 < <(pass "b$rep")
    start_daemon
    sleep 1
    read -r vm v25 v75 < <(pass "v$rep")
    echo "repetition $rep: no daemon ${bm} us (p25 $b25, p75 $b75); vigil ${vm} us (p25 $v25, p75 $v75); $(stages)"
    stop_daemon
    base="$base $bm" vig="$vig $vm"
    rm -rf "${WORK:?}/mnt/b$rep" "${WORK:?}/mnt/v$rep"
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
b=$(echo "$base" | median)
v=$(echo "$vig" | median)
r=$(awk -v x="$v" -v y="$b" 'BEGIN {printf "%.2f", (y > 0 ? x / y : 0)}')
echo "median of the repetitions: no daemon $b us, vigil $v us, ratio ${r}x, added $((v - b)) us"
printf '{"copies": %s, "reps": %s, "baseline_us": %s, "vigil_us": %s, "ratio": %s}\n' "$N" "$REPS" "$b" "$v" "$r"
