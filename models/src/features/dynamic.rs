//! The dynamic-linking group: the dynamic section's flags and counts, the needed
//! libraries and imported symbols feature-hashed into fixed buckets, and flags for
//! imports that malware leans on (sockets, exec, ptrace, daemonizing, ...).
//!
//! Owns the table of imports of interest. Hashing is FNV-1a (`fnv`), never std's
//! randomized hasher, so buckets are the same in training and in the daemon. Work is
//! bounded: at most `MAX_SYMBOLS` symbols and `NAME_BYTE_BUDGET` name bytes.

use super::Input;
use super::elf::{ElfView, c_str};
use super::fnv::bucket;
use super::row::{Row, columns};
use goblin::elf::dynamic::{
    DF_1_NOW, DF_1_PIE, DF_BIND_NOW, DT_BIND_NOW, DT_DEBUG, DT_FLAGS, DT_FLAGS_1, DT_GNU_HASH,
    DT_HASH, DT_INIT, DT_INIT_ARRAY, DT_JMPREL, DT_NEEDED, DT_PLTREL, DT_PLTRELSZ, DT_RELA,
    DT_RELASZ, DT_RELSZ, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_TEXTREL, DT_VERNEED,
};
use goblin::elf::sym::{STB_GLOBAL, STB_GNU_UNIQUE, STB_WEAK, STT_OBJECT};

columns! {
    /// Fixed columns of the dynamic group (the hashed families follow them).
    Col {
        Present = "dyn_present",
        EntriesLog = "dyn_entries_log",
        NeededLog = "dyn_needed_log",
        Soname = "dyn_soname",
        Rpath = "dyn_rpath",
        BindNow = "dyn_bind_now",
        Textrel = "dyn_textrel",
        Pie = "dyn_pie_flag",
        GnuHash = "dyn_gnu_hash",
        Hash = "dyn_sysv_hash",
        Verneed = "dyn_verneed",
        RelocsLog = "dyn_relocs_log",
        Init = "dyn_init",
        Debug = "dyn_debug",
        SymbolsLog = "dyn_symbols_log",
        ImportsLog = "dyn_imports_log",
        ExportsLog = "dyn_exports_log",
        ImportObjectsLog = "dyn_import_objects_log",
        ImpSocket = "dyn_imp_socket",
        ImpConnect = "dyn_imp_connect",
        ImpListen = "dyn_imp_listen",
        ImpResolve = "dyn_imp_resolve",
        ImpFork = "dyn_imp_fork",
        ImpExec = "dyn_imp_exec",
        ImpPtrace = "dyn_imp_ptrace",
        ImpDaemon = "dyn_imp_daemon",
        ImpPrctl = "dyn_imp_prctl",
        ImpMprotect = "dyn_imp_mprotect",
        ImpDlopen = "dyn_imp_dlopen",
        ImpChmod = "dyn_imp_chmod",
        ImpKill = "dyn_imp_kill",
    }
}

/// Buckets for needed-library names.
pub(crate) const LIB_BUCKETS: usize = 8;
/// Buckets for imported symbol names.
pub(crate) const IMPORT_BUCKETS: usize = 16;
/// First column of the library buckets.
const LIB_START: usize = Col::NAMES.len();
/// First column of the import buckets.
const IMPORT_START: usize = LIB_START + LIB_BUCKETS;
/// Number of columns of this group.
pub(crate) const LEN: usize = IMPORT_START + IMPORT_BUCKETS;
/// At most this many name bytes are hashed per file.
const NAME_BYTE_BUDGET: usize = 4 << 20;

/// Names of the generated columns, in order.
pub(crate) fn generated_names() -> impl Iterator<Item = String> {
    (0..LIB_BUCKETS)
        .map(|i| format!("dyn_lib_hash_{i:02}"))
        .chain((0..IMPORT_BUCKETS).map(|i| format!("dyn_import_hash_{i:02}")))
}

/// Imports of interest and the column each sets.
const INTEREST: &[(&[u8], Col)] = &[
    (b"socket", Col::ImpSocket),
    (b"connect", Col::ImpConnect),
    (b"bind", Col::ImpListen),
    (b"listen", Col::ImpListen),
    (b"accept", Col::ImpListen),
    (b"gethostbyname", Col::ImpResolve),
    (b"getaddrinfo", Col::ImpResolve),
    (b"inet_addr", Col::ImpResolve),
    (b"inet_aton", Col::ImpResolve),
    (b"inet_pton", Col::ImpResolve),
    (b"fork", Col::ImpFork),
    (b"vfork", Col::ImpFork),
    (b"clone", Col::ImpFork),
    (b"execve", Col::ImpExec),
    (b"execl", Col::ImpExec),
    (b"execlp", Col::ImpExec),
    (b"execv", Col::ImpExec),
    (b"execvp", Col::ImpExec),
    (b"system", Col::ImpExec),
    (b"popen", Col::ImpExec),
    (b"ptrace", Col::ImpPtrace),
    (b"setsid", Col::ImpDaemon),
    (b"daemon", Col::ImpDaemon),
    (b"prctl", Col::ImpPrctl),
    (b"mprotect", Col::ImpMprotect),
    (b"dlopen", Col::ImpDlopen),
    (b"dlsym", Col::ImpDlopen),
    (b"chmod", Col::ImpChmod),
    (b"fchmod", Col::ImpChmod),
    (b"kill", Col::ImpKill),
];

