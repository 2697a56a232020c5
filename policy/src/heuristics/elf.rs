//! ELF heuristics: packers, impossible or hostile layouts, and stripped statics.
//!
//! Owns: the ELF [`CATALOG`] and [`analyze`], which turns the header, program
//! headers and section headers of an [`ElfView`] (one parse per scan, shared
//! with the model's features) into [`Reason`]s. Must not own: parsing the
//! tables (`vigil-elf`), reading the file, weights or thresholds.
//!
//! Input is hostile: every offset and size is checked against the buffer with
//! checked arithmetic, goblin's errors become `elf.malformed` / `elf.tables_disagree`
//! findings, and files over [`PARSE_SIZE_CAP`] only get the cheap checks (header,
//! program headers, UPX header) — no section walk, entropy or overlay; over
//! [`vigil_elf::MAX_PARSE_LEN`] (never reached by a scan, whose content stops at
//! 64 MiB) only the header checks.

use goblin::container::Ctx;
use goblin::elf::header::{self, Header};
use goblin::elf::program_header::{self, ProgramHeader};
use goblin::elf::section_header::{self, SectionHeader};
use vigil_elf::ElfView;

use super::{Heuristic, contains, entropy, entropy_of};
use crate::verdict::Reason;

/// The four bytes every ELF file starts with.
pub const MAGIC: &[u8] = b"\x7fELF";

/// Files larger than this get only the cheap checks: 64 MiB.
pub const PARSE_SIZE_CAP: usize = 64 << 20;

/// Executable code needs at least this many bytes for its entropy to mean anything.
pub const ENTROPY_MIN_BYTES: usize = 4096;

/// Bits per byte above which executable bytes are compressed or encrypted rather
/// than machine code (compiled code measures 5.5–6.8).
pub const HIGH_ENTROPY: f64 = 7.2;

/// Trailing bytes after everything the headers describe that count as an overlay.
pub const OVERLAY_MIN_BYTES: u64 = 512;

/// UPX's magic, in its `l_info` header after the program headers and in the
/// `PackHeader` at the end of the file.
const UPX_MAGIC: &[u8; 4] = b"UPX!";

/// Distance of the `PackHeader` magic from the end of a UPX-packed ELF.
const UPX_PACK_HEADER_FROM_END: usize = 36;

/// UPX's own banner, present in the stub of every packed file.
const UPX_BANNERS: [&[u8]; 2] = [b"$Info: This file is packed with the UPX", b"$Id: UPX "];

/// Bytes at the start and the end of a file searched for packer banners.
const BANNER_WINDOW: usize = 64 << 10;

/// Header or program headers cannot be parsed.
pub const MALFORMED: Heuristic = Heuristic {
    id: "elf.malformed",
    score: 30,
    summary: "malformed ELF headers (parsers and analysts fail on it; the kernel may not)",
};
/// A verified UPX `l_info`/`PackHeader`.
pub const UPX: Heuristic = Heuristic {
    id: "elf.upx",
    score: 50,
    summary: "packed with UPX (header verified)",
};
/// A UPX layout whose magic was altered so `upx -d` refuses it.
pub const UPX_TAMPERED: Heuristic = Heuristic {
    id: "elf.upx_tampered",
    score: 80,
    summary: "UPX-packed with the UPX! magic altered (defeats unpacking; typical of IoT botnets)",
};
/// The entry point starts with a Shikata Ga Nai (Metasploit) decoder stub.
pub const SGN_ENCODER: Heuristic = Heuristic {
    id: "elf.sgn_encoder",
    score: 80,
    summary: "entry point starts with a Shikata Ga Nai decoder stub (self-decoding payload, as from msfvenom)",
};
/// The entry point is in no executable segment.
pub const ENTRY_OUTSIDE_EXEC: Heuristic = Heuristic {
    id: "elf.entry_outside_exec",
    score: 40,
    summary: "entry point outside every executable segment",
};
/// A loadable segment both writable and executable.
pub const WX_SEGMENT: Heuristic = Heuristic {
    id: "elf.wx_segment",
    score: 30,
    summary: "loadable segment both writable and executable (self-modifying or unpacking code)",
};
/// An executable or shared object without section headers.
pub const NO_SECTIONS: Heuristic = Heuristic {
    id: "elf.no_sections",
    score: 25,
    summary: "no section headers (stripped by a packer or sstrip)",
};
/// Section and segment tables that contradict each other or the file.
pub const TABLES_DISAGREE: Heuristic = Heuristic {
    id: "elf.tables_disagree",
    score: 30,
    summary: "section and segment tables disagree with each other or the file",
};
/// Executable bytes that look compressed or encrypted.
pub const HIGH_ENTROPY_EXEC: Heuristic = Heuristic {
    id: "elf.high_entropy_exec",
    score: 25,
    summary: "executable code with the entropy of compressed or encrypted data",
};
/// Data after everything the headers describe.
pub const OVERLAY: Heuristic = Heuristic {
    id: "elf.overlay",
    score: 15,
    summary: "data appended after the last section (overlay)",
};
/// No interpreter, no dynamic section, no symbol table.
pub const STATIC_STRIPPED: Heuristic = Heuristic {
    id: "elf.static_stripped",
    score: 15,
    summary: "statically linked and stripped (common for Go and Rust too; weak alone)",
};
/// A `PT_INTERP` that is not a dynamic loader.
pub const ODD_INTERPRETER: Heuristic = Heuristic {
    id: "elf.odd_interpreter",
    score: 40,
    summary: "program interpreter is not a known dynamic loader",
};

