#!/bin/sh
# scan.inline_code's numbers in docs/failure-modes.md ("Code on an
# interpreter's command line"): the cost per short `sh -c` with the inline-code
# thread on and off, and how long malicious inline code runs before it is
# killed. Run as root from the repository root:
#
#   sudo tests/bench/inline-code/run.sh [path/to/vigil]
#
# Every daemon runs in a private pid and mount namespace and watches only a
# tmpfs mounted there, holding a copy of dash as `sh`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
VIGIL=${1:-$PWD/target/debug/vigil}
N=${N:-500}
W=$(mktemp -d /tmp/vigil-inline-code.XXXXXX)
trap 'rm -rf "$W"' EXIT
# Assembled here so this file never matches its own rule.
CANARY="vigil-bench-$(echo inline)-canary"
cat > "$W/canary.yar" <<YAR
rule bench_inline { strings: \$c = "$CANARY" condition: \$c }
YAR
mkdir -p "$W/mnt" "$W/allow.d"
config() {
  cat > "$W/vigil.toml" <<TOML
[watch]
filesystems = ["$W/mnt"]
[scan]
inline_code = $1
[content]
allow = ["$W/allow.d"]
rules = ["$W/canary.yar"]
model = "none"
[guard]
uncovered = "off"
[daemon]
socket = "$W/vigil.sock"
[quarantine]
dir = "$W/q"
[log]
events = "$W/events.json"
TOML
}
config false; mv "$W/vigil.toml" "$W/vigil.toml.false"
config true; mv "$W/vigil.toml" "$W/vigil.toml.true"
export W VIGIL N CANARY here
timeout -k 5 900 unshare --pid --fork --mount --propagation private --mount-proc sh -c '
  mount -t tmpfs bench "$W/mnt" && cp /usr/bin/dash "$W/mnt/sh"
  python3 "$here/measure.py" "$W/mnt/sh" "no agent" "$N" ""
  for on in false true false true; do
    cat "$W/vigil.toml.$on" > "$W/vigil.toml"
    env -u RUST_BACKTRACE "$VIGIL" daemon --config "$W/vigil.toml" 2>"$W/daemon.err" & D=$!
    sleep 3
    if [ $on = true ]; then c=$CANARY; else c=""; fi
    python3 "$here/measure.py" "$W/mnt/sh" "vigil, inline_code = $on" "$N" "$c" $D
    kill -TERM $D; wait $D || true
  done
'
