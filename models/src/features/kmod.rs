//! The kernel-module group (schema 2): what a relocatable object (`ET_REL`, which
//! is what a `.ko` is) declares in `.modinfo`, which module sections it has, and
//! which kernel symbols it imports. A kernel-module rootkit finds the syscall
//! table (`sys_call_table`, `kallsyms_lookup_name`), hooks through kprobes or
//! ftrace, swaps credentials or hides itself (`list_del` of its own module);
//! schema 1 sees none of that, because a relocatable object has no dynamic
//! section and its imports are the undefined symbols of `.symtab`.
//!
//! Owns the tables of kernel imports of interest and of marker strings. Only
//! `ET_REL` input is read (every column is zero otherwise), so executables pay
//! nothing. Work is bounded: at most `MAX_SYMBOLS` symbols and `NAME_BYTE_BUDGET`
//! name bytes, `.modinfo` up to `MODINFO_MAX` bytes, and one substring search per
//! marker over files up to `MARKER_SCAN_MAX` bytes.

use super::Input;
use super::elf::{ElfView, c_str};
use super::fnv::bucket;
use super::row::{Row, columns};
use goblin::elf::header::ET_REL;
use goblin::elf::sym::{STB_GLOBAL, STB_WEAK};

columns! {
    /// Fixed columns of the kernel-module group (the hashed families follow them).
    Col {
        Modinfo = "kmod_modinfo",
        FieldsLog = "kmod_fields_log",
        License = "kmod_license",
        LicenseGpl = "kmod_license_gpl",
        Vermagic = "kmod_vermagic",
        Author = "kmod_author",
        Description = "kmod_description",
        Version = "kmod_version",
        AliasLog = "kmod_alias_log",
        ParmLog = "kmod_parm_log",
        Depends = "kmod_depends",
        ThisModule = "kmod_this_module",
        Versions = "kmod_versions",
        Ksymtab = "kmod_ksymtab",
        InitModule = "kmod_init_module",
        CleanupModule = "kmod_cleanup_module",
        UndefinedLog = "kmod_undefined_log",
        DefinedLog = "kmod_defined_log",
        ImpKallsyms = "kmod_imp_kallsyms",
        ImpKprobe = "kmod_imp_kprobe",
        ImpFtrace = "kmod_imp_ftrace",
        ImpCreds = "kmod_imp_creds",
        ImpUsermode = "kmod_imp_usermode",
        ImpFile = "kmod_imp_file",
        ImpNetfilter = "kmod_imp_netfilter",
        ImpListDel = "kmod_imp_list_del",
        ImpTask = "kmod_imp_task",
        ImpProcfs = "kmod_imp_procfs",
        ImpSyscall = "kmod_imp_syscall",
        StrSysCallTable = "kmod_str_sys_call_table",
        StrKallsyms = "kmod_str_kallsyms",
        StrHookTarget = "kmod_str_hook_target",
        StrCr0 = "kmod_str_cr0",
    }
}

/// Buckets for undefined (imported) `.symtab` names.
pub(crate) const UNDEF_BUCKETS: usize = 32;
/// Buckets for defined global `.symtab` names.
pub(crate) const DEF_BUCKETS: usize = 16;
const UNDEF_START: usize = Col::NAMES.len();
const DEF_START: usize = UNDEF_START + UNDEF_BUCKETS;
/// Number of columns of this group.
pub(crate) const LEN: usize = DEF_START + DEF_BUCKETS;
/// At most this many name bytes are hashed per file.
const NAME_BYTE_BUDGET: usize = 4 << 20;
/// `.modinfo` is read up to this many bytes.
const MODINFO_MAX: usize = 64 << 10;
/// Marker strings are searched in relocatable objects up to this size.
const MARKER_SCAN_MAX: usize = 16 << 20;

/// Names of the generated columns, in order.
pub(crate) fn generated_names() -> impl Iterator<Item = String> {
    (0..UNDEF_BUCKETS)
        .map(|i| format!("kmod_undef_hash_{i:02}"))
        .chain((0..DEF_BUCKETS).map(|i| format!("kmod_def_hash_{i:02}")))
}

