#!/usr/bin/env python3
"""Benign training data: Debian packages -> feature rows.

For every `PACKAGE:ARCH` line of packages.txt this downloads the .deb with
`apt-get download` (through a private apt configuration under DATA/apt, so the
machine's own apt state and architectures are left alone), unpacks it with
`dpkg-deb -x` into a scratch directory, writes one feature row per ELF file or
script with `vigil features`, and deletes the scratch directory. Rows carry the
labels label=0, package, source, arch and version.

Packages reserved for independent evaluation -- those whose binary *or* source
package name has a SHA-256 hex digest starting with 0 or 1 -- are refused here,
whatever the list says, so they can never reach training, validation or tuning.

Hard benign cases that Debian does not ship ready-made are built from the
downloaded packages themselves (see make_hard_benign): 7-Zip self-extracting ELF
executables (the 7zCon.sfx stub with a compressed payload appended) and makeself
self-extracting shell archives; programs compiled here, not the way Debian
builds them (build_local.py); and out-of-tree kernel modules built here from
Debian's DKMS sources (build_kmod.py).

Idempotent: a package whose CSV exists and holds rows of the vigil binary's
feature schema is skipped, so an interrupted run resumes. The downloaded .debs are
kept (DATA/debs, about 1.2 GB), so a schema change re-extracts rows from them
without fetching anything again; --drop-debs deletes them after the run.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent


def reserved(name: str) -> bool:
    """True for a package name reserved for independent evaluation."""
    return hashlib.sha256(name.encode()).hexdigest()[0] in "01"


def apt_env(data: Path, entries: list[str]) -> dict[str, str]:
    """A private apt configuration: host sources, the architectures of `entries`
    (each one more Packages index for `apt-get update` to fetch)."""
    root = data / "apt"
    for d in ("lists/partial", "cache/archives/partial", "etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    # The host's deb822 sources, main suites only (the security mirror does not
    # carry every architecture).
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    stanzas = []
    for s in sources:
        for stanza in s.read_text().split("\n\n"):
            if "Components:" in stanza and "security" not in stanza:
                stanzas.append(stanza.strip())
    if not stanzas:
        sys.exit("fetch_debian: no Debian main source in /etc/apt/sources.list.d/*.sources")
    (root / "etc" / "debian.sources").write_text("\n\n".join(stanzas) + "\n")
    (root / "etc" / "status").touch()
    arches = sorted({e.split(":")[1] for e in entries if ":" in e} | {"amd64"})
    conf = root / "apt.conf"
    conf.write_text(
        f'Dir::Etc::SourceList "/dev/null";\n'
        f'Dir::Etc::SourceParts "{root}/etc";\n'
        f'Dir::State::Lists "{root}/lists";\n'
        f'Dir::State::status "{root}/etc/status";\n'
        f'Dir::Cache "{root}/cache";\n'
        f'APT::Architecture "amd64";\n'
        f'APT::Architectures {{ {" ".join(f"{a!r};" for a in arches)} }};\n'.replace("'", '"')
        + 'Debug::NoLocking "true";\n'
    )
    env = dict(os.environ, APT_CONFIG=str(conf), LC_ALL="C")
    return env


def read_list(path: Path = HERE / "packages.txt") -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


@functools.cache
def current_schema(vigil: str) -> str:
    """The feature schema the vigil binary writes (its `schema` column), read from
    its row for a small ELF program (`true`, else itself; resolved, because
    `vigil features` skips symlinks)."""
    probe = str(Path(shutil.which("true") or shutil.which(vigil) or vigil).resolve())
    r = subprocess.run([vigil, "features", probe], capture_output=True, text=True, check=True)
    rows = list(csv.DictReader(r.stdout.splitlines()))
    if not rows:
        sys.exit(f"fetch_debian: {vigil} wrote no feature row for {probe}")
    return rows[0]["schema"]


def fresh(out_csv: Path, vigil: str) -> bool:
    """True when `out_csv` exists and its rows (if any) are of the current schema."""
    if not out_csv.exists():
        return False
    with open(out_csv, newline="") as f:
        first = next(csv.DictReader(f), None)
    return first is None or first.get("schema") == current_schema(vigil)


def control_field(deb: Path, field: str) -> str:
    r = subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True)
    return r.stdout.strip()


def features(vigil: str, out_csv: Path, paths: list[Path], labels: dict[str, str]) -> None:
    cmd = [vigil, "features"]
    for k, v in labels.items():
        cmd += ["--label", f"{k}={v}"]
    cmd += [str(p) for p in paths]
    tmp = out_csv.with_suffix(".part")
    with open(tmp, "w") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.DEVNULL, check=True)
    tmp.rename(out_csv)


def download(entries: list[str], env: dict[str, str], debs: Path, vigil: str) -> dict[str, str]:
    """Downloads the .debs of `entries` in batches; returns entry -> status."""
    debs.mkdir(parents=True, exist_ok=True)
    status: dict[str, str] = {}
    # Entries with current feature rows need no .deb (a rerun only fetches
    # what is new in packages.txt, or what a schema change needs again).
    todo = [e for e in entries
            if not (debs / "done" / e).exists() and not fresh(csv_for(e, debs.parent), vigil)]
    # Which entries exist at all, in one apt-cache run (apt's start-up costs
    # seconds; asking per package would dominate the whole fetch).
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", *todo], env=env, capture_output=True, text=True)
    known = set()
    pkg = None
    for line in r.stdout.splitlines():
        if line.startswith("Package: "):
            pkg = line.split(" ", 1)[1]
        elif line.startswith("Architecture: ") and pkg:
            arch = line.split(" ", 1)[1]
            known.add(f"{pkg}:{arch}")
    for e in todo:
        if e not in known and not (e.endswith(":amd64") and f"{e.split(':')[0]}:all" in known):
            status[e] = "unavailable in this mirror"
    todo = [e for e in todo if e not in status]

    def run(batch: list[str]) -> bool:
        r = subprocess.run(["apt-get", "download", "-q", *batch], cwd=debs, env=env, capture_output=True, text=True)
        if r.returncode == 0:
            (debs / "done").mkdir(exist_ok=True)
            for e in batch:
                (debs / "done" / e).touch()
            return True
        if len(batch) == 1:
            status[batch[0]] = "unavailable: " + (r.stderr.strip().splitlines() or ["?"])[-1]
        return False

    # One apt-get run per 40 packages (apt's start-up dominates a single
    # download); a batch that fails (one name unknown on one architecture) is
    # retried one package at a time.
    for i in range(0, len(todo), 40):
        batch = todo[i : i + 40]
        if not run(batch):
            for e in batch:
                run([e])
        print(f"downloaded {min(i + 40, len(todo))}/{len(todo)}", flush=True)
    return status


def csv_for(entry: str, data: Path) -> Path:
    """Where an entry's feature rows go."""
    pkg, _, arch = entry.partition(":")
    return data / "features" / f"{pkg}_{arch}.csv"