/// The library name used for hashing: basename, cut before `.so` (`libc.so.6` →
/// `libc`), so version bumps do not move the bucket.
fn library_stem(name: &[u8]) -> &[u8] {
    let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    match base.windows(3).position(|w| w == b".so") {
        Some(0) | None => base,
        Some(i) => base.get(..i).unwrap_or(base),
    }
}

/// Fills the group (all zero for non-ELF input and static executables).
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    let Some(elf) = &input.elf else {
        return;
    };
    let is64 = elf.ctx.is_some_and(|c| c.container.is_big());
    let mut budget = NAME_BYTE_BUDGET;
    if let Some(dynamic) = &elf.dynamic {
        row.flag(Col::Present, true);
        row.log(Col::EntriesLog, dynamic.dyns.len() as u64);
        fill_tags(elf, is64, &mut budget, row);
    }
    fill_symbols(elf, &mut budget, row);
    row.log_in_place(LIB_START, LIB_BUCKETS);
    row.log_in_place(IMPORT_START, IMPORT_BUCKETS);
}

fn fill_tags(elf: &ElfView<'_>, is64: bool, budget: &mut usize, row: &mut Row<'_>) {
    let (rela_ent, rel_ent) = if is64 { (24u64, 16u64) } else { (12, 8) };
    let (mut needed, mut relocs) = (0u64, 0u64);
    let mut plt_is_rela = true;
    let mut pltrelsz = 0u64;
    for d in elf.dyns() {
        match d.d_tag {
            DT_NEEDED => {
                needed += 1;
                let name = library_stem(c_str(elf.dynstr, d.d_val));
                if name.len() <= *budget {
                    *budget -= name.len();
                    row.add(LIB_START + bucket(name, LIB_BUCKETS), 1.0);
                }
            }
            DT_SONAME => row.flag(Col::Soname, true),
            DT_RPATH | DT_RUNPATH => row.flag(Col::Rpath, true),
            DT_BIND_NOW => row.flag(Col::BindNow, true),
            DT_FLAGS if d.d_val & DF_BIND_NOW != 0 => row.flag(Col::BindNow, true),
            DT_FLAGS_1 => {
                if d.d_val & DF_1_NOW != 0 {
                    row.flag(Col::BindNow, true);
                }
                row.flag(Col::Pie, d.d_val & DF_1_PIE != 0);
            }
            DT_TEXTREL => row.flag(Col::Textrel, true),
            DT_GNU_HASH => row.flag(Col::GnuHash, true),
            DT_HASH => row.flag(Col::Hash, true),
            DT_VERNEED => row.flag(Col::Verneed, true),
            DT_INIT | DT_INIT_ARRAY => row.flag(Col::Init, true),
            DT_DEBUG => row.flag(Col::Debug, true),
            DT_RELASZ => relocs = relocs.saturating_add(d.d_val / rela_ent),
            DT_RELSZ => relocs = relocs.saturating_add(d.d_val / rel_ent),
            DT_PLTRELSZ => pltrelsz = d.d_val,
            DT_PLTREL => plt_is_rela = d.d_val == DT_RELA,
            DT_JMPREL => {}
            _ => {}
        }
    }
    let plt_ent = if plt_is_rela { rela_ent } else { rel_ent };
    relocs = relocs.saturating_add(pltrelsz / plt_ent);
    row.log(Col::NeededLog, needed);
    row.log(Col::RelocsLog, relocs);
}