/// Kernel imports of interest: exact names, or prefixes when the entry ends in `*`.
const IMPORTS: &[(&[u8], Col)] = &[
    (b"kallsyms_lookup_name", Col::ImpKallsyms),
    (b"kallsyms_on_each_symbol", Col::ImpKallsyms),
    (b"register_kprobe", Col::ImpKprobe),
    (b"register_kretprobe", Col::ImpKprobe),
    (b"unregister_kprobe", Col::ImpKprobe),
    (b"register_ftrace_function", Col::ImpFtrace),
    (b"ftrace_set_filter_ip", Col::ImpFtrace),
    (b"ftrace_set_filter", Col::ImpFtrace),
    (b"commit_creds", Col::ImpCreds),
    (b"prepare_creds", Col::ImpCreds),
    (b"prepare_kernel_cred", Col::ImpCreds),
    (b"override_creds", Col::ImpCreds),
    (b"call_usermodehelper", Col::ImpUsermode),
    (b"call_usermodehelper_exec", Col::ImpUsermode),
    (b"call_usermodehelper_setup", Col::ImpUsermode),
    (b"filp_open", Col::ImpFile),
    (b"filp_close", Col::ImpFile),
    (b"kernel_read", Col::ImpFile),
    (b"kernel_write", Col::ImpFile),
    (b"vfs_read", Col::ImpFile),
    (b"vfs_write", Col::ImpFile),
    (b"kern_path", Col::ImpFile),
    (b"nf_register_net_hook", Col::ImpNetfilter),
    (b"nf_register_net_hooks", Col::ImpNetfilter),
    (b"nf_register_hook", Col::ImpNetfilter),
    (b"list_del", Col::ImpListDel),
    (b"__list_del_entry_valid", Col::ImpListDel),
    (b"__list_del_entry_valid_or_report", Col::ImpListDel),
    (b"kobject_del", Col::ImpListDel),
    (b"find_task_by_vpid", Col::ImpTask),
    (b"pid_task", Col::ImpTask),
    (b"find_vpid", Col::ImpTask),
    (b"find_get_pid", Col::ImpTask),
    (b"init_task", Col::ImpTask),
    (b"proc_create", Col::ImpProcfs),
    (b"proc_mkdir", Col::ImpProcfs),
    (b"proc_create_data", Col::ImpProcfs),
    (b"remove_proc_entry", Col::ImpProcfs),
    (b"sys_*", Col::ImpSyscall),
    (b"__x64_sys_*", Col::ImpSyscall),
    (b"__ia32_sys_*", Col::ImpSyscall),
    (b"__arm64_sys_*", Col::ImpSyscall),
];

/// Marker strings searched anywhere in a relocatable object (names looked up at
/// run time, through `kallsyms_lookup_name` or a kprobe, are strings, not symbols).
const MARKERS: &[(&[u8], Col)] = &[
    (b"sys_call_table", Col::StrSysCallTable),
    (b"kallsyms_lookup_name", Col::StrKallsyms),
    (b"tcp4_seq_show", Col::StrHookTarget),
    (b"tcp6_seq_show", Col::StrHookTarget),
    (b"filldir", Col::StrHookTarget),
    (b"iterate_dir", Col::StrHookTarget),
    (b"getdents", Col::StrHookTarget),
    (b"proc_pid_readdir", Col::StrHookTarget),
    (b"write_cr0", Col::StrCr0),
];

/// Licenses the kernel treats as GPL-compatible (`license_is_gpl_compatible`).
const GPL_LICENSES: &[&[u8]] = &[
    b"GPL",
    b"GPL v2",
    b"GPL and additional rights",
    b"Dual BSD/GPL",
    b"Dual MIT/GPL",
    b"Dual MPL/GPL",
];

