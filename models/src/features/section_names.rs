//! The section-name group (schema 2): the set of section names, feature-hashed.
//! Schema 1 counts known and unknown names; this says which ones, so toolchains,
//! packers and hand-made layouts (a `.ko`'s `.modinfo` and `__versions`, a
//! rootkit's renamed sections) each get their own pattern.
//!
//! Owns the name normalisation: a name keeps at most two dot components
//! (`.rela.text`, `.note.gnu`), and function and data sections split by
//! `-ffunction-sections` (`.text.main`, `.rodata.str1.1`) keep one, so one object
//! file's thousands of per-function sections fall into their kind's bucket.
//! Hashing is FNV-1a (`fnv`). At most `MAX_SECTIONS` names are read.

use super::Input;
use super::fnv::bucket;
use super::row::Row;

/// Buckets for section names.
pub(crate) const BUCKETS: usize = 32;
/// Number of columns of this group.
pub(crate) const LEN: usize = BUCKETS;

/// First components that name per-function or per-object sections.
const SPLIT_KINDS: &[&[u8]] = &[
    b".text",
    b".data",
    b".rodata",
    b".bss",
    b".tbss",
    b".tdata",
    b".sdata",
    b".sbss",
    b".ldata",
    b".lrodata",
    b".lbss",
];

/// Names of the columns, in order.
pub(crate) fn generated_names() -> impl Iterator<Item = String> {
    (0..BUCKETS).map(|i| format!("shn_hash_{i:02}"))
}

/// The part of a section name that is hashed.
fn normalise(name: &[u8]) -> &[u8] {
    if name.first() != Some(&b'.') {
        return name;
    }
    let dot = |from: usize| {
        name.get(from..)
            .and_then(|rest| memchr::memchr(b'.', rest))
            .map(|i| i + from)
    };
    let Some(second) = dot(1) else {
        return name;
    };
    let first = name.get(..second).unwrap_or(name);
    if SPLIT_KINDS.contains(&first) {
        return first;
    }
    match dot(second + 1) {
        Some(third) => name.get(..third).unwrap_or(name),
        None => name,
    }
}

/// Fills the group (all zero for non-ELF input or without a section table).
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    let Some(elf) = &input.elf else {
        return;
    };
    for s in elf.shdrs.iter().skip(1) {
        let name = elf.section_name(s);
        if !name.is_empty() {
            row.add(bucket(normalise(name), BUCKETS), 1.0);
        }
    }
    row.log_in_place(0, BUCKETS);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_names() {
        assert_eq!(normalise(b".text"), b".text");
        assert_eq!(normalise(b".text.main"), b".text");
        assert_eq!(normalise(b".rodata.str1.1"), b".rodata");
        assert_eq!(normalise(b".rela.text.main"), b".rela.text");
        assert_eq!(normalise(b".note.gnu.build-id"), b".note.gnu");
        assert_eq!(normalise(b".gnu.version_r"), b".gnu.version_r");
        assert_eq!(normalise(b"__versions"), b"__versions");
        assert_eq!(normalise(b"."), b".");
        assert_eq!(normalise(b""), b"");
    }
}