/// Every ELF heuristic.
pub const CATALOG: &[Heuristic] = &[
    MALFORMED,
    UPX,
    UPX_TAMPERED,
    SGN_ENCODER,
    ENTRY_OUTSIDE_EXEC,
    WX_SEGMENT,
    NO_SECTIONS,
    TABLES_DISAGREE,
    HIGH_ENTROPY_EXEC,
    OVERLAY,
    STATIC_STRIPPED,
    ODD_INTERPRETER,
];

/// Runs every ELF heuristic on `bytes` (which should start with [`MAGIC`]).
/// Relocatable objects, core dumps and unknown types only get the header checks.
pub fn analyze(bytes: &[u8]) -> Vec<Reason> {
    analyze_view(&ElfView::parse(bytes))
}

/// [`analyze`] on a file already parsed: a scan parses each ELF file once, for
/// these heuristics and the model's features.
pub fn analyze_view(view: &ElfView<'_>) -> Vec<Reason> {
    let bytes = view.bytes;
    let mut found = Vec::new();
    let Some(header) = view.header else {
        let error = view.header_error.as_deref().unwrap_or("not parsed");
        found.push(MALFORMED.reason(format!("ELF header: {error}")));
        return found;
    };
    let Some(ctx) = view.ctx else {
        found.push(MALFORMED.reason(format!(
            "unknown class {} or byte order {} in e_ident",
            header.e_ident[header::EI_CLASS],
            header.e_ident[header::EI_DATA]
        )));
        return found;
    };
    if header.e_type != header::ET_EXEC && header.e_type != header::ET_DYN || view.over_cap {
        return found;
    }
    let phdrs = match program_headers(view, &header, ctx) {
        Ok(phdrs) => phdrs,
        Err(message) => {
            found.push(MALFORMED.reason(message));
            return found;
        }
    };
    let packed = upx(bytes, &header, ctx);
    let upx_found = packed.is_some();
    found.extend(packed);
    found.extend(entry_outside_exec(&header, phdrs));
    found.extend(sgn_encoder(bytes, &header, phdrs));
    found.extend(wx_segments(phdrs));
    found.extend(interpreter(bytes, phdrs));

    let mut problems = segments_past_end(bytes, phdrs);
    if bytes.len() <= PARSE_SIZE_CAP {
        let sections = match section_headers(view, &header, ctx) {
            Ok(sections) => sections,
            Err(message) => {
                problems.push(message);
                &[]
            }
        };
        if sections.is_empty() {
            found.push(NO_SECTIONS.reason(format!(
                "e_shoff {:#x}, e_shnum {}",
                header.e_shoff, header.e_shnum
            )));
        } else {
            problems.extend(section_problems(bytes, &header, sections, phdrs));
            found.extend(static_stripped(sections, phdrs));
        }
        if !upx_found {
            found.extend(high_entropy(bytes, sections, phdrs));
        }
        found.extend(overlay(bytes, &header, sections, phdrs));
    }
    if !problems.is_empty() {
        let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
        let more = problems.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        found.push(TABLES_DISAGREE.reason(format!("{}{tail}", shown.join("; "))));
    }
    found
}

/// The program headers the view parsed, or why there are none to judge.
fn program_headers<'v>(
    view: &'v ElfView<'_>,
    header: &Header,
    ctx: Ctx,
) -> Result<&'v [ProgramHeader], String> {
    if header.e_phnum == 0 {
        return Err("no program headers: nothing to load".to_owned());
    }
    if usize::from(header.e_phentsize) != ProgramHeader::size(ctx) {
        return Err(format!(
            "e_phentsize {} (expected {})",
            header.e_phentsize,
            ProgramHeader::size(ctx)
        ));
    }
    if view.phdrs_ok {
        return Ok(&view.phdrs);
    }
    Err(format!(
        "program headers at {:#x} (x{}): {}",
        header.e_phoff,
        header.e_phnum,
        view.phdrs_error.as_deref().unwrap_or("not parsed")
    ))
}

