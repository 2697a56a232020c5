//! One file's scan, stage by stage: what a never-seen file costs the hot path
//! (read + hash, heuristics, rules, model) with a given configuration's content.
//!
//! `cargo bench -p vigil --bench scan -- [--config FILE] [--runs N] PATH...`
//! (any user; nothing is watched). Without `--config` the built-in content (a
//! default install: built-in rules and model). Each file is scanned `N` times
//! (default 300) by one scanner, as a worker does, after one unmeasured scan;
//! nothing remembers a verdict between runs. Prints per stage the median and p90
//! in µs, and the wall time of the whole scan; no pass/fail, the machine is
//! shared and noisy.

use std::fs::File;
use std::os::fd::AsFd as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use vigil::engine::generation::Generation;
use vigil::engine::scan::{Depth, Scanner};

fn main() {
    let mut config: Option<PathBuf> = None;
    let mut runs = 300usize;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next().map(PathBuf::from),
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            _ => paths.push(PathBuf::from(a)),
        }
    }
    if paths.is_empty() {
        eprintln!("usage: cargo bench -p vigil --bench scan -- [--config FILE] [--runs N] PATH...");
        std::process::exit(2);
    }
    let config = config.unwrap_or_else(|| PathBuf::from("/dev/null"));
    let t = Instant::now();
    let generation = match Generation::load(1, Some(&config)) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("loading {}: {e}", config.display());
            std::process::exit(1);
        }
    };
    println!(
        "content of {} loaded in {:.0} ms: {}",
        config.display(),
        t.elapsed().as_secs_f64() * 1e3,
        generation.summary()
    );
    let mut scanner = Scanner::new();
    let mut rules = generation.rules.scanner();
    for path in &paths {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                std::process::exit(1);
            }
        };
        let size = file.metadata().map_or(0, |m| m.len());
        let mut scan = |times: &mut Stages| {
            let t = Instant::now();
            let r = scanner.scan_fd(
                file.as_fd(),
                size,
                &generation,
                &mut rules,
                Depth::FirstMalicious,
                None,
                &|_| None,
            );
            let wall = t.elapsed();
            match r {
                Ok(r) => {
                    times.push(&r.times, wall);
                    r.decision
                }
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    std::process::exit(1);
                }
            }
        };
        let decision = scan(&mut Stages::default());
        let mut times = Stages::default();
        for _ in 0..runs {
            scan(&mut times);
        }
        println!(
            "\n{} ({} bytes, {} runs): {:?}",
            path.display(),
            size,
            runs,
            decision.verdict
        );
        times.report();
        // What the digest alone costs, over the bytes in memory (no read).
        if let Ok(bytes) = std::fs::read(path) {
            let mut alone: Vec<Duration> = (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(Sha256::digest(&bytes));
                    t.elapsed()
                })
                .collect();
            alone.sort();
            println!(
                "{:<12} {:>6} {:>9.0}   (SHA-256 alone, in memory)",
                "sha256",
                runs,
                alone[runs / 2].as_secs_f64() * 1e6
            );
        }
    }
}

/// Per-stage samples of every run.
#[derive(Default)]
struct Stages {
    hash: Vec<Duration>,
    heuristics: Vec<Duration>,
    rules: Vec<Duration>,
    model: Vec<Duration>,
    wall: Vec<Duration>,
}

impl Stages {
    fn push(&mut self, t: &vigil::daemon::latency::StageTimes, wall: Duration) {
        for (v, d) in [
            (&mut self.hash, t.hash),
            (&mut self.heuristics, t.heuristics),
            (&mut self.rules, t.rules),
            (&mut self.model, t.model),
        ] {
            if let Some(d) = d {
                v.push(d);
            }
        }
        self.wall.push(wall);
    }

    fn report(mut self) {
        println!(
            "{:<12} {:>6} {:>9} {:>9}",
            "stage", "runs", "p50 µs", "p90 µs"
        );
        for (name, v) in [
            ("read+hash", &mut self.hash),
            ("heuristics", &mut self.heuristics),
            ("rules", &mut self.rules),
            ("model", &mut self.model),
            ("whole scan", &mut self.wall),
        ] {
            if v.is_empty() {
                println!("{name:<12} {:>6} {:>9} {:>9}", 0, "-", "-");
                continue;
            }
            v.sort();
            let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
            println!(
                "{name:<12} {:>6} {:>9.0} {:>9.0}",
                v.len(),
                at(0.5),
                at(0.9)
            );
        }
    }
}
