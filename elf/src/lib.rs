//! The parsed structure of one ELF file, shared by everything that reads ELF
//! structure in vigil: the ELF heuristics (`vigil-policy`) and the model's
//! feature groups (`vigil-models`), so a scan parses each file once.
//!
//! Owns the parsed tables of one input (borrowing the input bytes): header,
//! program headers, section headers, the dynamic section and the symbol tables,
//! each parsed on its own so that one broken table does not hide the others.
//! Goblin parses the header and the three tables (it bounds its allocations by
//! the input length); the symbol tables, string tables and hash tables are read
//! here with checked offsets, because goblin's own readers for them can panic or
//! overflow on hostile input. Malware routinely corrupts section headers (they
//! are not needed to run), so a table that fails leaves its `*_ok` flag false
//! (and, for the header and program headers, the parser's message) and the
//! rest is still used. Must not own: what any reader concludes from the tables.

use goblin::container::{Container, Ctx, Endian};
use goblin::elf::dynamic::{Dyn, Dynamic};
use goblin::elf::header::{
    EI_ABIVERSION, EI_CLASS, EI_DATA, EI_OSABI, EI_VERSION, ELFCLASS32, ELFCLASS64, ELFDATA2LSB,
    ELFDATA2MSB, EM_FAKE_ALPHA, EM_S390,
};
use goblin::elf::program_header::{PT_LOAD, ProgramHeader};
use goblin::elf::section_header::{SHN_XINDEX, SHT_DYNSYM, SHT_NOBITS, SHT_SYMTAB, SectionHeader};
use goblin::elf::{Elf, Header};

/// Inputs longer than this are not parsed as ELF (header-derived features only, and
/// the parse-failed flag set); the byte-level groups still see the whole input.
pub const MAX_PARSE_LEN: usize = 256 << 20;
/// At most this many section headers are read (an `e_shnum` of 0 defers the count to
/// the first section header, which is otherwise unbounded).
pub const MAX_SECTIONS: usize = 1 << 16;
/// At most this many dynamic symbols are examined.
pub const MAX_SYMBOLS: usize = 1 << 18;
/// Names (sections, symbols, libraries) are read up to this many bytes.
pub const MAX_NAME_LEN: usize = 256;

/// The identification bytes and the two header fields that can be read even when
/// goblin refuses the header (bad class, short file).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ident {
    /// `EI_CLASS` (1 = 32-bit, 2 = 64-bit).
    pub class: u8,
    /// `EI_DATA` (1 = little-endian, 2 = big-endian).
    pub data: u8,
    /// `EI_VERSION`.
    pub version: u8,
    /// `EI_OSABI`.
    pub osabi: u8,
    /// `EI_ABIVERSION`.
    pub abiversion: u8,
    /// Any nonzero byte in the `e_ident` padding (9..16).
    pub pad_nonzero: bool,
    /// `e_type` when the data byte is valid and the file is long enough.
    pub e_type: Option<u16>,
    /// `e_machine` under the same conditions.
    pub e_machine: Option<u16>,
}

impl Ident {
    fn read(bytes: &[u8]) -> Ident {
        let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
        let data = at(EI_DATA);
        let little = match data {
            ELFDATA2LSB => Some(true),
            ELFDATA2MSB => Some(false),
            _ => None,
        };
        Ident {
            class: at(EI_CLASS),
            data,
            version: at(EI_VERSION),
            osabi: at(EI_OSABI),
            abiversion: at(EI_ABIVERSION),
            pad_nonzero: bytes.get(9..16).is_some_and(|p| p.iter().any(|&b| b != 0)),
            e_type: little.and_then(|le| read_u16(bytes, 16, le)),
            e_machine: little.and_then(|le| read_u16(bytes, 18, le)),
        }
    }
}

/// A symbol table and the string table its names index.
#[derive(Debug, Clone, Copy)]
pub struct SymTable<'a> {
    /// Raw entries (whole entries only).
    pub entries: &'a [u8],
    /// Number of entries in `entries` (already capped).
    pub count: usize,
    /// The linked string table.
    pub strtab: &'a [u8],
}

/// The fields of one symbol that features use.
#[derive(Debug, Clone, Copy)]
pub struct SymInfo {
    /// Offset of the name in the string table.
    pub name: u32,
    /// `st_info` (binding in the high nibble, type in the low).
    pub info: u8,
    /// `st_shndx` (0 = undefined, i.e. imported).
    pub shndx: u16,
}