/// The `e_shnum` section headers the view parsed (none when `e_shnum` is 0:
/// these checks do not follow the count into the first header), or why they
/// cannot be used.
fn section_headers<'v>(
    view: &'v ElfView<'_>,
    header: &Header,
    ctx: Ctx,
) -> Result<&'v [SectionHeader], String> {
    if header.e_shoff == 0 {
        return Ok(&[]);
    }
    if header.e_shnum != 0 && usize::from(header.e_shentsize) != SectionHeader::size(ctx) {
        return Err(format!(
            "e_shentsize {} (expected {})",
            header.e_shentsize,
            SectionHeader::size(ctx)
        ));
    }
    if header.e_shnum == 0 {
        return Ok(&[]);
    }
    if view.shdrs_ok {
        return Ok(&view.shdrs);
    }
    Err(format!(
        "section header table at {:#x} (x{}) lies outside the file ({} bytes)",
        header.e_shoff,
        header.e_shnum,
        view.bytes.len()
    ))
}

fn is_load(phdr: &ProgramHeader) -> bool {
    phdr.p_type == program_header::PT_LOAD
}

fn is_exec_load(phdr: &ProgramHeader) -> bool {
    is_load(phdr) && phdr.p_flags & program_header::PF_X != 0
}

/// Whether `[addr, addr + len)` lies inside the segment's memory image.
fn in_segment(phdr: &ProgramHeader, addr: u64, len: u64) -> bool {
    let (Some(end), Some(segment_end)) = (
        addr.checked_add(len),
        phdr.p_vaddr.checked_add(phdr.p_memsz),
    ) else {
        return false;
    };
    addr >= phdr.p_vaddr && end <= segment_end
}

/// The file bytes `[offset, offset + size)`, if they are all inside `bytes`.
fn file_range(bytes: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    bytes.get(start..end)
}

fn entry_outside_exec(header: &Header, phdrs: &[ProgramHeader]) -> Option<Reason> {
    // Shared libraries may have no entry point at all.
    if header.e_entry == 0 && header.e_type == header::ET_DYN {
        return None;
    }
    if phdrs
        .iter()
        .any(|phdr| is_exec_load(phdr) && in_segment(phdr, header.e_entry, 1))
    {
        return None;
    }
    let exec = phdrs.iter().filter(|phdr| is_exec_load(phdr)).count();
    Some(ENTRY_OUTSIDE_EXEC.reason(format!(
        "entry {:#x}, {exec} executable segment(s)",
        header.e_entry
    )))
}

/// `fnstenv [esp-0xc]`: how a Shikata Ga Nai stub finds its own address (the FPU
/// environment holds the address of the last FPU instruction).
const SGN_GETPC: &[u8; 4] = b"\xd9\x74\x24\xf4";
/// Bytes from the entry point searched for [`SGN_GETPC`]: the stub is a handful
/// of instructions long (2 or 7 bytes in in the corpus's Shikitega samples).
const SGN_WINDOW: u64 = 32;

/// The SGN stub at the entry point of an x86 or x86-64 executable. Compilers do not
/// emit `fnstenv [esp-0xc]` as a program's first instructions.
fn sgn_encoder(bytes: &[u8], header: &Header, phdrs: &[ProgramHeader]) -> Option<Reason> {
    if header.e_machine != header::EM_386 && header.e_machine != header::EM_X86_64 {
        return None;
    }
    let seg = phdrs
        .iter()
        .find(|phdr| is_exec_load(phdr) && in_segment(phdr, header.e_entry, 1))?;
    let offset = seg
        .p_offset
        .checked_add(header.e_entry.checked_sub(seg.p_vaddr)?)?;
    let available = seg
        .p_filesz
        .saturating_sub(header.e_entry.saturating_sub(seg.p_vaddr));
    let window = file_range(bytes, offset, SGN_WINDOW.min(available))?;
    let at = window
        .windows(SGN_GETPC.len())
        .position(|w| w == SGN_GETPC)?;
    Some(SGN_ENCODER.reason(format!(
        "fnstenv [esp-0xc] {at} bytes after the entry point {:#x}",
        header.e_entry
    )))
}

fn wx_segments(phdrs: &[ProgramHeader]) -> Option<Reason> {
    let wx: Vec<String> = phdrs
        .iter()
        .enumerate()
        .filter(|(_, phdr)| {
            is_load(phdr)
                && phdr.p_flags & program_header::PF_W != 0
                && phdr.p_flags & program_header::PF_X != 0
        })
        .map(|(index, phdr)| format!("#{index} at {:#x}", phdr.p_vaddr))
        .collect();
    (!wx.is_empty()).then(|| WX_SEGMENT.reason(format!("RWX PT_LOAD {}", wx.join(", "))))
}

