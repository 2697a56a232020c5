#!/usr/bin/env python3
"""Latency percentiles per workload and agent from one shared/bench run.

    plot.py RESULTS_DIR OUT.png [--agents a@fs,b@fs,...]

Reads RESULTS_DIR/results.jsonl (which agents ran, on which filesystem, how many
repetitions) and the per-operation latencies in RESULTS_DIR/raw/ (nanoseconds,
one per line, `<agent>@<fs>-r<rep>.<workload>.txt`), pools the repetitions the
way the harness's summary does, and draws p50, p90, p99 and p99.9 of each
latency workload for each agent on a log scale. Needs matplotlib
(tests/bench/requirements.txt).
"""

import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

WORKLOADS = [
    ("open_cold", "open cold (4 KiB)"),
    ("open_warm", "open warm (4 KiB)"),
    ("exec", "exec (static binary)"),
    ("read_cold", "read cold (1 MiB file)"),
    ("read_warm", "read warm (1 MiB file)"),
    ("burst_open", "burst open (8 procs)"),
    ("burst_sig", "burst of detections (8 procs)"),
]
PERCENTILES = [(50, "p50", "o"), (90, "p90", "s"), (99, "p99", "^"), (99.9, "p99.9", "v")]


def percentile(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return math.nan
    k = max(0, min(len(sorted_vals) - 1, math.ceil(p / 100 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def load(results_dir):
    """(agent@fs in run order, {(agent@fs, workload): [ns, ...]})."""
    path = os.path.join(results_dir, "results.jsonl")
    try:
        rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"plot.py: cannot read {path}: {e}")
    order, reps = [], {}
    for r in rows:
        tag = f"{r['agent']}@{r['fs']}"
        if tag not in order:
            order.append(tag)
        reps.setdefault(tag, set()).add(r["rep"])
    samples = {}
    for tag in order:
        for wl, _ in WORKLOADS:
            vals = []
            for rep in sorted(reps[tag]):
                f = os.path.join(results_dir, "raw", f"{tag}-r{rep}.{wl}.txt")
                if os.path.exists(f):
                    with open(f, encoding="utf-8") as fh:
                        vals.extend(int(x) for x in fh if x.strip())
            if vals:
                samples[(tag, wl)] = sorted(vals)
    return order, samples


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results_dir")
    ap.add_argument("out_png")
    ap.add_argument("--agents", help="comma-separated agent@fs to show, in this order")
    ap.add_argument("--title", default="On-access latency per operation (pooled over repetitions)")
    args = ap.parse_args()

    order, samples = load(args.results_dir)
    if args.agents:
        wanted = args.agents.split(",")
        missing = [a for a in wanted if a not in order]
        if missing:
            sys.exit(f"plot.py: not in this run: {', '.join(missing)} (run has {', '.join(order)})")
        order = wanted

    cols = 4
    rows = math.ceil(len(WORKLOADS) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (wl, title) in enumerate(WORKLOADS):
        ax = axes[i // cols][i % cols]
        for x, tag in enumerate(order):
            vals = samples.get((tag, wl))
            if not vals:
                continue
            ys = [percentile(vals, p) / 1000 for p, _, _ in PERCENTILES]
            ax.plot([x] * len(ys), ys, color="0.75", linewidth=1, zorder=1)
            for (_, label, marker), y, c in zip(PERCENTILES, ys, colors):
                ax.scatter([x], [y], marker=marker, color=c, s=22, zorder=2,
                           label=label if x == 0 else None)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(order, rotation=45, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(True, which="major", axis="y", linewidth=0.4, alpha=0.6)
        if i % cols == 0:
            ax.set_ylabel("µs per operation (log)", fontsize=8)
    for j in range(len(WORKLOADS), rows * cols):
        axes[j // cols][j % cols].axis("off")
    handles = [plt.Line2D([], [], linestyle="", marker=m, color=c, label=label)
               for (_, label, m), c in zip(PERCENTILES, colors)]
    axes[-1][-1].legend(handles=handles, loc="center", title="percentile", fontsize=9)
    fig.suptitle(args.title, fontsize=11)
    fig.tight_layout()
    fig.savefig(args.out_png, dpi=90)
    print(f"wrote {args.out_png}")


if __name__ == "__main__":
    main()
