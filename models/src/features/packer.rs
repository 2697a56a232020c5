//! The packer group: UPX traces (the `UPX!` magic and where it sits, UPX's banner and
//! section names), the overlay (bytes past everything the ELF headers account for),
//! and how much of the file looks compressed or encrypted.
//!
//! Owns the overlay computation. None of these alone means malicious (benign
//! self-extracting archives have overlays and high entropy); they are context for the
//! model. `UPX!` positions come from the shared string scan.

use super::Input;
use super::bytescan::ByteScan;
use super::bytescan::Span;
use super::elf::ElfView;
use super::entropy::entropy;
use super::needles::Marker;
use super::row::{Row, columns};
use goblin::elf::program_header::PT_LOAD;
use goblin::elf::section_header::SHT_NOBITS;

columns! {
    /// Columns of the packer group.
    Col {
        UpxMagicLog = "pack_upx_magic_log",
        UpxFirstRel = "pack_upx_first_rel",
        UpxLastRel = "pack_upx_last_rel",
        UpxHead = "pack_upx_in_head",
        UpxTail = "pack_upx_in_tail",
        UpxBanner = "pack_upx_banner",
        UpxSections = "pack_upx_section_names",
        OverlayLog = "pack_overlay_log",
        OverlayRel = "pack_overlay_rel",
        OverlayEntropy = "pack_overlay_entropy",
        HighEntropyRel = "pack_high_entropy_window_rel",
        FileEntropy = "pack_file_entropy",
        NoSectionTable = "pack_elf_no_section_table",
    }
}

/// Number of columns of this group.
pub(crate) const LEN: usize = Col::NAMES.len();

/// "Head" and "tail" of the file for `UPX!` positions (UPX puts its magic in both).
const EDGE: usize = 4096;

/// End of the bytes the ELF structures account for (headers, tables, loadable
/// segments, sections), at most the file size.
pub(crate) fn covered_end(elf: &ElfView<'_>) -> Option<u64> {
    let h = elf.header?;
    let len = elf.bytes.len() as u64;
    let mut end = u64::from(h.e_ehsize);
    let table =
        |off: u64, num: u64, size: u16| off.saturating_add(num.saturating_mul(u64::from(size)));
    if elf.phdrs_ok && h.e_phnum > 0 {
        end = end.max(table(h.e_phoff, u64::from(h.e_phnum), h.e_phentsize));
    }
    if elf.shdrs_ok && !elf.shdrs.is_empty() {
        end = end.max(table(h.e_shoff, elf.shdrs.len() as u64, h.e_shentsize));
    }
    for p in elf.phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        end = end.max(p.p_offset.saturating_add(p.p_filesz));
    }
    for s in elf.shdrs.iter().filter(|s| s.sh_type != SHT_NOBITS) {
        end = end.max(s.sh_offset.saturating_add(s.sh_size));
    }
    Some(end.min(len))
}

/// Span id of the overlay in the byte scan (after every section index).
pub(crate) const OVERLAY_SPAN: usize = usize::MAX;

/// The overlay as a byte-scan span, when there is one.
pub(crate) fn overlay_span(elf: &ElfView<'_>) -> Option<Span> {
    if !elf.phdrs_ok || elf.over_cap {
        return None;
    }
    let start = usize::try_from(covered_end(elf)?).ok()?;
    let end = elf.bytes.len();
    (start < end).then_some(Span {
        id: OVERLAY_SPAN,
        start,
        end,
    })
}

/// Fills the group.
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    let len = input.bytes.len();
    let len64 = len as u64;
    let s = &input.strings;
    row.log(Col::UpxMagicLog, s.upx_count);
    if let (Some(first), Some(last)) = (s.upx_first, s.upx_last) {
        row.rel(Col::UpxFirstRel, first as u64, len64);
        row.rel(Col::UpxLastRel, last as u64, len64);
        row.flag(Col::UpxHead, first < EDGE);
        row.flag(Col::UpxTail, last.saturating_add(EDGE) >= len);
    }
    row.flag(Col::UpxBanner, s.marker(Marker::UpxInfo) > 0);
    fill_entropy(&input.bytescan, row);
    let Some(elf) = &input.elf else {
        return;
    };
    row.flag(
        Col::UpxSections,
        elf.shdrs.iter().any(|sh| {
            let n = elf.section_name(sh);
            n.starts_with(b"UPX") || n.starts_with(b".upx")
        }),
    );
    row.flag(
        Col::NoSectionTable,
        elf.header.is_some() && elf.shdrs.is_empty(),
    );
    if !elf.phdrs_ok || elf.over_cap {
        return;
    }
    if let Some(end) = covered_end(elf) {
        let overlay = len64.saturating_sub(end);
        row.log(Col::OverlayLog, overlay);
        row.rel(Col::OverlayRel, overlay, len64);
        if let Some((_, h)) = input
            .bytescan
            .span_entropy
            .iter()
            .rev()
            .find(|(id, _)| *id == OVERLAY_SPAN)
        {
            row.set(Col::OverlayEntropy, *h);
        }
    }
}

fn fill_entropy(scan: &ByteScan, row: &mut Row<'_>) {
    row.rel(Col::HighEntropyRel, scan.high_entropy_windows, scan.windows);
    row.set(Col::FileEntropy, entropy(&scan.hist));
}

#[cfg(test)]
mod tests {
    use super::super::elf::testelf::{Ph, build};
    use super::super::{column, extract};
    use goblin::elf::program_header::PT_LOAD;

    #[test]
    fn overlay_and_upx_markers() {
        let mut x = 0x1234_5678u64;
        let noise: Vec<u8> = (0..0x2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let b = build(
            0x3000,
            0x100,
            &[Ph {
                p_type: PT_LOAD,
                flags: 5,
                offset: 0,
                vaddr: 0,
                filesz: 0x1000,
                memsz: 0x1000,
            }],
            0,
            &[],
            0,
            &[(0x1000, &noise), (0x200, b"UPX!"), (0x2ff0, b"UPX!")],
        );
        let f = extract(&b);
        let v = |n: &str| f.values[column(n).unwrap_or(usize::MAX)];
        assert!((v("pack_overlay_rel") - 2.0 / 3.0).abs() < 1e-6);
        assert!(v("pack_overlay_entropy") > 7.9);
        assert_eq!(v("pack_upx_magic_log"), 2f32.ln_1p());
        assert_eq!(v("pack_upx_in_head"), 1.0);
        assert_eq!(v("pack_upx_in_tail"), 1.0);
        assert!((v("pack_upx_first_rel") - 0x200 as f32 / 0x3000 as f32).abs() < 1e-6);
        assert!(v("pack_high_entropy_window_rel") > 0.5);
        assert_eq!(v("pack_elf_no_section_table"), 1.0);
    }
}
