//! On-access latency: what `vigil daemon` adds to an open and to an exec.
//!
//! Run as root: `sudo cargo bench -p vigil --bench onaccess` (builds the release
//! `vigil`; `CARGO_BIN_EXE_vigil`). Not root: prints why and exits 0, so a plain
//! `cargo bench` elsewhere does not fail.
//!
//! What it does, in one run, on a private tmpfs (the e2e fixture: a holder
//! process keeps it mounted in its own mount namespace; the daemon watches only
//! that filesystem and runs under `timeout`):
//! 1. creates three fresh sets of `N_FILES` x 4 KiB random files and `N_BINS`
//!    distinct copies of a static binary (`cc -static`, else `/bin/true`), one
//!    set per phase, all *before* any daemon starts (so the first pass is cold);
//! 2. phase "no agent": times open+close of each file twice (cold, warm), one
//!    exec (spawn + wait) of each distinct copy (cold) and `N_WARM_EXEC` execs of
//!    one copy (warm);
//! 3. the same with `vigil daemon` watching the tmpfs, `scan_on_open = "all"`,
//!    then with the default `scan_on_open = "executable"`, each on its own set;
//! 4. prints median and p99 (µs) and the agent/no-agent ratios.
//!
//! Each agent phase first checks that a listed binary is denied, so an agent
//! that silently watches nothing cannot produce a flattering number.
//! `RUST_BACKTRACE` is removed from the daemon's environment.

#[path = "../../tests/e2e/fixture.rs"]
mod fixture;

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fixture::{Config, Sandbox, TempDir, sha256_hex, write_file, write_hash_list};
use nix::sys::signal::Signal;

/// Small files per phase.
const N_FILES: usize = 5000;
/// Size of each small file.
const FILE_SIZE: usize = 4096;
/// Distinct binary copies per phase (cold execs).
const N_BINS: usize = 200;
/// Execs of one copy (warm execs).
const N_WARM_EXEC: usize = 500;
/// Files per directory.
const PER_DIR: usize = 100;

/// One phase: a label, the daemon's `scan_on_open` (None: no agent).
const PHASES: [(&str, Option<&str>); 3] = [
    ("no agent", None),
    ("vigil open=all", Some("all")),
    ("vigil open=executable", Some("executable")),
];

/// Latencies of one operation kind, in nanoseconds.
#[derive(Default)]
struct Sample {
    ns: Vec<u64>,
    errors: usize,
}

impl Sample {
    fn push(&mut self, d: Duration, ok: bool) {
        self.ns.push(d.as_nanos() as u64);
        if !ok {
            self.errors += 1;
        }
    }

    fn pct(&self, p: f64) -> f64 {
        let mut v = self.ns.clone();
        v.sort_unstable();
        if v.is_empty() {
            return f64::NAN;
        }
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i] as f64 / 1000.0
    }

    fn median(&self) -> f64 {
        self.pct(0.5)
    }

    fn p99(&self) -> f64 {
        self.pct(0.99)
    }
}

/// The four measurements of a phase.
#[derive(Default)]
struct Results {
    open_cold: Sample,
    open_warm: Sample,
    exec_cold: Sample,
    exec_warm: Sample,
}

/// The files of one phase.
struct PhaseFiles {
    files: Vec<PathBuf>,
    bins: Vec<PathBuf>,
    warm_bin: PathBuf,
    probe_bin: PathBuf,
    probe_sha: String,
}

fn main() {
    if !fixture::is_root() {
        println!(
            "onaccess bench skipped: it needs root (fanotify permission events and a \
             private tmpfs); run: sudo cargo bench -p vigil --bench onaccess"
        );
        return;
    }
    let (binary, kind) = test_binary();
    let sb = Sandbox::with_size("bench", "2g");
    let mut random = Random::new();
    let t0 = Instant::now();
    let sets: Vec<PhaseFiles> = (0..PHASES.len())
        .map(|i| make_phase_files(&sb, i, &binary, &mut random))
        .collect();
    eprintln!(
        "onaccess: created {} files and {} binaries ({} KiB {kind}) in {:?}",
        PHASES.len() * N_FILES,
        PHASES.len() * (N_BINS + 2),
        binary.len() / 1024,
        t0.elapsed()
    );

    let mut results = Vec::new();
    for (i, (label, scan_on_open)) in PHASES.iter().enumerate() {
        let files = &sets[i];
        let r = match scan_on_open {
            None => measure(files),
            Some(mode) => {
                let list = sb.host(format!("phase{i}.sha256"));
                write_hash_list(&list, &[&files.probe_sha]);
                let mut cfg: Config = sb.config();
                cfg.scan_on_open = (*mode).to_owned();
                cfg.deadline_ms = 250;
                cfg.hashes = vec![list];
                cfg.events = sb
                    .host(format!("events-{i}.jsonl"))
                    .to_string_lossy()
                    .into_owned();
                let mut d = sb.start(&cfg);
                let probe = Command::new(&files.probe_bin)
                    .stdout(Stdio::null())
                    .status();
                let denied = matches!(&probe, Err(e) if e.raw_os_error() == Some(fixture::EPERM));
                if !denied {
                    panic!(
                        "{label}: the listed probe binary was not denied ({probe:?}){}",
                        d.context()
                    );
                }
                let r = measure(files);
                d.signal(Signal::SIGTERM);
                if d.wait_exit(Duration::from_secs(15)).is_none() {
                    panic!("{label}: daemon did not exit after SIGTERM{}", d.context());
                }
                r
            }
        };
        eprintln!("onaccess: phase {label} done");
        results.push((*label, r));
    }
    print_table(&results, kind, binary.len());
}

