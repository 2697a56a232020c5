#!/bin/bash
# A custom workload for shared/bench/bench.sh that records vigil's own counters
# and per-stage latency (`vigil stats --json`) after the standard workloads,
# while the agent still runs:
#
#   sudo ./bench.sh --agents ...,vigil --agent-file .../tests/bench/vigil.sh \
#        --workload-cmd "vigil_stats=/path/to/vigil/tests/bench/vigil-stats.sh"
#
# The full reply (JSON) goes to $AGENT_WORK/vigil-stats.log (the harness keeps
# the work dir's *.log files in results/<run>/logs/); the last output line (a
# flat JSON object, which the harness records in results.jsonl) holds the
# counters that explain the numbers and the p50/p99 of each stage in µs. For
# agents without a vigil control socket it records only the workload name.
set -u
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${VIGIL_BIN:-$repo/target/release/vigil}
sock=${AGENT_WORK:-/nonexistent}/vigil.sock
if [ -S "$sock" ] && [ -x "$bin" ] \
    && env -u RUST_BACKTRACE "$bin" stats --json --socket "$sock" > "$AGENT_WORK/vigil-stats.log" 2>/dev/null; then
    python3 - "$AGENT_WORK/vigil-stats.log" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
c = s.get("counters", {})
out = {"workload": "vigil_stats"}
for k in ("events_open", "events_exec", "scans", "cache_hits", "cache_coalesced",
          "ignore_marks_added", "ignore_marks_deferred", "reader_allowed_not_executable", "denied", "deadline_expired", "queue_full"):
    out[k] = c.get(k, 0)
for stage, h in s.get("latency_us", {}).items():
    if h.get("count"):
        out[f"{stage}_p50_us"] = h.get("p50_us")
        out[f"{stage}_p99_us"] = h.get("p99_us")
print(json.dumps(out, separators=(",", ":")))
PY
    exit 0
fi
echo '{"workload":"vigil_stats"}'
