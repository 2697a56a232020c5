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
  scores at or above it, and never below the detection threshold. Fewer than
  `--min-files` rows is an error: 1 in 10,000 cannot be measured on less.
- Writes `threshold_block` into the bundle's manifest and a JSON report
  (counts, the highest benign scores and their files) for the model card.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SIZE_CAP_LOG = math.log1p(4 * 1024 * 1024)  # as train.py: the corpus has no larger file
PER_PACKAGE_CAP = 200


def log(msg: str) -> None:
    print(f"[calibrate] {msg}", flush=True)


def read_dir(d: Path, usecols=None) -> pd.DataFrame:
    parts = []
    for p in sorted(d.glob("*.csv")):
        df = pd.read_csv(p, dtype={"sha256": str, "name": str}, keep_default_na=False, low_memory=False,
                         usecols=usecols)
        if len(df):
            parts.append(df)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def calibration_rows(benign: Path, exclude: Path | None) -> pd.DataFrame:
    rows = read_dir(benign)
    if rows.empty:
        sys.exit(f"calibrate: no rows in {benign}")
    rows = rows[(rows["fmt_elf"].astype(float) == 1) & (rows["fmt_size_log"].astype(float) < SIZE_CAP_LOG)]
    rows = rows.drop_duplicates("sha256")
    if exclude is not None and exclude.is_dir():
        seen = set(read_dir(exclude, usecols=["sha256"]).get("sha256", []))
        before = len(rows)
        rows = rows[~rows["sha256"].isin(seen)]
        log(f"{before - len(rows)} files also in the training rows left out")
    rows = rows.sort_values("sha256").groupby("package", sort=False, group_keys=False).head(PER_PACKAGE_CAP)
    return rows.reset_index(drop=True)


def score(vigil: str, bundle: Path, rows: pd.DataFrame) -> pd.DataFrame:
    buf = io.StringIO()
    rows.to_csv(buf, index=False)
    r = subprocess.run([vigil, "model", "score", "--bundle", str(bundle), "-"], input=buf.getvalue(),
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"calibrate: vigil model score failed:\n{r.stderr}")
    return pd.read_csv(io.StringIO(r.stdout), dtype={"sha256": str})


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
    ap.add_argument("--rate", type=float, default=1e-4, help="largest share of benign files blocked")
    ap.add_argument("--min-files", type=int, default=20000)
    ap.add_argument("--report", type=Path, required=True)
    args = ap.parse_args()

    rows = calibration_rows(args.benign, args.exclude)
    n = len(rows)
    log(f"{n} held-out benign ELF files from {rows['package'].nunique()} packages")
    if n == 0 or n < args.min_files:
        sys.exit(f"calibrate: {n} calibration files, fewer than --min-files {args.min_files}")
    manifest_path = args.bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    classifier = next(m for m in manifest["models"] if m["kind"] == "classifier")
    scored = score(args.vigil, args.bundle, rows)
    s = scored[classifier["name"]].to_numpy(dtype=np.float64)
    thr = block_threshold(s, args.rate, classifier["threshold"])
    blocked = int((s.astype(np.float32) >= np.float32(thr)).sum())
    detected = int((s.astype(np.float32) >= np.float32(classifier["threshold"])).sum())
    flagged = int((s.astype(np.float32) >= np.float32(classifier["threshold_suspicious"])).sum())
    classifier["threshold_block"] = thr
    manifest.setdefault("metrics", {})["calibration_files"] = n
    manifest["metrics"]["calibration_blocked"] = blocked
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    top = scored.assign(score=s).merge(rows[["sha256", "package", "name"]], on="sha256").nlargest(10, "score")
    report = {
        "files": n,
        "packages": int(rows["package"].nunique()),
        "rate": args.rate,
        "threshold_block": thr,
        "threshold": classifier["threshold"],
        "threshold_suspicious": classifier["threshold_suspicious"],
        "blocked": blocked,
        "detected": detected,
        "flagged": flagged,
        "top": [{"package": r.package, "file": r.name, "score": float(r.score)} for r in top.itertuples()],
    }
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    log(f"threshold_block {thr:.6f}: {blocked} of {n} blocked; {detected} at the detection threshold "
        f"{classifier['threshold']:.6f}, {flagged} at the suspicious one")


if __name__ == "__main__":
    main()
