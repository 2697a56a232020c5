#!/usr/bin/env bash
# The `cold-start` workload of issue 18 (item 5): the first exec of N distinct
# programs that existed before the daemon started, right after a daemon
# (re)start, with and without the persistent verdict cache, against no agent,
# in one run. Prints a table and, last, one JSON line.
#
#   sudo tests/bench/cold-start.sh [N=300] [REPS=3]
#
# VIGIL_BIN (default target/release/vigil, else target/debug/vigil) is the
# daemon; VIGIL_CONTENT (default ../shared/content when it exists) adds the
# shared hash lists and YARA rules to the built-in content, as tests/bench/vigil.sh
# does. The programs are copies of /usr/bin ELF executables that answer
# `--version` within 2 s with stdin closed (checked on the host copies first;
# a few names that act on the machine are never tried), one per distinct
# content, on an ext4 image: a tmpfs has no stable UUID, so the persistent
# cache never keys its files.
#
# Safety: everything runs inside a private mount namespace (`unshare --mount`)
# under a timeout; the daemon watches only the ext4 image mounted there
# (a filesystem mark on a superblock no other process sees), runs under its own
# timeout and is stopped by pid; the loop device is detached when the mount
# namespace goes.
#
# Modes, each timed as one loop over the N programs (wall time, ms):
#   baseline   no daemon;
#   cold       a daemon just started, cache.persistent = false: every first exec
#              is scanned;
#   persistent a daemon just started on a store that a previous daemon filled
#              (the first of these runs fills it, untimed): every first exec is
#              answered from the store;
#   warm       a second pass under that same daemon: every verdict in memory
#              (and, for these root-owned copies, kernel ignore marks): the
#              floor the persistent pass is compared with;
#   trusted    as cold, with a trust store of the programs' packages (`vigil
#              trust update --package`, built untimed): the package-trust fast
#              path vouches for each copy, so only the hash lists run (the line
#              before the pass counts scans and trusted scans).
# Every mode runs each copy from the path it was copied from: the copy is
# bind-mounted over that file inside the private mount namespace, so a program
# finds what lies beside it (a JVM launcher its runtime) as it would anyway,
# and the trust store knows it by that path. The tools this script runs itself
# are never among the copies.
# The order rotates per repetition; the medians and their ratios to baseline
# are reported. Never a pass/fail: the machine is shared and noisy.
set -euo pipefail

N=${1:-300}
REPS=${2:-3}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

BENCH=cold-start
# shellcheck source=tests/bench/daemon.sh
. "$REPO/tests/bench/daemon.sh"
bench_enter 3600 "$@"
bench_setup
CONTENT=${VIGIL_CONTENT:-$(cd "$REPO/.." && pwd)/shared/content}

truncate -s 2G "$WORK/disk.img"
mkfs.ext4 -q -F "$WORK/disk.img"
mkdir -p "$WORK/mnt"
mount -o loop "$WORK/disk.img" "$WORK/mnt"
mkdir -p "$WORK/mnt/bin"

