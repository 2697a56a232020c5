#!/usr/bin/env python3
"""Calibrates the classifier's block threshold on held-out benign files.

At or above `threshold_block` the agent denies a file on the model alone, so
that threshold must let through at most 1 in 10,000 benign ELF files. It is
chosen here, after training, on the calibration set: the ELF files of the
packages in `calibration.txt` (`pick_calibration.py`: a pseudo-random sample
of Debian's amd64 packages, one per source package, none of them or of their
source packages in `packages.txt`, none reserved for evaluation), which no
model trains, validates or tunes anything else on.

- Rows: ELF files under the models' size cap, deduplicated by SHA-256, without
  any file that is also in the training rows (`--exclude`), at most 200 per
  package (as in training: a package with thousands of plugins does not
  dominate).
- Scores: the exported bundle as the agent runs it (`vigil model score`, tract).
- Threshold: the smallest float32 with at most floor(n * rate) calibration
  scores at or above it, and never below the detection threshold. The rate is
  1 in 20,000, half the 1 in 10,000 allowed: a threshold placed exactly at the
  allowed rate on one sample of benign files exceeds it on the next sample
  about half the time, and files the calibration set lacks (the issue's
  independent set had static i386 files with RWX segments above the detection
  threshold) land in that margin. Fewer than `--min-files` rows is an error:
  1 in 10,000 cannot be measured on less than 20,000.
- Writes `threshold_block` into the bundle's manifest and a JSON report
  (counts, the highest benign scores and their files) for the model card.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

SIZE_CAP_LOG = math.log1p(4 * 1024 * 1024)  # as train.py: the corpus has no larger file
PER_PACKAGE_CAP = 200


def log(msg: str) -> None:
    print(f"[calibrate] {msg}", flush=True)


def read_dir(d: Path) -> tuple[str, list[dict]]:
    """Every row of the feature CSVs in `d`, as its raw line plus the few
    columns the selection needs (streamed with the csv module: thousands of
    small files, hundreds of columns each)."""
    header = ""
    rows: list[dict] = []
    for p in sorted(d.glob("*.csv")):
        with open(p, newline="") as f:
            first = f.readline()
            if not first:
                continue
            cols = next(csv.reader([first]))
            if not header:
                header = first
            elif first != header:
                sys.exit(f"calibrate: {p} has other columns than the first file")
            at = {c: cols.index(c) for c in ("sha256", "name", "package", "fmt_elf", "fmt_size_log")}
            for line in f:
                v = next(csv.reader([line]))
                if len(v) != len(cols):  # a file name with a line break: not worth a real parser
                    log(f"{p}: a row with {len(v)} of {len(cols)} columns left out")
                    continue
                rows.append({c: v[i] for c, i in at.items()} | {"line": line})
    return header, rows


def calibration_rows(benign: Path, exclude: Path | None) -> tuple[str, list[dict]]:
    header, rows = read_dir(benign)
    if not rows:
        sys.exit(f"calibrate: no rows in {benign}")
    rows = [r for r in rows if float(r["fmt_elf"]) == 1 and float(r["fmt_size_log"]) < SIZE_CAP_LOG]
    seen: set[str] = set()
    if exclude is not None and exclude.is_dir():
        for p in sorted(exclude.glob("*.csv")):
            with open(p, newline="") as f:
                for r in csv.DictReader(f):
                    seen.add(r["sha256"])
        log(f"{sum(r['sha256'] in seen for r in rows)} files also in the training rows left out")
    elif exclude is not None:
        log(f"no training rows in {exclude}: overlap not checked")
    out, per_package = [], Counter()
    for r in sorted(rows, key=lambda r: r["sha256"]):
        if r["sha256"] in seen or per_package[r["package"]] >= PER_PACKAGE_CAP:
            continue
        seen.add(r["sha256"])
        per_package[r["package"]] += 1
        out.append(r)
    return header, out


def score(vigil: str, bundle: Path, header: str, rows: list[dict]) -> list[dict]:
    text = header + "".join(r["line"] for r in rows)
    r = subprocess.run([vigil, "model", "score", "--bundle", str(bundle), "-"], input=text,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"calibrate: vigil model score failed:\n{r.stderr}")
    return list(csv.DictReader(io.StringIO(r.stdout)))


def block_threshold(scores: np.ndarray, rate: float, floor: float) -> float:
    """Smallest float32 with at most floor(rate * n) scores at or above it, and
    at least `floor`."""
    s = np.sort(scores.astype(np.float32))[::-1]
    k = int(math.floor(rate * len(s)))
    t = float(np.nextafter(np.float32(s[k]), np.float32(np.inf))) if k < len(s) else float(s[-1])
    return max(t, floor)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True, help="bundle directory; its manifest is updated")
    ap.add_argument("--benign", type=Path, required=True, help="feature rows of the calibration packages")
    ap.add_argument("--exclude", type=Path, help="training feature rows (files in both are left out)")
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--rate", type=float, default=5e-5,
                    help="largest share of calibration files blocked (half the 1e-4 allowed: the margin)")
    ap.add_argument("--min-files", type=int, default=20000)
    ap.add_argument("--report", type=Path, required=True)
    args = ap.parse_args()

    header, rows = calibration_rows(args.benign, args.exclude)
    n = len(rows)
    packages = len({r["package"] for r in rows})
    log(f"{n} held-out benign ELF files from {packages} packages")
    if n == 0 or n < args.min_files:
        sys.exit(f"calibrate: {n} calibration files, fewer than --min-files {args.min_files}")
    manifest_path = args.bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    classifier = next(m for m in manifest["models"] if m["kind"] == "classifier")
    scored = score(args.vigil, args.bundle, header, rows)
    if [r["sha256"] for r in scored] != [r["sha256"] for r in rows]:
        sys.exit("calibrate: vigil model score returned other rows than it was given")
    s = np.array([float(r[classifier["name"]]) for r in scored], dtype=np.float32)
    thr = block_threshold(s, args.rate, classifier["threshold"])
    blocked = int((s >= np.float32(thr)).sum())
    detected = int((s >= np.float32(classifier["threshold"])).sum())
    flagged = int((s >= np.float32(classifier["threshold_suspicious"])).sum())
    classifier["threshold_block"] = thr
    manifest.setdefault("metrics", {})["calibration_files"] = n
    manifest["metrics"]["calibration_blocked"] = blocked
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    top = sorted(zip(s.tolist(), rows), key=lambda t: -t[0])[:10]
    report = {
        "files": n,
        "training_overlap_checked": bool(args.exclude and args.exclude.is_dir() and any(args.exclude.glob("*.csv"))),
        "packages": packages,
        "rate": args.rate,
        "threshold_block": thr,
        "threshold": classifier["threshold"],
        "threshold_suspicious": classifier["threshold_suspicious"],
        "blocked": blocked,
        "detected": detected,
        "flagged": flagged,
        "top": [{"package": r["package"], "file": r["name"], "score": sc} for sc, r in top],
    }
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    log(f"threshold_block {thr:.6f}: {blocked} of {n} blocked; {detected} at the detection threshold "
        f"{classifier['threshold']:.6f}, {flagged} at the suspicious one")


if __name__ == "__main__":
    main()