def deb_for(entry: str, debs: Path) -> Path | None:
    pkg, _, arch = entry.partition(":")
    # Debian file names escape ':' in epochs as %3a; versions never hold '_'.
    found = sorted(debs.glob(f"{pkg}_*_{arch}.deb")) or sorted(debs.glob(f"{pkg}_*_all.deb"))
    return found[0] if found else None


def process(entry: str, data: Path, vigil: str) -> str:
    """Unpacks one downloaded .deb into scratch space and writes its feature rows."""
    pkg, _, arch = entry.partition(":")
    out_csv = csv_for(entry, data)
    if fresh(out_csv, vigil):
        return "cached"
    if reserved(pkg):
        return "reserved"
    deb = deb_for(entry, data / "debs")
    if deb is None:
        return "no .deb"
    source = control_field(deb, "Source").split(" ")[0] or pkg
    if reserved(source):
        return f"reserved (source {source})"
    version = control_field(deb, "Version")
    with tempfile.TemporaryDirectory(prefix="vigil-deb-", dir=data) as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        for p in Path(tmp).rglob("*"):
            # Benign, but nothing here is ever run from the scratch tree.
            if p.is_file() and not p.is_symlink():
                p.chmod(0o644)
        features(vigil, out_csv, [Path(tmp)], {
            "label": "0", "package": pkg, "source": source, "arch": arch, "version": version,
        })
    return "ok"