/// Directories whose contents anyone can write: an interpreter there is planted.
const WRITABLE_DIRS: [&str; 4] = ["/tmp/", "/var/tmp/", "/dev/shm/", "/run/user/"];

/// Basename prefixes of dynamic loaders (glibc, musl, uClibc, Android, BSD).
const LOADER_NAMES: [&str; 7] = [
    "ld-linux",
    "ld-musl-",
    "ld-uClibc",
    "ld.so.",
    "ld64.so.",
    "ld-elf.so.",
    "ld-2.",
];

fn interpreter(bytes: &[u8], phdrs: &[ProgramHeader]) -> Option<Reason> {
    let phdr = phdrs
        .iter()
        .find(|phdr| phdr.p_type == program_header::PT_INTERP)?;
    let Some(raw) = file_range(bytes, phdr.p_offset, phdr.p_filesz) else {
        return Some(ODD_INTERPRETER.reason(format!(
            "PT_INTERP at {:#x} (+{}) lies outside the file",
            phdr.p_offset, phdr.p_filesz
        )));
    };
    let raw = raw.split(|&byte| byte == 0).next().unwrap_or_default();
    // Separate debug files keep PT_INTERP but not its bytes (size 0 or zeros); the
    // kernel would refuse to run them anyway.
    if raw.is_empty() {
        return None;
    }
    let path = String::from_utf8_lossy(raw);
    let name = path.rsplit('/').next().unwrap_or_default();
    let planted = !path.starts_with('/') || WRITABLE_DIRS.iter().any(|dir| path.starts_with(dir));
    let loader = LOADER_NAMES.iter().any(|prefix| name.starts_with(prefix))
        || name == "linker"
        || name == "linker64";
    if planted {
        Some(ODD_INTERPRETER.reason_scored(
            60,
            format!("{path:?} is relative or in a world-writable directory"),
        ))
    } else if loader {
        None
    } else {
        Some(ODD_INTERPRETER.reason(format!("{path:?}")))
    }
}

fn segments_past_end(bytes: &[u8], phdrs: &[ProgramHeader]) -> Vec<String> {
    phdrs
        .iter()
        .enumerate()
        .filter(|(_, phdr)| {
            // A segment with no file bytes (all .bss) may have any offset.
            is_load(phdr)
                && phdr.p_filesz > 0
                && file_range(bytes, phdr.p_offset, phdr.p_filesz).is_none()
        })
        .map(|(index, phdr)| {
            format!(
                "PT_LOAD #{index} ({:#x}+{:#x}) extends past the end of the file ({:#x} bytes)",
                phdr.p_offset,
                phdr.p_filesz,
                bytes.len()
            )
        })
        .collect()
}

/// The NUL-terminated name at `offset` in the section name table.
fn section_name<'a>(bytes: &'a [u8], names: Option<&SectionHeader>, offset: usize) -> &'a str {
    let Some(table) = names else { return "?" };
    let Some(table) = file_range(bytes, table.sh_offset, table.sh_size) else {
        return "?";
    };
    let Some(rest) = table.get(offset..) else {
        return "?";
    };
    let raw = rest.split(|&byte| byte == 0).next().unwrap_or_default();
    std::str::from_utf8(raw).unwrap_or("?")
}

fn section_problems(
    bytes: &[u8],
    header: &Header,
    sections: &[SectionHeader],
    phdrs: &[ProgramHeader],
) -> Vec<String> {
    let mut problems = Vec::new();
    let names = sections.get(usize::from(header.e_shstrndx));
    if names.is_none() && header.e_shstrndx != 0 {
        problems.push(format!(
            "e_shstrndx {} but only {} sections",
            header.e_shstrndx,
            sections.len()
        ));
    }
    for section in sections.iter().skip(1) {
        let name = section_name(bytes, names, section.sh_name);
        let has_bytes = section.sh_type != section_header::SHT_NOBITS && section.sh_size > 0;
        if has_bytes && file_range(bytes, section.sh_offset, section.sh_size).is_none() {
            problems.push(format!(
                "section {name} ({:#x}+{:#x}) extends past the end of the file",
                section.sh_offset, section.sh_size
            ));
            continue;
        }
        let alloc = section.sh_flags & u64::from(section_header::SHF_ALLOC) != 0;
        if !alloc || section.sh_size == 0 || section.sh_addr == 0 {
            continue;
        }
        let exec = section.sh_flags & u64::from(section_header::SHF_EXECINSTR) != 0;
        if exec
            && !phdrs.iter().any(|phdr| {
                is_exec_load(phdr) && in_segment(phdr, section.sh_addr, section.sh_size)
            })
        {
            problems.push(format!(
                "executable section {name} at {:#x} is outside every executable segment",
                section.sh_addr
            ));
            continue;
        }
        if !has_bytes {
            continue;
        }
        let containing = phdrs.iter().find(|phdr| {
            is_load(phdr) && in_segment(phdr, section.sh_addr, section.sh_size) && phdr.p_filesz > 0
        });
        if let Some(phdr) = containing {
            let by_address = section.sh_addr.wrapping_sub(phdr.p_vaddr);
            let by_offset = section.sh_offset.wrapping_sub(phdr.p_offset);
            if by_address != by_offset {
                problems.push(format!(
                    "section {name} at file offset {:#x} but its segment maps it from {:#x}",
                    section.sh_offset,
                    phdr.p_offset.wrapping_add(by_address)
                ));
            }
        }
    }
    problems
}