/// Everything parsed from one ELF input.
pub struct ElfView<'a> {
    /// The whole input.
    pub bytes: &'a [u8],
    /// Identification bytes (always read).
    pub ident: Ident,
    /// True when the input exceeds [`MAX_PARSE_LEN`] (tables not parsed).
    pub over_cap: bool,
    /// The header, when goblin accepted it.
    pub header: Option<Header>,
    /// Why goblin refused the header.
    pub header_error: Option<String>,
    /// Class and byte order, when the header was accepted.
    pub ctx: Option<Ctx>,
    /// Program headers (empty when absent or failed).
    pub phdrs: Vec<ProgramHeader>,
    /// The program-header table parsed (or there is none).
    pub phdrs_ok: bool,
    /// Why the program-header table did not parse.
    pub phdrs_error: Option<String>,
    /// Section headers (empty when absent or failed).
    pub shdrs: Vec<SectionHeader>,
    /// The section-header table parsed (or there is none).
    pub shdrs_ok: bool,
    /// Bytes of the section-name string table (empty when unusable).
    pub shstrtab: &'a [u8],
    /// The dynamic section, when there is one and it parsed.
    pub dynamic: Option<Dynamic>,
    /// `PT_DYNAMIC` parsed (or there is none).
    pub dynamic_ok: bool,
    /// The dynamic string table (`DT_STRTAB`, else `.dynsym`'s link).
    pub dynstr: &'a [u8],
    /// Dynamic symbols (`.dynsym`, else found through `DT_SYMTAB` and the hash table).
    pub dynsym: Option<SymTable<'a>>,
    /// The static symbol table (the last `.symtab` and its linked string table),
    /// when present; in a relocatable object (a kernel module) its undefined
    /// symbols are the imports.
    pub symtab: Option<SymTable<'a>>,
}

