//! The format group: what kind of file this is (ELF, script, other), its size, how
//! much of the ELF structure parsed, and for scripts which interpreter family the
//! `#!` line names.
//!
//! Owns nothing. This group is filled for every input, so a row always says which
//! other groups can be meaningful (ELF groups are all zero for scripts and others).

use super::Input;
use super::row::{Row, columns};
use crate::sniff::FileKind;

columns! {
    /// Columns of the format group.
    Col {
        Elf = "fmt_elf",
        Script = "fmt_script",
        Other = "fmt_other",
        SizeLog = "fmt_size_log",
        ElfParsed = "fmt_elf_parsed",
        PhdrsOk = "fmt_elf_phdrs_ok",
        ShdrsOk = "fmt_elf_shdrs_ok",
        DynamicOk = "fmt_elf_dynamic_ok",
        OverCap = "fmt_elf_over_parse_cap",
        ScriptShell = "fmt_script_shell",
        ScriptPython = "fmt_script_python",
        ScriptPerl = "fmt_script_perl",
    }
}

/// Number of columns of this group.
pub(crate) const LEN: usize = Col::NAMES.len();

/// Longest `#!` line looked at.
const SHEBANG_MAX: usize = 256;

/// Interpreter families of a script.
#[derive(Debug, PartialEq, Eq)]
enum Interpreter {
    Shell,
    Python,
    Perl,
    Unknown,
}

/// The interpreter family named by a `#!` line (`/usr/bin/env X` looks at `X`).
fn interpreter(bytes: &[u8]) -> Interpreter {
    let head = bytes.get(..SHEBANG_MAX).unwrap_or(bytes);
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_prefix(b"#!").unwrap_or(line);
    let mut words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let mut program = words.next().unwrap_or(&[]);
    let mut name = program.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
    if name == b"env" {
        program = words.find(|w| !w.starts_with(b"-")).unwrap_or(&[]);
        name = program.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
    }
    match name {
        b"sh" | b"bash" | b"dash" | b"ash" | b"zsh" | b"ksh" | b"busybox" => Interpreter::Shell,
        n if n.starts_with(b"python") => Interpreter::Python,
        n if n.starts_with(b"perl") => Interpreter::Perl,
        _ => Interpreter::Unknown,
    }
}

/// Fills the group.
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    row.flag(Col::Elf, input.kind == FileKind::Elf);
    row.flag(Col::Script, input.kind == FileKind::Script);
    row.flag(Col::Other, input.kind == FileKind::Other);
    row.log(Col::SizeLog, input.bytes.len() as u64);
    if let Some(elf) = &input.elf {
        row.flag(Col::ElfParsed, elf.fully_parsed());
        row.flag(Col::PhdrsOk, elf.phdrs_ok);
        row.flag(Col::ShdrsOk, elf.shdrs_ok);
        row.flag(Col::DynamicOk, elf.dynamic_ok);
        row.flag(Col::OverCap, elf.over_cap);
    }
    if input.kind == FileKind::Script {
        match interpreter(input.bytes) {
            Interpreter::Shell => row.flag(Col::ScriptShell, true),
            Interpreter::Python => row.flag(Col::ScriptPython, true),
            Interpreter::Perl => row.flag(Col::ScriptPerl, true),
            Interpreter::Unknown => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_families() {
        let cases: &[(&[u8], Interpreter)] = &[
            (b"#!/bin/sh\necho", Interpreter::Shell),
            (b"#! /bin/bash -e\n", Interpreter::Shell),
            (b"#!/usr/bin/env python2\n", Interpreter::Python),
            (b"#!/usr/bin/env -S python3 -u\n", Interpreter::Python),
            (b"#!/usr/bin/perl -w", Interpreter::Perl),
            (b"#!/usr/bin/ruby\n", Interpreter::Unknown),
            (b"#!", Interpreter::Unknown),
            (b"#!/usr/bin/env", Interpreter::Unknown),
        ];
        for (line, want) in cases {
            assert_eq!(&interpreter(line), want, "{line:?}");
        }
    }
}
