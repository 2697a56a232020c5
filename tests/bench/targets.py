#!/usr/bin/env python3
"""The issue's targets table from one or more shared/bench result folders.

    python3 tests/bench/targets.py results/full3 [results/full4 ...]

Every ratio is against `baseline` on the same filesystem type *in the same
repetition of the same run* (the machine's load changes between repetitions),
then the median over all repetitions found. Standard library only.

Targets (issue #7): open cold <= 5x, open warm <= 1.2x, exec cold <= 1.6x (the
harness's clean exec probe: the first exec of the static binary), exec
repeated <= 1.05x (mean of execs 2..N of the exec workload, from raw/),
1 MiB reads <= 1.3x, grep -r warm <= 1.2x, burst >= 40k opens/s with 8
openers, every burst_sig open denied, RSS <= 64 MiB.

Targets (issue #18), when the run has them: the `configure` and `build`
workloads (tests/bench/workloads/) <= 1.05x baseline; the median exec of a
program written while the agent runs (`written-exec.sh`) <= 1.6x baseline;
burst_open >= 0.8x and
open cold <= 2x the bare listener `fan-allow` in the same repetition.

Context rows, no target, when the run has the harness's `fan-sha256` (a
listener that reads and hashes each file before it answers, in the thread that
read the event: the least any scanning agent does): open cold and the first
exec against it, in the same repetition.
"""

import json
import statistics
import sys
from pathlib import Path


