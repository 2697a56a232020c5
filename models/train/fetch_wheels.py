#!/usr/bin/env python3
"""Hard benign cases from other builders: Python wheels from PyPI.

Debian builds every benign file of the Debian data with one toolchain and one
set of flags. Wheels are built by each project's own CI, on old CentOS images
(manylinux) or Alpine (musllinux), with vendored libraries (auditwheel copies
OpenSSL, libffi, BLAS... into the wheel), C, C++, Rust (PyO3) and Cython
extensions, and a few standalone programs -- for x86-64, i686, arm64, armv7,
ppc64le and s390x. A model trained without them flags the extension modules
of any virtualenv.

For every `NAME==VERSION` line of wheels.txt and every architecture (glibc;
musl for x86-64 and arm64), `pip download --only-binary` fetches the wheel if the project publishes
one; its ELF files become rows with label=0, package = source = `pypi:NAME`
(every build of one project is one group in the split) and arch. The wheel is
unpacked into scratch space without execute bits, and deleted. Nothing is
installed or run.

Projects installed in the training venv (numpy, scipy, pandas, scikit-learn,
lightgbm, onnx, protobuf, pillow, matplotlib and their dependencies) are not
listed, so the venv stays a held-out check of this kind of file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fetch_debian import HERE, features, fresh, read_list
# Debian's name for the architecture -> wheel platform tags, glibc then musl.
ARCHES = {
    "amd64": "x86_64", "i386": "i686", "arm64": "aarch64", "armhf": "armv7l", "ppc64el": "ppc64le",
    "s390x": "s390x",
}
GLIBC = ["manylinux_2_17", "manylinux2014", "manylinux_2_28", "manylinux_2_31", "manylinux_2_34"]
MUSL = ["musllinux_1_1", "musllinux_1_2"]
MUSL_ARCHES = ("amd64", "arm64")  # where projects publish musl wheels at all


def fetch_one(req: str, arch: str, libc: str, dest: Path) -> Path | str:
    """Downloads the wheel of `req` for one architecture and libc. Otherwise
    returns "unpublished" (the registry has none) or pip's last error line."""
    machine = ARCHES[arch]
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "-d", str(dest)]
    for tag in GLIBC if libc == "glibc" else MUSL:
        cmd += ["--platform", f"{tag}_{machine}"]
    r = subprocess.run([*cmd, req], capture_output=True, text=True)
    if r.returncode != 0:
        if "No matching distribution found" in r.stderr:
            return "unpublished"
        return (r.stderr.strip().splitlines() or ["pip failed"])[-1]
    found = sorted(dest.glob("*.whl"))
    return found[0] if found else "pip wrote no wheel"


def process(req: str, arch: str, libc: str, data: Path, vigil: str) -> str:
    name = req.split("==")[0].lower()
    out_csv = data / "features" / f"pypi-{name}-{libc}_{arch}.csv"
    # A project that publishes no wheel for this platform is remembered per
    # pinned version, so a rerun does not ask the registry again.
    none = data / "wheels-none" / f"{req}-{libc}_{arch}"
    if fresh(out_csv, vigil):
        return "cached"
    if none.exists():
        return "no wheel (cached)"
    # Wheels are kept (DATA/wheels), so a feature-schema change only writes rows again.
    kept = data / "wheels" / f"{req}-{libc}_{arch}"
    with tempfile.TemporaryDirectory(prefix="vigil-wheel-", dir=data) as tmp:
        wheel = next(iter(sorted(kept.glob("*.whl"))), None) or fetch_one(req, arch, libc, kept)
        if wheel == "unpublished":
            none.parent.mkdir(parents=True, exist_ok=True)
            none.touch()
            return "no wheel"
        if isinstance(wheel, str):
            return f"failed: {wheel}"
        tree = Path(tmp) / "tree"
        with zipfile.ZipFile(wheel) as z:
            for info in z.infolist():
                # Names inside a wheel are relative; refuse any that are not.
                target = (tree / info.filename).resolve()
                if not str(target).startswith(str(tree.resolve()) + os.sep) or info.is_dir():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                target.chmod(0o644)
        if not tree.exists():
            return "empty wheel"
        features(vigil, out_csv, [tree], {
            "label": "0", "package": f"pypi:{name}", "source": f"pypi:{name}", "arch": arch,
            "version": wheel.name.split("-")[1],
        })
    return "ok"


def fetch_wheels(data: Path, vigil: str, smoke: bool = False) -> str:
    """Rows for every listed project and architecture (a smoke run: two
    projects, x86-64 glibc only). Cached per (project, libc, arch)."""
    (data / "features").mkdir(parents=True, exist_ok=True)
    reqs = read_list(HERE / "wheels.txt")
    todo = [(r, a, libc) for r in reqs[:2] for a, libc in [("amd64", "glibc")]] if smoke else \
        [(r, a, libc) for r in reqs for a in ARCHES for libc in ("glibc", "musl") if libc == "glibc" or a in MUSL_ARCHES]
    counts: dict[str, int] = {}
    # pip's start-up and the registry's latency dominate: four at a time.
    with ThreadPoolExecutor(max_workers=4) as pool:
        for result in pool.map(lambda t: process(*t, data, vigil), todo):
            counts[result] = counts.get(result, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
