#!/usr/bin/env python3
"""Chooses the Debian packages of the block-threshold calibration set.

The model blocks on its own at `threshold_block`, which must let through at
most 1 in 10,000 benign ELF files: that takes a held-out benign set of well
over 20,000 ELF files that no model trains or validates on. This script picks
those packages from the amd64 index of Debian 12's main suite and prints
the list written to `calibration.txt` (committed, so a rerun fetches the same
packages):

- amd64 packages with architecture-specific files (not `all`), in a stable
  pseudo-random order (SHA-256 of the name), so the set is a sample of what a
  Debian machine installs rather than a hand-picked one;
- never a package reserved for independent evaluation (binary or source name's
  SHA-256 starting with 0 or 1), never a package of `packages.txt` nor any
  package built from the same source (a sibling of a training package would
  make the false-positive estimate optimistic);
- at most one binary package per source package (siblings share code);
- packages whose .deb is over 40 MB are left out (a few huge ones would cost
  most of the download for a handful of files under 4 MiB);
- until the total download reaches --budget-mb.

Usage: python3 pick_calibration.py --index PACKAGES [--budget-mb 5600] > calibration.txt
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

from fetch_debian import HERE, read_list, reserved


def index(path: Path) -> dict[str, dict[str, str]]:
    """Package -> fields (Source, Architecture, Size, ...) from a Packages index
    (plain or as apt stores it: apt-helper decompresses)."""
    text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(path)], capture_output=True, text=True,
                          check=True).stdout
    out: dict[str, dict[str, str]] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ": " in line and not line.startswith(" "):
                k, v = line.split(": ", 1)
                fields[k] = v
        if "Package" in fields:
            out.setdefault(fields["Package"], fields)
    return out


def source_of(fields: dict[str, str]) -> str:
    return fields.get("Source", fields["Package"]).split(" ")[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-mb", type=int, default=5600)
    ap.add_argument("--index", type=Path, required=True,
                    help="Debian 12 main amd64 Packages index, e.g. fetch_debian's "
                    "DATA/apt/lists/*_dists_bookworm_main_binary-amd64_Packages.lz4")
    args = ap.parse_args()
    idx = index(args.index)
    training = {e.split(":")[0] for e in read_list(HERE / "packages.txt")}
    training_sources = {source_of(idx[p]) for p in training if p in idx} | training
    seen_sources: set[str] = set()
    total = 0
    picked = []
    for name in sorted(idx, key=lambda n: hashlib.sha256(n.encode()).hexdigest()):
        f = idx[name]
        src = source_of(f)
        size = int(f.get("Size", "0"))
        if f.get("Architecture") != "amd64" or reserved(name) or reserved(src):
            continue
        if name in training or src in training_sources or src in seen_sources:
            continue
        if size > 40_000_000 or name.endswith(("-dbg", "-doc", "-data")):
            continue
        seen_sources.add(src)
        picked.append(name)
        total += size
        if total >= args.budget_mb * 1_000_000:
            break
    print(f"# Block-threshold calibration set: written by pick_calibration.py --budget-mb {args.budget_mb} "
          "(see there)")
    print(f"# from the Debian 12 (bookworm) main amd64 Packages index: {len(picked)} amd64 packages, {total / 1e6:.0f} MB of .debs.")
    print("# Never trained, validated or tuned on.")
    for n in sorted(picked):
        print(f"{n}:amd64")
    print(f"pick_calibration: {len(picked)} packages, {total / 1e6:.0f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