fn matches(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.strip_suffix(b"*") {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Fills the group (all zero unless the input is a relocatable ELF object).
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    let Some(elf) = &input.elf else {
        return;
    };
    if elf.header.map(|h| h.e_type) != Some(ET_REL) {
        return;
    }
    fill_sections(elf, row);
    fill_symbols(elf, row);
    if input.bytes.len() <= MARKER_SCAN_MAX {
        for (needle, col) in MARKERS {
            if memchr::memmem::find(input.bytes, needle).is_some() {
                row.flag(*col, true);
            }
        }
    }
    row.log_in_place(UNDEF_START, UNDEF_BUCKETS);
    row.log_in_place(DEF_START, DEF_BUCKETS);
}

fn fill_sections(elf: &ElfView<'_>, row: &mut Row<'_>) {
    for s in elf.shdrs.iter().skip(1) {
        match elf.section_name(s) {
            b".modinfo" => {
                row.flag(Col::Modinfo, true);
                if let Some(data) = elf.section_data(s) {
                    fill_modinfo(data.get(..MODINFO_MAX).unwrap_or(data), row);
                }
            }
            b".gnu.linkonce.this_module" => row.flag(Col::ThisModule, true),
            b"__versions" => row.flag(Col::Versions, true),
            name if name.starts_with(b"__ksymtab") => row.flag(Col::Ksymtab, true),
            _ => {}
        }
    }
}

/// `.modinfo` is a list of NUL-terminated `key=value` strings.
fn fill_modinfo(data: &[u8], row: &mut Row<'_>) {
    let (mut fields, mut aliases, mut parms) = (0u64, 0u64, 0u64);
    for field in data.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        fields += 1;
        let (key, value) = match field.iter().position(|&b| b == b'=') {
            Some(i) => (
                field.get(..i).unwrap_or(&[]),
                field.get(i + 1..).unwrap_or(&[]),
            ),
            None => (field, &[][..]),
        };
        match key {
            b"license" => {
                row.flag(Col::License, true);
                if GPL_LICENSES.contains(&value) {
                    row.flag(Col::LicenseGpl, true);
                }
            }
            b"vermagic" => row.flag(Col::Vermagic, true),
            b"author" => row.flag(Col::Author, true),
            b"description" => row.flag(Col::Description, true),
            b"version" => row.flag(Col::Version, true),
            b"alias" => aliases += 1,
            b"parm" | b"parmtype" => parms += 1,
            b"depends" => row.flag(Col::Depends, !value.is_empty()),
            _ => {}
        }
    }
    row.log(Col::FieldsLog, fields);
    row.log(Col::AliasLog, aliases);
    row.log(Col::ParmLog, parms);
}

fn fill_symbols(elf: &ElfView<'_>, row: &mut Row<'_>) {
    let Some(table) = &elf.symtab else {
        return;
    };
    let mut budget = NAME_BYTE_BUDGET;
    let (mut undefined, mut defined) = (0u64, 0u64);
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
        let bind = sym.info >> 4;
        if sym.shndx == 0 {
            undefined += 1;
            row.add(UNDEF_START + bucket(name, UNDEF_BUCKETS), 1.0);
            for (pattern, col) in IMPORTS {
                if matches(pattern, name) {
                    row.flag(*col, true);
                }
            }
            continue;
        }
        if bind != STB_GLOBAL && bind != STB_WEAK {
            continue;
        }
        defined += 1;
        row.add(DEF_START + bucket(name, DEF_BUCKETS), 1.0);
        match name {
            b"init_module" => row.flag(Col::InitModule, true),
            b"cleanup_module" => row.flag(Col::CleanupModule, true),
            _ => {}
        }
    }
    row.log(Col::UndefinedLog, undefined);
    row.log(Col::DefinedLog, defined);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches(b"sys_*", b"sys_getdents64"));
        assert!(!matches(b"sys_*", b"syscall"));
        assert!(matches(b"filp_open", b"filp_open"));
        assert!(!matches(b"filp_open", b"filp_opened"));
    }

    #[test]
    fn modinfo_fields() {
        let mut cells = vec![0f32; LEN];
        let mut row = Row::new(&mut cells);
        fill_modinfo(
            b"license=GPL\0author=x\0alias=pci:1\0alias=pci:2\0depends=\0vermagic=6.1.0 SMP\0",
            &mut row,
        );
        let v = |c: Col| cells[c as usize];
        assert_eq!(v(Col::License), 1.0);
        assert_eq!(v(Col::LicenseGpl), 1.0);
        assert_eq!(v(Col::Author), 1.0);
        assert_eq!(v(Col::Vermagic), 1.0);
        assert_eq!(v(Col::Depends), 0.0);
        assert_eq!(v(Col::Description), 0.0);
        assert_eq!(v(Col::AliasLog), super::super::row::log1p(2));
        assert_eq!(v(Col::FieldsLog), super::super::row::log1p(6));
    }

    #[test]
    fn generated_names_count() {
        assert_eq!(generated_names().count(), UNDEF_BUCKETS + DEF_BUCKETS);
    }
}
