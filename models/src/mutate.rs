//! Evasion-style mutations of ELF files, for measuring (and training against) how
//! cheaply a detection can be moved.
//!
//! Owns the mutation catalogue. Every mutation works on bytes in memory and returns
//! new bytes; none of them is meant to keep a program runnable in every case, but
//! each only touches what the Linux loader ignores (section headers, symbols,
//! appended data, identification padding), so a real attacker could apply it
//! without breaking the program. Nothing here executes or writes anything.
//!
//! ```
//! use vigil_models::mutate::{Mutation, apply};
//! let mut elf = vec![0u8; 64];
//! elf[..4].copy_from_slice(b"\x7fELF");
//! elf[4] = 2; // 64-bit
//! elf[5] = 1; // little-endian
//! let out = apply(Mutation::OverlayRandom, &elf, b"", 7).unwrap();
//! assert!(out.len() > elf.len() && out.starts_with(&elf));
//! assert!(apply(Mutation::OverlayRandom, b"#!/bin/sh\n", b"", 7).is_none());
//! ```

use goblin::elf::Elf;

/// One mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Appends random bytes (a quarter of the file, 4 KiB to 256 KiB).
    OverlayRandom,
    /// Appends the bytes of a benign binary (the donor).
    OverlayBenign,
    /// Removes the section header table from the header (`e_shoff`, `e_shnum`,
    /// `e_shstrndx` zeroed), as `sstrip` does; the loader only reads segments.
    StripSectionHeaders,
    /// Blanks the static symbol tables (`.symtab` and its string table) and
    /// marks them `SHT_NULL`, as `strip` leaves a file.
    StripSymbols,
    /// Adds a section whose contents are the donor's printable strings, with a
    /// rewritten section header table at the end of the file.
    AddBenignSection,
    /// Appends the donor's printable strings as an overlay.
    AddBenignStrings,
    /// Changes identification fields the loader ignores: `EI_OSABI`,
    /// `EI_ABIVERSION` and the `EI_PAD` bytes.
    HeaderFields,
    /// Renames sections to names the donor uses, by rewriting the section name
    /// table (`.shstrtab`) in place: same offset, same size, only names change.
    /// Executables and shared objects only (the kernel's module loader reads
    /// the section names of a relocatable object); never when the name table
    /// or the section header table lies inside a loaded segment.
    RenameSections,
    /// Adds a static symbol table (`SHT_SYMTAB` and its string table, two new
    /// sections at the end of the file) listing the donor's dynamic symbol
    /// names as undefined global functions, as an unstripped file that calls
    /// them would. Neither the kernel nor the dynamic linker reads `.symtab`:
    /// these are not real imports (`.dynsym`, `DT_NEEDED` and the relocations
    /// are unchanged), only what a tool or model reading `.symtab` sees. Only
    /// for files without a symbol table.
    AddSymbols,
    /// Adds a section holding a slice of the donor's `.text` (code bytes,
    /// `SHF_EXECINSTR` but not `SHF_ALLOC`, outside every segment): benign code
    /// that is never mapped or run, only seen by whoever reads sections or bytes.
    PadBenignCode,
}

impl Mutation {
    /// Every mutation, in report order.
    pub const ALL: [Mutation; 10] = [
        Mutation::OverlayRandom,
        Mutation::OverlayBenign,
        Mutation::StripSectionHeaders,
        Mutation::StripSymbols,
        Mutation::AddBenignSection,
        Mutation::AddBenignStrings,
        Mutation::HeaderFields,
        Mutation::RenameSections,
        Mutation::AddSymbols,
        Mutation::PadBenignCode,
    ];

