"""Prints the window between mount(2) and the daemon's mount-covered line."""
import datetime
import json
import statistics
import sys

work, label = sys.argv[1], sys.argv[2]
times = [tuple(map(float, l.split())) for l in open(f"{work}/mounts.txt")]
lines = [json.loads(l) for l in open(f"{work}/events.json")]
covered = [e for e in lines if e["event"]["action"] == "mount-covered"
           and e["vigil"]["mount"].get("point") == f"{work}/w"]


def ts(e):
    return datetime.datetime.fromisoformat(e["@timestamp"].replace("Z", "+00:00")).timestamp()


after = [(ts(e) - t0) * 1e3 for (t0, _), e in zip(times, covered)]
print(f"{label}: {len(covered)}/{len(times)} marked; mark placed after mount(2) started: "
      f"median {statistics.median(after):.2f} ms, max {max(after):.2f} ms")
