//! Compiles the exec guard's BPF program (bpf/guard.bpf.c) with clang into
//! `$OUT_DIR/guard.bpf.o`, which the agent embeds and loads with aya.
//!
//! Needs clang with the BPF target (Debian/Ubuntu: `apt-get install clang`;
//! Fedora: `dnf install clang`); `VIGIL_CLANG` names another clang binary.
//! No libbpf headers, bpftool or kernel headers: the program declares the few
//! helpers and kernel structures it uses itself (CO-RE, resolved at load time).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bpf/guard.bpf.c");
    println!("cargo:rerun-if-changed=bpf/guard_types.h");
    println!("cargo:rerun-if-env-changed=VIGIL_CLANG");
    let clang = std::env::var("VIGIL_CLANG").unwrap_or_else(|_| "clang".to_owned());
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out.join("guard.bpf.o");
    let status = Command::new(&clang)
        .args([
            "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror",
        ])
        .args(["-c", "bpf/guard.bpf.c", "-o"])
        .arg(&object)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} failed to compile bpf/guard.bpf.c ({s})"),
        Err(e) => panic!(
            "cannot run {clang} ({e}): building vigil needs clang for its eBPF exec guard \
             (Debian/Ubuntu: apt-get install clang; Fedora: dnf install clang), \
             or set VIGIL_CLANG to a clang binary"
        ),
    }
}
