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
  scores at or above it, and never below the detection threshold; one per
  linkage (`threshold_block` for static files, `threshold_block_dynamic` for
  files with an interpreter or a dynamic section, each at the rate of its own
  files), as benign static programs score far higher than dynamic ones and a
  single threshold would be set by a handful of them. The rate is
  1 in 20,000, half the 1 in 10,000 allowed: a threshold placed exactly at the
  allowed rate on one sample of benign files exceeds it on the next sample
  about half the time, and files the calibration set lacks (the issue's
  independent set had static i386 files with RWX segments above the detection
  threshold) land in that margin. Fewer than `--min-files` rows is an error:
  1 in 10,000 cannot be measured on less than 20,000.
- The detection and suspicious thresholds (set on the validation fold, whose
  0.1 % rests on two files) are raised, never lowered, so that at most 1 in
  2,000 calibration files reach the detection threshold (half the 0.1 % of
  benign files a default install may flag) and at most 1 % the suspicious one.
- Writes the thresholds into the bundle's manifest and a JSON report
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
# The columns `Features::linkage` reads (models/src/features/mod.rs): a file is
# dynamic when it names an interpreter or has a dynamic section.
LINKAGE = ("interp_present", "dyn_present")
# Fewest calibration files a rate of 1 in 10,000 can be measured on (and fewest
# dynamic ones for a threshold of their own).
MIN_FILES = 20000


def log(msg: str) -> None:
    print(f"[calibrate] {msg}", flush=True)


def read_dir(d: Path) -> list[dict]:
    """Every row of the feature CSVs in `d`, as its raw line, its file's header
    and the few columns the selection needs (streamed with the csv module:
    thousands of small files, hundreds of columns each). Files may differ in
    their label columns; `vigil model score` finds the features by name."""
    rows: list[dict] = []
    for p in sorted(d.glob("*.csv")):
        with open(p, newline="") as f:
            header = f.readline()
            if not header:
                continue
            cols = next(csv.reader([header]))
            at = {c: cols.index(c) for c in ("sha256", "name", "package", "fmt_elf", "fmt_size_log", *LINKAGE)}
            for line in f:
                v = next(csv.reader([line]))
                if len(v) != len(cols):  # a file name with a line break: not worth a real parser
                    log(f"{p}: a row with {len(v)} of {len(cols)} columns left out")
                    continue
                rows.append({c: v[i] for c, i in at.items()} | {"line": line, "header": header})
    return rows


def calibration_rows(benign: Path, exclude: Path | None) -> list[dict]:
    rows = read_dir(benign)
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
    return out


def score(vigil: str, bundle: Path, rows: list[dict], model: str) -> list[float]:
    """`model`'s score of every row, in order: one `vigil model score` run per
    distinct CSV header."""
    by_header: dict[str, list[dict]] = {}
    for r in rows:
        by_header.setdefault(r["header"], []).append(r)
    got: dict[str, float] = {}
    for header, group in by_header.items():
        text = header + "".join(r["line"] for r in group)
        out = subprocess.run([vigil, "model", "score", "--bundle", str(bundle), "-"], input=text,
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"calibrate: vigil model score failed:\n{out.stderr}")
        for r in csv.DictReader(io.StringIO(out.stdout)):
            got[r["sha256"]] = float(r[model])
    missing = [r["sha256"] for r in rows if r["sha256"] not in got]
    if missing:
        sys.exit(f"calibrate: vigil model score returned no score for {len(missing)} rows")
    return [got[r["sha256"]] for r in rows]


def dynamic(rows: list[dict]) -> np.ndarray:
    """Whether each row is dynamically linked, as the agent decides it."""
    return np.array([any(float(r[c]) > 0 for c in LINKAGE) for r in rows], dtype=bool)


def linkage_thresholds(s: np.ndarray, dyn: np.ndarray, rate: float, floor: float, min_files: int) -> tuple[float, float | None]:
    """The block thresholds (static, dynamic): each linkage at `rate` of its
    own calibration files, so the few static files that score high (boot
    images, static shells) do not set the threshold for the many dynamic ones.
    Together they block at most floor(rate * n_static) + floor(rate *
    n_dynamic) <= rate * n files. One threshold for all (dynamic None) when
    the dynamic files alone are fewer than `min_files`: a rate cannot be
    measured on fewer."""
    if dyn.sum() < max(min_files, 1) or dyn.all():
        return block_threshold(s, rate, floor), None
    return block_threshold(s[~dyn], rate, floor), block_threshold(s[dyn], rate, floor)


