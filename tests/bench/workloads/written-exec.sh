#!/usr/bin/env bash
# The "exec cold of a binary written while vigil runs" row of issue 18, per
# exec, for the shared on-access benchmark: a dropper's or a build's pattern.
# For each of N fresh programs (distinct copies of the harness's 667 KiB static
# binary, each with different trailing bytes, so no content is seen twice) it
# writes the program into the test mount, closes it, waits GAP_MS, and times
# its first exec (posix_spawn + waitpid, the harness's own wl_exec): only the
# exec is timed, never the write.
#
#   sudo ./bench.sh --agents baseline,fan-allow,vigil-default --agent-file .../tests/bench/vigil-default.sh \
#        --workload-cmd "written_exec=$V/tests/bench/workloads/written-exec.sh" \
#        --workload-cmd "written_exec_now=WRITTEN_GAP_MS=0 $V/tests/bench/workloads/written-exec.sh"
#
# (the harness records the row under the name in its JSON: written_exec_20ms,
# written_exec_0ms)
#
# WRITTEN_GAP_MS (default 20): the pause between the close and the exec. A
# linker's output is run some time after it is written; 0 runs each program
# at once, as a dropper that writes and executes in one breath does, which
# leaves a scan-on-write scanner no head start (the exec then waits for the
# scan in flight). WRITTEN_N (default 100) programs. The last output line is
# the JSON row the harness records (the per-exec latencies: p50_us, p90_us,
# p99_us, mean_us, and total_s, their sum).
# Run by hand: MNT=/some/scratch BIN=/path/to/harness/bin tests/bench/workloads/written-exec.sh
set -euo pipefail

: "${MNT:?MNT (the test mount) is not set: run under bench.sh or set MNT}"
: "${BIN:?BIN (the harness binaries) is not set: run under bench.sh or set BIN}"
N=${WRITTEN_N:-100}
GAP_MS=${WRITTEN_GAP_MS:-20}
SRC="$BIN/true_static"
[ -x "$SRC" ] && [ -x "$BIN/wl_exec" ] \
    || { echo "written-exec.sh: $SRC or $BIN/wl_exec missing (build the harness)" >&2; exit 1; }

[ "$GAP_MS" -lt 1000 ] || { echo "written-exec.sh: WRITTEN_GAP_MS must be below 1000" >&2; exit 1; }
gap=$(printf '0.%03d' "$GAP_MS")
DIR=$(mktemp -d "$MNT/written.XXXXXX")

python3 - "$SRC" "$DIR" "$N" "$gap" "$BIN/wl_exec" <<'PY'
import json, os, subprocess, sys, time

src, d, n, gap, wl_exec = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
# A nonce per run: a program of an earlier run (another WRITTEN_GAP_MS) must
# not be known by its content.
body = open(src, "rb").read() + os.urandom(16)
lat_us, errors, first = [], 0, ""
for i in range(n):
    path = os.path.join(d, "p%d" % i)
    # A new file each time, written and closed like a linker's output; the
    # trailing bytes make every program's content new.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755)
    os.write(fd, body + i.to_bytes(4, "little"))
    os.close(fd)
    if gap:
        time.sleep(gap)
    out = subprocess.run([wl_exec, "--bin", path, "--count", "1"],
                         capture_output=True, text=True)
    row = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}
    if out.returncode != 0 or row.get("errors", 1):
        errors += 1
        first = first or row.get("first_errno") or ("rc %d" % out.returncode)
        continue
    lat_us.append(row["p50_us"])

lat_us.sort()
def pct(p):
    return lat_us[min(len(lat_us) - 1, int(p / 100 * len(lat_us)))] if lat_us else 0.0
print(json.dumps({
    "workload": "written_exec_%dms" % round(gap * 1000), "n": n, "errors": errors, "first_errno": first,
    "gap_ms": round(gap * 1000), "total_s": round(sum(lat_us) / 1e6, 6),
    "mean_us": round(sum(lat_us) / len(lat_us), 2) if lat_us else 0.0,
    "p50_us": pct(50), "p90_us": pct(90), "p99_us": pct(99),
    "min_us": lat_us[0] if lat_us else 0.0, "max_us": lat_us[-1] if lat_us else 0.0,
}))
PY
rm -rf "$DIR"