/// Times every operation of a phase.
fn measure(f: &PhaseFiles) -> Results {
    let mut r = Results::default();
    for sample in [&mut r.open_cold, &mut r.open_warm] {
        for p in &f.files {
            let t = Instant::now();
            let ok = File::open(p).is_ok();
            sample.push(t.elapsed(), ok);
        }
    }
    for p in &f.bins {
        let (d, ok) = time_exec(p);
        r.exec_cold.push(d, ok);
    }
    let _ = time_exec(&f.warm_bin);
    for _ in 0..N_WARM_EXEC {
        let (d, ok) = time_exec(&f.warm_bin);
        r.exec_warm.push(d, ok);
    }
    r
}

/// posix_spawn (std's `Command`) + wait.
fn time_exec(p: &Path) -> (Duration, bool) {
    let t = Instant::now();
    let ok = Command::new(p)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    (t.elapsed(), ok)
}

fn make_phase_files(sb: &Sandbox, i: usize, binary: &[u8], random: &mut Random) -> PhaseFiles {
    let root = sb.mnt(format!("phase{i}"));
    let mut files = Vec::with_capacity(N_FILES);
    for k in 0..N_FILES {
        let p = root.join(format!("files/d{:02}/f{k:04}", k / PER_DIR));
        write_file(&p, &random.bytes(FILE_SIZE), 0o644);
        files.push(p);
    }
    let copy = |name: String, tag: &str| {
        let p = root.join(name);
        let mut data = binary.to_vec();
        data.extend_from_slice(format!("\nvigil-bench:{i}:{tag}\n").as_bytes());
        write_file(&p, &data, 0o755);
        (p, sha256_hex(&data))
    };
    let bins = (0..N_BINS)
        .map(|k| copy(format!("bins/b{k:03}"), &k.to_string()).0)
        .collect();
    let (warm_bin, _) = copy("warm".into(), "warm");
    let (probe_bin, probe_sha) = copy("probe".into(), "listed-probe");
    PhaseFiles {
        files,
        bins,
        warm_bin,
        probe_bin,
        probe_sha,
    }
}

/// A static binary that exits 0 (`cc -static`), else `/bin/true`.
fn test_binary() -> (Vec<u8>, &'static str) {
    let dir = TempDir::new("bench-cc");
    let src = dir.join("true.c");
    let out = dir.join("true_static");
    if fs::write(&src, "int main(void) { return 0; }\n").is_ok() {
        let ok = Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&out)
            .arg(&src)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            if let Ok(b) = fs::read(&out) {
                return (b, "static");
            }
        }
    }
    (
        fs::read("/bin/true").expect("read /bin/true"),
        "dynamic /bin/true",
    )
}

/// Random bytes from /dev/urandom, read in large chunks.
struct Random {
    f: File,
    buf: Vec<u8>,
    pos: usize,
}

impl Random {
    fn new() -> Random {
        Random {
            f: File::open("/dev/urandom").expect("open /dev/urandom"),
            buf: vec![0; 1 << 20],
            pos: 1 << 20,
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        if self.pos + n > self.buf.len() {
            self.f.read_exact(&mut self.buf).expect("read /dev/urandom");
            self.pos = 0;
        }
        let v = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        v
    }
}

fn print_table(results: &[(&str, Results)], kind: &str, bin_len: usize) {
    println!();
    println!(
        "vigil on-access latency, tmpfs: {N_FILES} x {} KiB files, {N_BINS} cold binaries, \
         {N_WARM_EXEC} warm execs ({kind}, {} KiB); median / p99 in µs, ratio = agent / no agent",
        FILE_SIZE / 1024,
        bin_len / 1024
    );
    let mut header = format!("{:<10}", "op");
    for (label, _) in results {
        header.push_str(&format!(" | {label:^36}"));
    }
    println!("{header}");
    let mut sub = format!("{:<10}", "");
    for (i, _) in results.iter().enumerate() {
        if i == 0 {
            sub.push_str(&format!(" | {:>8} {:>8} {:>18}", "median", "p99", ""));
        } else {
            sub.push_str(&format!(
                " | {:>8} {:>8} {:>8} {:>9}",
                "median", "p99", "x med", "x p99"
            ));
        }
    }
    println!("{sub}");
    type Get = fn(&Results) -> &Sample;
    let rows: [(&str, Get); 4] = [
        ("open cold", |r| &r.open_cold),
        ("open warm", |r| &r.open_warm),
        ("exec cold", |r| &r.exec_cold),
        ("exec warm", |r| &r.exec_warm),
    ];
    let mut errors = Vec::new();
    for (name, get) in rows {
        let base = get(&results[0].1);
        let mut line = format!("{name:<10}");
        for (i, (label, r)) in results.iter().enumerate() {
            let s = get(r);
            if s.errors > 0 {
                errors.push(format!(
                    "{label} {name}: {} of {} failed",
                    s.errors,
                    s.ns.len()
                ));
            }
            if i == 0 {
                line.push_str(&format!(
                    " | {:>8.1} {:>8.1} {:>18}",
                    s.median(),
                    s.p99(),
                    ""
                ));
            } else {
                line.push_str(&format!(
                    " | {:>8.1} {:>8.1} {:>8.2} {:>9.2}",
                    s.median(),
                    s.p99(),
                    s.median() / base.median(),
                    s.p99() / base.p99()
                ));
            }
        }
        println!("{line}");
    }
    for e in &errors {
        println!("ERROR: {e}");
    }
    if !errors.is_empty() {
        std::process::exit(1);
    }
}
