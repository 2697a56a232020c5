#!/usr/bin/env python3
"""Times what scan.inline_code adds (docs/failure-modes.md, "Code on an
interpreter's command line"): N runs of a short `sh -c` (clean code that the
inline-code thread reads and scans), the CPU the vigil-inline thread spent on
them, and for malicious code the time from spawn to the shell's death."""
import os, statistics, subprocess, sys, time

sh, label, n, canary = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
daemon = int(sys.argv[5]) if len(sys.argv) > 5 else 0

def thread_cpu(pid):
    """utime + stime of the vigil-inline thread, in clock ticks."""
    if not pid:
        return 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{tid}"
        if open(f"{base}/comm").read().strip() == "vigil-inline":
            f = open(f"{base}/stat").read().rsplit(")", 1)[1].split()
            return int(f[11]) + int(f[12])
    return 0

code = "x=1; y=$((x + 1)); z=$y; sleep 0.001"
before = thread_cpu(daemon)
t0 = time.perf_counter()
for _ in range(n):
    subprocess.run([sh, "-c", code], check=True)
wall = (time.perf_counter() - t0) / n
ticks = thread_cpu(daemon) - before
hz = os.sysconf("SC_CLK_TCK")
print(f"{label}: {n} x sh -c: {wall * 1e3:.3f} ms per run; vigil-inline thread "
      f"{ticks / hz * 1e6 / n:.0f} us CPU per run")
if canary:
    lat = []
    for _ in range(20):
        t0 = time.perf_counter()
        p = subprocess.run([sh, "-c", f": {canary}; sleep 5"])
        lat.append(time.perf_counter() - t0)
        if p.returncode != -9:
            print(f"  not killed: exit {p.returncode}")
    lat.sort()
    print(f"  malicious sh -c killed after: median {statistics.median(lat) * 1e3:.1f} ms, "
          f"max {lat[-1] * 1e3:.1f} ms (20 runs)")