fn static_stripped(sections: &[SectionHeader], phdrs: &[ProgramHeader]) -> Option<Reason> {
    let dynamic = phdrs.iter().any(|phdr| {
        phdr.p_type == program_header::PT_INTERP || phdr.p_type == program_header::PT_DYNAMIC
    });
    let symbols = sections
        .iter()
        .any(|section| section.sh_type == section_header::SHT_SYMTAB);
    (!dynamic && !symbols)
        .then(|| STATIC_STRIPPED.reason("no PT_INTERP, no PT_DYNAMIC, no .symtab".to_owned()))
}

fn high_entropy(
    bytes: &[u8],
    sections: &[SectionHeader],
    phdrs: &[ProgramHeader],
) -> Option<Reason> {
    let exec_sections: Vec<&[u8]> = sections
        .iter()
        .filter(|section| {
            section.sh_flags & u64::from(section_header::SHF_EXECINSTR) != 0
                && section.sh_type != section_header::SHT_NOBITS
        })
        .filter_map(|section| file_range(bytes, section.sh_offset, section.sh_size))
        .collect();
    let (regions, what) = if exec_sections.is_empty() {
        let segments = phdrs
            .iter()
            .filter(|phdr| is_exec_load(phdr))
            .filter_map(|phdr| file_range(bytes, phdr.p_offset, phdr.p_filesz))
            .collect();
        (segments, "executable segments")
    } else {
        (exec_sections, "executable sections")
    };
    let size: usize = regions.iter().map(|region| region.len()).sum();
    if size < ENTROPY_MIN_BYTES {
        return None;
    }
    let bits = entropy_of(&regions);
    (bits > HIGH_ENTROPY).then(|| {
        HIGH_ENTROPY_EXEC.reason(format!(
            "{bits:.2} bits/byte over {size} bytes of {what} (code is 5.5-6.8)"
        ))
    })
}

fn overlay(
    bytes: &[u8],
    header: &Header,
    sections: &[SectionHeader],
    phdrs: &[ProgramHeader],
) -> Option<Reason> {
    let len = bytes.len() as u64;
    let table_end = |offset: u64, count: u16, size: u16| {
        offset.saturating_add(u64::from(count).saturating_mul(u64::from(size)))
    };
    let mut end = table_end(header.e_phoff, header.e_phnum, header.e_phentsize)
        .max(u64::from(header.e_ehsize));
    if header.e_shoff != 0 {
        end = end.max(table_end(
            header.e_shoff,
            header.e_shnum,
            header.e_shentsize,
        ));
    }
    for phdr in phdrs {
        end = end.max(phdr.p_offset.saturating_add(phdr.p_filesz));
    }
    for section in sections {
        if section.sh_type != section_header::SHT_NOBITS {
            end = end.max(section.sh_offset.saturating_add(section.sh_size));
        }
    }
    let extra = len.checked_sub(end)?;
    if extra < OVERLAY_MIN_BYTES {
        return None;
    }
    let tail = usize::try_from(end)
        .ok()
        .and_then(|start| bytes.get(start..))?;
    Some(OVERLAY.reason(format!(
        "{extra} bytes after offset {end:#x}, entropy {:.2} bits/byte",
        entropy(tail)
    )))
}