impl<'a> ElfView<'a> {
    /// Parses `bytes`, which the caller has sniffed as ELF. Never fails: what cannot
    /// be parsed is left empty and its flag false.
    pub fn parse(bytes: &'a [u8]) -> ElfView<'a> {
        let mut view = ElfView {
            bytes,
            ident: Ident::read(bytes),
            over_cap: bytes.len() > MAX_PARSE_LEN,
            header: None,
            header_error: None,
            ctx: None,
            phdrs: Vec::new(),
            phdrs_ok: false,
            phdrs_error: None,
            shdrs: Vec::new(),
            shdrs_ok: false,
            shstrtab: &[],
            dynamic: None,
            dynamic_ok: false,
            dynstr: &[],
            dynsym: None,
            symtab: None,
        };
        let header = match Elf::parse_header(bytes) {
            Ok(header) => header,
            Err(error) => {
                view.header_error = Some(error.to_string());
                return view;
            }
        };
        view.header = Some(header);
        let Some(ctx) = ctx_of(&header) else {
            return view;
        };
        view.ctx = Some(ctx);
        if view.over_cap {
            return view;
        }
        view.parse_phdrs(&header, ctx);
        view.parse_shdrs(&header, ctx);
        view.parse_dynamic(ctx);
        view.parse_symtab(ctx);
        view
    }

    /// True when the header and every table present parsed.
    pub fn fully_parsed(&self) -> bool {
        self.header.is_some()
            && self.ctx.is_some()
            && !self.over_cap
            && self.phdrs_ok
            && self.shdrs_ok
            && self.dynamic_ok
    }

    fn parse_phdrs(&mut self, header: &Header, ctx: Ctx) {
        if header.e_phnum == 0 {
            self.phdrs_ok = true;
            return;
        }
        let Ok(offset) = usize::try_from(header.e_phoff) else {
            self.phdrs_error = Some("e_phoff overflows".to_owned());
            return;
        };
        match ProgramHeader::parse(self.bytes, offset, usize::from(header.e_phnum), ctx) {
            Ok(phdrs) => {
                self.phdrs = phdrs;
                self.phdrs_ok = true;
            }
            Err(error) => self.phdrs_error = Some(error.to_string()),
        }
    }

    fn parse_shdrs(&mut self, header: &Header, ctx: Ctx) {
        if header.e_shoff == 0 {
            self.shdrs_ok = true;
            return;
        }
        let Ok(offset) = usize::try_from(header.e_shoff) else {
            return;
        };
        let mut count = usize::from(header.e_shnum);
        if count == 0 {
            // The real count is in the first header's sh_size (SHN_LORESERVE overflow).
            let Ok(first) = SectionHeader::parse(self.bytes, offset, 1, ctx) else {
                return;
            };
            count = first
                .first()
                .and_then(|s| usize::try_from(s.sh_size).ok())
                .unwrap_or(0)
                .min(MAX_SECTIONS);
            if count == 0 {
                self.shdrs_ok = true;
                return;
            }
        }
        let Ok(shdrs) = SectionHeader::parse(self.bytes, offset, count, ctx) else {
            return;
        };
        self.shdrs = shdrs;
        self.shdrs_ok = true;
        let mut index = usize::from(header.e_shstrndx);
        if index == usize::from(SHN_XINDEX as u16) {
            index = self.shdrs.first().map_or(0, |s| s.sh_link as usize);
        }
        if index != 0 {
            self.shstrtab = self
                .shdrs
                .get(index)
                .and_then(|s| self.section_data(s))
                .unwrap_or(&[]);
        }
    }

    fn parse_dynamic(&mut self, ctx: Ctx) {
        match Dynamic::parse(self.bytes, &self.phdrs, ctx) {
            Ok(dynamic) => {
                self.dynamic = dynamic;
                self.dynamic_ok = true;
            }
            Err(_) => self.dynamic_ok = false,
        }
        let little = ctx.is_little_endian();
        let is64 = ctx.container.is_big();
        let sym_size = if is64 { 24 } else { 16 };

        // DT_STRTAB (goblin already mapped the address to a file offset, 0 if unmapped).
        if let Some(d) = &self.dynamic {
            if d.info.strtab != 0 {
                self.dynstr = clamped(self.bytes, d.info.strtab as u64, d.info.strsz as u64);
            }
        }

        // Prefer the .dynsym section; fall back to DT_SYMTAB + hash-table count.
        let section = self
            .shdrs
            .iter()
            .find(|s| s.sh_type == SHT_DYNSYM)
            .and_then(|s| {
                let entries = self.section_data(s)?;
                let strtab = self
                    .shdrs
                    .get(s.sh_link as usize)
                    .and_then(|l| self.section_data(l))
                    .unwrap_or(self.dynstr);
                Some((entries, strtab))
            });
        if let Some((entries, strtab)) = section {
            if self.dynstr.is_empty() {
                self.dynstr = strtab;
            }
            self.dynsym = Some(sym_table(entries, strtab, sym_size, usize::MAX));
            return;
        }
        let Some(d) = &self.dynamic else {
            return;
        };
        if d.info.symtab == 0 {
            return;
        }
        let machine = self.header.map_or(0, |h| h.e_machine);
        let count = d
            .info
            .gnu_hash
            .and_then(|off| gnu_hash_count(self.bytes, off, is64, little))
            .or_else(|| {
                d.info
                    .hash
                    .and_then(|off| hash_count(self.bytes, off, machine, is64, little))
            })
            .unwrap_or(0);
        let Some(entries) = self.bytes.get(d.info.symtab..) else {
            return;
        };
        self.dynsym = Some(sym_table(entries, self.dynstr, sym_size, count));
    }

    fn parse_symtab(&mut self, ctx: Ctx) {
        let sym_size = if ctx.container.is_big() { 24 } else { 16 };
        let Some(s) = self.shdrs.iter().rfind(|s| s.sh_type == SHT_SYMTAB) else {
            return;
        };
        let Some(entries) = self.section_data(s) else {
            return;
        };
        let strtab = self
            .shdrs
            .get(s.sh_link as usize)
            .and_then(|l| self.section_data(l))
            .unwrap_or(&[]);
        self.symtab = Some(sym_table(entries, strtab, sym_size, usize::MAX));
    }

    /// The file bytes of a section (`None` for `SHT_NOBITS`, empty or out-of-file).
    pub fn section_data(&self, s: &SectionHeader) -> Option<&'a [u8]> {
        if s.sh_type == SHT_NOBITS || s.sh_size == 0 {
            return None;
        }
        let start = usize::try_from(s.sh_offset).ok()?;
        let end = start.checked_add(usize::try_from(s.sh_size).ok()?)?;
        self.bytes.get(start..end)
    }