# The programs: distinct content, quick and harmless with --version.
NEVER='^(reboot|poweroff|halt|shutdown|init|telinit|kexec|systemctl|loginctl|machinectl|busctl|journalctl|dbus-.*|X.*|xvfb-run|dunst.*|vigil|timeout|unshare|nsenter|login|su|sudo|passwd|chfn|chsh|newgrp|mount|umount|swapoff|swapon|wall|write|mesg|yes|cat|tee|sleep|watch|top|less|more|vi.*|ed|nano|ex|view|script.*|sh|bash|dash|rbash|date|env|od|head|tr|cut|sort|[gm]?awk|grep|seq|sha256sum|basename|readlink|du|python3.*|dpkg.*|truncate|mktemp|rm|mkdir|cp|blkid)$'
declare -A seen=()
origin=()
count=0
for p in /usr/bin/*; do
    [ "$count" -ge "$N" ] && break
    name=$(basename "$p")
    [[ "$name" =~ $NEVER ]] && continue
    [ -f "$p" ] && [ -x "$p" ] || continue
    [ "$(head -c 4 "$p" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ] || continue
    sum=$(sha256sum "$p" | cut -d' ' -f1)
    [ -z "${seen[$sum]:-}" ] || continue
    rc=0
    timeout -k 1 2 "$p" --version </dev/null >/dev/null 2>&1 || rc=$?
    [ "$rc" -lt 124 ] || continue
    seen[$sum]=1
    cp "$p" "$WORK/mnt/bin/$(printf '%03d' "$count")-$name"
    origin+=("$(readlink -f "$p")")
    count=$((count + 1))
done
echo "cold-start: $count programs ($(du -sh "$WORK/mnt/bin" | cut -f1)) on ext4 $(blkid -s UUID -o value "$WORK/disk.img" 2>/dev/null || true)"
sync

if bench_content "$CONTENT"; then
    echo "cold-start: content $CONTENT plus the built-in rules and model"
else
    echo "cold-start: built-in rules and model only (no $CONTENT)"
fi

counters() {
    "$VIGIL" stats --json --socket "$WORK/vigil.sock" | python3 -c '
import json, sys
c = json.load(sys.stdin)["counters"]
print(" ".join(f"{k}={c.get(k, 0)}" for k in ("scans", "scans_trusted", "persistent_hits", "persistent_misses", "persistent_writes")))'
}

# One pass over the programs, each run from the path it was copied from (see
# the top); prints its wall time in ms.
pass() {
    local t0 t1 o
    t0=$(date +%s%N)
    for o in "${origin[@]}"; do
        timeout -k 1 5 "$o" --version </dev/null >/dev/null 2>&1 || true
    done
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}

declare -A runs=([baseline]="" [cold]="" [persistent]="" [warm]="" [trusted]="")
run_mode() {
    local ms
    case $1 in
        baseline) ms=$(pass) ;;
        cold)
            bench_config false false; start_daemon
            ms=$(pass); echo "  cold:       $(counters)"; stop_daemon ;;
        persistent)
            bench_config true false; start_daemon
            ms=$(pass); echo "  persistent: $(counters)"
            local warm
            warm=$(pass); runs[warm]="${runs[warm]} $warm"; echo "  warm ${warm} ms"
            stop_daemon ;;
        trusted)
            bench_config false true; start_daemon
            ms=$(pass); echo "  trusted:    $(counters)"; stop_daemon ;;
    esac
    runs[$1]="${runs[$1]} $ms"
    echo "  $1 ${ms} ms"
}

# The trust store of the programs' packages (untimed; bench_config names it).
# dpkg knows a merged-/usr file by the path its package ships (/bin/ls for
# /usr/bin/ls): ask for both.
mapfile -t packages < <(dpkg-query -S "${origin[@]}" "${origin[@]#/usr}" 2>/dev/null \
    | cut -d: -f1 | tr ',' '\n' | tr -d ' ' | sort -u)
if [ "${#packages[@]}" -gt 0 ]; then
    "$VIGIL" trust update --store "$WORK/trust.db" --no-reload \
        $(printf -- '--package %s ' "${packages[@]}") > "$WORK/trust.log" 2>&1 \
        || { cat "$WORK/trust.log" >&2; exit 1; }
fi
echo "trust:        ${#packages[@]} packages in $WORK/trust.db"

# Each copy over the file it came from, for the rest of the run.
i=0
for f in "$WORK"/mnt/bin/*; do
    mount --bind "$f" "${origin[$i]}"
    i=$((i + 1))
done

# Warm the page cache for every mode alike, and fill the store (untimed).
pass > /dev/null
bench_config true false; start_daemon; pass > /dev/null
echo "fill:         $(counters)"; stop_daemon

modes=(baseline cold persistent trusted)
for rep in $(seq 1 "$REPS"); do
    echo "repetition $rep"
    for i in 0 1 2 3; do
        run_mode "${modes[$(((i + rep) % 4))]}"
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
b=$(echo "${runs[baseline]}" | median)
c=$(echo "${runs[cold]}" | median)
p=$(echo "${runs[persistent]}" | median)
w=$(echo "${runs[warm]}" | median)
t=$(echo "${runs[trusted]}" | median)
ratio() { awk -v x="$1" -v y="$2" 'BEGIN {printf "%.2f", (y > 0 ? x / y : 0)}'; }
printf '\n%-11s %10s %12s %8s\n' mode median_ms per_exec_ms ratio
for m in baseline cold persistent warm trusted; do
    v=$(echo "${runs[$m]}" | median)
    printf '%-11s %10s %12s %8s   (runs:%s)\n' "$m" "$v" "$(ratio "$v" "$count")" "$(ratio "$v" "$b")" "${runs[$m]}"
done
printf '{"programs": %s, "reps": %s, "baseline_ms": %s, "cold_ms": %s, "persistent_ms": %s, "warm_ms": %s, "trusted_ms": %s, "cold_ratio": %s, "persistent_ratio": %s, "warm_ratio": %s, "trusted_ratio": %s}\n' \
    "$count" "$REPS" "$b" "$c" "$p" "$w" "$t" "$(ratio "$c" "$b")" "$(ratio "$p" "$b")" "$(ratio "$w" "$b")" "$(ratio "$t" "$b")"
