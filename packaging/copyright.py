#!/usr/bin/env python3
"""Writes the Debian machine-readable copyright file (also shipped in the .rpm)
to stdout: vigil's own licence, then every crate linked into the `vigil`
binary with the licence its Cargo.toml declares, from `cargo metadata`.

    cargo metadata --format-version 1 --locked --filter-platform HOST | packaging/copyright.py
"""
import json
import sys

meta = json.load(sys.stdin)
pkgs = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = next(p["id"] for p in meta["packages"]
            if p["name"] == "vigil" and p["source"] is None)

# Normal (not dev, not build) dependencies reachable from the vigil package:
# what ends up in the binary.
seen, todo = set(), [root]
while todo:
    cur = todo.pop()
    for dep in nodes[cur]["deps"]:
        if any(k["kind"] is None for k in dep["dep_kinds"]) and dep["pkg"] not in seen:
            seen.add(dep["pkg"])
            todo.append(dep["pkg"])

print("""Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: vigil
Source: https://example.invalid/vigil

Files: *
Copyright: 2026 vigil developers
License: Apache-2.0

Files: agent/bpf/*
Copyright: 2026 vigil developers
License: GPL-2.0-only or BSD-2-Clause
Comment: the exec guard's eBPF program, compiled into /usr/bin/vigil; the
 kernel runs LSM and tracing programs only under a GPL-compatible licence.

License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 can be
 found in the file /usr/share/common-licenses/Apache-2.0.

License: GPL-2.0-only
 On Debian systems, the full text of the GNU General Public License version 2
 can be found in the file /usr/share/common-licenses/GPL-2.

License: BSD-2-Clause
 Redistribution and use in source and binary forms, with or without
 modification, are permitted provided that the following conditions are met:
 .
 1. Redistributions of source code must retain the above copyright notice,
 this list of conditions and the following disclaimer.
 .
 2. Redistributions in binary form must reproduce the above copyright notice,
 this list of conditions and the following disclaimer in the documentation
 and/or other materials provided with the distribution.
 .
 THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
 AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
 IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE
 ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE
 LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR
 CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF
 SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS
 INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN
 CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE)
 ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE
 POSSIBILITY OF SUCH DAMAGE.

Comment: Rust crates /usr/bin/vigil is built from (statically linked, or
 proc macros used at build time), with the licence
 each declares in its Cargo.toml (crate version: licence expression):""")
for pid in sorted(seen, key=lambda i: (pkgs[i]["name"], pkgs[i]["version"])):
    p = pkgs[pid]
    if p["source"] is None:
        continue  # workspace crates: Files: * above
    print(f" {p['name']} {p['version']}: {p['license'] or 'see ' + (p.get('license_file') or 'crate')}")
