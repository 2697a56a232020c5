//! The program-header group: segment counts by type, W/X/WX permissions, loadable
//! sizes against the file size, an executable stack, and where the entry point lands.
//!
//! Owns nothing. Packers show here: few `PT_LOAD`s whose memory size dwarfs their file
//! size, writable+executable segments, an entry point in the last segment.

use super::Input;
use super::elf::ElfView;
use super::row::{Row, columns};
use goblin::elf::program_header::{
    PF_W, PF_X, PT_DYNAMIC, PT_GNU_RELRO, PT_GNU_STACK, PT_INTERP, PT_LOAD, PT_NOTE, PT_PHDR,
    PT_TLS,
};

columns! {
    /// Columns of the program-header group.
    Col {
        CountLog = "ph_count_log",
        LoadLog = "ph_load_log",
        DynamicLog = "ph_dynamic_log",
        InterpLog = "ph_interp_log",
        NoteLog = "ph_note_log",
        PhdrLog = "ph_phdr_log",
        TlsLog = "ph_tls_log",
        GnuStackLog = "ph_gnu_stack_log",
        GnuRelroLog = "ph_gnu_relro_log",
        GnuOtherLog = "ph_gnu_other_log",
        OtherLog = "ph_other_log",
        WriteLog = "ph_write_log",
        ExecLog = "ph_exec_log",
        WriteExecLog = "ph_write_exec_log",
        ExecStack = "ph_exec_stack",
        NoGnuStack = "ph_no_gnu_stack",
        LoadFileszLog = "ph_load_filesz_log",
        LoadMemszLog = "ph_load_memsz_log",
        LoadMemFileRatioLog = "ph_load_mem_file_ratio_log",
        LoadSpanRel = "ph_load_span_rel",
        LoadMinVaddrLog = "ph_load_min_vaddr_log",
        PastEofLog = "ph_past_eof_log",
        EntryRel = "ph_entry_rel",
        EntryUnmapped = "ph_entry_unmapped",
        EntryInExec = "ph_entry_in_exec",
        EntryInLastLoad = "ph_entry_in_last_load",
    }
}

/// Number of columns of this group.
pub(crate) const LEN: usize = Col::NAMES.len();

/// GNU extension segment types (`PT_GNU_EH_FRAME`, `PT_GNU_PROPERTY`, ...) share
/// this prefix.
const PT_GNU_MASK: u32 = 0xffff_fff0;
const PT_GNU_BASE: u32 = 0x6474_e550;

fn type_col(p_type: u32) -> Col {
    match p_type {
        PT_LOAD => Col::LoadLog,
        PT_DYNAMIC => Col::DynamicLog,
        PT_INTERP => Col::InterpLog,
        PT_NOTE => Col::NoteLog,
        PT_PHDR => Col::PhdrLog,
        PT_TLS => Col::TlsLog,
        PT_GNU_STACK => Col::GnuStackLog,
        PT_GNU_RELRO => Col::GnuRelroLog,
        t if t & PT_GNU_MASK == PT_GNU_BASE => Col::GnuOtherLog,
        _ => Col::OtherLog,
    }
}

