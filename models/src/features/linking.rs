//! The linking group (schema 2): what a dynamically linked file exports and how it
//! hooks into the loader. An `LD_PRELOAD` rootkit is a shared object that exports
//! the libc or PAM functions it hides behind (`readdir`, `fopen`, `accept`,
//! `pam_authenticate`, `execve`) and finds the real ones with `dlsym`; schema 1
//! counts exports but never reads their names.
//!
//! Owns the table of hookable function names. Columns: exports of hookable names
//! by kind, exported names and imported names feature-hashed (FNV-1a, more
//! buckets than schema 1's imports), constructor and destructor arrays, symbol
//! versioning, relative relocations and loader flags. Work is bounded like the
//! dynamic group's: at most `MAX_SYMBOLS` symbols and `NAME_BYTE_BUDGET` name bytes.

use super::Input;
use super::elf::{ElfView, c_str};
use super::fnv::bucket;
use super::row::{Row, columns};
use goblin::elf::dynamic::{
    DF_1_INITFIRST, DF_1_NODELETE, DF_STATIC_TLS, DT_FINI, DT_FINI_ARRAYSZ, DT_FLAGS, DT_FLAGS_1,
    DT_INIT, DT_INIT_ARRAYSZ, DT_PREINIT_ARRAYSZ, DT_RELACOUNT, DT_RELCOUNT, DT_VERDEF,
    DT_VERNEEDNUM, DT_VERSYM,
};
use goblin::elf::sym::{STB_GLOBAL, STB_GNU_UNIQUE, STB_WEAK, STT_FUNC, STT_GNU_IFUNC, STT_OBJECT};

/// `DT_RELRSZ` (packed relative relocations; not in goblin's table).
const DT_RELRSZ: u64 = 35;

columns! {
    /// Fixed columns of the linking group (the hashed families follow them).
    Col {
        HookExportsLog = "lnk_hook_exports_log",
        HookFs = "lnk_hook_fs",
        HookProc = "lnk_hook_proc",
        HookNet = "lnk_hook_net",
        HookAuth = "lnk_hook_auth",
        HookExec = "lnk_hook_exec",
        HookLoader = "lnk_hook_loader",
        HookWithDlsym = "lnk_hook_with_dlsym",
        ExportFuncsLog = "lnk_export_funcs_log",
        ExportObjectsLog = "lnk_export_objects_log",
        ExportIfuncLog = "lnk_export_ifunc_log",
        WeakImportsLog = "lnk_weak_imports_log",
        InitArrayLog = "lnk_init_array_log",
        FiniArrayLog = "lnk_fini_array_log",
        PreinitArray = "lnk_preinit_array",
        DtInit = "lnk_dt_init",
        DtFini = "lnk_dt_fini",
        Versym = "lnk_versym",
        Verdef = "lnk_verdef",
        VerneedLog = "lnk_verneed_log",
        RelativeLog = "lnk_relative_log",
        Relr = "lnk_relr",
        NoDelete = "lnk_nodelete",
        InitFirst = "lnk_initfirst",
        StaticTls = "lnk_static_tls",
    }
}

/// Buckets for exported symbol names.
pub(crate) const EXPORT_BUCKETS: usize = 32;
/// Buckets for imported symbol names.
pub(crate) const IMPORT_BUCKETS: usize = 32;
const EXPORT_START: usize = Col::NAMES.len();
const IMPORT_START: usize = EXPORT_START + EXPORT_BUCKETS;
/// Number of columns of this group.
pub(crate) const LEN: usize = IMPORT_START + IMPORT_BUCKETS;
/// At most this many name bytes are hashed per file.
const NAME_BYTE_BUDGET: usize = 4 << 20;

/// Names of the generated columns, in order.
pub(crate) fn generated_names() -> impl Iterator<Item = String> {
    (0..EXPORT_BUCKETS)
        .map(|i| format!("lnk_export_hash_{i:02}"))
        .chain((0..IMPORT_BUCKETS).map(|i| format!("lnk_import_hash_{i:02}")))
}

/// Functions that hiding and credential-stealing libraries replace, by kind. libc,
/// PAM and preload tools such as libfakeroot export them too: the benign data
/// holds those, so the column says "exports X", not "is malware".
const HOOKS: &[(&[u8], Col)] = &[
    (b"readdir", Col::HookFs),
    (b"readdir64", Col::HookFs),
    (b"readdir_r", Col::HookFs),
    (b"opendir", Col::HookFs),
    (b"fopen", Col::HookFs),
    (b"fopen64", Col::HookFs),
    (b"open", Col::HookFs),
    (b"open64", Col::HookFs),
    (b"openat", Col::HookFs),
    (b"stat", Col::HookFs),
    (b"stat64", Col::HookFs),
    (b"lstat", Col::HookFs),
    (b"lstat64", Col::HookFs),
    (b"__xstat", Col::HookFs),
    (b"__xstat64", Col::HookFs),
    (b"__lxstat", Col::HookFs),
    (b"__lxstat64", Col::HookFs),
    (b"access", Col::HookFs),
    (b"unlink", Col::HookFs),
    (b"unlinkat", Col::HookFs),
    (b"rmdir", Col::HookFs),
    (b"kill", Col::HookProc),
    (b"fork", Col::HookProc),
    (b"getpid", Col::HookProc),
    (b"ptrace", Col::HookProc),
    (b"accept", Col::HookNet),
    (b"accept4", Col::HookNet),
    (b"connect", Col::HookNet),
    (b"bind", Col::HookNet),
    (b"recv", Col::HookNet),
    (b"recvfrom", Col::HookNet),
    (b"read", Col::HookNet),
    (b"write", Col::HookNet),
    (b"pcap_loop", Col::HookNet),
    (b"getaddrinfo", Col::HookNet),
    (b"pam_authenticate", Col::HookAuth),
    (b"pam_open_session", Col::HookAuth),
    (b"pam_acct_mgmt", Col::HookAuth),
    (b"pam_get_item", Col::HookAuth),
    (b"getpwnam", Col::HookAuth),
    (b"getpwnam_r", Col::HookAuth),
    (b"getspnam", Col::HookAuth),
    (b"crypt", Col::HookAuth),
    (b"execve", Col::HookExec),
    (b"execv", Col::HookExec),
    (b"execvp", Col::HookExec),
    (b"system", Col::HookExec),
    (b"popen", Col::HookExec),
    (b"dlsym", Col::HookLoader),
    (b"dlopen", Col::HookLoader),
    (b"dladdr", Col::HookLoader),
    (b"dl_iterate_phdr", Col::HookLoader),
];

