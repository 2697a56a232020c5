//! The notes and toolchain group: ELF notes (GNU build-id, ABI tag, property, Go
//! build id, other owners) and traces of the compiler that built the file (Go
//! buildinfo and runtime, Rust sections and panic machinery, GCC and clang comments).
//!
//! Owns the note walker. Notes are read from `PT_NOTE` segments and `SHT_NOTE`
//! sections (both, since either may be missing), bounded to `MAX_NOTES` per region
//! and `MAX_REGIONS` regions. String traces come from the shared string scan, so
//! they survive a stripped section table.

use super::Input;
use super::elf::{clamped, read_u32};
use super::needles::Marker;
use super::row::{Row, columns};
use goblin::elf::program_header::PT_NOTE;
use goblin::elf::section_header::SHT_NOTE;

columns! {
    /// Columns of the notes and toolchain group.
    Col {
        BuildId = "tc_note_build_id",
        AbiTag = "tc_note_abi_tag",
        GnuProperty = "tc_note_gnu_property",
        GoNote = "tc_note_go",
        OtherNote = "tc_note_other_owner",
        GoBuild = "tc_go_build",
        GoRuntime = "tc_go_runtime",
        RustSection = "tc_rust_section",
        RustPath = "tc_rust_path",
        RustPanic = "tc_rust_panic",
        Gcc = "tc_gcc_comment",
        Clang = "tc_clang_comment",
    }
}

/// Number of columns of this group.
pub(crate) const LEN: usize = Col::NAMES.len();

/// Notes read per region.
const MAX_NOTES: usize = 64;
/// Note regions (segments plus sections) read.
const MAX_REGIONS: usize = 64;

const NT_GNU_ABI_TAG: u32 = 1;
const NT_GNU_BUILD_ID: u32 = 3;
const NT_GNU_PROPERTY_TYPE_0: u32 = 5;

/// Note kinds seen.
#[derive(Default, Debug, PartialEq, Eq)]
struct NoteKinds {
    build_id: bool,
    abi_tag: bool,
    gnu_property: bool,
    go: bool,
    other: bool,
}

/// Walks the notes of one region (`align` is 4 or 8).
fn walk(region: &[u8], align: usize, little: bool, kinds: &mut NoteKinds) {
    let round = |n: usize| n.checked_add(align - 1).map(|v| v & !(align - 1));
    let mut at = 0usize;
    for _ in 0..MAX_NOTES {
        let (Some(namesz), Some(descsz), Some(kind)) = (
            read_u32(region, at, little),
            at.checked_add(4).and_then(|o| read_u32(region, o, little)),
            at.checked_add(8).and_then(|o| read_u32(region, o, little)),
        ) else {
            return;
        };
        let (namesz, descsz) = (namesz as usize, descsz as usize);
        let Some(name_at) = at.checked_add(12) else {
            return;
        };
        let Some(name) = name_at
            .checked_add(namesz)
            .and_then(|end| region.get(name_at..end))
        else {
            return;
        };
        let used = name.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let name = name.get(..used).unwrap_or(name);
        match (name, kind) {
            (b"GNU", NT_GNU_BUILD_ID) => kinds.build_id = true,
            (b"GNU", NT_GNU_ABI_TAG) => kinds.abi_tag = true,
            (b"GNU", NT_GNU_PROPERTY_TYPE_0) => kinds.gnu_property = true,
            (b"GNU", _) => {}
            (b"Go", _) => kinds.go = true,
            _ => kinds.other = true,
        }
        let next = round(namesz)
            .and_then(|n| name_at.checked_add(n))
            .and_then(|d| round(descsz).and_then(|s| d.checked_add(s)));
        match next {
            Some(n) if n > at && n < region.len() => at = n,
            _ => return,
        }
    }
}

/// Fills the group. Note columns need ELF; string traces apply to any input.
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    let s = &input.strings;
    let mut go_build = s.marker(Marker::GoBuild) > 0;
    let mut go_runtime = s.marker(Marker::GoRuntime) > 0;
    if let Some(elf) = &input.elf {
        let little = elf.ctx.is_none_or(|c| c.is_little_endian());
        let mut kinds = NoteKinds::default();
        let segments = elf
            .phdrs
            .iter()
            .filter(|p| p.p_type == PT_NOTE)
            .map(|p| (clamped(input.bytes, p.p_offset, p.p_filesz), p.p_align));
        let sections = elf
            .shdrs
            .iter()
            .filter(|s| s.sh_type == SHT_NOTE)
            .map(|s| (clamped(input.bytes, s.sh_offset, s.sh_size), s.sh_addralign));
        for (region, align) in segments.chain(sections).take(MAX_REGIONS) {
            walk(region, if align == 8 { 8 } else { 4 }, little, &mut kinds);
        }
        row.flag(Col::BuildId, kinds.build_id);
        row.flag(Col::AbiTag, kinds.abi_tag);
        row.flag(Col::GnuProperty, kinds.gnu_property);
        row.flag(Col::GoNote, kinds.go);
        row.flag(Col::OtherNote, kinds.other);
        for sh in &elf.shdrs {
            match elf.section_name(sh) {
                b".go.buildinfo" | b".note.go.buildid" => go_build = true,
                b".gopclntab" => go_runtime = true,
                b".rustc" => row.flag(Col::RustSection, true),
                _ => {}
            }
        }
    }
    row.flag(Col::GoBuild, go_build);
    row.flag(Col::GoRuntime, go_runtime);
    row.flag(Col::RustPath, s.marker(Marker::RustPath) > 0);
    row.flag(Col::RustPanic, s.marker(Marker::RustPanic) > 0);
    row.flag(Col::Gcc, s.marker(Marker::GccComment) > 0);
    row.flag(Col::Clang, s.marker(Marker::ClangComment) > 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(name);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn walks_notes() {
        let mut region = note(b"GNU\0", NT_GNU_BUILD_ID, &[1; 20]);
        region.extend(note(b"Go\0\0", 4, b"abc"));
        region.extend(note(b"FreeBSD\0", 1, &[0; 4]));
        let mut k = NoteKinds::default();
        walk(&region, 4, true, &mut k);
        assert_eq!(
            k,
            NoteKinds {
                build_id: true,
                abi_tag: false,
                gnu_property: false,
                go: true,
                other: true
            }
        );
    }

    #[test]
    fn hostile_notes_end_quietly() {
        let mut k = NoteKinds::default();
        walk(&[], 4, true, &mut k);
        let mut huge = Vec::new();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&3u32.to_le_bytes());
        walk(&huge, 8, true, &mut k);
        // A zero-sized note repeated: progress is required, so the walk stops.
        walk(&[0u8; 12], 4, true, &mut k);
        assert!(!k.build_id);
    }
}
