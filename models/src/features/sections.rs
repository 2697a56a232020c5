//! The section-table group: section counts by type and flags, known versus unknown
//! names, presence of the usual sections, sizes, per-section entropy (max, mean, of
//! executable sections, of `.text`) and whether the static symbol table was stripped.
//!
//! Owns the list of known section names and which sections get an entropy (at most
//! `MAX_ENTROPY_SECTIONS`, each at least `MIN_ENTROPY_LEN` bytes); the entropies
//! themselves are computed during the shared byte scan (`bytescan`), so sections
//! cost no second pass over the file.

use super::Input;
use super::bytescan::Span;
use super::elf::ElfView;
use super::row::{Row, columns};
use goblin::elf::section_header::{
    SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_DYNAMIC, SHT_DYNSYM, SHT_FINI_ARRAY, SHT_GNU_HASH,
    SHT_GNU_VERDEF, SHT_GNU_VERNEED, SHT_GNU_VERSYM, SHT_HASH, SHT_INIT_ARRAY, SHT_NOBITS,
    SHT_NOTE, SHT_PREINIT_ARRAY, SHT_PROGBITS, SHT_REL, SHT_RELA, SHT_STRTAB, SHT_SYMTAB,
};

columns! {
    /// Columns of the section-table group.
    Col {
        Present = "sh_present",
        CountLog = "sh_count_log",
        ProgbitsLog = "sh_progbits_log",
        NobitsLog = "sh_nobits_log",
        SymtabLog = "sh_symtab_log",
        DynsymLog = "sh_dynsym_log",
        StrtabLog = "sh_strtab_log",
        RelLog = "sh_rel_log",
        HashLog = "sh_hash_log",
        DynamicLog = "sh_dynamic_log",
        NoteLog = "sh_note_log",
        InitFiniLog = "sh_init_fini_log",
        GnuVersionLog = "sh_gnu_version_log",
        OtherLog = "sh_other_type_log",
        AllocLog = "sh_alloc_log",
        WriteLog = "sh_write_log",
        ExecLog = "sh_exec_log",
        WriteExecLog = "sh_write_exec_log",
        UnknownNamesLog = "sh_unknown_names_log",
        UnknownNamesRatio = "sh_unknown_names_ratio",
        BadNamesLog = "sh_bad_names_log",
        HasText = "sh_has_text",
        HasData = "sh_has_data",
        HasRodata = "sh_has_rodata",
        HasBss = "sh_has_bss",
        HasDebug = "sh_has_debug",
        HasComment = "sh_has_comment",
        HasEhFrame = "sh_has_eh_frame",
        HasGot = "sh_has_got",
        TotalSizeLog = "sh_total_size_log",
        MaxSizeLog = "sh_max_size_log",
        OutOfFileLog = "sh_out_of_file_log",
        EntropyMax = "sh_entropy_max",
        EntropyMean = "sh_entropy_mean",
        EntropyExec = "sh_entropy_exec",
        EntropyText = "sh_entropy_text",
        Stripped = "sh_stripped",
        SymbolsLog = "sh_symbols_log",
    }
}

/// Number of columns of this group.
pub(crate) const LEN: usize = Col::NAMES.len();

/// At most this many sections get an entropy.
const MAX_ENTROPY_SECTIONS: usize = 1024;
/// Sections smaller than this get no entropy (too few bytes to mean anything).
const MIN_ENTROPY_LEN: usize = 64;

/// Names emitted by common toolchains (GNU, LLVM, Go, Rust) on Linux targets.
const KNOWN: &[&[u8]] = &[
    b"",
    b".text",
    b".data",
    b".bss",
    b".rodata",
    b".init",
    b".fini",
    b".plt",
    b".plt.got",
    b".plt.sec",
    b".iplt",
    b".got",
    b".got.plt",
    b".got2",
    b".dynamic",
    b".dynsym",
    b".dynstr",
    b".symtab",
    b".strtab",
    b".shstrtab",
    b".symtab_shndx",
    b".interp",
    b".hash",
    b".gnu.hash",
    b".gnu.version",
    b".gnu.version_r",
    b".gnu.version_d",
    b".init_array",
    b".fini_array",
    b".preinit_array",
    b".ctors",
    b".dtors",
    b".jcr",
    b".eh_frame",
    b".eh_frame_hdr",
    b".gcc_except_table",
    b".tbss",
    b".tdata",
    b".comment",
    b".gnu_debuglink",
    b".gnu_debugaltlink",
    b".note",
    b".gnu.attributes",
    b".gnu.warning",
    b".gopclntab",
    b".go.buildinfo",
    b".noptrdata",
    b".noptrbss",
    b".typelink",
    b".itablink",
    b".gosymtab",
    b".go.fipsinfo",
    b".rustc",
    b".sdata",
    b".sbss",
    b".sdata2",
    b".sbss2",
    b".reginfo",
    b".pdr",
    b".mdebug.abi32",
    b".mdebug.abi64",
    b".MIPS.abiflags",
    b".MIPS.options",
    b".MIPS.stubs",
    b".rld_map",
    b".branch_lt",
    b".opd",
    b".toc",
    b".toc1",
    b".fixup",
    b".stapsdt.base",
    b".probes",
    b".tm_clone_table",
    b".data1",
    b".rodata1",
    b".riscv.attributes",
    b".stab",
    b".stabstr",
    b".relro_padding",
    b".lit4",
    b".lit8",
    b".glink",
    b".ARM.exidx",
    b".ARM.extab",
    b".ARM.attributes",
    b".gnu.build.attributes",
    b".sframe",
    b".llvm_addrsig",
    b".note.GNU-stack",
    b"__libc_freeres_fn",
    b"__libc_freeres_ptrs",
    b"__libc_subfreeres",
    b"__libc_atexit",
    b"__libc_IO_vtables",
];