/// Fills the group (all zero for non-ELF input and files without a dynamic section
/// or dynamic symbols).
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    let Some(elf) = &input.elf else {
        return;
    };
    let ptr = if elf.ctx.is_some_and(|c| c.container.is_big()) {
        8
    } else {
        4
    };
    fill_tags(elf, ptr, row);
    fill_symbols(elf, row);
    row.log_in_place(EXPORT_START, EXPORT_BUCKETS);
    row.log_in_place(IMPORT_START, IMPORT_BUCKETS);
}

fn fill_tags(elf: &ElfView<'_>, ptr: u64, row: &mut Row<'_>) {
    for d in elf.dyns() {
        match d.d_tag {
            DT_INIT_ARRAYSZ => row.log(Col::InitArrayLog, d.d_val / ptr),
            DT_FINI_ARRAYSZ => row.log(Col::FiniArrayLog, d.d_val / ptr),
            DT_PREINIT_ARRAYSZ => row.flag(Col::PreinitArray, d.d_val > 0),
            DT_INIT => row.flag(Col::DtInit, true),
            DT_FINI => row.flag(Col::DtFini, true),
            DT_VERSYM => row.flag(Col::Versym, true),
            DT_VERDEF => row.flag(Col::Verdef, true),
            DT_VERNEEDNUM => row.log(Col::VerneedLog, d.d_val),
            DT_RELACOUNT | DT_RELCOUNT => row.log(Col::RelativeLog, d.d_val),
            DT_RELRSZ => row.flag(Col::Relr, d.d_val > 0),
            DT_FLAGS if d.d_val & DF_STATIC_TLS != 0 => row.flag(Col::StaticTls, true),
            DT_FLAGS_1 => {
                row.flag(Col::NoDelete, d.d_val & DF_1_NODELETE != 0);
                row.flag(Col::InitFirst, d.d_val & DF_1_INITFIRST != 0);
            }
            _ => {}
        }
    }
}

fn fill_symbols(elf: &ElfView<'_>, row: &mut Row<'_>) {
    let Some(table) = &elf.dynsym else {
        return;
    };
    let mut budget = NAME_BYTE_BUDGET;
    let (mut hooks, mut funcs, mut objects, mut ifuncs, mut weak) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut imports_dlsym = false;
    // Index 0 is the null symbol.
    for i in 1..table.count {
        let Some(sym) = elf.symbol(table, i) else {
            break;
        };
        let name = c_str(table.strtab, u64::from(sym.name));
        if name.is_empty() || name.len() > budget {
            continue;
        }
        budget -= name.len();
        let (bind, kind) = (sym.info >> 4, sym.info & 0xf);
        if sym.shndx == 0 {
            row.add(IMPORT_START + bucket(name, IMPORT_BUCKETS), 1.0);
            weak += u64::from(bind == STB_WEAK);
            imports_dlsym |= name == b"dlsym";
            continue;
        }
        if !(bind == STB_GLOBAL || bind == STB_WEAK || bind == STB_GNU_UNIQUE) {
            continue;
        }
        row.add(EXPORT_START + bucket(name, EXPORT_BUCKETS), 1.0);
        match kind {
            STT_FUNC => funcs += 1,
            STT_OBJECT => objects += 1,
            STT_GNU_IFUNC => ifuncs += 1,
            _ => {}
        }
        if let Some((_, col)) = HOOKS.iter().find(|(hook, _)| *hook == name) {
            hooks += 1;
            row.flag(*col, true);
        }
    }
    row.log(Col::HookExportsLog, hooks);
    row.flag(Col::HookWithDlsym, hooks > 0 && imports_dlsym);
    row.log(Col::ExportFuncsLog, funcs);
    row.log(Col::ExportObjectsLog, objects);
    row.log(Col::ExportIfuncLog, ifuncs);
    row.log(Col::WeakImportsLog, weak);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_count() {
        assert_eq!(generated_names().count(), EXPORT_BUCKETS + IMPORT_BUCKETS);
        assert_eq!(LEN, Col::NAMES.len() + EXPORT_BUCKETS + IMPORT_BUCKETS);
    }

    #[test]
    fn hook_names_are_unique() {
        for (i, (a, _)) in HOOKS.iter().enumerate() {
            assert!(HOOKS.iter().skip(i + 1).all(|(b, _)| a != b), "{a:?}");
        }
    }
}