def blocked_mask(s: np.ndarray, dyn: np.ndarray, static_t: float, dynamic_t: float | None) -> np.ndarray:
    """Which scores reach their linkage's block threshold."""
    t = np.where(dyn, np.float32(static_t if dynamic_t is None else dynamic_t), np.float32(static_t))
    return s >= t


def block_threshold(scores: np.ndarray, rate: float, floor: float) -> float:
    """Smallest float32 with at most floor(rate * n) scores at or above it, and
    at least `floor`."""
    s = np.sort(scores.astype(np.float32))[::-1]
    k = int(math.floor(rate * len(s)))
    t = float(np.nextafter(np.float32(s[k]), np.float32(np.inf))) if k < len(s) else float(s[-1])
    return max(t, floor)


def malware_rows(paths: list[Path], only: set[str]) -> list[dict]:
    """Rows of `paths` whose SHA-256 is in `only`, in the shape `score` takes
    (with the linkage columns, for `dynamic`)."""
    out, seen = [], set()
    for p in paths:
        with open(p, newline="") as f:
            header = f.readline()
            cols = next(csv.reader([header]))
            at = {c: cols.index(c) for c in ("sha256", *LINKAGE)}
            for line in f:
                v = next(csv.reader([line]))
                sha = v[at["sha256"]]
                if sha in only and sha not in seen:  # a file in both archives counts once
                    seen.add(sha)
                    out.append({c: v[i] for c, i in at.items()} | {"line": line, "header": header})
    return out


