//! The interpreter group: whether the program asks for a dynamic loader
//! (`PT_INTERP`), whether that is a standard loader path, and which libc family it
//! implies.
//!
//! Owns the list of known loader paths. A nonstandard interpreter (a private loader
//! dropped next to the payload) is rare in benign software.

use super::Input;
use super::elf::clamped;
use super::row::{Row, columns};
use goblin::elf::program_header::PT_INTERP;

columns! {
    /// Columns of the interpreter group.
    Col {
        Present = "interp_present",
        Known = "interp_known_loader",
        SmallLibc = "interp_musl_or_uclibc",
        Android = "interp_android",
        Nonstandard = "interp_nonstandard",
        Invalid = "interp_invalid",
    }
}

/// Number of columns of this group.
pub(crate) const LEN: usize = Col::NAMES.len();

/// Loader paths of glibc, musl, uClibc, bionic and the BSDs on common architectures.
const KNOWN_LOADERS: &[&[u8]] = &[
    b"/lib64/ld-linux-x86-64.so.2",
    b"/lib/ld-linux-x86-64.so.2",
    b"/libx32/ld-linux-x32.so.2",
    b"/lib/ld-linux.so.2",
    b"/lib/ld-linux.so.3",
    b"/lib/ld-linux-armhf.so.3",
    b"/lib/ld-linux-aarch64.so.1",
    b"/lib/ld-linux-aarch64_be.so.1",
    b"/lib/ld.so.1",
    b"/lib32/ld.so.1",
    b"/lib64/ld.so.1",
    b"/lib/ld64.so.1",
    b"/lib64/ld64.so.1",
    b"/lib64/ld64.so.2",
    b"/lib/ld-linux-riscv64-lp64d.so.1",
    b"/lib/ld-linux-riscv64-lp64.so.1",
    b"/lib64/ld-linux-loongarch-lp64d.so.1",
    b"/lib/ld-linux-mipsn8.so.1",
    b"/lib/ld-uClibc.so.0",
    b"/lib/ld-uClibc.so.1",
    b"/lib/ld64-uClibc.so.0",
    b"/system/bin/linker",
    b"/system/bin/linker64",
    b"/libexec/ld-elf.so.1",
    b"/usr/libexec/ld.elf_so",
    b"/usr/libexec/ld.so",
];

/// Fills the group (all zero for non-ELF input and static executables).
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    let Some(elf) = &input.elf else {
        return;
    };
    let Some(p) = elf.phdrs.iter().find(|p| p.p_type == PT_INTERP) else {
        return;
    };
    row.flag(Col::Present, true);
    let raw = clamped(input.bytes, p.p_offset, p.p_filesz);
    let path = match raw.split_last() {
        Some((0, path)) if !path.is_empty() && path.iter().all(u8::is_ascii_graphic) => path,
        _ => {
            row.flag(Col::Invalid, true);
            return;
        }
    };
    let base = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let musl = path.starts_with(b"/lib/ld-musl-") && path.ends_with(b".so.1");
    let known = musl || KNOWN_LOADERS.contains(&path);
    row.flag(Col::Known, known);
    row.flag(Col::Nonstandard, !known);
    row.flag(
        Col::SmallLibc,
        musl || base.starts_with(b"ld-uClibc") || base.starts_with(b"ld64-uClibc"),
    );
    row.flag(
        Col::Android,
        base.starts_with(b"linker") && path.starts_with(b"/system/"),
    );
}

#[cfg(test)]
mod tests {
    use super::super::elf::testelf::{Ph, build};
    use super::super::{column, extract};
    use goblin::elf::program_header::PT_INTERP;

    fn row(path: &[u8]) -> Vec<(String, f32)> {
        let b = build(
            0x400,
            0,
            &[Ph {
                p_type: PT_INTERP,
                flags: 4,
                offset: 0x200,
                vaddr: 0,
                filesz: path.len() as u64,
                memsz: 0,
            }],
            0,
            &[],
            0,
            &[(0x200, path)],
        );
        let f = extract(&b);
        [
            "interp_present",
            "interp_known_loader",
            "interp_musl_or_uclibc",
            "interp_nonstandard",
            "interp_invalid",
        ]
        .iter()
        .map(|n| ((*n).to_owned(), f.values[column(n).unwrap_or(usize::MAX)]))
        .collect()
    }

    #[test]
    fn loader_kinds() {
        let on = |r: &[(String, f32)]| {
            r.iter()
                .filter(|(_, v)| *v == 1.0)
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            on(&row(b"/lib64/ld-linux-x86-64.so.2\0")),
            ["interp_present", "interp_known_loader"]
        );
        assert_eq!(
            on(&row(b"/lib/ld-musl-armhf.so.1\0")),
            [
                "interp_present",
                "interp_known_loader",
                "interp_musl_or_uclibc"
            ]
        );
        assert_eq!(
            on(&row(b"/tmp/.x/ld.so\0")),
            ["interp_present", "interp_nonstandard"]
        );
        assert_eq!(
            on(&row(b"/lib/ld\xff\0")),
            ["interp_present", "interp_invalid"]
        );
        assert_eq!(
            on(&row(b"no-terminator")),
            ["interp_present", "interp_invalid"]
        );
    }
}