def load(folder: Path):
    """(run, agent, fs, rep) -> {workload: row}."""
    runs = {}
    for line in (folder / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        key = (str(folder), row["agent"], row["fs"], row["rep"])
        runs.setdefault(key, {})[row["workload"]] = row
    return runs


def probe_ms(text):
    """'ALLOW 5.8ms' -> 5.8."""
    try:
        return float(str(text).split()[-1].removesuffix("ms"))
    except (ValueError, IndexError):
        return None


def exec_repeated_us(folder: Path, agent: str, fs: str, rep: int):
    raw = folder / "raw" / f"{agent}@{fs}-r{rep}.exec.txt"
    if not raw.exists():
        return None
    ns = [int(v) for v in raw.read_text().split()]
    return statistics.mean(ns[1:]) / 1000 if len(ns) > 1 else None


def main() -> int:
    folders = [Path(a) for a in sys.argv[1:]]
    if not folders:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    runs = {}
    for folder in folders:
        runs.update(load(folder))

    def ratio(key, metric, ref="baseline"):
        run, agent, fs, rep = key
        base = runs.get((run, ref, fs, rep))
        if base is None:
            return None
        a, b = metric(key, runs[key]), metric((run, ref, fs, rep), base)
        return a / b if a is not None and b else None

    def total(workload):
        return lambda _key, rows: rows.get(workload, {}).get("total_s")

    def ops(workload):
        return lambda _key, rows: rows.get(workload, {}).get("ops_per_s")

    def exec_cold(_key, rows):
        return probe_ms(rows.get("_run", {}).get("verdicts", {}).get("exec_clean"))

    def exec_rep(key, _rows):
        run, agent, fs, rep = key
        return exec_repeated_us(Path(run), agent, fs, rep)

    # (name, metric, limit, reference agent, higher is better)
    ratios = [
        ("open cold <= 5x", total("open_cold"), 5.0),
        ("open warm <= 1.2x", total("open_warm"), 1.2),
        ("exec cold (first exec) <= 1.6x", exec_cold, 1.6),
        ("exec repeated (execs 2..N) <= 1.05x", exec_rep, 1.05),
        ("read 1 MiB cold <= 1.3x", total("read_cold"), 1.3),
        ("read 1 MiB warm <= 1.3x", total("read_warm"), 1.3),
        ("grep -r warm <= 1.2x", total("grep_warm"), 1.2),
    ]
    ratios = [(n, m, lim, "baseline", False) for n, m, lim in ratios]
    workloads = {w for rows in runs.values() for w in rows}
    for wl in ("configure", "build"):
        if wl in workloads:
            ratios.append((f"{wl} <= 1.05x (issue 18)", total(wl), 1.05, "baseline", False))
    # tests/bench/workloads/written-exec.sh, under any name starting so (one
    # per WRITTEN_GAP_MS): the median exec of a freshly written program.
    for wl in sorted(w for w in workloads if w.startswith("written_exec")):
        ratios.append((f"{wl}: exec of a binary written while vigil runs (p50) <= 1.6x (issue 18)",
                       lambda _key, rows, wl=wl: rows.get(wl, {}).get("p50_us"), 1.6, "baseline", False))
    if any(k[1] == "fan-allow" for k in runs):
        ratios.append(("burst_open >= 0.8x fan-allow (issue 18)", ops("burst_open"), 0.8, "fan-allow", True))
        ratios.append(("open cold <= 2x fan-allow (issue 18)", total("open_cold"), 2.0, "fan-allow", False))
    if any(k[1] == "fan-sha256" for k in runs):
        # No limit: printed without a verdict.
        ratios.append(("open cold, x fan-sha256 (context)", total("open_cold"), None, "fan-sha256", False))
        ratios.append(("exec cold (first exec), x fan-sha256 (context)", exec_cold, None, "fan-sha256", False))
    columns = sorted({(agent, fs) for (_, agent, fs, _) in runs}, key=lambda c: (c[1], c[0] != "baseline", c[0]))
    header = ["target"] + [f"{a}@{f}" for a, f in columns]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def keys_of(agent, fs):
        return [k for k in runs if k[1] == agent and k[2] == fs and "_run" in runs[k]
                and runs[k]["_run"].get("status") == "done"]

    for name, metric, limit, ref, higher in ratios:
        cells = [name]
        for agent, fs in columns:
            vals = [r for r in (ratio(k, metric, ref) for k in keys_of(agent, fs)) if r is not None]
            if not vals:
                cells.append("-")
                continue
            med = statistics.median(vals)
            extra = ""
            if metric is exec_cold:
                ms = [exec_cold(k, runs[k]) for k in keys_of(agent, fs)]
                extra = f" ({statistics.median([m for m in ms if m is not None]):.1f} ms)"
            if limit is None:
                cells.append(f"{med:.2f}x{extra}")
                continue
            met = med >= limit if higher else med <= limit
            cells.append(f"{med:.2f}x{extra} {'ok' if met else 'MISS'}")
        out.append("| " + " | ".join(cells) + " |")

    def per_agent(name, value, ok, pick=statistics.median):
        cells = [name]
        for agent, fs in columns:
            vals = [v for v in (value(runs[k]) for k in keys_of(agent, fs)) if v is not None]
            if not vals:
                cells.append("-")
                continue
            cells.append(ok(pick(vals)))
        out.append("| " + " | ".join(cells) + " |")

    per_agent("burst_open >= 40k opens/s (8 procs)",
              lambda rows: rows.get("burst_open", {}).get("ops_per_s"),
              lambda v: f"{v:,.0f}/s {'ok' if v >= 40000 else 'MISS'}")
    per_agent("burst_sig: every open denied",
              lambda rows: (rows["burst_sig"]["errors"], rows["burst_sig"]["n"]) if "burst_sig" in rows else None,
              lambda v: f"{v[0]}/{v[1]} denied {'ok' if v[0] == v[1] else 'MISS'}",
              pick=min)  # the worst repetition
    per_agent("agent RSS (peak) <= 64 MiB",
              lambda rows: rows.get("_run", {}).get("peak_rss_mb"),
              lambda v: f"{v:.0f} MiB {'ok' if v <= 64 else 'MISS'}",
              pick=max)  # the worst repetition
    reps = {k[3] for k in runs}
    print(f"<!-- {len(folders)} run(s), repetitions {sorted(reps)}: medians of per-repetition ratios -->")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
