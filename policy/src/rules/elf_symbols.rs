//! The symbol tables of yara-x's `elf` module, left out when no rule reads them.
//!
//! When a rule set imports `elf`, yara-x runs the module on every scanned file
//! and turns its whole output into a structure the conditions can read, with
//! one entry per symbol. For an unstripped static program of 745 KiB (2,067
//! symbols) that was 6 of a 10 ms rule scan with the shared content, whose
//! only `elf` users read the dynamic section, sections, segments and `dynsym`
//! (docs/performance.md). A condition can read a field only by naming it (YARA
//! has no reflection), as an identifier after a dot (`elf.symtab`, `for any s
//! in elf.dynsym`), and the module's only functions that read the tables are
//! `import_md5` and `telfhash`. So when no source names a table nor those
//! functions that way, [`ElfSymbols::output_for`] runs the module itself,
//! empties that table, and the scanner hands yara-x the result instead of
//! running the module: every field a rule can name is what it was, and no
//! verdict changes. The sources are read once per rule set with yara-x's own
//! tokenizer, so a name in a comment, a string, a regular expression or a
//! rule's local variable (the built-in rules walk `.dynsym` by hand) keeps
//! nothing.

use std::collections::HashSet;

use yara_x::mods::ELF;
use yara_x_parser::Parser;
use yara_x_parser::cst::{CSTStream, Event, SyntaxKind};

/// Which of the `elf` module's symbol tables no rule of a set can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ElfSymbols {
    /// `.symtab`'s entries (`elf.symtab`).
    symtab: bool,
    /// `.dynsym`'s entries (`elf.dynsym`).
    dynsym: bool,
}

/// Module functions that read the symbol tables (either one).
const READERS: [&str; 2] = ["import_md5", "telfhash"];

impl ElfSymbols {
    /// The tables no source names, for a set that imports `elf`; none for a
    /// set that does not (yara-x then never runs the module).
    pub fn of<'s>(imports_elf: bool, sources: impl Iterator<Item = &'s [u8]>) -> ElfSymbols {
        if !imports_elf {
            return ElfSymbols::default();
        }
        let mut named = HashSet::new();
        for text in sources {
            fields_named(text, &mut named);
        }
        if READERS.iter().any(|f| named.contains(*f)) {
            return ElfSymbols::default();
        }
        ElfSymbols {
            symtab: !named.contains("symtab"),
            dynsym: !named.contains("dynsym"),
        }
    }

    /// Whether any table is left out.
    pub fn any(self) -> bool {
        self.symtab || self.dynsym
    }

    /// One byte for the set's encoding ([`super::bytes`]).
    pub fn to_byte(self) -> u8 {
        u8::from(self.symtab) | (u8::from(self.dynsym) << 1)
    }

    /// [`ElfSymbols::to_byte`]'s inverse; `None` for a byte it never writes.
    pub fn from_byte(byte: u8) -> Option<ElfSymbols> {
        (byte < 4).then_some(ElfSymbols {
            symtab: byte & 1 != 0,
            dynsym: byte & 2 != 0,
        })
    }

    /// The `elf` module's output for `data` with the tables no rule reads
    /// emptied, for an ELF file when any is left out; `None` otherwise (yara-x
    /// then runs the module as usual).
    pub fn output_for(self, data: &[u8]) -> Option<Box<ELF>> {
        if !self.any() || !data.starts_with(b"\x7fELF") {
            return None;
        }
        let mut elf = yara_x::mods::invoke::<ELF>(data)?;
        if self.symtab {
            elf.symtab.clear();
        }
        if self.dynsym {
            elf.dynsym.clear();
        }
        Some(elf)
    }
}