/// Prefixes of families of known names (`.debug_info`, `.rela.dyn`, `.text.hot`, ...).
const KNOWN_PREFIXES: &[&[u8]] = &[
    b".debug_",
    b".zdebug_",
    b".note.",
    b".rela.",
    b".rel.",
    b".text.",
    b".rodata.",
    b".data.",
    b".bss.",
    b".tdata.",
    b".tbss.",
    b".init_array.",
    b".fini_array.",
    b".gnu.linkonce.",
    b".ARM.",
    b".MIPS.",
    b".gcc_except_table.",
    b".sdata.",
    b".sbss.",
    b".ctors.",
    b".dtors.",
    b".go.",
    b".llvm.",
    b"__patchable_function_entries",
    b".gnu_extab",
    b".comment.",
];

/// True for a name a common toolchain emits.
pub(crate) fn is_known(name: &[u8]) -> bool {
    KNOWN.contains(&name) || KNOWN_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn type_col(sh_type: u32) -> Col {
    match sh_type {
        SHT_PROGBITS => Col::ProgbitsLog,
        SHT_NOBITS => Col::NobitsLog,
        SHT_SYMTAB => Col::SymtabLog,
        SHT_DYNSYM => Col::DynsymLog,
        SHT_STRTAB => Col::StrtabLog,
        SHT_REL | SHT_RELA => Col::RelLog,
        SHT_HASH | SHT_GNU_HASH => Col::HashLog,
        SHT_DYNAMIC => Col::DynamicLog,
        SHT_NOTE => Col::NoteLog,
        SHT_INIT_ARRAY | SHT_FINI_ARRAY | SHT_PREINIT_ARRAY => Col::InitFiniLog,
        SHT_GNU_VERSYM | SHT_GNU_VERNEED | SHT_GNU_VERDEF => Col::GnuVersionLog,
        _ => Col::OtherLog,
    }
}

/// The sections whose entropy the byte scan computes: in-file, at least
/// `MIN_ENTROPY_LEN` bytes, the first `MAX_ENTROPY_SECTIONS` of them; the span id is
/// the section index.
pub(crate) fn entropy_spans(elf: &ElfView<'_>) -> Vec<Span> {
    elf.shdrs
        .iter()
        .enumerate()
        .skip(1)
        .filter_map(|(id, s)| {
            let data = elf.section_data(s)?;
            if data.len() < MIN_ENTROPY_LEN {
                return None;
            }
            let start = usize::try_from(s.sh_offset).ok()?;
            Some(Span {
                id,
                start,
                end: start.checked_add(data.len())?,
            })
        })
        .take(MAX_ENTROPY_SECTIONS)
        .collect()
}

/// Size-weighted entropy accumulator.
#[derive(Default)]
struct Mean {
    weighted: f64,
    weight: f64,
}

impl Mean {
    fn add(&mut self, entropy: f32, len: usize) {
        self.weighted += f64::from(entropy) * len as f64;
        self.weight += len as f64;
    }

    fn get(&self) -> f32 {
        if self.weight > 0.0 {
            (self.weighted / self.weight) as f32
        } else {
            0.0
        }
    }
}

/// Fills the group (all zero for non-ELF input, or when there is no section table).
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    let Some(elf) = &input.elf else {
        return;
    };
    if elf.shdrs.is_empty() {
        return;
    }
    let len = input.bytes.len() as u64;
    row.flag(Col::Present, true);
    row.log(Col::CountLog, elf.shdrs.len() as u64);

    let mut by_col = [0u64; LEN];
    let mut bump = |col: Col| {
        if let Some(slot) = by_col.get_mut(col as usize) {
            *slot = slot.saturating_add(1);
        }
    };
    let (mut unknown, mut bad) = (0u64, 0u64);
    let (mut total, mut max) = (0u64, 0u64);
    let entropies = &input.bytescan.span_entropy;
    let (mut ent_max, mut ent_all, mut ent_exec) = (0.0f32, Mean::default(), Mean::default());
    // Index 0 is the mandatory null section: skip it.
    for (index, s) in elf.shdrs.iter().enumerate().skip(1) {
        bump(type_col(s.sh_type));
        let (w, x) = (
            s.sh_flags & u64::from(SHF_WRITE) != 0,
            s.sh_flags & u64::from(SHF_EXECINSTR) != 0,
        );
        if s.sh_flags & u64::from(SHF_ALLOC) != 0 {
            bump(Col::AllocLog);
        }
        if w {
            bump(Col::WriteLog);
        }
        if x {
            bump(Col::ExecLog);
        }
        if w && x {
            bump(Col::WriteExecLog);
        }
        let name = elf.section_name(s);
        if !is_known(name) {
            unknown += 1;
        }
        if name.is_empty() || name.iter().any(|b| !b.is_ascii_graphic()) {
            bad += 1;
        }
        match name {
            b".text" => bump(Col::HasText),
            b".data" => bump(Col::HasData),
            b".rodata" => bump(Col::HasRodata),
            b".bss" => bump(Col::HasBss),
            b".comment" => bump(Col::HasComment),
            b".eh_frame" => bump(Col::HasEhFrame),
            b".got" | b".got.plt" => bump(Col::HasGot),
            n if n.starts_with(b".debug_") || n.starts_with(b".zdebug_") => bump(Col::HasDebug),
            _ => {}
        }
        if s.sh_type != SHT_NOBITS {
            total = total.saturating_add(s.sh_size);
            max = max.max(s.sh_size);
            if s.sh_size > 0 && s.sh_offset.checked_add(s.sh_size).is_none_or(|e| e > len) {
                bump(Col::OutOfFileLog);
            }
        }
        let Ok(found) = entropies.binary_search_by_key(&index, |(id, _)| *id) else {
            continue;
        };
        let Some(&(_, h)) = entropies.get(found) else {
            continue;
        };
        let size = usize::try_from(s.sh_size).unwrap_or(usize::MAX);
        ent_max = ent_max.max(h);
        ent_all.add(h, size);
        if x {
            ent_exec.add(h, size);
        }
        if name == b".text" {
            row.set(Col::EntropyText, h);
        }
    }
    for col in [
        Col::ProgbitsLog,
        Col::NobitsLog,
        Col::SymtabLog,
        Col::DynsymLog,
        Col::StrtabLog,
        Col::RelLog,
        Col::HashLog,
        Col::DynamicLog,
        Col::NoteLog,
        Col::InitFiniLog,
        Col::GnuVersionLog,
        Col::OtherLog,
        Col::AllocLog,
        Col::WriteLog,
        Col::ExecLog,
        Col::WriteExecLog,
        Col::OutOfFileLog,
    ] {
        row.log(col, by_col.get(col as usize).copied().unwrap_or(0));
    }
    for col in [
        Col::HasText,
        Col::HasData,
        Col::HasRodata,
        Col::HasBss,
        Col::HasDebug,
        Col::HasComment,
        Col::HasEhFrame,
        Col::HasGot,
    ] {
        row.flag(col, by_col.get(col as usize).is_some_and(|&n| n > 0));
    }
    let named = elf.shdrs.len().saturating_sub(1) as u64;
    row.log(Col::UnknownNamesLog, unknown);
    row.set(
        Col::UnknownNamesRatio,
        if named == 0 {
            0.0
        } else {
            unknown as f32 / named as f32
        },
    );
    row.log(Col::BadNamesLog, bad);
    row.log(Col::TotalSizeLog, total);
    row.log(Col::MaxSizeLog, max);
    row.set(Col::EntropyMax, ent_max);
    row.set(Col::EntropyMean, ent_all.get());
    row.set(Col::EntropyExec, ent_exec.get());
    fill_symbols(elf, row);
}

fn fill_symbols(elf: &ElfView<'_>, row: &mut Row<'_>) {
    match elf.symtab_len() {
        Some(n) => row.log(Col::SymbolsLog, n),
        None => row.flag(Col::Stripped, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names() {
        assert!(is_known(b".text"));
        assert!(is_known(b".debug_info"));
        assert!(is_known(b".rela.dyn"));
        assert!(is_known(b".note.gnu.build-id"));
        assert!(!is_known(b"UPX0"));
        assert!(!is_known(b".evil"));
    }

    #[test]
    fn type_columns() {
        assert_eq!(type_col(SHT_RELA), Col::RelLog);
        assert_eq!(type_col(0x7000_0001), Col::OtherLog);
    }
}