    /// The name of a section (empty when the name table is unusable).
    pub fn section_name(&self, s: &SectionHeader) -> &'a [u8] {
        c_str(self.shstrtab, s.sh_name as u64)
    }

    /// The number of entries of the static `.symtab`, if there is one.
    pub fn symtab_len(&self) -> Option<u64> {
        let is64 = self.ctx.is_some_and(|c| c.container.is_big());
        let size = if is64 { 24 } else { 16 };
        self.shdrs
            .iter()
            .rfind(|s| s.sh_type == SHT_SYMTAB)
            .map(|s| s.sh_size / size)
    }

    /// Maps a virtual address to a file offset through the `PT_LOAD` segments.
    pub fn vaddr_to_offset(&self, vaddr: u64) -> Option<u64> {
        self.phdrs
            .iter()
            .filter(|p| p.p_type == PT_LOAD)
            .find_map(|p| {
                let delta = vaddr.checked_sub(p.p_vaddr)?;
                if delta < p.p_filesz {
                    p.p_offset.checked_add(delta)
                } else {
                    None
                }
            })
    }

    /// Reads symbol `index` of `table`.
    pub fn symbol(&self, table: &SymTable<'a>, index: usize) -> Option<SymInfo> {
        let ctx = self.ctx?;
        let little = ctx.is_little_endian();
        if ctx.container.is_big() {
            let base = index.checked_mul(24)?;
            Some(SymInfo {
                name: read_u32(table.entries, base, little)?,
                info: *table.entries.get(base.checked_add(4)?)?,
                shndx: read_u16(table.entries, base.checked_add(6)?, little)?,
            })
        } else {
            let base = index.checked_mul(16)?;
            Some(SymInfo {
                name: read_u32(table.entries, base, little)?,
                info: *table.entries.get(base.checked_add(12)?)?,
                shndx: read_u16(table.entries, base.checked_add(14)?, little)?,
            })
        }
    }

    /// The dynamic entries (empty when there is no dynamic section).
    pub fn dyns(&self) -> &[Dyn] {
        self.dynamic.as_ref().map_or(&[], |d| d.dyns.as_slice())
    }
}

/// Builds a symbol table over `entries` holding at most `max` whole entries.
fn sym_table<'a>(entries: &'a [u8], strtab: &'a [u8], sym_size: usize, max: usize) -> SymTable<'a> {
    let count = (entries.len() / sym_size).min(max).min(MAX_SYMBOLS);
    let used = count.saturating_mul(sym_size);
    SymTable {
        entries: entries.get(..used).unwrap_or(&[]),
        count,
        strtab,
    }
}

/// Class and byte order of a goblin header.
fn ctx_of(header: &Header) -> Option<Ctx> {
    let container = match header.e_ident.get(EI_CLASS).copied()? {
        ELFCLASS32 => Container::Little,
        ELFCLASS64 => Container::Big,
        _ => return None,
    };
    let le = match header.e_ident.get(EI_DATA).copied()? {
        ELFDATA2LSB => Endian::Little,
        ELFDATA2MSB => Endian::Big,
        _ => return None,
    };
    Some(Ctx::new(container, le))
}

/// `bytes[offset .. offset + len]`, cut at the end of `bytes` (empty if `offset` is
/// past it).
pub fn clamped(bytes: &[u8], offset: u64, len: u64) -> &[u8] {
    let Ok(start) = usize::try_from(offset) else {
        return &[];
    };
    let end = usize::try_from(offset.saturating_add(len))
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    bytes.get(start..end).unwrap_or(&[])
}

/// The NUL-terminated string at `offset` of a string table, at most
/// [`MAX_NAME_LEN`] bytes, without the NUL (empty when out of range).
pub fn c_str(table: &[u8], offset: u64) -> &[u8] {
    let Some(rest) = usize::try_from(offset).ok().and_then(|o| table.get(o..)) else {
        return &[];
    };
    let rest = rest.get(..MAX_NAME_LEN).unwrap_or(rest);
    match memchr::memchr(0, rest) {
        Some(end) => rest.get(..end).unwrap_or(&[]),
        None => rest,
    }
}

/// Reads a `u16` at `offset`.
pub fn read_u16(bytes: &[u8], offset: usize, little: bool) -> Option<u16> {
    let raw: [u8; 2] = bytes.get(offset..offset.checked_add(2)?)?.try_into().ok()?;
    Some(if little {
        u16::from_le_bytes(raw)
    } else {
        u16::from_be_bytes(raw)
    })
}

/// Reads a `u32` at `offset`.
pub fn read_u32(bytes: &[u8], offset: usize, little: bool) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(offset..offset.checked_add(4)?)?.try_into().ok()?;
    Some(if little {
        u32::from_le_bytes(raw)
    } else {
        u32::from_be_bytes(raw)
    })
}

/// Reads a `u64` at `offset`.
pub fn read_u64(bytes: &[u8], offset: usize, little: bool) -> Option<u64> {
    let raw: [u8; 8] = bytes.get(offset..offset.checked_add(8)?)?.try_into().ok()?;
    Some(if little {
        u64::from_le_bytes(raw)
    } else {
        u64::from_be_bytes(raw)
    })
}

