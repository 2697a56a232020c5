//! Content sniffing: the kind of a file decided from its first bytes, never its name.
//!
//! Owns nothing but the magic numbers. Callers read the prefix (through the
//! fanotify event fd in the daemon) and decide what to do with the answer.

/// How many leading bytes [`sniff`] looks at; reading more gains nothing.
pub const SNIFF_LEN: usize = 4;

/// What a file is, as far as on-access scanning cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// An ELF object: executable, shared library, relocatable or core file.
    Elf,
    /// A script with an interpreter line (`#!`).
    Script,
    /// Anything else (data, documents, empty files).
    Other,
}

impl FileKind {
    /// True for the kinds that can be executed or loaded as code.
    pub fn is_executable(self) -> bool {
        match self {
            FileKind::Elf | FileKind::Script => true,
            FileKind::Other => false,
        }
    }

    /// A stable lower-case name for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Elf => "elf",
            FileKind::Script => "script",
            FileKind::Other => "other",
        }
    }
}

/// Classifies a file by its leading bytes. Only the first [`SNIFF_LEN`] bytes are
/// looked at; a shorter prefix is fine (an empty file is [`FileKind::Other`]).
pub fn sniff(prefix: &[u8]) -> FileKind {
    if prefix.starts_with(b"\x7fELF") {
        FileKind::Elf
    } else if prefix.starts_with(b"#!") {
        FileKind::Script
    } else {
        FileKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], FileKind)] = &[
            (b"", FileKind::Other),
            (b"\x7f", FileKind::Other),
            (b"\x7fEL", FileKind::Other),
            (b"\x7fELF", FileKind::Elf),
            (b"\x7fELF\x01\x02\x01\x00", FileKind::Elf),
            (b"#", FileKind::Other),
            (b"#!", FileKind::Script),
            (b"#!/usr/bin/env python3\n", FileKind::Script),
            (b" #!/bin/sh", FileKind::Other),
            (b"MZ\x90\x00", FileKind::Other),
            (b"ELF\x7f", FileKind::Other),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff(bytes), *want, "input {bytes:?}");
        }
    }

    #[test]
    fn executable_kinds() {
        assert!(FileKind::Elf.is_executable());
        assert!(FileKind::Script.is_executable());
        assert!(!FileKind::Other.is_executable());
    }
}