def make_hard_benign(env: dict[str, str], data: Path, vigil: str) -> str:
    """Self-extracting archives from benign content: ELF (7-Zip SFX) and shell (makeself)."""
    out_csv = data / "features" / "hard-benign-sfx_amd64.csv"
    if fresh(out_csv, vigil):
        return "cached"
    work = data / "sfx-build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tools = work / "tools"
    # 7zip has the archiver, p7zip-full the console SFX stub (an ELF program
    # that unpacks the 7z archive appended to it), makeself the shell variant.
    for pkg in ("7zip", "p7zip-full", "makeself"):
        r = subprocess.run(["apt-get", "download", "-q", pkg], cwd=work, env=env, capture_output=True)
        if r.returncode != 0:
            return f"skipped: cannot download {pkg}"
    for deb in work.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tools)], check=True)
    sevenz = tools / "usr/bin/7zz"
    sfx = next(iter(sorted(tools.rglob("7zCon.sfx"))), None)
    makeself = tools / "usr/bin/makeself"
    header = tools / "usr/share/makeself/makeself-header.sh"
    out = work / "out"
    out.mkdir()
    # Payloads: benign trees of different kinds and sizes, taken from this
    # machine's own documentation and libraries.
    payloads = [
        Path("/usr/share/doc/coreutils"), Path("/usr/share/common-licenses"), Path("/usr/share/perl5/Getopt"),
        Path("/usr/lib/python3.11/json"), Path("/usr/lib/python3.11/email"), Path("/usr/share/zoneinfo/Europe"),
        Path("/usr/lib/x86_64-linux-gnu/gconv"), Path("/usr/share/i18n/charmaps"), Path("/etc/ssl/certs"),
        Path("/usr/share/bash-completion/completions"),
    ]
    payloads = [p for p in payloads if p.is_dir()]
    made = 0
    for i, payload in enumerate(payloads):
        if sevenz.exists() and sfx is not None:
            for level in ("-mx1", "-mx9"):
                target = out / f"sfx-{i}{level}.bin"
                r = subprocess.run(
                    [str(sevenz), "a", "-bd", "-y", level, f"-sfx{sfx}", str(target), str(payload)],
                    capture_output=True,
                )
                made += r.returncode == 0
        if makeself.exists():
            target = out / f"makeself-{i}.run"
            r = subprocess.run(
                ["bash", str(makeself), "--quiet", "--nox11", "--header", str(header), str(payload), str(target),
                 f"payload {i}", "true"],
                capture_output=True,
                env=dict(os.environ, PATH=f"{tools}/usr/bin:" + os.environ.get("PATH", "")),
            )
            made += r.returncode == 0
    for p in out.iterdir():
        p.chmod(0o644)
    features(vigil, out_csv, [out], {
        "label": "0", "package": "hard-benign-sfx", "source": "hard-benign-sfx", "arch": "amd64",
        "version": "built",
    })
    shutil.rmtree(work, ignore_errors=True)
    return f"ok ({made} archives)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("VIGIL_TRAIN_DATA", "/var/cache/vigil-train")))
    ap.add_argument("--vigil", default="target/release/vigil", help="the vigil binary (for `vigil features`)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N list entries (smoke runs)")
    ap.add_argument("--drop-debs", action="store_true",
                    help="delete the downloaded .deb files after the run (a schema change then fetches them again)")
    ap.add_argument("--list", type=Path, default=HERE / "packages.txt",
                    help="the package list (calibration.txt for the block-threshold calibration set)")
    ap.add_argument("--download-only", action="store_true",
                    help="only download the listed .debs into DATA/debs (kept; rows are written by a later run)")
    ap.add_argument("--packages-only", action="store_true",
                    help="only the listed packages: no hard benign files, local builds or wheels")
    args = ap.parse_args()

    entries = read_list(args.list)
    bad = [e for e in entries if reserved(e.split(":")[0])]
    if bad:
        sys.exit(f"fetch_debian: {args.list.name} lists packages reserved for evaluation: {bad}")
    if args.limit:
        entries = entries[: args.limit]
    (args.data / "features").mkdir(parents=True, exist_ok=True)
    env = apt_env(args.data, entries)
    r = subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"fetch_debian: apt-get update failed:\n{r.stderr}")
    status = download(entries, env, args.data / "debs", args.vigil)
    if args.download_only:
        print(f"fetch_debian: {len(entries) - len(status)} of {len(entries)} packages downloaded", flush=True)
        return
    todo = [e for e in entries if e not in status]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for n, (entry, result) in enumerate(zip(todo, pool.map(lambda e: process(e, args.data, args.vigil), todo)), 1):
            status[entry] = result
            print(f"[{n}/{len(todo)}] {entry}: {result}", flush=True)
    if args.drop_debs:
        shutil.rmtree(args.data / "debs", ignore_errors=True)
    if not args.packages_only:
        if not args.limit:
            print("hard benign:", make_hard_benign(env, args.data, args.vigil), flush=True)
        # Programs built here (a smoke run builds four, to exercise the path).
        from build_local import build_local

        print("built locally:", build_local(env, args.data, args.vigil, smoke=bool(args.limit)), flush=True)
        if not args.limit:
            # Out-of-tree kernel modules (a full run only: the headers are 60 MB).
            from build_kmod import build_kmod

            print("kernel modules built here:", build_kmod(env, args.data, args.vigil), flush=True)
        from fetch_wheels import fetch_wheels

        print("wheels from PyPI:", fetch_wheels(args.data, args.vigil, smoke=bool(args.limit)), flush=True)
    ok = sum(1 for s in status.values() if s in ("ok", "cached"))
    print(f"fetch_debian: {ok} of {len(entries)} packages have feature rows in {args.data}/features")
    if ok == 0:
        sys.exit("fetch_debian: no package could be fetched")


if __name__ == "__main__":
    main()
