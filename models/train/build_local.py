#!/usr/bin/env python3
"""Hard benign cases built here: programs compiled the way a developer, a small
project or an embedded build compiles them, not the way Debian does.

Every Debian binary is built with the same hardening flags, stripped, and
linked against the distribution's libraries. Malware is not. Without programs
that are benign *and* built differently, a model can learn "not built like a
Debian package" instead of "malicious": it then flags the first `cc hello.c`
a developer runs. This script compiles benign sources from Debian packages
with a spread of settings -- -O0/-O2/-Os/-O3, debug info, stripped, static,
non-PIE, hardened, object files -- for x86-64, i386, arm64, armel, MIPS32
(big endian), PowerPC and SH-4, plus Go programs for six architectures and
Rust programs:

- C: the GCC torture programs (`gcc/testsuite/gcc.c-torture/execute`, small
  self-checking programs) from `gcc-12-source`;
- C++: the libstdc++ tests for strings, containers and algorithms, same source;
- network clients: libcurl's example programs (`libcurl4-doc`);
- Go: `go test -c` of standard-library packages and a few of Go's own tools
  (`golang-1.19-src`), stripped and not;
- Rust: `local-rust/` (small programs on popular crates, Cargo.lock pinned,
  crates from crates.io) in debug and release, with everything cargo leaves:
  test binaries, build scripts, proc-macro libraries, -sys crates' objects.

Toolchains (cross compilers, the i386 multilib runtime, Go) are downloaded with
`apt-get download` through fetch_debian's private apt configuration and unpacked
into scratch space, so the machine's own packages are left alone. No package
reserved for independent evaluation (name digest starting 0 or 1) is used,
either as a source or as a tool: that is why armel and SH-4 are built static
only (their libgcc_s and kernel-header packages are reserved) and MIPS is the
mipsisa32r6 toolchain (binutils-mips-linux-gnu is reserved).

Rows get label=0, version=built, and package = source = `local:<set>:<program>`,
so every build of one program lands in one cross-validation group. The built
files are never run. Output: DATA/features/local-<set>_<arch>.csv.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fetch_debian import HERE, features, fresh, reserved

# target arch -> (compiler triplet, packages, static only)
CROSS = {
    "arm64": ("aarch64-linux-gnu", ["gcc-12-aarch64-linux-gnu", "cpp-12-aarch64-linux-gnu",
              "binutils-aarch64-linux-gnu", "libgcc-12-dev-arm64-cross", "libc6-dev-arm64-cross",
              "libc6-arm64-cross", "linux-libc-dev-arm64-cross", "libgcc-s1-arm64-cross"], False),
    "armel": ("arm-linux-gnueabi", ["gcc-12-arm-linux-gnueabi", "cpp-12-arm-linux-gnueabi",
              "binutils-arm-linux-gnueabi", "libgcc-12-dev-armel-cross", "libc6-dev-armel-cross",
              "libc6-armel-cross"], True),
    "mipsr6": ("mipsisa32r6-linux-gnu", ["gcc-12-mipsisa32r6-linux-gnu", "cpp-12-mipsisa32r6-linux-gnu",
               "binutils-mipsisa32r6-linux-gnu", "libgcc-12-dev-mipsr6-cross", "libc6-dev-mipsr6-cross",
               "libc6-mipsr6-cross", "linux-libc-dev-mipsr6-cross", "libgcc-s1-mipsr6-cross"], False),
    "powerpc": ("powerpc-linux-gnu", ["gcc-12-powerpc-linux-gnu", "cpp-12-powerpc-linux-gnu",
                "binutils-powerpc-linux-gnu", "libgcc-12-dev-powerpc-cross", "libc6-dev-powerpc-cross",
                "libc6-powerpc-cross", "linux-libc-dev-powerpc-cross", "libgcc-s1-powerpc-cross"], False),
    "sh4": ("sh4-linux-gnu", ["gcc-12-sh4-linux-gnu", "cpp-12-sh4-linux-gnu", "binutils-sh4-linux-gnu",
            "libgcc-12-dev-sh4-cross", "libc6-dev-sh4-cross", "libc6-sh4-cross",
            "linux-libc-dev-sh4-cross"], True),
}
# The host gcc's 32-bit runtime, as a sysroot of its own (with the 64-bit
# headers, which glibc shares between the two).
I386 = ["lib32gcc-12-dev", "libc6-dev-i386", "libc6-i386", "lib32gcc-s1", "libc6-dev", "libc6",
        "linux-libc-dev", "libgcc-12-dev"]
GCC = ["gcc-12-source"]
CURL = ["libcurl4-doc", "libcurl4-openssl-dev", "libcurl4"]
GO = ["golang-1.19-go", "golang-1.19-src"]

# Compiler settings; each program gets a few, chosen by the hash of its name.
C_VARIANTS = [
    ["-O0"], ["-O2"], ["-O0", "-g"], ["-Os", "-s"], ["-O2", "-static"], ["-O2", "-static", "-s"],
    ["-O2", "-fno-pie", "-no-pie"], ["-O3", "-g"],
    ["-O2", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "-Wl,-z,relro,-z,now", "-s"],
    # Object files: a build tree is full of them, and the linker opens each.
    ["-O2", "-c"], ["-O0", "-g", "-c"],
]
STATIC_VARIANTS = [["-static", "-O2"], ["-static", "-Os", "-s"], ["-static", "-O0", "-g"], ["-static", "-O2", "-s"],
                   ["-O2", "-c"]]
CXX_VARIANTS = [["-O0", "-g"], ["-O2"], ["-O2", "-s"], ["-Os", "-static", "-s"]]
GO_ARCHES = {"amd64": {}, "i386": {"GOARCH": "386"}, "arm64": {"GOARCH": "arm64"},
             "armel": {"GOARCH": "arm", "GOARM": "5"}, "mips": {"GOARCH": "mips"},
             "mipsel": {"GOARCH": "mipsle"}}
GO_TESTS = ["strings", "bytes", "sort", "strconv", "unicode/utf8", "container/list", "encoding/json",
            "encoding/base64", "compress/gzip", "crypto/sha256", "math/big", "regexp", "text/template",
            "bufio", "hash/crc32", "encoding/csv", "archive/tar", "path/filepath"]
GO_TOOLS = ["cmd/gofmt", "cmd/addr2line", "cmd/nm", "cmd/pack", "cmd/buildid", "cmd/test2json"]
GO_VARIANTS = [[], ["-ldflags=-s -w"], ["-trimpath"]]

# How many programs of each C/C++ set per architecture (x86-64 gets more).
PER_ARCH = {"amd64": 320, "i386": 150, "cross": 130}
CXX_COUNT = 160


def pick(name: str, salt: str, n: int) -> int:
    return int(hashlib.sha256(f"{salt}:{name}".encode()).hexdigest()[:8], 16) % n


def choose(names: list[str], salt: str, count: int) -> list[str]:
    """A reproducible sample of `count` names, different for each salt."""
    return sorted(names, key=lambda n: hashlib.sha256(f"{salt}:{n}".encode()).hexdigest())[:count]


@dataclass
class Job:
    set: str
    arch: str
    program: str
    cmd: list[str]
    out: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


def download(env: dict[str, str], debs: Path, packages: list[str]) -> None:
    bad = [p for p in packages if reserved(p)]
    if bad:
        raise SystemExit(f"build_local: toolchain list names packages reserved for evaluation: {bad}")
    debs.mkdir(parents=True, exist_ok=True)
    todo = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if todo:
        r = subprocess.run(["apt-get", "download", "-q", *todo], cwd=debs, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"build_local: apt-get download {' '.join(todo)} failed:\n{r.stderr}")


def unpack(debs: Path, packages: list[str], root: Path) -> Path:
    """Unpacks packages into `root`, with absolute symlinks made to point inside it
    (a linker script or a loader link naming /lib/... must find root's copy)."""
    if root.exists():
        return root
    tmp = root.with_suffix(".part")
    shutil.rmtree(tmp, ignore_errors=True)
    for p in packages:
        found = sorted(debs.glob(f"{p}_*.deb"))
        if not found:
            raise SystemExit(f"build_local: {p} was not downloaded to {debs}")
        deb = found[0]
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    for link in [p for p in tmp.rglob("*") if p.is_symlink()]:
        target = os.readlink(link)
        if target.startswith("/"):
            link.unlink()
            link.symlink_to(str(root) + target)
    tmp.rename(root)
    return root


def gcc_sources(work: Path, debs: Path) -> Path:
    """The GCC torture programs and libstdc++ tests, from gcc-12-source's tarball."""
    src = work / "gcc-src"
    if src.exists():
        return src
    pkg = unpack(debs, ["gcc-12-source"], work / "gcc-12-source")
    tarballs = sorted(pkg.glob("usr/src/gcc-12/gcc-*.tar.xz"))
    if not tarballs:
        raise SystemExit(f"build_local: no gcc-*.tar.xz in {pkg}/usr/src/gcc-12")
    tarball = tarballs[0]
    tmp = src.with_suffix(".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    wanted = ("gcc/testsuite/gcc.c-torture/execute/", "libstdc++-v3/testsuite/21_strings/",
              "libstdc++-v3/testsuite/23_containers/", "libstdc++-v3/testsuite/25_algorithms/",
              "libstdc++-v3/testsuite/util/")
    with tarfile.open(tarball) as tar:
        for m in tar:
            rel = m.name.split("/", 1)[1] if "/" in m.name else ""
            if m.isfile() and rel.startswith(wanted):
                m.name = rel
                tar.extract(m, tmp, filter="data")
    shutil.rmtree(pkg)
    tmp.rename(src)
    return src


def add(jobs: list[Job], out: Path, set_: str, arch: str, path: Path, variants: list[list[str]], n: int,
        base: list[str], tail: list[str], env: dict[str, str] | None = None) -> None:
    """`n` builds of one C program, with settings chosen by the hash of its name."""
    for k in range(n):
        v = (pick(path.name, f"{set_}:{arch}", len(variants)) + k) % len(variants)
        target = out / set_ / arch / f"{path.stem}.v{v}"
        jobs.append(Job(set_, arch, path.stem, [*base, "-w", *variants[v], str(path), "-o", str(target), *tail],
                        target, env or {}))


def c_jobs(work: Path, src: Path, roots: dict[str, Path]) -> list[Job]:
    """GCC's torture programs for every architecture, libstdc++'s tests for x86-64."""
    out = work / "out"
    jobs: list[Job] = []
    tdir = src / "gcc/testsuite/gcc.c-torture/execute"
    torture = sorted(p.name for p in tdir.glob("*.c"))
    for name in choose(torture, "amd64", PER_ARCH["amd64"]):
        add(jobs, out, "c", "amd64", tdir / name, C_VARIANTS, 3, ["gcc-12"], ["-lm"])
    i386 = roots["i386"]
    for name in choose(torture, "i386", PER_ARCH["i386"]):
        add(jobs, out, "c", "i386", tdir / name, C_VARIANTS, 2,
            ["gcc-12", "-m32", f"--sysroot={i386}", "-B", f"{i386}/usr/lib/gcc/x86_64-linux-gnu/12/"], ["-lm"])
    for arch, (triplet, _, static_only) in CROSS.items():
        root = roots[arch]
        env = {"LD_LIBRARY_PATH": f"{root}/usr/lib/x86_64-linux-gnu"}
        for name in choose(torture, arch, PER_ARCH["cross"]):
            add(jobs, out, "c", arch, tdir / name, STATIC_VARIANTS if static_only else C_VARIANTS, 2,
                [f"{root}/usr/bin/{triplet}-gcc-12", f"--sysroot={root}"], ["-lm"], env)

    cxx = sorted(p for d in ("21_strings", "23_containers", "25_algorithms")
                 for p in (src / "libstdc++-v3/testsuite" / d).rglob("*.cc"))
    by_name = {str(p.relative_to(src)): p for p in cxx}
    for name in choose(list(by_name), "c++", CXX_COUNT):
        p = by_name[name]
        flat = name.replace("/", "_").removesuffix(".cc")
        v = pick(name, "c++", len(CXX_VARIANTS))
        for k in range(2):
            vv = (v + k) % len(CXX_VARIANTS)
            target = out / "c++" / "amd64" / f"{flat}.v{vv}"
            jobs.append(Job("c++", "amd64", flat,
                            ["g++-12", "-std=gnu++17", "-w", "-I", str(src / "libstdc++-v3/testsuite/util"),
                             *CXX_VARIANTS[vv], str(p), "-o", str(target)], target))
    return jobs


def curl_jobs(work: Path, curl: Path, limit: int = 0, n: int = 3) -> list[Job]:
    """libcurl's example programs: HTTP, FTP, SMTP and IMAP clients."""
    jobs: list[Job] = []
    examples = sorted((curl / "usr/share/doc").glob("libcurl4*/examples/*.c"))
    for p in examples[:limit] if limit else examples:
        add(jobs, work / "out", "curl", "amd64", p, [v for v in C_VARIANTS if "-static" not in v], n,
            ["gcc-12", "-I", f"{curl}/usr/include/x86_64-linux-gnu"],
            ["-L", f"{curl}/usr/lib/x86_64-linux-gnu", "-lcurl", "-lpthread", "-Wl,--allow-shlib-undefined"])
    return jobs


def go_jobs(work: Path, go: Path) -> list[Job]:
    goroot = go / "usr/lib/go-1.19"
    out = work / "out"
    jobs = []
    for arch, goenv in GO_ARCHES.items():
        env = {"GOROOT": str(goroot), "GOCACHE": str(work / "gocache"), "GOPATH": str(work / "gopath"),
               "GOENV": "off", "GOFLAGS": "-buildvcs=false", "CGO_ENABLED": "0", "HOME": str(work), **goenv}
        for pkg in GO_TESTS + GO_TOOLS:
            v = pick(pkg, f"go:{arch}", len(GO_VARIANTS))
            flat = pkg.replace("/", "_")
            target = out / "go" / arch / f"{flat}.v{v}"
            verb = ["build"] if pkg.startswith("cmd/") else ["test", "-c"]
            jobs.append(Job("go", arch, flat, [str(goroot / "bin/go"), *verb, *GO_VARIANTS[v], "-o", str(target), pkg],
                            target, env, cwd=work))
    return jobs


def rust_jobs(work: Path) -> list[Job]:
    """Builds local-rust/ (a few small programs on popular crates, Cargo.lock
    committed) in debug and release, plus its tests, and returns every ELF file
    cargo left: programs, test binaries, build scripts, proc-macro libraries,
    and the C and assembly objects of -sys crates (SQLite, zstd, ring)."""
    target = work / "rust-target"
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo/bin/cargo")
    for cmd in (["build", "--bins"], ["build", "--release", "--bins"], ["test", "--no-run"]):
        r = subprocess.run([cargo, *cmd, "--locked", "--quiet"], cwd=HERE / "local-rust",
                           env=dict(os.environ, CARGO_TARGET_DIR=str(target)), capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"build_local: cargo {' '.join(cmd)} in {HERE / 'local-rust'} failed:\n{r.stderr}")
    jobs = []
    for profile in ("debug", "release"):
        for p in sorted((target / profile).rglob("*")):
            if p.is_symlink() or not p.is_file() or "incremental" in p.parts:
                continue
            with open(p, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
            rel = p.relative_to(target / profile).parts
            # build/<crate>-<hash>/..., deps/<crate>-<hash>[.so], or a program at the top
            name = rel[1] if rel[0] in ("build", "deps") and len(rel) > 1 else rel[-1]
            crate = name.split(".")[0].rsplit("-", 1)[0].removeprefix("lib")
            jobs.append(Job("rust", "amd64", crate, [], p))
    # Release programs stripped, as they would be shipped.
    stripped = work / "out" / "rust-stripped"
    stripped.mkdir(parents=True, exist_ok=True)
    for p in sorted((target / "release").iterdir()):
        if p.is_file() and os.access(p, os.X_OK) and not p.suffix:
            out = stripped / p.name
            if subprocess.run(["strip", "-o", str(out), str(p)], capture_output=True).returncode == 0:
                jobs.append(Job("rust", "amd64", p.name, [], out))
    return jobs


def run(job: Job) -> bool:
    if job.out.exists():
        return True
    job.out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LC_ALL="C", **job.env)
    try:
        r = subprocess.run(job.cmd, env=env, cwd=job.cwd or job.out.parent, capture_output=True, timeout=600)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0 and job.out.exists()


def rows(vigil: str, data: Path, jobs: list[Job]) -> dict[str, int]:
    """Feature rows for what was built, one CSV per (set, arch); package and
    source name the program, so its builds stay in one group."""
    written: dict[str, int] = {}
    built = [j for j in jobs if j.out.exists()]
    for key in sorted({(j.set, j.arch) for j in built}):
        set_, arch = key
        out_csv = data / "features" / f"local-{set_.replace('+', 'x')}_{arch}.csv"
        group = [j for j in built if (j.set, j.arch) == key]
        for j in group:
            j.out.chmod(0o644)  # never run from here
        raw = out_csv.with_suffix(".unlabelled")
        features(vigil, raw, [j.out for j in group],
                 {"label": "0", "package": "-", "source": "-", "arch": arch, "version": "built"})
        program = {str(j.out): j.program for j in group}
        part = out_csv.with_suffix(".relabel")
        with open(raw, newline="") as f, open(part, "w", newline="") as g:
            reader = csv.DictReader(f)
            writer = csv.DictWriter(g, fieldnames=reader.fieldnames or [])
            writer.writeheader()
            n = 0
            for row in reader:
                name = f"local:{set_}:{program.get(row['name'], Path(row['name']).name)}"
                row["package"] = row["source"] = name
                writer.writerow(row)
                n += 1
        raw.unlink()
        part.rename(out_csv)
        written[out_csv.name] = n
    return written


def keep(jobs: list[Job], kept: Path) -> None:
    """Moves what `jobs` built into `kept` (replacing it), listed in jobs.json
    with each one's set, architecture and program, for `load_kept`."""
    shutil.rmtree(kept, ignore_errors=True)
    kept.mkdir(parents=True)
    listed = []
    for i, j in enumerate(j for j in jobs if j.out.exists()):
        name = f"{i:05d}-{j.out.name}"
        shutil.move(str(j.out), kept / name)
        listed.append({"set": j.set, "arch": j.arch, "program": j.program, "out": name})
    (kept / "jobs.json").write_text(json.dumps(listed) + "\n")


def load_kept(kept: Path) -> list[Job] | None:
    """The jobs `keep` left in `kept`, or None when nothing was kept."""
    if not (kept / "jobs.json").exists():
        return None
    return [Job(j["set"], j["arch"], j["program"], [], kept / j["out"])
            for j in json.loads((kept / "jobs.json").read_text())]


def build_local(env: dict[str, str], data: Path, vigil: str, smoke: bool = False) -> str:
    """Builds everything (or, for a smoke run, four curl examples once each)
    and writes its feature rows. The programs built are kept (DATA/local-built,
    with jobs.json naming each one's set, architecture and program), so a rerun
    with rows of the current feature schema does nothing and one after a schema
    change only writes rows again."""
    existing = list((data / "features").glob("local-*.csv"))
    if existing and all(fresh(p, vigil) for p in existing):
        return "cached"
    kept = data / "local-built"
    jobs = load_kept(kept)
    if jobs is not None:
        return f"rows again from the kept builds: {rows(vigil, data, jobs)}"
    work = data / "local-build"
    debs = work / "debs"
    download(env, debs, CURL if smoke else CURL + GCC + I386 + GO + [p for _, pkgs, _ in CROSS.values() for p in pkgs])
    curl = unpack(debs, CURL, work / "root-curl")
    if smoke:
        jobs = curl_jobs(work, curl, limit=4, n=1)
    else:
        roots = {arch: unpack(debs, pkgs, work / f"root-{arch}") for arch, (_, pkgs, _) in CROSS.items()}
        roots["i386"] = unpack(debs, I386, work / "root-i386")
        go = unpack(debs, GO, work / "root-go")
        src = gcc_sources(work, debs)
        jobs = c_jobs(work, src, roots) + curl_jobs(work, curl) + go_jobs(work, go) + rust_jobs(work)
    ok = failed = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for n, good in enumerate(pool.map(run, jobs), 1):
            ok += good
            failed += not good
            if n % 200 == 0 or n == len(jobs):
                print(f"local builds: {n}/{len(jobs)} ({failed} did not build)", flush=True)
    written = rows(vigil, data, jobs)
    # Keep what was built (not the toolchains and sources): a schema change then
    # needs no rebuild.
    keep(jobs, kept)
    shutil.rmtree(work, ignore_errors=True)
    return f"ok ({ok} built, {failed} did not build; rows: {written})"
