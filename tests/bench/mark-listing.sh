#!/bin/bash
# What a reader of the listener's fdinfo costs the openers: the shared
# harness's fan_guard reads /proc/<agent>/fdinfo every 50 ms, and the kernel
# prints one line per mark, so an agent holding many ignore marks is measured
# with that cost on top (docs/performance.md, "Bursts and the harness's mark
# listing"). This runs the harness's own open workloads against one agent on a
# private tmpfs, with and without a 50 ms fdinfo reader, and prints one JSON
# line per run.
#
#   sudo tests/bench/mark-listing.sh BENCH_BIN AGENT [REPS]
#   sudo MARK_LISTING_CONFIGURE=1 tests/bench/mark-listing.sh BENCH_BIN AGENT [REPS]
#
# MARK_LISTING_CONFIGURE=1 also times tests/bench/workloads/configure.sh twice
# per run, on the fresh listener before open cold and again after the burst
# and a second pass over the burst's files (with the marks they left), and
# records each pass's wall time and the listener's own CPU time during it:
# whether a listener holding many ignore marks costs configure more by
# itself, or only beside the fdinfo reader.
#
# BENCH_BIN: the shared harness's built bin/ (mkfiles, wl_open, fan_listener).
# AGENT: "fan" (the harness's fan_listener --mode allow) or a vigil binary,
# run as the harness's vigil-default agent (tests/bench/vigil-default.sh: the
# default policy and the shared content, VIGIL_CONTENT, default
# ../shared/content beside the repository).
# Safety: everything happens in a private mount namespace on a tmpfs this
# script mounts under /mnt, the listener watches only that tmpfs and runs
# under `timeout 120`, and only processes this script started are killed.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "mark-listing.sh: must run as root" >&2; exit 1; }
[ $# -ge 2 ] || { sed -n '9,10p' "$0" >&2; exit 2; }
if [ -z "${MARK_LISTING_NS:-}" ]; then
    exec env MARK_LISTING_NS=1 unshare -m --propagation private "$0" "$@"
fi
T=$(cd "$1" && pwd); AGENT=$2; REPS=${3:-3}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CONTENT=${VIGIL_CONTENT:-$(cd "$REPO/.." && pwd)/shared/content}
CONFIGURE=${MARK_LISTING_CONFIGURE:-}
for tool in mkfiles wl_open fan_listener; do
    [ -x "$T/$tool" ] || { echo "mark-listing.sh: no $T/$tool (build the harness: make -C src)" >&2; exit 1; }
done
W=$(mktemp -d /var/tmp/vigil-mark-listing.XXXXXX)
M=$(mktemp -d /mnt/vigil-mark-listing.XXXXXX)
trap 'umount "$M" 2>/dev/null || true; rmdir "$M" || true; rm -rf "$W"' EXIT
if [ "$AGENT" != fan ]; then
    # What tests/bench/vigil.sh needs from the harness; its probe hash and
    # test string match nothing here.
    export VIGIL_BIN=$AGENT VIGIL_CONTENT=$CONTENT AGENT_WORK=$W MNT=$M
    BENCH_HASH_SHA256=$(printf 'vigil-mark-listing' | sha256sum | cut -d' ' -f1)
    BENCH_SIG=vigil-mark-listing-no-match-5d1e
    # shellcheck source=vigil-default.sh
    source "$REPO/tests/bench/vigil-default.sh"
fi

# The listener's user+system CPU time so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }

# The inode marks of fanotify fd $2 of process $1.
mark_count() { grep -c '^fanotify ino' /proc/"$1"/fdinfo/"$2" || true; }

# Times configure.sh in a fresh directory of the mount: "<wall s> <listener CPU s>".
configure_pass() { # pid name
    local before after wall
    mkdir "$M/$2"
    before=$(cpu_ticks "$1")
    wall=$(MNT="$M/$2" "$REPO/tests/bench/workloads/configure.sh" | tail -n 1 \
        | python3 -c 'import json, sys; r = json.load(sys.stdin); assert not r["errors"], r; print(r["total_s"])')
    after=$(cpu_ticks "$1")
    echo "$wall $(( after - before ))"
}

one_run() { # guard(0/1) rep
    mount -t tmpfs -o size=256m tmpfs "$M"
    "$T/mkfiles" "$M/small" 10000 4096 100 1 >/dev/null
    "$T/mkfiles" "$M/burst" 10000 4096 100 2 >/dev/null
    find "$M/small" -type f > "$W/small.list"
    find "$M/burst" -type f > "$W/burst.list"
    local pid tp fd reader=""
    if [ "$AGENT" = fan ]; then
        timeout 120 "$T/fan_listener" --mode allow "$M" > "$W/agent.log" 2>&1 &
        tp=$!
        sleep 1
        pid=$(pgrep -P "$tp" fan_listener)
    else
        # The harness's own vigil-default agent: the same configuration.
        agent_prepare
        rm -rf "$W/cache" "$W/vigil.sock"
        timeout 120 bash -c 'source "$0"; agent_start' "$REPO/tests/bench/vigil-default.sh" \
            > "$W/agent.log" 2>&1 &
        tp=$!
        for _ in $(seq 150); do
            "$AGENT" status --socket "$W/vigil.sock" >/dev/null 2>&1 && break
            sleep 0.2
        done
        pid=$(pgrep -P "$tp" -f "daemon --config")
    fi
    [ -n "$pid" ] || { cat "$W/agent.log" >&2; exit 1; }
    local fresh="" after=""
    [ -z "$CONFIGURE" ] || fresh=$(configure_pass "$pid" cfg-fresh)
    "$T/wl_open" --list "$W/small.list" --name open_cold --raw "$W/cold.txt" > "$W/cold.json"
    fd=""
    for f in /proc/"$pid"/fd/*; do
        if [ "$(readlink "$f")" = "anon_inode:[fanotify]" ]; then fd=${f##*/}; break; fi
    done
    local marks
    marks=$(mark_count "$pid" "$fd")
    if [ "$1" = 1 ]; then
        ( while :; do cat /proc/"$pid"/fdinfo/"$fd" > /dev/null; sleep 0.05; done ) &
        reader=$!
    fi
    "$T/wl_open" --list "$W/burst.list" --procs 8 --name burst_open --raw "$W/burst.txt" > "$W/burst.json"
    if [ -n "$CONFIGURE" ]; then
        # A second pass over the burst's files, one opener at a time, marks
        # them too (the harness's warm passes do the same to its trees): the
        # listener then holds about 20,000 marks.
        "$T/wl_open" --list "$W/burst.list" --name burst_again > /dev/null
    fi
    local marks_after
    marks_after=$(mark_count "$pid" "$fd")
    [ -z "$CONFIGURE" ] || after=$(configure_pass "$pid" cfg-marked)
    [ -z "$reader" ] || kill "$reader"
    kill "$pid"; wait "$tp" || true
    umount "$M"
    python3 - "$W" "$AGENT" "$1" "$2" "$marks" "$marks_after" "$fresh" "$after" "$(getconf CLK_TCK)" <<'PY'
import json, os, sys
w, agent, guard, rep, marks, marks_after, fresh, after, tck = sys.argv[1:]
burst = json.load(open(os.path.join(w, "burst.json")))
raw = [int(x) for x in open(os.path.join(w, "burst.txt"))]
stalls = [x / 1e6 for x in raw if x > 2_000_000]
row = {"agent": os.path.basename(agent), "fdinfo_reader": guard == "1", "rep": int(rep),
       "marks_after_open_cold": int(marks), "burst_ops_per_s": round(burst["ops_per_s"]),
       "burst_opens_over_2ms": len(stalls), "burst_stall_ms": round(sum(stalls), 1),
       "marks_before_configure" if fresh else "marks_after_burst": int(marks_after)}
for name, cell in (("configure_fresh", fresh), ("configure_marked", after)):
    if cell:
        wall, ticks = cell.split()
        row[name + "_s"] = float(wall)
        row[name + "_listener_cpu_s"] = round(int(ticks) / int(tck), 2)
print(json.dumps(row))
PY
}

for rep in $(seq "$REPS"); do
    for guard in 0 1; do one_run "$guard" "$rep"; done
done
