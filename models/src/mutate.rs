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
}

impl Mutation {
    /// Every mutation, in report order.
    pub const ALL: [Mutation; 7] = [
        Mutation::OverlayRandom,
        Mutation::OverlayBenign,
        Mutation::StripSectionHeaders,
        Mutation::StripSymbols,
        Mutation::AddBenignSection,
        Mutation::AddBenignStrings,
        Mutation::HeaderFields,
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
            add_section(&ident, &mut out, &strings)?;
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

/// Appends `data` and a copy of the section header table with one more entry
/// (type `SHT_PROGBITS`, no flags, named like the last existing section) that
/// covers it, then points the header at the new table.
fn add_section(ident: &Ident, out: &mut Vec<u8>, data: &[u8]) -> Option<()> {
    let (shoff_f, shnum_f, _) = ident.sh_fields();
    let shoff = usize::try_from(ident.get(out, shoff_f.0, shoff_f.1)?).ok()?;
    let shnum = usize::try_from(ident.get(out, shnum_f.0, shnum_f.1)?).ok()?;
    let shentsize = if ident.is64 { 64 } else { 40 };
    if shoff == 0 || shnum == 0 || shnum >= 0xff00 {
        return None;
    }
    let table = out
        .get(shoff..shoff.checked_add(shnum * shentsize)?)?
        .to_vec();
    while out.len() % 16 != 0 {
        out.push(0);
    }
    let data_off = out.len();
    out.extend_from_slice(data);
    while out.len() % 8 != 0 {
        out.push(0);
    }
    let new_shoff = out.len();
    out.extend_from_slice(&table);
    // The new entry starts as a copy of the last one (same sh_name), then gets
    // its own type, flags, address, offset and size.
    let last = table.get(table.len() - shentsize..)?.to_vec();
    let entry = out.len();
    out.extend_from_slice(&last);
    ident.put(out, entry + 4, 4, 1)?; // SHT_PROGBITS
    if ident.is64 {
        ident.put(out, entry + 8, 8, 0)?; // sh_flags
        ident.put(out, entry + 16, 8, 0)?; // sh_addr
        ident.put(out, entry + 24, 8, data_off as u64)?;
        ident.put(out, entry + 32, 8, data.len() as u64)?;
        ident.put(out, entry + 48, 8, 1)?; // sh_addralign
    } else {
        ident.put(out, entry + 8, 4, 0)?;
        ident.put(out, entry + 12, 4, 0)?;
        ident.put(out, entry + 16, 4, data_off as u64)?;
        ident.put(out, entry + 20, 4, data.len() as u64)?;
        ident.put(out, entry + 32, 4, 1)?;
    }
    ident.put(out, shoff_f.0, shoff_f.1, new_shoff as u64)?;
    ident.put(out, shnum_f.0, shnum_f.1, (shnum + 1) as u64)?;
    Some(())
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
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift((seed ^ 0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
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
                // The test binary has symbols and a section table: all apply.
                panic!("{} did not apply", m.as_str());
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
}