/// Fills the group (all zero for non-ELF input or an unparsed table).
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    let Some(elf) = &input.elf else {
        return;
    };
    if elf.header.is_none() || !elf.phdrs_ok {
        return;
    }
    let len = input.bytes.len() as u64;
    let mut by_type = [0u64; LEN];
    let (mut w, mut x, mut wx, mut past_eof) = (0u64, 0u64, 0u64, 0u64);
    let mut exec_stack = false;
    let mut gnu_stack = false;
    let (mut filesz, mut memsz, mut span) = (0u64, 0u64, 0u64);
    let mut min_vaddr: Option<u64> = None;
    for p in &elf.phdrs {
        if let Some(slot) = by_type.get_mut(type_col(p.p_type) as usize) {
            *slot = slot.saturating_add(1);
        }
        let (is_w, is_x) = (p.p_flags & PF_W != 0, p.p_flags & PF_X != 0);
        w += u64::from(is_w);
        x += u64::from(is_x);
        wx += u64::from(is_w && is_x);
        let end = p.p_offset.checked_add(p.p_filesz);
        if p.p_filesz > 0 && end.is_none_or(|e| e > len) {
            past_eof += 1;
        }
        if p.p_type == PT_GNU_STACK {
            gnu_stack = true;
            exec_stack |= is_x;
        }
        if p.p_type == PT_LOAD {
            filesz = filesz.saturating_add(p.p_filesz);
            memsz = memsz.saturating_add(p.p_memsz);
            span = span.max(end.unwrap_or(u64::MAX));
            min_vaddr = Some(min_vaddr.map_or(p.p_vaddr, |v| v.min(p.p_vaddr)));
        }
    }
    row.log(Col::CountLog, elf.phdrs.len() as u64);
    for col in [
        Col::LoadLog,
        Col::DynamicLog,
        Col::InterpLog,
        Col::NoteLog,
        Col::PhdrLog,
        Col::TlsLog,
        Col::GnuStackLog,
        Col::GnuRelroLog,
        Col::GnuOtherLog,
        Col::OtherLog,
    ] {
        row.log(col, by_type.get(col as usize).copied().unwrap_or(0));
    }
    row.log(Col::WriteLog, w);
    row.log(Col::ExecLog, x);
    row.log(Col::WriteExecLog, wx);
    row.flag(Col::ExecStack, exec_stack);
    row.flag(Col::NoGnuStack, !gnu_stack);
    row.log(Col::LoadFileszLog, filesz);
    row.log(Col::LoadMemszLog, memsz);
    let ratio = if filesz == 0 {
        0.0
    } else {
        memsz as f64 / filesz as f64
    };
    row.set(Col::LoadMemFileRatioLog, ratio.ln_1p() as f32);
    row.rel(Col::LoadSpanRel, span, len);
    row.log(Col::LoadMinVaddrLog, min_vaddr.unwrap_or(0));
    row.log(Col::PastEofLog, past_eof);
    fill_entry(elf, len, row);
}

/// Entry-point columns: its file offset relative to the file size, whether it maps
/// to file bytes at all, lies in an executable segment, or in the last `PT_LOAD`.
fn fill_entry(elf: &ElfView<'_>, len: u64, row: &mut Row<'_>) {
    let Some(h) = &elf.header else {
        return;
    };
    let entry = h.e_entry;
    if entry == 0 {
        return;
    }
    let loads: Vec<_> = elf.phdrs.iter().filter(|p| p.p_type == PT_LOAD).collect();
    let holder = loads.iter().position(|p| {
        entry
            .checked_sub(p.p_vaddr)
            .is_some_and(|d| d < p.p_memsz.max(p.p_filesz))
    });
    match holder {
        None => row.flag(Col::EntryUnmapped, true),
        Some(i) => {
            if let Some(p) = loads.get(i) {
                row.flag(Col::EntryInExec, p.p_flags & PF_X != 0);
            }
            row.flag(
                Col::EntryInLastLoad,
                i + 1 == loads.len() && loads.len() > 1,
            );
            match elf.vaddr_to_offset(entry) {
                Some(off) => row.rel(Col::EntryRel, off, len),
                None => row.flag(Col::EntryUnmapped, true),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::elf::testelf::{Ph, build};
    use super::super::extract;
    use super::*;
    use crate::features::{column, names};

    #[test]
    fn packed_like_layout() {
        // Two loads, the second RWX holding the entry; memsz ≫ filesz; no GNU_STACK.
        let b = build(
            0x1000,
            0x20_0100,
            &[
                Ph {
                    p_type: PT_LOAD,
                    flags: 6,
                    offset: 0,
                    vaddr: 0x10_0000,
                    filesz: 0,
                    memsz: 0x10_0000,
                },
                Ph {
                    p_type: PT_LOAD,
                    flags: 7,
                    offset: 0,
                    vaddr: 0x20_0000,
                    filesz: 0x1000,
                    memsz: 0x1000,
                },
            ],
            0,
            &[],
            0,
            &[],
        );
        let f = extract(&b);
        let v = |n: &str| f.values[column(n).unwrap_or(usize::MAX)];
        assert_eq!(v("ph_load_log"), (2f32).ln_1p());
        assert_eq!(v("ph_write_exec_log"), (1f32).ln_1p());
        assert_eq!(v("ph_no_gnu_stack"), 1.0);
        assert_eq!(v("ph_entry_in_last_load"), 1.0);
        assert_eq!(v("ph_entry_in_exec"), 1.0);
        assert!((v("ph_entry_rel") - 0x100 as f32 / 0x1000 as f32).abs() < 1e-6);
        assert!(v("ph_load_mem_file_ratio_log") > 4.0);
        assert!(names().contains(&"ph_exec_stack"));
    }
}
