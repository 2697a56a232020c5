#!/usr/bin/env python3
"""Adversarial augmentation: attack a first model on the TRAINING-fold malware and
add the evasive variants' feature rows to the augmentation rows.

    adversarial.py --vigil V --bundle FIRST --report FIRST.json \
        --malware malware.csv --archive A.tar.xz --donor D [--donor D2 ...] \
        --augment malware-mutated.csv --out malware-augment.csv --work DIR \
        [--queries 200] [--limit 0] [--seed 1]

1. The training-fold malware: the ELF rows of every --malware CSV whose SHA-256
   is not in FIRST.json's validation_malware (the validation fold is never
   attacked, so nothing found on it can reach training).
2. `vigil model attack` against the first bundle (in memory; --limit draws a
   seeded subset when the full set would take too long), with --emit-rows: the
   variants that fell below a threshold their original reached.
3. --out: the --augment rows, then the evasive rows (same columns: `mutation` is
   the winning sequence, `origin` the original's SHA-256). train.py maps each
   row to its origin's group, so a variant always lands in its original's fold
   and is only trained on where the original is.

Writes DIR/attack-train.csv (per sample) and DIR/attack-train.json (summary).
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
from pathlib import Path


def training_malware(malware: list[Path], report: Path) -> list[str]:
    """SHA-256 of every ELF malware row not in the report's validation fold, sorted."""
    rep = json.loads(report.read_text())
    try:
        validation = set(rep["validation"]["validation_malware"])
    except KeyError:
        sys.exit(f"adversarial: {report} has no validation.validation_malware")
    csv.field_size_limit(1 << 24)
    shas: set[str] = set()
    for path in malware:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("fmt_elf") == "1" and row["sha256"] not in validation:
                    shas.add(row["sha256"])
    return sorted(shas)


def concat(first: Path, second: Path, out: Path) -> int:
    """`first` then the rows of `second` (same header, or exit); rows of `second`."""
    with first.open() as a, second.open() as b, out.open("w") as o:
        head_a, head_b = a.readline(), b.readline()
        if head_a != head_b:
            sys.exit(f"adversarial: {first} and {second} have different columns")
        o.write(head_a)
        for line in a:
            o.write(line)
        n = 0
        for line in b:
            o.write(line)
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--bundle", required=True, help="the first model's bundle directory")
    ap.add_argument("--report", required=True, help="the first model's train.py report (validation fold)")
    ap.add_argument("--malware", required=True, action="append", help="malware feature CSV (vigil features)")
    ap.add_argument("--archive", required=True, help="the archive those rows came from")
    ap.add_argument("--donor", required=True, action="append")
    ap.add_argument("--augment", required=True, help="the mutation augmentation CSV to extend")
    ap.add_argument("--out", required=True, help="augmentation CSV to write")
    ap.add_argument("--work", required=True, help="directory for the attack's own outputs")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--limit", type=int, default=0, help="attack at most this many samples (0: all)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    shas = training_malware([Path(m) for m in a.malware], Path(a.report))
    if a.limit and len(shas) > a.limit:
        shas = sorted(random.Random(a.seed).sample(shas, a.limit))
    only = work / "attack-train-only.txt"
    only.write_text("".join(s + "\n" for s in shas))
    rows = work / "attack-train-rows.csv"
    cmd = [a.vigil, "model", "attack", "--bundle", a.bundle, "--tar", a.archive, "--only", str(only),
           "--queries", str(a.queries), "--seed", str(a.seed), "--emit-rows", str(rows),
           "--summary", str(work / "attack-train.json")]
    for d in a.donor:
        cmd += ["--donor", d]
    print(f"adversarial: attacking {len(shas)} training-fold samples, {a.queries} queries each", flush=True)
    with (work / "attack-train.csv").open("w") as per_sample:
        subprocess.run(cmd, check=True, stdout=per_sample)
    n = concat(Path(a.augment), rows, Path(a.out))
    print(f"adversarial: {n} evasive variants added to the augmentation rows", flush=True)


if __name__ == "__main__":
    main()