def anomaly_at_block(args, manifest: dict, rows: list[dict], clf_blocked: np.ndarray) -> dict | None:
    """The anomaly model at the block operating point (issue: ship it only if
    it adds blocks without adding false ones): its own block threshold at the
    same rate on the same calibration files, the calibration files it blocks
    that the classifier does not (false blocks it would add), and the
    validation malware it blocks that the classifier does not. Enables it in
    the manifest only when it adds at least 2 % of the validation malware and
    no false block; otherwise leaves it disabled."""
    anomaly = next((m for m in manifest["models"] if m["kind"] == "anomaly"), None)
    if anomaly is None or not args.malware or args.train_report is None:
        return None
    a = np.array(score(args.vigil, args.bundle, rows, anomaly["name"]), dtype=np.float32)
    a_thr = block_threshold(a, args.rate, anomaly["threshold"])
    added_false = int(((a >= np.float32(a_thr)) & ~clf_blocked).sum())
    val = set(json.loads(args.train_report.read_text())["validation"]["validation_malware"])
    mal = malware_rows(args.malware, val)
    classifier = next(m for m in manifest["models"] if m["kind"] == "classifier")
    if mal:
        ms = np.array(score(args.vigil, args.bundle, mal, classifier["name"]), dtype=np.float32)
        ma = np.array(score(args.vigil, args.bundle, mal, anomaly["name"]), dtype=np.float32)
        clf_block = blocked_mask(ms, dynamic(mal), classifier["threshold_block"],
                                 classifier.get("threshold_block_dynamic"))
        added = int(((ma >= np.float32(a_thr)) & ~clf_block).sum())
        clf_blocks = int(clf_block.sum())
    else:
        added = clf_blocks = 0
    enabled = bool(mal) and added / len(mal) >= 0.02 and added_false == 0
    anomaly["enabled"] = enabled
    if enabled:
        anomaly["threshold_block"] = a_thr
    log(f"anomaly at the block rate: threshold {a_thr:.6f}; over the classifier it adds {added} of {len(mal)} "
        f"validation malware (classifier blocks {clf_blocks}) and {added_false} false blocks of {len(rows)} "
        f"-> enabled={enabled}")
    return {"threshold_block": a_thr, "validation_malware": len(mal), "classifier_blocks": clf_blocks,
            "added_blocks": added, "added_false_blocks": added_false, "enabled": enabled}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True, help="bundle directory; its manifest is updated")
    ap.add_argument("--benign", type=Path, required=True, help="feature rows of the calibration packages")
    ap.add_argument("--exclude", type=Path, help="training feature rows (files in both are left out)")
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--rate", type=float, default=5e-5,
                    help="largest share of calibration files blocked (half the 1e-4 allowed: the margin)")
    ap.add_argument("--flag-rate", type=float, default=5e-4,
                    help="largest share of calibration files at or above the detection threshold (half the 0.1 %% allowed)")
    ap.add_argument("--min-files", type=int, default=MIN_FILES,
                    help="fewest calibration files (and fewest dynamic ones for a threshold of their own)")
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--malware", type=Path, action="append", default=[],
                    help="malware feature rows (for the anomaly model's check at the block threshold)")
    ap.add_argument("--train-report", type=Path,
                    help="train.py's report: its validation malware are the files the anomaly check uses")
    args = ap.parse_args()

    rows = calibration_rows(args.benign, args.exclude)
    n = len(rows)
    packages = len({r["package"] for r in rows})
    log(f"{n} held-out benign ELF files from {packages} packages")
    if n == 0 or n < args.min_files:
        sys.exit(f"calibrate: {n} calibration files, fewer than --min-files {args.min_files}")
    manifest_path = args.bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    classifier = next(m for m in manifest["models"] if m["kind"] == "classifier")
    s = np.array(score(args.vigil, args.bundle, rows, classifier["name"]), dtype=np.float32)
    # The detection and suspicious thresholds come from the validation fold
    # (0.1 % and 1 % of ~2,000 benign files: the first rests on two files).
    # Here they are raised, never lowered, to what the calibration set says:
    # a model detection alone flags a file, and flagged benign files must
    # stay under 0.1 % (again half of it, as the margin).
    validation = {"threshold": classifier["threshold"], "threshold_suspicious": classifier["threshold_suspicious"]}
    detect = block_threshold(s, args.flag_rate, classifier["threshold"])
    classifier["threshold"] = detect
    classifier["threshold_suspicious"] = min(block_threshold(s, 0.01, classifier["threshold_suspicious"]), detect)
    dyn = dynamic(rows)
    thr, thr_dyn = linkage_thresholds(s, dyn, args.rate, detect, args.min_files)
    block = blocked_mask(s, dyn, thr, thr_dyn)
    blocked = int(block.sum())
    detected = int((s >= np.float32(classifier["threshold"])).sum())
    flagged = int((s >= np.float32(classifier["threshold_suspicious"])).sum())
    classifier["threshold_block"] = thr
    if thr_dyn is None:
        classifier.pop("threshold_block_dynamic", None)
    else:
        classifier["threshold_block_dynamic"] = thr_dyn
    anomaly = anomaly_at_block(args, manifest, rows, block)
    manifest.setdefault("metrics", {})["calibration_files"] = n
    manifest["metrics"]["calibration_blocked"] = blocked
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    top = sorted(zip(s.tolist(), rows, dyn.tolist()), key=lambda t: -t[0])[:10]
    report = {
        "files": n,
        "training_overlap_checked": bool(args.exclude and args.exclude.is_dir() and any(args.exclude.glob("*.csv"))),
        "packages": packages,
        "rate": args.rate,
        "threshold_block": thr,
        "threshold_block_dynamic": thr_dyn,
        "files_dynamic": int(dyn.sum()),
        "blocked_dynamic": int((block & dyn).sum()),
        "threshold": classifier["threshold"],
        "threshold_suspicious": classifier["threshold_suspicious"],
        "validation_thresholds": validation,
        "flag_rate": args.flag_rate,
        "blocked": blocked,
        "detected": detected,
        "flagged": flagged,
        "top": [{"package": r["package"], "file": r["name"], "score": sc,
                 "linkage": "dynamic" if d else "static"} for sc, r, d in top],
        "anomaly": anomaly,
    }
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    if thr_dyn is not None:
        log(f"threshold_block_dynamic {thr_dyn:.6f} for {int(dyn.sum())} dynamic files, {thr:.6f} for the "
            f"{int((~dyn).sum())} others")
    log(f"threshold_block {thr:.6f}: {blocked} of {n} blocked; {detected} at the detection threshold "
        f"{classifier['threshold']:.6f}, {flagged} at the suspicious one")


if __name__ == "__main__":
    main()
