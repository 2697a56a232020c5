//! The persistent verdict cache's costs, against what it saves: a lookup in
//! the store (hit and miss), the key of a file (`fstatfs`, the UUID ioctl,
//! `statx`), and a full scan of real binaries under the built-in content.
//!
//! `cargo bench -p vigil --bench persistent` (any user; nothing is watched).
//! `VIGIL_BENCH_ENTRIES` sets the store's size (default 20,000 entries).
//! Prints means and percentiles in µs and the ratio scan / lookup; no
//! pass/fail, the machine is shared and noisy.

use std::fs::File;
use std::os::fd::AsFd as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use vigil::daemon::cache::Cached;
use vigil::daemon::cache::persistent::Persistent;
use vigil::daemon::cache::store_key::{FileVersion, StoreKey};
use vigil::daemon::stats::Stats;
use vigil::engine::generation::Generation;
use vigil::engine::scan::{Depth, Scanner};
use vigil_policy::{CacheConfig, Reason, Stage, decide};

/// Programs scanned (those present), smallest first.
const PROGRAMS: [&str; 3] = ["/usr/bin/true", "/usr/bin/ls", "/usr/bin/bash"];

fn main() {
    let entries: u64 = std::env::var("VIGIL_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("vigil-bench-persistent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let generation = match Generation::load(1, Some(Path::new("/dev/null"))) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("loading the built-in content failed: {e}");
            std::process::exit(1);
        }
    };
    let config = CacheConfig {
        persistent: true,
        dir: dir.clone(),
        max_entries: entries * 2,
    };
    let stats = Arc::new(Stats::default());
    let (store, writer) = Persistent::start(&config, Arc::clone(&stats));
    let Some(writer) = writer else {
        eprintln!("the store did not open in {}", dir.display());
        std::process::exit(1);
    };
    let clean = Cached {
        decision: decide(
            vec![Reason {
                stage: Stage::Model,
                id: "model.elf-classifier".into(),
                score: 0,
                detail: "score 0.0123".into(),
            }],
            &generation.config.decision,
        ),
        sha256: Some([7; 32]),
        trusted: false,
        allowed: None,
        partial: false,
    };
    let t = Instant::now();
    for ino in 0..entries {
        // The writer's queue holds 4096: wait for it rather than drop.
        while ino - stats.persistent_writes.load(Ordering::Relaxed) >= 4000 {
            std::thread::sleep(Duration::from_millis(5));
        }
        store.remember(key(ino), &generation, &clean);
    }
    while stats.persistent_writes.load(Ordering::Relaxed)
        + stats.persistent_dropped.load(Ordering::Relaxed)
        < entries
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let fill = t.elapsed();
    let size = std::fs::metadata(dir.join("verdicts.redb")).map_or(0, |m| m.len());
    println!(
        "store: {entries} entries written in {:.1} s (batched commits), {} bytes ({} per entry)",
        fill.as_secs_f64(),
        size,
        size / entries.max(1)
    );
    // What a daemon start pays: the open verifies every page's checksum.
    writer.stop(Duration::from_secs(10));
    drop(store);
    let t = Instant::now();
    let (store, writer) = Persistent::start(&config, Arc::clone(&stats));
    println!(
        "open with the integrity check: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let Some(writer) = writer else {
        eprintln!("the store did not reopen");
        std::process::exit(1);
    };

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let hits = time(20_000, |_| {
        let ino = next() % entries;
        assert!(store.lookup(&key(ino), &generation).is_some());
    });
    report("lookup, hit (read txn + get + decode + decide)", &hits);
    let misses = time(20_000, |_| {
        let ino = entries + next() % entries;
        assert!(store.lookup(&key(ino), &generation).is_none());
    });
    report("lookup, miss", &misses);

    if let Ok(file) = File::open("/usr/bin/ls") {
        let fd = file.as_fd();
        let keyed = time(20_000, |_| {
            let _ = FileVersion::of(fd);
        });
        report(
            &format!(
                "key of a file on / ({:?}: fstatfs + ioctl{})",
                FileVersion::of(fd).map(|_| "keyed"),
                if FileVersion::of(fd).is_ok() {
                    " + statx"
                } else {
                    ""
                }
            ),
            &keyed,
        );
        let statx = time(20_000, |_| {
            let _ = file.metadata().and_then(|m| m.created());
        });
        report("statx (std metadata, with birth time)", &statx);
    }

    let mut scanner = Scanner::new();
    let mut rules = generation.rules.scanner();
    let lookup_mean = mean(&hits);
    for program in PROGRAMS {
        let Ok(file) = File::open(program) else {
            continue;
        };
        let size = file.metadata().map_or(0, |m| m.len());
        let scans = time(50, |_| {
            let result = scanner.scan_fd(
                file.as_fd(),
                size,
                &generation,
                &mut rules,
                Depth::FirstMalicious,
                None,
                &|_| None,
            );
            assert!(result.is_ok());
        });
        report(&format!("scan of {program} ({size} bytes)"), &scans);
        println!(
            "    scan / lookup hit: {:.0}x",
            mean(&scans).as_secs_f64() / lookup_mean.as_secs_f64().max(1e-9)
        );
    }
    writer.stop(Duration::from_secs(10));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn key(ino: u64) -> StoreKey {
    FileVersion {
        fs: [0x42; 16],
        ino,
        size: 4096 + ino,
        mtime: (1_700_000_000, 1),
        ctime: (1_700_000_000, 2),
        btime: Some((1_700_000_000, 0)),
    }
    .key()
}

fn time(n: usize, mut f: impl FnMut(usize)) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect()
}

fn mean(d: &[Duration]) -> Duration {
    d.iter().sum::<Duration>() / u32::try_from(d.len().max(1)).unwrap_or(u32::MAX)
}

fn report(what: &str, d: &[Duration]) {
    let mut sorted = d.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q) as usize];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{what}: mean {:.1} µs, p50 {:.1}, p99 {:.1} (n={})",
        us(mean(d)),
        us(at(0.5)),
        us(at(0.99)),
        d.len()
    );
}
