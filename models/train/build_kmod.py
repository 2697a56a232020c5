#!/usr/bin/env python3
"""Benign kernel modules from more than one source: out-of-tree modules built
here from Debian's `*-dkms` source packages.

The only benign relocatable objects Debian ships as files are the modules of
the `linux` source package (signed, or their unsigned twins). Trained on those
and on unsigned malicious modules, a model learns "not built by the Debian
kernel team" instead of "malicious". DKMS modules are what a real machine
carries besides the kernel's own: built on the machine, unsigned, with the
kernel's flags, by as many authors as there are packages.

Each package in DKMS is downloaded with `apt-get download` through
fetch_debian's private apt configuration and unpacked into scratch space;
each module directory its `dkms.conf` names is built with the kernel's own
build system (`make -C <headers> M=<dir> modules`) against a linux-headers
flavour whose packages are not reserved for evaluation, also unpacked (not
installed). Every module is kept twice: as built (with debug information, as
a module a developer loads) and stripped of it (`strip --strip-debug`, as a
distribution ships one). Nothing is loaded or run.

Refused: a package reserved for evaluation (by its name or its source's), or
one whose source package is in calibration.txt (the block threshold's
held-out set). Rows get label=0, version=built and package = source =
`local:kmod:<package>` (every module of one package in one group). Output:
DATA/features/local-kmod_amd64.csv; the modules are kept in
DATA/local-built-kmod so a schema change only writes rows again.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from build_local import Job, download, keep, load_kept, rows, unpack
from fetch_debian import HERE, fresh, read_list, reserved

DKMS = ["adv-17v35x-dkms", "dahdi-dkms", "digimend-dkms", "dm-writeboost-dkms", "gost-crypto-dkms",
        "librem-ec-acpi-dkms", "lime-forensics-dkms", "apfs-dkms", "nat-rtsp-dkms", "openrazer-driver-dkms",
        "openvpn-dco-dkms", "tp-smapi-dkms", "v4l2loopback-dkms", "west-chamber-dkms", "xtrx-dkms"]
FLAVOUR = re.compile(r"^linux-headers-(\d+\.\d+\.\d+-\d+)-(rt-amd64|cloud-amd64|amd64)$")


def apt_fields(env: dict[str, str], packages: list[str]) -> dict[str, dict[str, str]]:
    """Package -> its control fields (newest version), in one apt-cache run."""
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", *packages], env=env, capture_output=True, text=True)
    out: dict[str, dict[str, str]] = {}
    for stanza in r.stdout.split("\n\n"):
        fields = dict(m.groups() for m in re.finditer(r"^([A-Za-z-]+): (.*)$", stanza, re.M))
        if "Package" in fields:
            out.setdefault(fields["Package"], fields)
    return out


def source_of(fields: dict[str, str]) -> str:
    return fields.get("Source", fields["Package"]).split()[0]


def depends(fields: dict[str, str]) -> list[str]:
    return [d.split()[0] for d in re.split(r"[,|]", fields.get("Depends", "")) if d.strip()]


def headers(env: dict[str, str]) -> tuple[list[str], str]:
    """The newest linux-headers flavour whose own package and the header and
    kbuild packages it depends on are all unreserved: (packages, directory name)."""
    r = subprocess.run(["apt-cache", "pkgnames", "linux-headers-"], env=env, capture_output=True, text=True)
    flavours = sorted((p for p in r.stdout.split() if FLAVOUR.match(p)), reverse=True)
    info = apt_fields(env, flavours)
    for flavour in flavours:
        if flavour not in info or reserved(flavour):
            continue
        needed = [flavour] + [d for d in depends(info[flavour])
                              if d.startswith(("linux-headers-", "linux-kbuild-"))]
        if not any(reserved(p) for p in needed):
            return needed, flavour.removeprefix("linux-headers-")
    raise SystemExit("build_kmod: no linux-headers flavour whose packages are all unreserved")


def check(env: dict[str, str]) -> None:
    info = apt_fields(env, DKMS)
    missing = [p for p in DKMS if p not in info]
    if missing:
        raise SystemExit(f"build_kmod: not in the apt index: {missing}")
    calibration = [e.split(":")[0] for e in read_list(HERE / "calibration.txt")]
    held_out = {source_of(f) for f in apt_fields(env, calibration).values()}
    for p in DKMS:
        src = source_of(info[p])
        if reserved(p) or reserved(src):
            raise SystemExit(f"build_kmod: {p} (source {src}) is reserved for evaluation")
        if src in held_out:
            raise SystemExit(f"build_kmod: {p}'s source {src} is in calibration.txt (held out)")


def module_dirs(src: Path) -> list[Path]:
    """The directories dkms.conf says modules are built in (BUILT_MODULE_LOCATION;
    the top by default), or the one holding a Kbuild file when the modules are
    built in a subdirectory its MAKE line names (xtables-style packages)."""
    conf = (src / "dkms.conf").read_text(errors="replace")
    locs = {m.strip("\"'/ ") for m in re.findall(r"^BUILT_MODULE_LOCATION(?:\[\d+\])?=(.*)$", conf, re.M)} or {""}
    dirs = [src / loc if loc else src for loc in sorted(locs)]
    if dirs == [src] and not (src / "Kbuild").exists() and (src / "extensions" / "Kbuild").exists():
        dirs = [src / "extensions"]
    return dirs


def build_one(src: Path, kdir: Path, log: Path) -> list[Path]:
    """Builds one package's modules; returns the .ko files made (none when it
    does not build against these headers: reported, not fatal)."""
    with open(log, "w") as f:
        for d in module_dirs(src):
            subprocess.run(["make", "-C", str(kdir), f"M={d}", f"XA_ABSTOPSRCDIR={src}", f"XA_TOPSRCDIR={src}",
                            "modules"], stdout=f, stderr=subprocess.STDOUT, timeout=900, check=False)
    return sorted(src.rglob("*.ko"))


def build_kmod(env: dict[str, str], data: Path, vigil: str) -> str:
    out_csv = data / "features" / "local-kmod_amd64.csv"
    if fresh(out_csv, vigil):
        return "cached"
    kept = data / "local-built-kmod"
    kept_jobs = load_kept(kept)
    if kept_jobs is not None:
        return f"rows again from the kept modules: {rows(vigil, data, kept_jobs)}"
    check(env)
    work = data / "kmod-build"
    shutil.rmtree(work, ignore_errors=True)
    debs = work / "debs"
    hdr_packages, flavour = headers(env)
    download(env, debs, hdr_packages + DKMS)
    root = unpack(debs, hdr_packages, work / "root-headers")
    kdir = root / "usr/src" / f"linux-headers-{flavour}"
    # The flavour's Makefile includes the common tree by absolute path.
    mk = kdir / "Makefile"
    mk.write_text(mk.read_text().replace("include /usr/src/", f"include {root}/usr/src/"))
    jobs: list[Job] = []
    report: dict[str, int] = {}
    for p in DKMS:
        tree = unpack(debs, [p], work / f"src-{p}")
        srcs = [d for d in (tree / "usr/src").iterdir() if (d / "dkms.conf").exists()]
        built: list[Path] = []
        for s in srcs:
            built += build_one(s, kdir, work / f"{p}.log")
        report[p] = len(built)
        for ko in built:
            out = work / "out" / p / ko.name
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ko, out)
            jobs.append(Job("kmod", "amd64", p, [], out))
            stripped = out.with_suffix(".stripped.ko")
            if subprocess.run(["strip", "--strip-debug", "-o", str(stripped), str(out)],
                              capture_output=True).returncode == 0:
                jobs.append(Job("kmod", "amd64", p, [], stripped))
        print(f"kernel modules: {p}: {len(built)} built", flush=True)
    if not jobs:
        raise SystemExit(f"build_kmod: no module built against {flavour} (logs in {work})")
    written = rows(vigil, data, jobs)
    keep(jobs, kept)
    shutil.rmtree(work, ignore_errors=True)
    return f"ok (headers {flavour}; modules per package: {report}; rows: {written})"