/// Number of dynamic symbols according to a `DT_HASH` table (its `nchain`).
fn hash_count(bytes: &[u8], offset: u64, machine: u16, is64: bool, little: bool) -> Option<usize> {
    let offset = usize::try_from(offset).ok()?;
    // s390x and Alpha use 8-byte hash entries in 64-bit objects (as readelf does).
    let nchain = if is64 && (machine == EM_S390 || machine == EM_FAKE_ALPHA) {
        read_u64(bytes, offset.checked_add(8)?, little)?
    } else {
        u64::from(read_u32(bytes, offset.checked_add(4)?, little)?)
    };
    usize::try_from(nchain).ok()
}

/// Number of dynamic symbols according to a `DT_GNU_HASH` table: one past the last
/// symbol of the chain of the highest bucket.
fn gnu_hash_count(bytes: &[u8], offset: u64, is64: bool, little: bool) -> Option<usize> {
    let offset = usize::try_from(offset).ok()?;
    let nbuckets = read_u32(bytes, offset, little)? as usize;
    let symoffset = read_u32(bytes, offset.checked_add(4)?, little)? as usize;
    let bloom_size = read_u32(bytes, offset.checked_add(8)?, little)? as usize;
    let bloom_bytes = bloom_size.checked_mul(if is64 { 8 } else { 4 })?;
    let buckets = offset.checked_add(16)?.checked_add(bloom_bytes)?;
    let bucket_bytes = nbuckets.checked_mul(4)?;
    let bucket_table = bytes.get(buckets..buckets.checked_add(bucket_bytes)?)?;
    let mut last = 0usize;
    for chunk in bucket_table.chunks_exact(4) {
        let raw: [u8; 4] = chunk.try_into().ok()?;
        let v = if little {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        } as usize;
        last = last.max(v);
    }
    if last < symoffset {
        return Some(symoffset);
    }
    let chains = buckets.checked_add(bucket_bytes)?;
    let mut index = last;
    loop {
        let at = chains.checked_add(index.checked_sub(symoffset)?.checked_mul(4)?)?;
        let value = read_u32(bytes, at, little)?;
        index = index.checked_add(1)?;
        if value & 1 != 0 {
            return Some(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_str_bounds() {
        assert_eq!(c_str(b"\0abc\0de", 1), b"abc");
        assert_eq!(c_str(b"\0abc\0de", 5), b"de");
        assert_eq!(c_str(b"abc", 3), b"");
        assert_eq!(c_str(b"abc", u64::MAX), b"");
        let long = vec![b'x'; 1000];
        assert_eq!(c_str(&long, 0).len(), MAX_NAME_LEN);
    }

    #[test]
    fn clamped_bounds() {
        assert_eq!(clamped(b"abcdef", 2, 2), b"cd");
        assert_eq!(clamped(b"abcdef", 4, u64::MAX), b"ef");
        assert_eq!(clamped(b"abcdef", 7, 1), b"");
        assert_eq!(clamped(b"abcdef", u64::MAX, u64::MAX), b"");
    }

    #[test]
    fn readers_bounds() {
        assert_eq!(read_u16(&[1, 2], 0, true), Some(0x0201));
        assert_eq!(read_u16(&[1, 2], 0, false), Some(0x0102));
        assert_eq!(read_u32(&[1, 2, 3], 0, true), None);
        assert_eq!(read_u64(&[0; 8], usize::MAX, true), None);
    }

    #[test]
    fn hash_counts() {
        // GNU hash: 1 bucket, symoffset 1, bloom 1 (64-bit), bucket -> 2, chain [x, y|1].
        let mut t = Vec::new();
        for v in [1u32, 1, 1, 0] {
            t.extend_from_slice(&v.to_le_bytes());
        }
        t.extend_from_slice(&0u64.to_le_bytes());
        t.extend_from_slice(&2u32.to_le_bytes());
        for v in [10u32, 20, 31] {
            t.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(gnu_hash_count(&t, 0, true, true), Some(4));
        // Truncated chain: no terminator → None, never a panic or a long loop.
        assert_eq!(gnu_hash_count(&t[..t.len() - 4], 0, true, true), None);
        assert_eq!(gnu_hash_count(&t, u64::MAX, true, true), None);
        let h = [0u8, 0, 0, 0, 7, 0, 0, 0];
        assert_eq!(hash_count(&h, 0, 62, true, true), Some(7));
        assert_eq!(hash_count(&h, u64::MAX - 2, 62, true, true), None);
    }
}