    /// Stable name, as in reports and feature rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Mutation::OverlayRandom => "overlay_random",
            Mutation::OverlayBenign => "overlay_benign",
            Mutation::StripSectionHeaders => "strip_section_headers",
            Mutation::StripSymbols => "strip_symbols",
            Mutation::AddBenignSection => "add_benign_section",
            Mutation::AddBenignStrings => "add_benign_strings",
            Mutation::HeaderFields => "header_fields",
            Mutation::RenameSections => "rename_sections",
            Mutation::AddSymbols => "add_symbols",
            Mutation::PadBenignCode => "pad_benign_code",
        }
    }

    /// The mutation called `name`.
    pub fn from_name(name: &str) -> Option<Mutation> {
        Mutation::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// Applies `mutation` to an ELF file; `donor` is a benign binary for the
/// mutations that borrow benign content, `seed` makes random choices
/// reproducible. `None` when the input is not ELF or the mutation does not apply
/// (no section table to rewrite, no symbol table to strip, …).
pub fn apply(mutation: Mutation, elf: &[u8], donor: &[u8], seed: u64) -> Option<Vec<u8>> {
    let ident = Ident::read(elf)?;
    let mut out = elf.to_vec();
    match mutation {
        Mutation::OverlayRandom => {
            let n = (elf.len() / 4).clamp(4096, 256 * 1024);
            let mut rng = XorShift::new(seed);
            out.extend((0..n).map(|_| rng.next() as u8));
        }
        Mutation::OverlayBenign => {
            if donor.is_empty() {
                return None;
            }
            out.extend_from_slice(donor);
        }
        Mutation::StripSectionHeaders => {
            let (shoff, shnum, shstrndx) = ident.sh_fields();
            if ident.get(elf, shoff.0, shoff.1)? == 0 {
                return None;
            }
            ident.put(&mut out, shoff.0, shoff.1, 0)?;
            ident.put(&mut out, shnum.0, shnum.1, 0)?;
            ident.put(&mut out, shstrndx.0, shstrndx.1, 0)?;
        }
        Mutation::StripSymbols => {
            let parsed = Elf::parse(elf).ok()?;
            let shoff = usize::try_from(parsed.header.e_shoff).ok()?;
            let shentsize = usize::from(parsed.header.e_shentsize);
            let mut stripped = false;
            for (i, sh) in parsed.section_headers.iter().enumerate() {
                if sh.sh_type != goblin::elf::section_header::SHT_SYMTAB {
                    continue;
                }
                let targets = [Some(i), usize::try_from(sh.sh_link).ok()];
                for idx in targets.into_iter().flatten() {
                    let Some(s) = parsed.section_headers.get(idx) else {
                        continue;
                    };
                    blank(&mut out, s.sh_offset, s.sh_size);
                    // sh_type is the second 32-bit word of a section header.
                    ident.put(&mut out, shoff + idx * shentsize + 4, 4, 0)?;
                    stripped = true;
                }
            }
            if !stripped {
                return None;
            }
        }
        Mutation::AddBenignSection => {
            let strings = printable_strings(donor, 64 * 1024);
            if strings.is_empty() {
                return None;
            }
            add_sections(&ident, &mut out, &[NewSection::data(strings)])?;
        }
        Mutation::AddBenignStrings => {
            let strings = printable_strings(donor, 64 * 1024);
            if strings.is_empty() {
                return None;
            }
            out.extend_from_slice(&strings);
        }
        Mutation::HeaderFields => {
            let mut rng = XorShift::new(seed);
            // EI_OSABI: SYSV (0) <-> GNU/Linux (3); the kernel does not read it.
            out[7] = if out[7] == 3 { 0 } else { 3 };
            out[8] = rng.next() as u8;
            for b in &mut out[9..16] {
                *b = rng.next() as u8;
            }
        }
        Mutation::RenameSections => rename_sections(&ident, elf, &mut out, donor, seed)?,
        Mutation::AddSymbols => add_symbols(&ident, elf, &mut out, donor, seed)?,
        Mutation::PadBenignCode => {
            let section = NewSection {
                flags: SHF_EXECINSTR,
                align: 16,
                ..NewSection::data(donor_code(donor, seed)?)
            };
            add_sections(&ident, &mut out, &[section])?;
        }
    }
    Some(out)
}

/// Zeroes `size` bytes at `offset`, clipped to the buffer.
fn blank(out: &mut [u8], offset: u64, size: u64) {
    let (Ok(start), Ok(len)) = (usize::try_from(offset), usize::try_from(size)) else {
        return;
    };
    let end = start.saturating_add(len).min(out.len());
    if start < end {
        out[start..end].fill(0);
    }
}

/// `sh_flags` bit: the section holds machine instructions.
const SHF_EXECINSTR: u64 = 0x4;

/// A section for [`add_sections`] to append.
struct NewSection {
    data: Vec<u8>,
    sh_type: u32,
    flags: u64,
    /// Index of a linked section (a symbol table's string table).
    link: u64,
    info: u64,
    entsize: u64,
    align: u64,
}

impl NewSection {
    /// Plain data: `SHT_PROGBITS`, no flags, no links.
    fn data(data: Vec<u8>) -> NewSection {
        NewSection {
            data,
            sh_type: 1,
            flags: 0,
            link: 0,
            info: 0,
            entsize: 0,
            align: 1,
        }
    }
}

/// Appends each section's data and a copy of the section header table with
/// one more entry per section (named like the last existing section, outside
/// every segment: address 0, no `SHF_ALLOC`), then points the header at the
/// new table. Section `k` gets index `e_shnum + k`. The old table stays where
/// it was, unreferenced.
fn add_sections(ident: &Ident, out: &mut Vec<u8>, sections: &[NewSection]) -> Option<()> {
    let (shoff_f, shnum_f, _) = ident.sh_fields();
    let shoff = usize::try_from(ident.get(out, shoff_f.0, shoff_f.1)?).ok()?;
    let shnum = usize::try_from(ident.get(out, shnum_f.0, shnum_f.1)?).ok()?;
    let shentsize = ident.shentsize();
    if shoff == 0 || shnum == 0 || shnum + sections.len() >= 0xff00 {
        return None;
    }
    let table = out
        .get(shoff..shoff.checked_add(shnum * shentsize)?)?
        .to_vec();
    let mut offsets = Vec::with_capacity(sections.len());
    for s in sections {
        while out.len() % 16 != 0 {
            out.push(0);
        }
        offsets.push(out.len());
        out.extend_from_slice(&s.data);
    }
    while out.len() % 8 != 0 {
        out.push(0);
    }
    let new_shoff = out.len();
    out.extend_from_slice(&table);
    // Each new entry starts as a copy of the last one (same sh_name), then
    // gets every other field of its own.
    let last = table.get(table.len() - shentsize..)?.to_vec();
    for (s, &data_off) in sections.iter().zip(&offsets) {
        let entry = out.len();
        out.extend_from_slice(&last);
        let w = if ident.is64 { 8 } else { 4 };
        // (offset in the entry, value) for sh_type .. sh_entsize; the 32-bit
        // layout has 4-byte words where the 64-bit one has 8.
        let fields = [
            (4, 4, u64::from(s.sh_type)),
            (8, w, s.flags),
            (8 + w, w, 0), // sh_addr
            (8 + 2 * w, w, data_off as u64),
            (8 + 3 * w, w, s.data.len() as u64),
            (8 + 4 * w, 4, s.link),
            (12 + 4 * w, 4, s.info),
            (16 + 4 * w, w, s.align),
            (16 + 5 * w, w, s.entsize),
        ];
        for (off, width, value) in fields {
            ident.put(out, entry + off, width, value)?;
        }
    }
    ident.put(out, shoff_f.0, shoff_f.1, new_shoff as u64)?;
    ident.put(out, shnum_f.0, shnum_f.1, (shnum + sections.len()) as u64)?;
    Some(())
}

/// Whether the file range `off .. off + len` overlaps a `PT_LOAD` segment.
fn in_loaded_segment(elf: &Elf<'_>, off: u64, len: u64) -> bool {
    let end = off.saturating_add(len);
    elf.program_headers.iter().any(|ph| {
        ph.p_type == goblin::elf::program_header::PT_LOAD
            && off < ph.p_offset.saturating_add(ph.p_filesz)
            && ph.p_offset < end
    })
}

/// [`Mutation::RenameSections`]: rewrites the section name table of `elf`
/// (copied in `out`) with each name replaced by a donor section name no longer
/// than it (picked with `seed`), packed without the suffix sharing linkers use,
/// and every `sh_name` pointed at its new name. Names that no longer fit keep
/// an earlier name or become empty. `None` when nothing would change.
fn rename_sections(
    ident: &Ident,
    elf: &[u8],
    out: &mut [u8],
    donor: &[u8],
    seed: u64,
) -> Option<()> {
    use goblin::elf::header::{ET_DYN, ET_EXEC};
    let parsed = Elf::parse(elf).ok()?;
    if !matches!(parsed.header.e_type, ET_EXEC | ET_DYN) {
        return None;
    }
    let shoff = parsed.header.e_shoff;
    let shentsize = ident.shentsize();
    let shnum = parsed.section_headers.len();
    let strtab = parsed
        .section_headers
        .get(usize::from(parsed.header.e_shstrndx))?;
    if in_loaded_segment(&parsed, strtab.sh_offset, strtab.sh_size)
        || in_loaded_segment(&parsed, shoff, (shnum * shentsize) as u64)
    {
        return None;
    }
    let start = usize::try_from(strtab.sh_offset).ok()?;
    let size = usize::try_from(strtab.sh_size).ok()?;
    let old = elf.get(start..start.checked_add(size)?)?;
    let donor_names = section_names(donor)?;
    let mut rng = XorShift::new(seed);
    let mut table = vec![0u8; size];
    let mut placed: Vec<(&[u8], usize)> = Vec::new();
    let mut pos = 1usize; // offset 0 is the empty name
    for (i, sh) in parsed.section_headers.iter().enumerate() {
        let name = parsed
            .shdr_strtab
            .get_at(sh.sh_name)
            .unwrap_or("")
            .as_bytes();
        let new_off = if name.is_empty() {
            0
        } else {
            let fits: Vec<&[u8]> = donor_names
                .iter()
                .map(|n| n.as_slice())
                .filter(|n| n.len() <= name.len() && *n != name)
                .collect();
            let pick = if fits.is_empty() {
                name
            } else {
                fits[(rng.next() % fits.len() as u64) as usize]
            };
            if let Some(&(_, off)) = placed.iter().find(|(n, _)| *n == pick) {
                off
            } else if pos + pick.len() < size {
                table[pos..pos + pick.len()].copy_from_slice(pick);
                placed.push((pick, pos));
                pos += pick.len() + 1;
                pos - pick.len() - 1
            } else {
                placed.first().map_or(0, |&(_, off)| off)
            }
        };
        let entry = usize::try_from(shoff).ok()? + i * shentsize;
        ident.put(out, entry, 4, new_off as u64)?;
    }
    if table == old {
        return None;
    }
    out.get_mut(start..start + size)?.copy_from_slice(&table);
    Some(())
}

/// The distinct non-empty section names of the ELF file `bytes`, in table
/// order; `None` when it has none.
fn section_names(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let parsed = Elf::parse(bytes).ok()?;
    let mut names: Vec<Vec<u8>> = Vec::new();
    for sh in &parsed.section_headers {
        let name = parsed.shdr_strtab.get_at(sh.sh_name).unwrap_or("");
        if !name.is_empty() && !names.iter().any(|n| n == name.as_bytes()) {
            names.push(name.as_bytes().to_vec());
        }
    }
    (!names.is_empty()).then_some(names)
}

/// [`Mutation::AddSymbols`]: a `.strtab` and a `.symtab` (indices `e_shnum`
/// and `e_shnum + 1`) holding a seeded half or more (at most
/// [`MAX_ADDED_SYMBOLS`]) of the donor's dynamic symbol names as undefined
/// global functions. `None` when `elf` already has a symbol table or the donor
/// has no dynamic symbols.
fn add_symbols(
    ident: &Ident,
    elf: &[u8],
    out: &mut Vec<u8>,
    donor: &[u8],
    seed: u64,
) -> Option<()> {
    use goblin::elf::section_header::{SHT_STRTAB, SHT_SYMTAB};
    let parsed = Elf::parse(elf).ok()?;
    if parsed
        .section_headers
        .iter()
        .any(|sh| sh.sh_type == SHT_SYMTAB)
    {
        return None;
    }
    let shnum = u64::try_from(parsed.section_headers.len()).ok()?;
    let d = Elf::parse(donor).ok()?;
    let mut names: Vec<&str> = Vec::new();
    for sym in d.dynsyms.iter() {
        let name = d.dynstrtab.get_at(sym.st_name).unwrap_or("");
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return None;
    }
    let mut rng = XorShift::new(seed);
    for i in (1..names.len()).rev() {
        names.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let half = names.len().div_ceil(2);
    let keep =
        (half + (rng.next() % (names.len() - half + 1) as u64) as usize).min(MAX_ADDED_SYMBOLS);
    names.truncate(keep);

    let mut strtab = vec![0u8];
    let entsize = if ident.is64 { 24 } else { 16 };
    let mut symtab = vec![0u8; entsize]; // symbol 0 is the null symbol
    // STB_GLOBAL << 4 | STT_FUNC; st_shndx SHN_UNDEF; value and size 0.
    let info = (1u8 << 4) | 2;
    for name in names {
        let st_name = u32::try_from(strtab.len()).ok()?;
        strtab.extend_from_slice(name.as_bytes());
        strtab.push(0);
        let mut sym = vec![0u8; entsize];
        ident.put(&mut sym, 0, 4, u64::from(st_name))?;
        sym[if ident.is64 { 4 } else { 12 }] = info;
        symtab.extend_from_slice(&sym);
    }
    let strings = NewSection {
        sh_type: SHT_STRTAB,
        ..NewSection::data(strtab)
    };
    let symbols = NewSection {
        sh_type: SHT_SYMTAB,
        link: shnum,
        info: 1, // the first global symbol: all but the null one are global
        entsize: entsize as u64,
        align: if ident.is64 { 8 } else { 4 },
        ..NewSection::data(symtab)
    };
    add_sections(ident, out, &[strings, symbols])
}

/// At most this many donor symbols are added by [`Mutation::AddSymbols`].
const MAX_ADDED_SYMBOLS: usize = 512;

/// A seeded slice of the donor's `.text`: 4 KiB to 64 KiB (all of it when
/// shorter). `None` when the donor has no `.text`.
fn donor_code(donor: &[u8], seed: u64) -> Option<Vec<u8>> {
    let d = Elf::parse(donor).ok()?;
    let text = d
        .section_headers
        .iter()
        .find(|sh| d.shdr_strtab.get_at(sh.sh_name) == Some(".text"))?;
    let start = usize::try_from(text.sh_offset).ok()?;
    let code = donor.get(start..start.checked_add(usize::try_from(text.sh_size).ok()?)?)?;
    if code.is_empty() {
        return None;
    }
    let mut rng = XorShift::new(seed);
    let len = (4096 + (rng.next() % (60 * 1024)) as usize).min(code.len());
    let at = (rng.next() % (code.len() - len + 1) as u64) as usize;
    Some(code[at..at + len].to_vec())
}

/// Runs of at least 6 printable ASCII bytes from `bytes`, NUL-separated, up to
/// `cap` bytes in all.
pub fn printable_strings(bytes: &[u8], cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut run = 0usize;
    let mut start = 0usize;
    for (i, &b) in bytes.iter().chain(std::iter::once(&0)).enumerate() {
        if (0x20..0x7f).contains(&b) {
            if run == 0 {
                start = i;
            }
            run += 1;
            continue;
        }
        if run >= 6 {
            if out.len() + run + 1 > cap {
                break;
            }
            out.extend_from_slice(&bytes[start..start + run]);
            out.push(0);
        }
        run = 0;
    }
    out
}

/// The class and byte order of an ELF file, for patching header fields.
struct Ident {
    is64: bool,
    big: bool,
}

impl Ident {
    fn read(bytes: &[u8]) -> Option<Ident> {
        if bytes.len() < 52 || !bytes.starts_with(b"\x7fELF") {
            return None;
        }
        let is64 = match bytes[4] {
            1 => false,
            2 if bytes.len() >= 64 => true,
            _ => return None,
        };
        let big = match bytes[5] {
            1 => false,
            2 => true,
            _ => return None,
        };
        Some(Ident { is64, big })
    }

    /// The size of one section header.
    fn shentsize(&self) -> usize {
        if self.is64 { 64 } else { 40 }
    }

    /// (offset, width) of `e_shoff`, `e_shnum` and `e_shstrndx`.
    fn sh_fields(&self) -> ((usize, usize), (usize, usize), (usize, usize)) {
        if self.is64 {
            ((40, 8), (60, 2), (62, 2))
        } else {
            ((32, 4), (48, 2), (50, 2))
        }
    }

    fn get(&self, bytes: &[u8], off: usize, width: usize) -> Option<u64> {
        let field = bytes.get(off..off.checked_add(width)?)?;
        let mut v = 0u64;
        for i in 0..width {
            let b = if self.big {
                field[i]
            } else {
                field[width - 1 - i]
            };
            v = (v << 8) | u64::from(b);
        }
        Some(v)
    }

    fn put(&self, bytes: &mut [u8], off: usize, width: usize, value: u64) -> Option<()> {
        let field = bytes.get_mut(off..off.checked_add(width)?)?;
        for i in 0..width {
            let b = (value >> (8 * i)) as u8;
            if self.big {
                field[width - 1 - i] = b;
            } else {
                field[i] = b;
            }
        }
        Some(())
    }
}

/// A small deterministic generator (xorshift64*): reproducible mutations, no
/// dependency.
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> XorShift {
        XorShift((seed ^ 0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn this_binary() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn every_mutation_keeps_a_parseable_elf_header_and_changes_bytes() {
        let elf = this_binary();
        let donor = std::fs::read("/bin/sh").unwrap_or_else(|_| b"donor strings here".repeat(10));
        for m in Mutation::ALL {
            let Some(out) = apply(m, &elf, &donor, 1) else {
                // The test binary has symbols and a section table: all apply
                // but the one that adds a symbol table where there is none.
                assert_eq!(m, Mutation::AddSymbols, "{} did not apply", m.as_str());
                continue;
            };
            assert_ne!(out, elf, "{}", m.as_str());
            assert!(out.starts_with(b"\x7fELF"));
            let h = Elf::parse_header(&out).unwrap();
            assert_eq!(h.e_entry, Elf::parse_header(&elf).unwrap().e_entry);
            if m == Mutation::AddBenignSection {
                let parsed = Elf::parse(&out).unwrap();
                assert_eq!(
                    parsed.section_headers.len(),
                    Elf::parse(&elf).unwrap().section_headers.len() + 1
                );
            }
            if m == Mutation::StripSectionHeaders {
                assert_eq!(Elf::parse_header(&out).unwrap().e_shnum, 0);
            }
        }
    }

    #[test]
    fn mutations_are_reproducible_and_total_on_garbage() {
        let elf = this_binary();
        assert_eq!(
            apply(Mutation::OverlayRandom, &elf, b"", 9),
            apply(Mutation::OverlayRandom, &elf, b"", 9)
        );
        let mut rng = XorShift::new(5);
        for len in [0usize, 4, 52, 64, 100, 4096] {
            for _ in 0..50 {
                let mut junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if junk.len() >= 6 {
                    junk[..4].copy_from_slice(b"\x7fELF");
                    junk[4] = 1 + (rng.next() % 2) as u8;
                    junk[5] = 1 + (rng.next() % 2) as u8;
                }
                for m in Mutation::ALL {
                    let _ = apply(m, &junk, &elf[..4096], rng.next());
                }
            }
        }
    }

    /// What the Linux loader reads of an ELF file: the program headers, the
    /// entry point and the file bytes of every `PT_LOAD` segment, with the ELF
    /// header's section-table fields (`e_shoff`, `e_shnum`, `e_shstrndx`, in the
    /// first loaded page but never read by the loader) zeroed.
    fn loader_view(bytes: &[u8]) -> (u64, Vec<String>, Vec<Vec<u8>>) {
        let elf = Elf::parse(bytes).unwrap();
        let ident = Ident::read(bytes).unwrap();
        let mut copy = bytes.to_vec();
        let (a, b, c) = ident.sh_fields();
        for (off, width) in [a, b, c] {
            ident.put(&mut copy, off, width, 0).unwrap();
        }
        let phdrs = elf
            .program_headers
            .iter()
            .map(|p| format!("{p:?}"))
            .collect();
        let loaded = elf
            .program_headers
            .iter()
            .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
            .map(|p| copy[p.p_offset as usize..(p.p_offset + p.p_filesz) as usize].to_vec())
            .collect();
        (elf.header.e_entry, phdrs, loaded)
    }

    fn section_name_list(bytes: &[u8]) -> Vec<String> {
        let elf = Elf::parse(bytes).unwrap();
        elf.section_headers
            .iter()
            .map(|sh| elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("?").to_owned())
            .collect()
    }

    /// A stripped system program (a target without `.symtab`) and a donor
    /// with many sections, dynamic symbols and a `.text`.
    fn target_and_donor() -> Option<(Vec<u8>, Vec<u8>)> {
        let target = std::fs::read("/bin/true").ok()?;
        let donor = ["/usr/bin/ssh", "/usr/bin/gpg", "/bin/ls"]
            .iter()
            .find_map(|p| std::fs::read(p).ok())?;
        Some((target, donor))
    }

    #[test]
    fn new_mutations_leave_what_the_loader_reads_unchanged() {
        let Some((elf, donor)) = target_and_donor() else {
            eprintln!("skipped: no /bin/true or donor");
            return;
        };
        for m in [
            Mutation::RenameSections,
            Mutation::AddSymbols,
            Mutation::PadBenignCode,
            Mutation::AddBenignSection,
        ] {
            for seed in [1, 2, 3] {
                let out = apply(m, &elf, &donor, seed)
                    .unwrap_or_else(|| panic!("{} did not apply", m.as_str()));
                assert_ne!(out, elf, "{}", m.as_str());
                assert!(Elf::parse(&out).is_ok(), "{} parses", m.as_str());
                assert_eq!(loader_view(&out), loader_view(&elf), "{}", m.as_str());
            }
        }
    }

    #[test]
    fn rename_sections_renames_in_place_to_donor_names() {
        let Some((elf, donor)) = target_and_donor() else {
            eprintln!("skipped: no /bin/true or donor");
            return;
        };
        let out = apply(Mutation::RenameSections, &elf, &donor, 5).unwrap();
        assert_eq!(out.len(), elf.len(), "in place");
        let (before, after) = (section_name_list(&elf), section_name_list(&out));
        assert_eq!(before.len(), after.len());
        let donor_names = section_name_list(&donor);
        let renamed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert!(renamed > before.len() / 2, "{before:?} -> {after:?}");
        for (a, b) in before.iter().zip(&after) {
            assert!(
                b.is_empty() || b == a || donor_names.contains(b),
                "{a} -> {b}"
            );
            assert!(b.len() <= a.len(), "{a} -> {b}");
        }
        // Every section keeps its type, offset and size: only names move.
        let (p, q) = (Elf::parse(&elf).unwrap(), Elf::parse(&out).unwrap());
        for (x, y) in p.section_headers.iter().zip(&q.section_headers) {
            assert_eq!(
                (x.sh_type, x.sh_offset, x.sh_size, x.sh_addr),
                (y.sh_type, y.sh_offset, y.sh_size, y.sh_addr)
            );
        }
        // Not for a relocatable object: the module loader reads section names.
        let mut rel = elf.clone();
        rel[16] = 1; // ET_REL
        assert_eq!(apply(Mutation::RenameSections, &rel, &donor, 5), None);
    }

    #[test]
    fn add_symbols_adds_a_symtab_of_donor_dynamic_names() {
        let Some((elf, donor)) = target_and_donor() else {
            eprintln!("skipped: no /bin/true or donor");
            return;
        };
        assert!(Elf::parse(&elf).unwrap().syms.is_empty(), "target stripped");
        let out = apply(Mutation::AddSymbols, &elf, &donor, 3).unwrap();
        let parsed = Elf::parse(&out).unwrap();
        let d = Elf::parse(&donor).unwrap();
        let donor_syms: Vec<&str> = d
            .dynsyms
            .iter()
            .filter_map(|s| d.dynstrtab.get_at(s.st_name))
            .collect();
        let added: Vec<&str> = parsed
            .syms
            .iter()
            .skip(1)
            .map(|s| parsed.strtab.get_at(s.st_name).unwrap())
            .collect();
        assert!(
            added.len() >= donor_syms.iter().filter(|n| !n.is_empty()).count().min(512) / 2 - 1
        );
        assert!(added.iter().all(|n| donor_syms.contains(n)), "{added:?}");
        assert!(
            parsed
                .syms
                .iter()
                .skip(1)
                .all(|s| s.is_import() && s.is_function())
        );
        // The dynamic symbols (what the dynamic linker reads) are unchanged.
        let p = Elf::parse(&elf).unwrap();
        assert_eq!(parsed.dynsyms.len(), p.dynsyms.len());
        assert_eq!(parsed.libraries, p.libraries);
        // A second application has a symbol table to respect: no.
        assert_eq!(apply(Mutation::AddSymbols, &out, &donor, 4), None);
    }

    #[test]
    fn pad_benign_code_adds_a_non_allocated_code_section_from_the_donor() {
        let Some((elf, donor)) = target_and_donor() else {
            eprintln!("skipped: no /bin/true or donor");
            return;
        };
        let out = apply(Mutation::PadBenignCode, &elf, &donor, 9).unwrap();
        let parsed = Elf::parse(&out).unwrap();
        let added = parsed.section_headers.last().unwrap();
        assert_eq!(added.sh_flags, SHF_EXECINSTR, "code, not allocated");
        assert_eq!(added.sh_addr, 0);
        let bytes = &out[added.sh_offset as usize..(added.sh_offset + added.sh_size) as usize];
        assert!(bytes.len() >= 4096.min(bytes.len()));
        let d = Elf::parse(&donor).unwrap();
        let text = d
            .section_headers
            .iter()
            .find(|sh| d.shdr_strtab.get_at(sh.sh_name) == Some(".text"))
            .unwrap();
        let code = &donor[text.sh_offset as usize..(text.sh_offset + text.sh_size) as usize];
        assert!(
            code.windows(bytes.len()).any(|w| w == bytes),
            "a slice of the donor's .text"
        );
        assert!(!in_loaded_segment(&parsed, added.sh_offset, added.sh_size));
    }
}