/// UPX's `l_info`: right after the program headers, `checksum, "UPX!", lsize,
/// version, format`; and the `PackHeader` magic near the end of the file.
fn upx(bytes: &[u8], header: &Header, ctx: Ctx) -> Option<Reason> {
    let phend = header
        .e_phoff
        .checked_add(u64::from(header.e_phnum).checked_mul(u64::from(header.e_phentsize))?)?;
    let l_info = file_range(bytes, phend, 12)?;
    let magic = &l_info[4..8];
    let size_bytes = [l_info[8], l_info[9]];
    let l_lsize = if ctx.is_little_endian() {
        u16::from_le_bytes(size_bytes)
    } else {
        u16::from_be_bytes(size_bytes)
    };
    let (l_version, l_format) = (l_info[10], l_info[11]);
    // UPX 3.x and 4.x write version 13 (older ones 11/12); ELF formats are 10..=45
    // (little-endian targets) and 129..=145 (big-endian); the loader is a few KiB.
    let plausible = (11..=14).contains(&l_version)
        && ((10..=45).contains(&l_format) || (129..=145).contains(&l_format))
        && (512..=32768).contains(&l_lsize);
    let pack_magic = bytes
        .len()
        .checked_sub(UPX_PACK_HEADER_FROM_END)
        .and_then(|at| bytes.get(at..at + 4));
    // Only the tampered-magic case needs the banner: search for it lazily.
    let banner = || {
        let head = &bytes[..bytes.len().min(BANNER_WINDOW)];
        let tail = &bytes[bytes.len().saturating_sub(BANNER_WINDOW)..];
        UPX_BANNERS
            .iter()
            .any(|banner| contains(head, banner) || contains(tail, banner))
    };
    let where_ = format!(
        "l_info at {phend:#x}: version {l_version}, format {l_format}, loader {l_lsize} bytes"
    );
    if magic == UPX_MAGIC && (plausible || pack_magic == Some(UPX_MAGIC.as_slice())) {
        return Some(UPX.reason(format!(
            "{where_}; PackHeader {}",
            if pack_magic == Some(UPX_MAGIC.as_slice()) {
                "present"
            } else {
                "missing"
            }
        )));
    }
    if plausible && magic != [0; 4] && (pack_magic == Some(magic) || banner()) {
        return Some(UPX_TAMPERED.reason(format!(
            "{where_}; magic {:?} instead of \"UPX!\"{}",
            String::from_utf8_lossy(magic),
            if pack_magic == Some(magic) {
                ", repeated in the PackHeader"
            } else {
                ", UPX banner present"
            }
        )));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    fn ids(reasons: &[Reason]) -> Vec<&str> {
        reasons.iter().map(|reason| reason.id.as_str()).collect()
    }

    /// A minimal little-endian ELF64 executable: header, `phnum` program headers
    /// written by `phdr(index) -> (type, flags, offset, vaddr, filesz, memsz)`, code
    /// bytes after them, no section headers.
    fn elf64(entry: u64, phdrs: &[(u32, u32, u64, u64, u64, u64)], body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&header::ET_EXEC.to_le_bytes());
        out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&entry.to_le_bytes());
        out.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
        out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&64u16.to_le_bytes());
        out.extend_from_slice(&56u16.to_le_bytes());
        out.extend_from_slice(&(phdrs.len() as u16).to_le_bytes());
        out.extend_from_slice(&64u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        for &(p_type, flags, offset, vaddr, filesz, memsz) in phdrs {
            out.extend_from_slice(&p_type.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            for value in [offset, vaddr, vaddr, filesz, memsz, 0x1000] {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        out.extend_from_slice(body);
        out
    }

    const R: u32 = program_header::PF_R;
    const W: u32 = program_header::PF_W;
    const X: u32 = program_header::PF_X;
    const LOAD: u32 = program_header::PT_LOAD;

    /// A text segment mapping the whole (small) file at 0x400000.
    fn text(flags: u32) -> (u32, u32, u64, u64, u64, u64) {
        (LOAD, flags, 0, 0x400000, 0x200, 0x200)
    }

    /// An executable whose PT_INTERP names the 12 bytes `path` (at the body's start).
    fn with_interp(body: &[u8], path: &[u8; 12]) -> Vec<u8> {
        let mut body = body.to_vec();
        body[..12].copy_from_slice(path);
        elf64(
            0x400100,
            &[
                text(R | X),
                (program_header::PT_INTERP, R, 64 + 112, 0, 12, 12),
            ],
            &body,
        )
    }

    /// `body` with an FPU instruction and `fnstenv [esp-0xc]` written at `at`.
    fn with_stub(body: &[u8], at: usize) -> Vec<u8> {
        let mut out = body.to_vec();
        out[at - 2..at].copy_from_slice(b"\xdb\xc9"); // fcmovne st, st(1)
        out[at..at + 4].copy_from_slice(SGN_GETPC);
        out
    }

    /// Pseudo-random bytes (xorshift), incompressible: entropy ≈ 8.
    fn noise(len: usize) -> Vec<u8> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn hand_crafted_headers_table() {
        let body = vec![0x90u8; 0x200 - 64 - 56];
        let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
            (
                "plain static exec, no sections",
                elf64(0x400100, &[text(R | X)], &body),
                &["elf.no_sections"],
            ),
            (
                "entry in a data segment",
                elf64(0x400100, &[text(R)], &body),
                &["elf.entry_outside_exec", "elf.no_sections"],
            ),
            (
                "entry past the segment",
                elf64(0x900000, &[text(R | X)], &body),
                &["elf.entry_outside_exec", "elf.no_sections"],
            ),
            (
                "RWX segment",
                elf64(0x400100, &[text(R | W | X)], &body),
                &["elf.wx_segment", "elf.no_sections"],
            ),
            (
                "SGN decoder stub at the entry point",
                elf64(0x400100, &[text(R | X)], &with_stub(&body, 0x88 + 2)),
                &["elf.sgn_encoder", "elf.no_sections"],
            ),
            (
                "fnstenv far from the entry point is not a stub",
                elf64(0x400100, &[text(R | X)], &with_stub(&body, 0x88 + 40)),
                &["elf.no_sections"],
            ),
            (
                "segment past EOF",
                elf64(
                    0x400100,
                    &[(LOAD, R | X, 0, 0x400000, 0x10_0000, 0x10_0000)],
                    &body,
                ),
                &["elf.no_sections", "elf.tables_disagree"],
            ),
            (
                "bss-only segment past EOF is fine",
                elf64(
                    0x400100,
                    &[text(R | X), (LOAD, R | W, 0x10_0000, 0x600000, 0, 0x1000)],
                    &body,
                ),
                &["elf.no_sections"],
            ),
            (
                "segment offset overflows",
                elf64(
                    0x400100,
                    &[(LOAD, R | X, u64::MAX, 0x400000, 2, u64::MAX)],
                    &body,
                ),
                &[
                    "elf.entry_outside_exec",
                    "elf.no_sections",
                    "elf.tables_disagree",
                ],
            ),
            (
                "interpreter in /tmp",
                with_interp(&body, b"/tmp/.x/ld\0\0"),
                &["elf.odd_interpreter", "elf.no_sections"],
            ),
            (
                "interpreter not a loader",
                with_interp(&body, b"/usr/bin/py\0"),
                &["elf.odd_interpreter", "elf.no_sections"],
            ),
            (
                "interpreter is the loader",
                {
                    let mut body = body.clone();
                    let loader = b"/lib64/ld-linux-x86-64.so.2\0";
                    body[..loader.len()].copy_from_slice(loader);
                    elf64(
                        0x400100,
                        &[
                            text(R | X),
                            (program_header::PT_INTERP, R, 64 + 112, 0, 28, 28),
                        ],
                        &body,
                    )
                },
                &["elf.no_sections"],
            ),
            (
                "empty PT_INTERP of a separate debug file",
                elf64(
                    0x400100,
                    &[
                        text(R | X),
                        (program_header::PT_INTERP, R, 64 + 112, 0, 0, 28),
                    ],
                    &body,
                ),
                &["elf.no_sections"],
            ),
            (
                "overlay",
                {
                    let mut body = body.clone();
                    body.extend(std::iter::repeat_n(0xaa, 4096));
                    elf64(0x400100, &[text(R | X)], &body)
                },
                &["elf.no_sections", "elf.overlay"],
            ),
        ];
        for (name, bytes, want) in cases {
            let found = analyze(&bytes);
            assert_eq!(ids(&found), want, "{name}: {found:#?}");
        }
    }

    #[test]
    fn malformed_inputs_never_panic() {
        let good = elf64(0x400100, &[text(R | X)], &[0x90; 0x200 - 120]);
        let mut cases: Vec<(String, Vec<u8>, &str)> = vec![
            ("magic only".into(), MAGIC.to_vec(), "elf.malformed"),
            (
                "bad class".into(),
                {
                    let mut bytes = good.clone();
                    bytes[4] = 7;
                    bytes
                },
                "elf.malformed",
            ),
            (
                "no program headers".into(),
                {
                    let mut bytes = good.clone();
                    bytes[56] = 0;
                    bytes
                },
                "elf.malformed",
            ),
            (
                "e_phoff past the end".into(),
                {
                    let mut bytes = good.clone();
                    bytes[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
                    bytes
                },
                "elf.malformed",
            ),
            (
                "section table past the end".into(),
                {
                    let mut bytes = good.clone();
                    bytes[40..48].copy_from_slice(&0xffff_ff00u64.to_le_bytes());
                    bytes[60] = 30;
                    bytes
                },
                "elf.tables_disagree",
            ),
            (
                "bad e_shentsize".into(),
                {
                    let mut bytes = good.clone();
                    bytes[40..48].copy_from_slice(&64u64.to_le_bytes());
                    bytes[58] = 3;
                    bytes[60] = 1;
                    bytes
                },
                "elf.tables_disagree",
            ),
        ];
        // Every truncation of a valid header, and every single-byte corruption of it.
        for len in 0..good.len() {
            cases.push((format!("truncated to {len}"), good[..len].to_vec(), ""));
        }
        for at in 0..120 {
            for value in [0u8, 0x7f, 0xff] {
                let mut bytes = good.clone();
                bytes[at] = value;
                cases.push((format!("byte {at} = {value}"), bytes, ""));
            }
        }
        for (name, bytes, want) in cases {
            let found = analyze(&bytes);
            if !want.is_empty() {
                assert!(ids(&found).contains(&want), "{name}: {found:#?}");
            }
        }
    }

    #[test]
    fn upx_header_checked_not_just_the_string() {
        let body = |magic: &[u8; 4], version: u8, tail_magic: &[u8; 4]| {
            let mut body = vec![0u8; 12];
            body[4..8].copy_from_slice(magic);
            body[8..10].copy_from_slice(&4096u16.to_le_bytes());
            body[10] = version;
            body[11] = 22;
            body.extend(noise(8192));
            let mut pack = vec![0u8; UPX_PACK_HEADER_FROM_END];
            pack[..4].copy_from_slice(tail_magic);
            body.extend(pack);
            body
        };
        let seg = |len: usize| (LOAD, R | X, 0, 0x400000, len as u64, len as u64);
        let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
            ("verified", body(b"UPX!", 13, b"UPX!"), Some("elf.upx")),
            (
                "no PackHeader but plausible l_info",
                body(b"UPX!", 13, b"\0\0\0\0"),
                Some("elf.upx"),
            ),
            (
                "magic renamed in both places",
                body(b"YTS\x99", 13, b"YTS\x99"),
                Some("elf.upx_tampered"),
            ),
            (
                "implausible version",
                body(b"YTS\x99", 99, b"YTS\x99"),
                None,
            ),
            (
                "string elsewhere only",
                {
                    let mut body = vec![0u8; 12];
                    body.extend(noise(8192));
                    body.extend_from_slice(b"UPX!UPX!");
                    body
                },
                None,
            ),
        ];
        for (name, body, want) in cases {
            let total = 64 + 56 + body.len();
            let bytes = elf64(0x400100, &[seg(total)], &body);
            let found = analyze(&bytes);
            let upx: Vec<&str> = ids(&found)
                .into_iter()
                .filter(|id| id.starts_with("elf.upx"))
                .collect();
            assert_eq!(
                upx,
                want.into_iter().collect::<Vec<_>>(),
                "{name}: {found:#?}"
            );
            // Entropy is explained by the packer, not counted twice.
            if want.is_some() {
                assert!(!ids(&found).contains(&"elf.high_entropy_exec"), "{name}");
            } else {
                assert!(
                    ids(&found).contains(&"elf.high_entropy_exec"),
                    "{name}: {found:#?}"
                );
            }
        }
    }

    /// Builds a tiny program with the system C compiler; `None` (with a printed
    /// reason) when there is no `cc`.
    fn cc(name: &str, source: &str, flags: &[&str]) -> Option<Vec<u8>> {
        let dir = std::env::temp_dir().join(format!("vigil-elf-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let src = dir.join("main.c");
        let out: PathBuf = dir.join("a.out");
        std::fs::write(&src, source).ok()?;
        let status = Command::new("cc")
            .args(flags)
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .status();
        let result = match status {
            Ok(status) if status.success() => std::fs::read(&out).ok(),
            Ok(status) => {
                eprintln!("skipping {name}: cc {flags:?} failed ({status})");
                None
            }
            Err(error) => {
                eprintln!("skipping {name}: no C compiler ({error})");
                None
            }
        };
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    #[test]
    fn compiled_binaries_table() {
        const MAIN: &str = "int main(void) { return 0; }\n";
        const START: &str = "void _start(void) { for (;;) {} }\n";
        let cases: &[(&str, &str, &[&str], &[&str])] = &[
            ("dynamic", MAIN, &[], &[]),
            ("dynamic-stripped", MAIN, &["-s"], &[]),
            ("static", MAIN, &["-static"], &[]),
            (
                "static-stripped",
                MAIN,
                &["-static", "-s"],
                &["elf.static_stripped"],
            ),
            ("shared", MAIN, &["-shared", "-fPIC"], &[]),
            (
                "rwx",
                START,
                &[
                    "-nostdlib",
                    "-static",
                    "-Wl,-N",
                    "-Wl,--no-warn-rwx-segments",
                ],
                &["elf.wx_segment"],
            ),
        ];
        for &(name, source, flags, want) in cases {
            let Some(bytes) = cc(name, source, flags) else {
                continue;
            };
            let found = analyze(&bytes);
            assert_eq!(ids(&found), want, "{name}: {found:#?}");
            let score: u32 = found.iter().map(|reason| reason.score).sum();
            assert!(score < 50, "{name}: {score}");
        }
        // An overlay appended to a real binary is seen, and stays weak.
        if let Some(mut bytes) = cc("overlay", MAIN, &[]) {
            bytes.extend(noise(64 << 10));
            let found = analyze(&bytes);
            assert_eq!(ids(&found), ["elf.overlay"], "{found:#?}");
        }
    }
}
