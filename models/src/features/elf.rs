//! The ELF view the feature groups read lives in `vigil-elf`, shared with the
//! ELF heuristics so a scan parses each file once; re-exported here. The test
//! builder of small ELF files stays with the feature tests.

pub(crate) use vigil_elf::*;

#[cfg(test)]
pub(crate) mod testelf {
    //! A tiny ELF64 little-endian writer for unit tests: a header, program headers,
    //! section headers and raw payload at chosen offsets.

    /// One program header.
    #[derive(Clone, Copy, Default)]
    pub struct Ph {
        pub p_type: u32,
        pub flags: u32,
        pub offset: u64,
        pub vaddr: u64,
        pub filesz: u64,
        pub memsz: u64,
    }

    /// One section header.
    #[derive(Clone, Copy, Default)]
    pub struct Sh {
        pub name: u32,
        pub sh_type: u32,
        pub flags: u64,
        pub offset: u64,
        pub size: u64,
        pub link: u32,
        pub entsize: u64,
    }

    /// Builds an ELF64 LE x86-64 `ET_DYN` file of `len` bytes with the given tables
    /// (program headers at 64, section headers at `shoff`) and payloads copied in.
    pub fn build(
        len: usize,
        entry: u64,
        phs: &[Ph],
        shoff: u64,
        shs: &[Sh],
        shstrndx: u16,
        payloads: &[(usize, &[u8])],
    ) -> Vec<u8> {
        let mut b = vec![0u8; len.max(64)];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&3u16.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&(if phs.is_empty() { 0u64 } else { 64 }).to_le_bytes());
        b[40..48].copy_from_slice(&shoff.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
        b[58..60].copy_from_slice(&64u16.to_le_bytes());
        b[60..62].copy_from_slice(&(shs.len() as u16).to_le_bytes());
        b[62..64].copy_from_slice(&shstrndx.to_le_bytes());
        let mut put = |at: usize, bytes: &[u8]| {
            if b.len() < at + bytes.len() {
                b.resize(at + bytes.len(), 0);
            }
            b[at..at + bytes.len()].copy_from_slice(bytes);
        };
        for (i, p) in phs.iter().enumerate() {
            let mut e = Vec::with_capacity(56);
            e.extend_from_slice(&p.p_type.to_le_bytes());
            e.extend_from_slice(&p.flags.to_le_bytes());
            e.extend_from_slice(&p.offset.to_le_bytes());
            e.extend_from_slice(&p.vaddr.to_le_bytes());
            e.extend_from_slice(&p.vaddr.to_le_bytes());
            e.extend_from_slice(&p.filesz.to_le_bytes());
            e.extend_from_slice(&p.memsz.to_le_bytes());
            e.extend_from_slice(&0x1000u64.to_le_bytes());
            put(64 + 56 * i, &e);
        }
        for (i, s) in shs.iter().enumerate() {
            let mut e = Vec::with_capacity(64);
            e.extend_from_slice(&s.name.to_le_bytes());
            e.extend_from_slice(&s.sh_type.to_le_bytes());
            e.extend_from_slice(&s.flags.to_le_bytes());
            e.extend_from_slice(&0u64.to_le_bytes());
            e.extend_from_slice(&s.offset.to_le_bytes());
            e.extend_from_slice(&s.size.to_le_bytes());
            e.extend_from_slice(&s.link.to_le_bytes());
            e.extend_from_slice(&0u32.to_le_bytes());
            e.extend_from_slice(&1u64.to_le_bytes());
            e.extend_from_slice(&s.entsize.to_le_bytes());
            put(shoff as usize + 64 * i, &e);
        }
        for (at, bytes) in payloads {
            put(*at, bytes);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::testelf::{Ph, Sh, build};
    use super::*;
    use goblin::elf::program_header::PT_LOAD;

    #[test]
    fn parses_synthetic_elf() {
        let shstr = b"\0.text\0.shstrtab\0";
        let b = build(
            0x400,
            0x1010,
            &[Ph {
                p_type: PT_LOAD,
                flags: 5,
                offset: 0,
                vaddr: 0x1000,
                filesz: 0x400,
                memsz: 0x400,
            }],
            0x200,
            &[
                Sh::default(),
                Sh {
                    name: 1,
                    sh_type: 1,
                    flags: 6,
                    offset: 0x100,
                    size: 0x80,
                    ..Sh::default()
                },
                Sh {
                    name: 7,
                    sh_type: 3,
                    offset: 0x180,
                    size: shstr.len() as u64,
                    ..Sh::default()
                },
            ],
            2,
            &[(0x180, shstr)],
        );
        let v = ElfView::parse(&b);
        assert!(v.fully_parsed());
        assert_eq!(v.phdrs.len(), 1);
        assert_eq!(v.shdrs.len(), 3);
        assert_eq!(v.section_name(&v.shdrs[1]), b".text");
        assert_eq!(v.vaddr_to_offset(0x1010), Some(0x10));
        assert_eq!(v.vaddr_to_offset(0x2000), None);
        assert!(v.dynamic.is_none() && v.dynamic_ok);
    }

    #[test]
    fn bad_tables_keep_the_rest() {
        // Section table offset past the end: sections fail, segments still parse.
        let b = build(
            0x200,
            0,
            &[Ph {
                p_type: PT_LOAD,
                flags: 5,
                offset: 0,
                vaddr: 0,
                filesz: 0x200,
                memsz: 0x200,
            }],
            0,
            &[],
            0,
            &[
                (40, &0xffff_0000u64.to_le_bytes()),
                (60, &7u16.to_le_bytes()),
            ],
        );
        let v = ElfView::parse(&b);
        assert!(v.phdrs_ok && !v.shdrs_ok && !v.fully_parsed());
        assert_eq!(v.phdrs.len(), 1);
    }
}
