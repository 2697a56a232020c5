//! The ELF header group: class, byte order, OS ABI, object type, machine (one-hot for
//! the common ones), entry point, flags, table counts and where the tables claim to be.
//!
//! Owns nothing. Filled from goblin's header when it parsed; when it did not (bad
//! class, short file) the identification bytes and the raw `e_type`/`e_machine` still
//! give the class, byte order, type and machine columns.

use super::Input;
use super::row::{Row, columns};
use goblin::elf::header::{
    ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB, ELFOSABI_LINUX, ELFOSABI_NONE, EM_68K,
    EM_386, EM_AARCH64, EM_ARM, EM_MIPS, EM_MIPS_RS3_LE, EM_PPC, EM_PPC64, EM_RISCV, EM_S390,
    EM_SH, EM_SPARC, EM_SPARC32PLUS, EM_SPARCV9, EM_X86_64, ET_CORE, ET_DYN, ET_EXEC, ET_REL,
};

columns! {
    /// Columns of the ELF header group.
    Col {
        Class32 = "hdr_class32",
        Class64 = "hdr_class64",
        DataLsb = "hdr_data_lsb",
        DataMsb = "hdr_data_msb",
        VersionOk = "hdr_version_ok",
        OsabiLinux = "hdr_osabi_linux",
        OsabiOther = "hdr_osabi_other",
        IdentPad = "hdr_ident_pad_nonzero",
        TypeRel = "hdr_type_rel",
        TypeExec = "hdr_type_exec",
        TypeDyn = "hdr_type_dyn",
        TypeCore = "hdr_type_core",
        TypeOther = "hdr_type_other",
        MachX86 = "hdr_machine_x86",
        MachX86_64 = "hdr_machine_x86_64",
        MachArm = "hdr_machine_arm",
        MachAarch64 = "hdr_machine_aarch64",
        MachMips = "hdr_machine_mips",
        MachPpc = "hdr_machine_ppc",
        MachPpc64 = "hdr_machine_ppc64",
        MachSparc = "hdr_machine_sparc",
        MachSh = "hdr_machine_sh",
        MachM68k = "hdr_machine_m68k",
        MachS390 = "hdr_machine_s390",
        MachRiscv = "hdr_machine_riscv",
        MachOther = "hdr_machine_other",
        EntryZero = "hdr_entry_zero",
        FlagsNonzero = "hdr_flags_nonzero",
        FlagsHigh = "hdr_flags_high_byte",
        EntsizesOk = "hdr_entsizes_ok",
        PhnumLog = "hdr_phnum_log",
        ShnumLog = "hdr_shnum_log",
        ShstrndxValid = "hdr_shstrndx_valid",
        PhoffRel = "hdr_phoff_rel",
        ShoffRel = "hdr_shoff_rel",
        ShoffPastEof = "hdr_shoff_past_eof",
    }
}

/// Number of columns of this group.
pub(crate) const LEN: usize = Col::NAMES.len();

/// The one-hot machine column of `e_machine`.
fn machine_col(machine: u16) -> Col {
    match machine {
        EM_386 => Col::MachX86,
        EM_X86_64 => Col::MachX86_64,
        EM_ARM => Col::MachArm,
        EM_AARCH64 => Col::MachAarch64,
        EM_MIPS | EM_MIPS_RS3_LE => Col::MachMips,
        EM_PPC => Col::MachPpc,
        EM_PPC64 => Col::MachPpc64,
        EM_SPARC | EM_SPARC32PLUS | EM_SPARCV9 => Col::MachSparc,
        EM_SH => Col::MachSh,
        EM_68K => Col::MachM68k,
        EM_S390 => Col::MachS390,
        EM_RISCV => Col::MachRiscv,
        _ => Col::MachOther,
    }
}

/// The one-hot type column of `e_type`.
fn type_col(e_type: u16) -> Col {
    match e_type {
        ET_REL => Col::TypeRel,
        ET_EXEC => Col::TypeExec,
        ET_DYN => Col::TypeDyn,
        ET_CORE => Col::TypeCore,
        _ => Col::TypeOther,
    }
}

/// Fills the group (all zero for non-ELF input).
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    let Some(elf) = &input.elf else {
        return;
    };
    let id = &elf.ident;
    let len = input.bytes.len() as u64;
    row.flag(Col::Class32, id.class == ELFCLASS32);
    row.flag(Col::Class64, id.class == ELFCLASS64);
    row.flag(Col::DataLsb, id.data == ELFDATA2LSB);
    row.flag(Col::DataMsb, id.data == ELFDATA2MSB);
    row.flag(Col::OsabiLinux, id.osabi == ELFOSABI_LINUX);
    row.flag(
        Col::OsabiOther,
        id.osabi != ELFOSABI_NONE && id.osabi != ELFOSABI_LINUX,
    );
    row.flag(Col::IdentPad, id.pad_nonzero || id.abiversion != 0);
    if let Some(t) = id.e_type {
        row.flag(type_col(t), true);
    }
    if let Some(m) = id.e_machine {
        row.flag(machine_col(m), true);
    }
    let Some(h) = &elf.header else {
        return;
    };
    row.flag(Col::VersionOk, h.e_version == 1 && id.version == 1);
    row.flag(Col::EntryZero, h.e_entry == 0);
    row.flag(Col::FlagsNonzero, h.e_flags != 0);
    row.set(Col::FlagsHigh, f32::from((h.e_flags >> 24) as u8) / 255.0);
    let (ehsize, phentsize, shentsize) = if id.class == ELFCLASS64 {
        (64, 56, 64)
    } else {
        (52, 32, 40)
    };
    row.flag(
        Col::EntsizesOk,
        h.e_ehsize == ehsize
            && (h.e_phnum == 0 || h.e_phentsize == phentsize)
            && (h.e_shnum == 0 || h.e_shentsize == shentsize),
    );
    row.log(Col::PhnumLog, u64::from(h.e_phnum));
    row.log(Col::ShnumLog, u64::from(h.e_shnum));
    row.flag(
        Col::ShstrndxValid,
        h.e_shstrndx != 0 && h.e_shstrndx < h.e_shnum,
    );
    row.rel(Col::PhoffRel, h.e_phoff, len);
    row.rel(Col::ShoffRel, h.e_shoff, len);
    row.flag(Col::ShoffPastEof, h.e_shoff > len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hots_cover_all_values() {
        for m in 0..=u16::MAX {
            let _ = machine_col(m);
            let _ = type_col(m);
        }
        assert_eq!(machine_col(62), Col::MachX86_64);
        assert_eq!(machine_col(0x9026), Col::MachOther);
        assert_eq!(type_col(3), Col::TypeDyn);
    }
}
