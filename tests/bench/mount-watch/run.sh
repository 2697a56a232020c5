#!/bin/sh
# The mount watcher's numbers in docs/failure-modes.md ("Filesystems mounted
# after start"): the window between a mount and its mark, and open/exec cost
# with the watcher idle and busy. Run as root from the repository root:
#
#   sudo tests/bench/mount-watch/run.sh [path/to/vigil]
#
# Every daemon runs in a private pid and mount namespace with no listed
# filesystem and watch.new_mounts = true, so it marks only the tmpfs mounts
# made here (in its own namespace or namespaces made inside it).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
VIGIL=${1:-$PWD/target/debug/vigil}
W=$(mktemp -d /tmp/vigil-mount-watch.XXXXXX)
trap 'touch "$W/done"; rm -f "$W/outside.on"; sleep 0.3; umount "$W/churn2" 2>/dev/null || true; rm -rf "$W"' EXIT
cc -O2 -static -o "$W/access" "$here/access.c"
cc -O2 -o "$W/mount_loop" "$here/mount_loop.c"
printf 'int main(void){return 0;}\n' | cc -O2 -static -o "$W/truebin" -x c -
mkdir -p "$W/mnt" "$W/w" "$W/churn" "$W/churn2" "$W/allow.d"
cat > "$W/vigil.toml" <<TOML
[watch]
filesystems = []
new_mounts = true
scan_on_open = "all"
[content]
allow = ["$W/allow.d"]
model = "none"
[daemon]
socket = "$W/vigil.sock"
[quarantine]
dir = "$W/q"
[log]
events = "$W/events.json"
TOML
export W VIGIL
isolated() { timeout -k 5 600 unshare --pid --fork --mount --propagation private --mount-proc "$@"; }
start_daemon='rm -f "$W/events.json"; env -u RUST_BACKTRACE "$VIGIL" daemon --config "$W/vigil.toml" 2>"$W/daemon.err" & D=$!; sleep 3'
stop_daemon='kill -TERM $D; wait $D || true'

for how in fanotify poll; do
  poll=0; [ $how = poll ] && poll=1
  isolated env VIGIL_TEST_MOUNT_POLL=$poll sh -c "$start_daemon; \"\$W/mount_loop\" \"\$W/w\" 40 200 > \"\$W/mounts.txt\"; sleep 1; $stop_daemon"
  python3 "$here/window.py" "$W" "mount in the daemon's namespace ($how)"
done

isolated sh -c "$start_daemon; rm -f \"\$W/mounts.txt\"; for i in \$(seq 1 20); do unshare -m --propagation private \"\$W/mount_loop\" \"\$W/w\" 1 1300 >> \"\$W/mounts.txt\"; sleep 0.\$((i % 7 + 1)); done; sleep 1; $stop_daemon"
python3 "$here/window.py" "$W" "mount in a namespace made after start"

# Open/exec cost. A mount loop runs the whole time, in a namespace the watcher
# cannot see (outside its pid namespace: same CPU load, no watcher work) or in
# the daemon's namespace (every mount marked, every umount dropped).
( while [ ! -e "$W/done" ]; do
    if [ -e "$W/outside.on" ]; then
      unshare -m --propagation private sh -c 'while [ -e "$W/outside.on" ]; do mount -t tmpfs o "$W/churn2"; umount "$W/churn2"; done'
    fi
    sleep 0.05
  done ) &
isolated sh -c '
  cd "$W"; N=20000
  mount -t tmpfs base mnt && cp truebin mnt/ && head -c 4096 /dev/urandom > mnt/f
  echo "== no agent"; ./access mnt/f mnt/truebin $N
  umount mnt
  '"$start_daemon"'
  mount -t tmpfs bench mnt && cp truebin mnt/ && head -c 4096 /dev/urandom > mnt/f; sleep 2
  for round in 1 2; do
    echo "== vigil, mount loop outside its view (round $round)"
    touch outside.on; sleep 0.5; ./access mnt/f mnt/truebin $N; rm -f outside.on; sleep 0.5
    echo "== vigil, mount loop in its namespace (round $round)"
    ( while :; do mount -t tmpfs churn churn; umount churn; done ) & C=$!
    ./access mnt/f mnt/truebin $N
    kill $C; wait $C 2>/dev/null || true; umount churn 2>/dev/null || true
  done
  echo "marked: $(grep -c mount-covered events.json), dropped: $(grep -c mount-dropped events.json)"
  '"$stop_daemon"