fn fill_symbols(elf: &ElfView<'_>, budget: &mut usize, row: &mut Row<'_>) {
    let Some(table) = &elf.dynsym else {
        return;
    };
    let (mut imports, mut exports, mut objects) = (0u64, 0u64, 0u64);
    // Index 0 is the null symbol.
    for i in 1..table.count {
        let Some(sym) = elf.symbol(table, i) else {
            break;
        };
        let bind = sym.info >> 4;
        if sym.shndx != 0 {
            // Defined: an export when global and named (the name itself is not read).
            if sym.name != 0 && (bind == STB_GLOBAL || bind == STB_WEAK || bind == STB_GNU_UNIQUE) {
                exports += 1;
            }
            continue;
        }
        let name = c_str(table.strtab, u64::from(sym.name));
        if name.is_empty() {
            continue;
        }
        imports += 1;
        if sym.info & 0xf == STT_OBJECT {
            objects += 1;
        }
        if name.len() <= *budget {
            *budget -= name.len();
            row.add(IMPORT_START + bucket(name, IMPORT_BUCKETS), 1.0);
            for (interest, col) in INTEREST {
                if *interest == name {
                    row.flag(*col, true);
                }
            }
        }
    }
    row.log(Col::SymbolsLog, table.count as u64);
    row.log(Col::ImportsLog, imports);
    row.log(Col::ExportsLog, exports);
    row.log(Col::ImportObjectsLog, objects);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems() {
        assert_eq!(library_stem(b"libc.so.6"), b"libc");
        assert_eq!(
            library_stem(b"/lib/x86_64-linux-gnu/libpthread.so.0"),
            b"libpthread"
        );
        assert_eq!(library_stem(b"ld-linux-x86-64.so.2"), b"ld-linux-x86-64");
        assert_eq!(library_stem(b"weird"), b"weird");
        assert_eq!(library_stem(b".so"), b".so");
        assert_eq!(library_stem(b""), b"");
    }

    #[test]
    fn imports_and_libraries() {
        use super::super::elf::testelf::{Ph, Sh, build};
        use super::super::{column, extract};
        use goblin::elf::dynamic::{DT_NEEDED, DT_STRSZ, DT_STRTAB};
        use goblin::elf::program_header::{PT_DYNAMIC, PT_LOAD};
        use goblin::elf::section_header::{SHT_DYNSYM, SHT_STRTAB};

        let strtab = b"\0libc.so.6\0socket\0execve\0my_export\0";
        let (libc, socket, execve, export) = (1u32, 11u32, 18u32, 25u32);
        let sym = |name: u32, info: u8, shndx: u16| {
            let mut e = name.to_le_bytes().to_vec();
            e.push(info);
            e.push(0);
            e.extend_from_slice(&shndx.to_le_bytes());
            e.extend_from_slice(&[0u8; 16]);
            e
        };
        let mut syms = vec![0u8; 24];
        syms.extend(sym(socket, 0x12, 0));
        syms.extend(sym(execve, 0x12, 0));
        syms.extend(sym(export, 0x12, 7));
        let mut dynamic = Vec::new();
        for (tag, val) in [
            (DT_NEEDED, u64::from(libc)),
            (DT_STRTAB, 0x300),
            (DT_STRSZ, strtab.len() as u64),
            (0, 0),
        ] {
            dynamic.extend_from_slice(&tag.to_le_bytes());
            dynamic.extend_from_slice(&val.to_le_bytes());
        }
        let b = build(
            0x1000,
            0,
            &[
                Ph {
                    p_type: PT_LOAD,
                    flags: 4,
                    offset: 0,
                    vaddr: 0,
                    filesz: 0x1000,
                    memsz: 0x1000,
                },
                Ph {
                    p_type: PT_DYNAMIC,
                    flags: 6,
                    offset: 0x500,
                    vaddr: 0x500,
                    filesz: dynamic.len() as u64,
                    memsz: 0,
                },
            ],
            0x800,
            &[
                Sh::default(),
                Sh {
                    sh_type: SHT_STRTAB,
                    offset: 0x300,
                    size: strtab.len() as u64,
                    ..Sh::default()
                },
                Sh {
                    sh_type: SHT_DYNSYM,
                    offset: 0x400,
                    size: syms.len() as u64,
                    link: 1,
                    entsize: 24,
                    ..Sh::default()
                },
            ],
            0,
            &[(0x300, strtab), (0x400, &syms), (0x500, &dynamic)],
        );
        let f = extract(&b);
        assert!(f.parsed);
        let v = |n: &str| f.values[column(n).unwrap_or(usize::MAX)];
        assert_eq!(v("dyn_present"), 1.0);
        assert_eq!(v("dyn_needed_log"), 1f32.ln_1p());
        assert_eq!(v("dyn_imports_log"), 2f32.ln_1p());
        assert_eq!(v("dyn_exports_log"), 1f32.ln_1p());
        assert_eq!(v("dyn_imp_socket"), 1.0);
        assert_eq!(v("dyn_imp_exec"), 1.0);
        assert_eq!(v("dyn_imp_ptrace"), 0.0);
        let lib_bucket = format!("dyn_lib_hash_{:02}", bucket(b"libc", LIB_BUCKETS));
        assert_eq!(v(&lib_bucket), 1f32.ln_1p());
        let hashed: f32 = (0..IMPORT_BUCKETS)
            .map(|i| v(&format!("dyn_import_hash_{i:02}")).exp_m1())
            .sum();
        assert!((hashed - 2.0).abs() < 1e-5, "{hashed}");
    }

    #[test]
    fn generated_names_count() {
        assert_eq!(generated_names().count(), LIB_BUCKETS + IMPORT_BUCKETS);
        assert_eq!(LEN, Col::NAMES.len() + LIB_BUCKETS + IMPORT_BUCKETS);
    }
}
