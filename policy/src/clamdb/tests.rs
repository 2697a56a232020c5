//! Tests of the ClamAV reader on containers built here the way ClamAV writes
//! them (512-byte header, then a gzipped tar for `.cvd`, a plain tar for `.cld`),
//! and the 4-million-entry measurement (ignored by default; see docs/update.md).

use super::*;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::io::Write as _;
use std::time::Instant;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-clamdb-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *bytes).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A container: header (with the body's MD5 for a `.cvd`) padded to 512 bytes.
fn container(version: u64, body: &[u8], with_md5: bool) -> Vec<u8> {
    let md5 = if with_md5 {
        hex::encode(Md5::digest(body))
    } else {
        "X".to_owned()
    };
    let header =
        format!("ClamAV-VDB:04 Dec 2026 23-00 +0000:{version}:3:90:{md5}:dsig:test:1796425200");
    let mut out = format!("{header:<512}").into_bytes();
    out.extend_from_slice(body);
    out
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn md5_of(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

fn sha_of(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[test]
fn cvd_cld_and_loose_lists_load() {
    let dir = scratch("load");
    let hdb = format!("{}:5:Test.Main-1\n", md5_hex(b"first"));
    let hsb = format!(
        "{}:*:Test.Main-2:73\n{}:6:Test.Sha1-skipped\n",
        sha_hex(b"second"),
        "a".repeat(40)
    );
    let body = gzip(&tar_of(&[
        ("COPYING", b"licence"),
        ("main.hdb", hdb.as_bytes()),
        ("main.hsb", hsb.as_bytes()),
        ("main.ndb", b"not:a:hash:list"),
    ]));
    fs::write(dir.join("main.cvd"), container(62, &body, true)).unwrap();
    // daily.cld (newer) wins over daily.cvd; the .cld's tar is not gzipped.
    let old = gzip(&tar_of(&[(
        "daily.hdb",
        format!("{}:5:Old-1\n", md5_hex(b"third")).as_bytes(),
    )]));
    fs::write(dir.join("daily.cvd"), container(100, &old, true)).unwrap();
    let new = tar_of(&[(
        "daily.hdb",
        format!("{}:5:New-1\n", md5_hex(b"third")).as_bytes(),
    )]);
    fs::write(dir.join("daily.cld"), container(101, &new, false)).unwrap();
    fs::write(
        dir.join("local.hsu"),
        // A minimum and a maximum functionality level (the maximum is dropped).
        format!("{}:4:Local.Pua:51:255\n", sha_hex(b"pua!")),
    )
    .unwrap();
    fs::write(dir.join("freshclam.dat"), b"binary state").unwrap();

    let db = ClamDb::load(&dir, &[&dir]).unwrap();
    assert_eq!(db.len(), 4);
    let hit = db.lookup_md5(&md5_of(b"first"), 5).unwrap();
    assert_eq!(
        (hit.name.to_string().as_str(), hit.path, hit.member),
        ("Test.Main-1", dir.join("main.cvd").as_path(), "main.hdb")
    );
    assert_eq!(
        db.lookup_sha256(&sha_of(b"second"), 999)
            .unwrap()
            .name
            .to_string(),
        "Test.Main-2"
    );
    assert_eq!(
        db.lookup_md5(&md5_of(b"third"), 5)
            .unwrap()
            .name
            .to_string(),
        "New-1"
    );
    assert_eq!(db.lookup_sha256(&sha_of(b"pua!"), 4).unwrap().member, "");
    assert!(db.lookup_md5(&md5_of(b"first"), 6).is_none());
    let names: Vec<_> = db
        .sources()
        .iter()
        .map(|s| {
            (
                s.path.file_name().unwrap().to_str().unwrap().to_owned(),
                s.version,
                s.entries,
                s.skipped,
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("daily.cld".to_owned(), Some(101), 1, 0),
            ("local.hsu".to_owned(), None, 1, 0),
            ("main.cvd".to_owned(), Some(62), 2, 1),
        ]
    );

    // Replacing a file changes the fingerprint (freshclam renames a new file in).
    let before = ClamDb::fingerprint_of(&dir).unwrap();
    assert_eq!(&before, db.fingerprint());
    let tmp = dir.join("local.hsu.tmp");
    fs::write(&tmp, format!("{}:4:Local.Pua2\n", sha_hex(b"pua2"))).unwrap();
    fs::rename(&tmp, dir.join("local.hsu")).unwrap();
    assert_ne!(ClamDb::fingerprint_of(&dir).unwrap(), before);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_containers_are_named() {
    let dir = scratch("damaged");
    let hdb = format!("{}:5:Test.A\n", md5_hex(b"a"));
    let tar = tar_of(&[("main.hdb", hdb.as_bytes())]);
    let body = gzip(&tar);
    let good = container(1, &body, true);
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "truncated.cvd",
            good[..good.len() - 20].to_vec(),
            "truncated.cvd".to_owned(),
        ),
        (
            "flipped.cvd",
            {
                let mut bytes = good.clone();
                let last = bytes.len() - 30;
                bytes[last] ^= 0xff;
                bytes
            },
            "flipped.cvd".to_owned(),
        ),
        (
            "short.cld",
            b"ClamAV-VDB:x:1:1:90".to_vec(),
            "short.cld: cannot read the 512-byte header".to_owned(),
        ),
        (
            "notclam.cvd",
            format!("{:<512}", "PK zip file").into_bytes(),
            "not a ClamAV database".to_owned(),
        ),
        (
            "badline.cld",
            container(3, &tar_of(&[("daily.hdb", b"# ok\nnothex:5:Bad\n")]), false),
            "badline.cld:daily.hdb:2: expected 32 hex digits".to_owned(),
        ),
        (
            "halftar.cld",
            container(3, &tar[..700], false),
            "halftar.cld".to_owned(),
        ),
    ];
    for (name, bytes, want) in cases {
        let sub = dir.join(name.replace('.', "_"));
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join(name), &bytes).unwrap();
        let error = ClamDb::load(&sub, &[&sub]).unwrap_err().to_string();
        assert!(error.contains(&want), "{name}: {error}");
        assert!(
            matches!(ClamDb::load(&sub, &[&sub]), Err(Error::ClamAv { .. })),
            "{name}"
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// Names come back exactly as listed (numbered, plain, cut at 255 bytes),
/// through a container and a loose list.
#[test]
fn names_read_back_exactly() {
    let dir = scratch("names");
    let long = format!("Long.{}", "é".repeat(200));
    let names = [
        "Win.Trojan.Agent-1234567-0",
        "Eicar-Test-Signature",
        "Win.Trojan.Agent-1-99",
        "Odd name with spaces",
        long.as_str(),
    ];
    let mut hdb = String::new();
    for (i, name) in names.iter().enumerate() {
        hdb.push_str(&format!("{}:{i}:{name}\n", md5_hex(name.as_bytes())));
    }
    let body = gzip(&tar_of(&[("main.hdb", hdb.as_bytes())]));
    fs::write(dir.join("main.cvd"), container(5, &body, true)).unwrap();
    fs::write(
        dir.join("local.hsb"),
        format!("{}:*:Local.Only-7-1\n", sha_hex(b"local")),
    )
    .unwrap();
    let db = ClamDb::load(&dir, &[&dir]).unwrap();
    for (i, name) in names.iter().enumerate() {
        let hit = db.lookup_md5(&md5_of(name.as_bytes()), i as u64).unwrap();
        let want: String = if name.len() > names::MAX_PLAIN {
            let mut end = names::MAX_PLAIN;
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            name[..end].to_owned()
        } else {
            (*name).to_owned()
        };
        assert_eq!(hit.name.to_string(), want);
        assert_eq!(hit.member, "main.hdb");
    }
    let local = db.lookup_sha256(&sha_of(b"local"), 3).unwrap();
    assert_eq!(
        (local.name.to_string().as_str(), local.path, local.member),
        ("Local.Only-7-1", dir.join("local.hsb").as_path(), "")
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// The scratch file has no name: its directory stays empty while the database
/// holds it open, and the descriptor goes when the last clone is dropped.
#[test]
fn scratch_file_is_unlinked() {
    let dir = scratch("unlinked");
    let db_dir = dir.join("db");
    let scratch_dir = dir.join("scratch/created");
    fs::create_dir_all(&db_dir).unwrap();
    fs::write(
        db_dir.join("local.hdb"),
        format!("{}:5:Test.Unlinked-1-0\n", md5_hex(b"x")),
    )
    .unwrap();
    let open_in = |d: &Path| {
        fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| target.starts_with(d))
            .map(|target| target.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    };
    let db = ClamDb::load(&db_dir, &[&scratch_dir]).unwrap();
    let (bytes, in_dir) = db.scratch().unwrap();
    assert_eq!(in_dir, scratch_dir);
    assert!(bytes > 24, "{bytes}");
    assert_eq!(fs::read_dir(&scratch_dir).unwrap().count(), 0);
    let open = open_in(&scratch_dir);
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(open[0].ends_with("(deleted)"), "{open:?}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&scratch_dir).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
    let clone = db.clone();
    drop(db);
    assert!(clone.lookup_md5(&md5_of(b"x"), 5).is_some());
    drop(clone);
    assert_eq!(open_in(&scratch_dir), Vec::<String>::new());
    fs::remove_dir_all(&dir).unwrap();
}

/// A scratch directory that cannot be created is skipped for the next one;
/// when none can be, the error names each directory and why.
#[test]
fn unusable_scratch_dirs_are_named() {
    let dir = scratch("unusable");
    fs::write(
        dir.join("local.hdb"),
        format!("{}:5:T-1-0\n", md5_hex(b"y")),
    )
    .unwrap();
    let not_a_dir = dir.join("local.hdb").join("sub");
    let also_bad = dir.join("local.hdb").join("other");
    let error = ClamDb::load(&dir, &[&not_a_dir, &also_bad]).unwrap_err();
    assert!(matches!(error, Error::ClamAvScratch { .. }), "{error:?}");
    let text = error.to_string();
    for bad in [&not_a_dir, &also_bad] {
        assert!(text.contains(&format!("{}: ", bad.display())), "{text}");
    }
    assert!(text.contains("scratch file"), "{text}");
    let db = ClamDb::load(&dir, &[&not_a_dir, &dir]).unwrap();
    assert_eq!(db.scratch().map(|(_, d)| d), Some(dir.as_path()));
    assert!(db.lookup_md5(&md5_of(b"y"), 5).is_some());
    fs::remove_dir_all(&dir).unwrap();
}

/// Read syscalls this thread made (`syscr` of `/proc/thread-self/io`).
fn reads_by_this_thread() -> u64 {
    fs::read_to_string("/proc/thread-self/io")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("syscr: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// A miss reads nothing (the prefixes are in memory); a hit reads the scratch
/// file. Counted on this thread, so tests running beside it do not disturb it.
#[test]
fn misses_make_no_syscall() {
    let dir = scratch("syscalls");
    let mut hdb = String::new();
    for i in 0..1000u32 {
        hdb.push_str(&format!(
            "{}:{i}:T.Listed-{i}-0\n",
            md5_hex(&i.to_le_bytes())
        ));
    }
    fs::write(dir.join("local.hdb"), hdb).unwrap();
    let db = ClamDb::load(&dir, &[&dir]).unwrap();
    let misses: Vec<[u8; 16]> = (1000..11_000u32)
        .map(|i| md5_of(&i.to_le_bytes()))
        .collect();
    // What reading the counter itself costs.
    let a = reads_by_this_thread();
    let b = reads_by_this_thread();
    let own = b - a;
    let before = reads_by_this_thread();
    assert!(misses.iter().all(|k| db.lookup_md5(k, 5).is_none()));
    assert_eq!(reads_by_this_thread() - before, own, "10,000 misses");
    let before = reads_by_this_thread();
    assert!(db.lookup_md5(&md5_of(&7u32.to_le_bytes()), 7).is_some());
    assert!(
        reads_by_this_thread() - before > own,
        "a hit reads its record"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// This thread's time on a CPU, in ns (`/proc/thread-self/schedstat`): unlike
/// wall time it does not grow when other processes load the machine.
fn cpu_ns() -> u64 {
    fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn rss_kib(field: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// Builds a `.cvd` of 4 million synthetic entries (3.5 M MD5 in main.hdb, 0.5 M
/// SHA-256 in main.hsb, names like ClamAV's), loads it and prints load time, RSS
/// growth, peak RSS, the scratch file's size and lookup cost (docs/update.md
/// has the command and the numbers).
#[test]
#[ignore = "a measurement: builds a 4-million-entry database (~300 MB of text)"]
fn measure_four_million_entries() {
    const MD5S: u32 = 3_500_000;
    const SHAS: u32 = 500_000;
    let dir = scratch("measure");
    let md5_key = |i: u32| md5_of(&i.to_le_bytes());
    let sha_key = |i: u32| sha_of(&i.to_le_bytes());
    let mut hdb = String::with_capacity(MD5S as usize * 64);
    for i in 0..MD5S {
        use std::fmt::Write as _;
        let _ = writeln!(
            hdb,
            "{}:{}:Win.Trojan.Synthetic-{}-0",
            hex::encode(md5_key(i)),
            1000 + i % 50_000,
            9_000_000 + i
        );
    }
    let mut hsb = String::with_capacity(SHAS as usize * 100);
    for i in 0..SHAS {
        use std::fmt::Write as _;
        let _ = writeln!(
            hsb,
            "{}:{}:Unix.Malware.Synthetic-{}-0:73",
            hex::encode(sha_key(i)),
            1000 + i % 50_000,
            8_000_000 + i
        );
    }
    let text_bytes = hdb.len() + hsb.len();
    let body = gzip(&tar_of(&[
        ("main.hdb", hdb.as_bytes()),
        ("main.hsb", hsb.as_bytes()),
    ]));
    drop((hdb, hsb));
    fs::write(dir.join("main.cvd"), container(1, &body, true)).unwrap();
    drop(body);

    // Reset the peak-RSS mark so VmHWM below is the load's peak, not the
    // generation of the test file.
    let _ = fs::write("/proc/self/clear_refs", "5");
    let rss_before = rss_kib("VmRSS:");
    let start = Instant::now();
    let cpu = cpu_ns();
    let db = ClamDb::load(&dir, &[&dir]).unwrap();
    let load_cpu = cpu_ns() - cpu;
    let load = start.elapsed();
    let rss_after = rss_kib("VmRSS:");
    let peak = rss_kib("VmHWM:");
    assert_eq!(db.len(), (MD5S + SHAS) as usize);
    let (scratch_bytes, _) = db.scratch().unwrap();

    // Lookups: hits spread over the set, and misses.
    let probes: Vec<u32> = (0..1_000_000u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % MD5S)
        .collect();
    let keys: Vec<[u8; 16]> = probes.iter().map(|&i| md5_key(i)).collect();
    let cpu = cpu_ns();
    let md5_hits = keys
        .iter()
        .zip(&probes)
        .filter(|(k, i)| db.lookup_md5(k, 1000 + u64::from(**i % 50_000)).is_some())
        .count();
    let md5_hit = cpu_ns() - cpu;
    let cpu = cpu_ns();
    let hits = keys
        .iter()
        .filter(|k| db.lookup_md5(k, 0).is_some())
        .count();
    let md5_miss_size = cpu_ns() - cpu;
    let misses: Vec<[u8; 16]> = (0..1_000_000u32)
        .map(|i| md5_of(&(MD5S + i).to_le_bytes()))
        .collect();
    let cpu = cpu_ns();
    let found = misses
        .iter()
        .filter(|k| db.lookup_md5(k, 1000).is_some())
        .count();
    let md5_miss = cpu_ns() - cpu;
    let sha_probes: Vec<[u8; 32]> = (0..1_000_000u32).map(|i| sha_key(i % SHAS)).collect();
    let cpu = cpu_ns();
    let sha_hits = sha_probes
        .iter()
        .enumerate()
        .filter(|(i, k)| {
            db.lookup_sha256(k, 1000 + (*i as u64 % SHAS as u64) % 50_000)
                .is_some()
        })
        .count();
    let sha_hit = cpu_ns() - cpu;
    let sha_misses: Vec<[u8; 32]> = (0..1_000_000u32).map(|i| sha_key(SHAS + i)).collect();
    let cpu = cpu_ns();
    let sha_found = sha_misses
        .iter()
        .filter(|k| db.lookup_sha256(k, 1000).is_some())
        .count();
    let sha_miss = cpu_ns() - cpu;
    // The hash stage before: content.hashes alone, a HashDb the size of the
    // shared ESET + Elastic lists (8,000 SHA-256), probed with the same digests.
    let mut small = crate::HashDb::empty();
    let mut list = String::new();
    for i in 0..8_000u32 {
        list.push_str(&format!(
            "{}:*:Small-{i}\n",
            hex::encode(sha_of(&(u32::MAX - i).to_le_bytes()))
        ));
    }
    small.parse_into(&list, Path::new("small.hsb")).unwrap();
    let cpu = cpu_ns();
    let small_hits = sha_probes
        .iter()
        .filter(|k| small.lookup_sha256(k, 1).is_some())
        .count();
    let sha_small = cpu_ns() - cpu;
    assert_eq!(small_hits, 0);
    let empty = ClamDb::empty();
    let cpu = cpu_ns();
    let none = sha_probes
        .iter()
        .filter(|k| empty.lookup_sha256(k, 1).is_some())
        .count();
    let sha_empty = cpu_ns() - cpu;
    assert_eq!(
        (md5_hits, hits, found, sha_hits, sha_found, none),
        (1_000_000, 0, 0, 1_000_000, 0, 0)
    );
    // Per lookup, in CPU ns (1M lookups each).
    let per = |ns: u64| ns as f64 / 1e6;
    println!(
        "clamdb 4M: {} MD5 + {} SHA-256 entries, {:.0} MB of list text, load {:.2} s wall / {:.2} s CPU, \
         RSS {} -> {} MiB (+{} MiB), peak RSS {} MiB, index in memory {} MiB, scratch file {} MiB; \
         lookup CPU ns: md5 hit {:.0}, md5 wrong-size {:.0}, md5 miss {:.0}, sha256 hit {:.0}, sha256 miss {:.0}, empty db {:.0}; \
         before (HashDb of 8,000 SHA-256, miss) {:.0}",
        MD5S,
        SHAS,
        text_bytes as f64 / 1e6,
        load.as_secs_f64(),
        load_cpu as f64 / 1e9,
        rss_before / 1024,
        rss_after / 1024,
        rss_after.saturating_sub(rss_before) / 1024,
        peak / 1024,
        db.heap_bytes() >> 20,
        scratch_bytes >> 20,
        per(md5_hit),
        per(md5_miss_size),
        per(md5_miss),
        per(sha_hit),
        per(sha_miss),
        per(sha_empty),
        per(sha_small),
    );
    fs::remove_dir_all(&dir).unwrap();
}