/// Adds to `named` every identifier of `text` that follows a dot: a field or
/// function of a structure. A source yara-x compiled parses cleanly; one that
/// did not is never scanned with.
fn fields_named(text: &[u8], named: &mut HashSet<String>) {
    let tokens = CSTStream::from(Parser::new(text))
        .whitespaces(false)
        .newlines(false)
        .comments(false);
    let mut after_dot = false;
    for event in tokens {
        let Event::Token { kind, span } = event else {
            continue;
        };
        if after_dot
            && kind == SyntaxKind::IDENT
            && let Some(name) = text.get(span.range())
        {
            named.insert(String::from_utf8_lossy(name).into_owned());
        }
        after_dot = kind == SyntaxKind::DOT;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::RuleErrorPolicy;
    use crate::rules::RuleSet;

    fn load(text: &str) -> RuleSet {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.yar"), text).unwrap();
        RuleSet::load(&[dir.path().to_path_buf()], RuleErrorPolicy::Refuse, false)
            .unwrap()
            .0
    }

    /// This test program: an unstripped ELF file with both symbol tables.
    fn unstripped() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn a_table_is_left_out_only_when_no_source_can_read_it() {
        let both = ElfSymbols {
            symtab: true,
            dynsym: true,
        };
        let cases = [
            ("rule A { condition: filesize > 0 }", ElfSymbols::default()),
            (
                "import \"elf\"\nrule A { condition: elf.type == elf.ET_DYN }",
                both,
            ),
            (
                "import \"elf\"\nrule A { condition: for any s in elf.symtab: (s.name == \"main\") }",
                ElfSymbols {
                    symtab: false,
                    dynsym: true,
                },
            ),
            // The counts are kept: naming one reads no table.
            (
                "import \"elf\"\nrule A { condition: elf.dynsym_entries > 1 }",
                both,
            ),
            (
                "import \"elf\"\nrule A { condition: for any s in elf . dynsym: (s.value > 0) }",
                ElfSymbols {
                    symtab: true,
                    dynsym: false,
                },
            ),
            (
                "import \"elf\"\nrule A { condition: elf.import_md5() == \"0\" }",
                ElfSymbols::default(),
            ),
            (
                "import \"elf\"\n// elf.telfhash, some day\nrule A { strings: $a = \"x.symtab\" \
                 $r = /\\.dynsym/ condition: elf.type == 3 and \
                 with symtab = 8: (symtab > 0) and ($a or $r) }",
                both,
            ),
            (
                "import \"elf\"\nrule A { condition: elf.telfhash() == \"\" }",
                ElfSymbols::default(),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(load(text).elf_symbols, want, "{text}");
        }
        for flags in [ElfSymbols::default(), both] {
            assert_eq!(ElfSymbols::from_byte(flags.to_byte()), Some(flags));
        }
        assert_eq!(ElfSymbols::from_byte(4), None);
    }

    #[test]
    fn left_out_tables_change_no_match() {
        let data = unstripped();
        let full = yara_x::mods::invoke::<ELF>(&data).unwrap();
        assert!(!full.symtab.is_empty() && !full.dynsym.is_empty());
        let set = load(
            "import \"elf\"\n\
             rule Loads { condition: elf.number_of_sections > 5 and \
               for any seg in elf.segments: (seg.type == elf.PT_LOAD) }\n\
             rule Pe { condition: uint16(0) == 0x5a4d }\n",
        );
        assert!(set.elf_symbols.any());
        let trimmed = set.elf_symbols.output_for(&data).unwrap();
        assert!(trimmed.symtab.is_empty() && trimmed.dynsym.is_empty());
        assert_eq!(trimmed.sections, full.sections);
        assert_eq!(trimmed.symtab_entries, full.symtab_entries);
        assert_eq!(trimmed.dynsym_entries, full.dynsym_entries);
        assert_eq!(ElfSymbols::default().output_for(&data), None);
        assert_eq!(set.elf_symbols.output_for(b"MZ not an ELF file"), None);
        // The same set with the module run by yara-x: the same matches.
        let untrimmed = RuleSet {
            elf_symbols: ElfSymbols::default(),
            ..set.clone()
        };
        let timeout = Duration::from_secs(30);
        let mut scanner = set.scanner();
        let found = scanner.scan(&data, timeout).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            format!("{found:?}"),
            format!("{:?}", untrimmed.scan(&data, timeout).unwrap())
        );
        // The output given for one scan is not reused for the next.
        assert!(scanner.scan(b"MZ", timeout).unwrap().len() == 1);
        assert!(
            scanner
                .scan(b"\x7fELF but cut short", timeout)
                .unwrap()
                .is_empty()
        );
    }
}
