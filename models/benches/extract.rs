//! Feature-extraction throughput and latency, without criterion: extracts the first
//! `--n` (300) regular ELF files of `--dir` (`/usr/bin`; `--any` takes every regular
//! file), `--rounds` (5) times, and prints MiB/s and p50/p99/max µs per file (each
//! file's median over the rounds, robust to other load on a shared machine).
//!
//! With `--tar ARCHIVE` it instead walks every member of a `.tar.xz` corpus in memory
//! (never on disk) and prints members, formats, ELF parse failures and timings: the
//! read-only check of the training corpus. Unset `RUST_BACKTRACE` when benchmarking.
//!
//! After the extraction numbers it prints the inference latency (p50/p99 µs per
//! call, tract) of each model of the built-in bundle (`--bundle DIR`: that
//! bundle) on those files' rows.
//!
//! `--dump FILE` prints the nonzero non-byte columns of one file's row.
//!
//! `cargo bench -p vigil-models --bench extract [-- --n 300 --dir /usr/bin --bundle B | --tar A | --dump F]`

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vigil_models::features::{Features, column, extract_into};
use vigil_models::tarsource::for_each_member;

/// Command-line options.
struct Options {
    dir: PathBuf,
    n: usize,
    rounds: usize,
    tar: Option<PathBuf>,
    any: bool,
    dump: Option<PathBuf>,
    bundle: Option<PathBuf>,
}

fn options() -> Result<Options, Box<dyn Error>> {
    let mut o = Options {
        dir: PathBuf::from("/usr/bin"),
        n: 300,
        rounds: 5,
        tar: None,
        any: false,
        dump: None,
        bundle: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => o.dir = args.next().ok_or("--dir needs a path")?.into(),
            "--n" => o.n = args.next().ok_or("--n needs a number")?.parse()?,
            "--rounds" => o.rounds = args.next().ok_or("--rounds needs a number")?.parse()?,
            "--tar" => o.tar = Some(args.next().ok_or("--tar needs a path")?.into()),
            "--any" => o.any = true,
            "--dump" => o.dump = Some(args.next().ok_or("--dump needs a path")?.into()),
            "--bundle" => o.bundle = Some(args.next().ok_or("--bundle needs a directory")?.into()),
            // cargo passes --bench to harness = false targets.
            _ => {}
        }
    }
    Ok(o)
}

/// Files read into memory: path and content.
type Loaded = Vec<(PathBuf, Vec<u8>)>;

/// The first `n` regular ELF files (any regular files with `any`) of `dir`, by name,
/// read into memory.
fn elf_files(dir: &Path, n: usize, any: bool) -> Result<Loaded, Box<dyn Error>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        if out.len() >= n {
            break;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        if any || bytes.starts_with(b"\x7fELF") {
            out.push((p, bytes));
        }
    }
    Ok(out)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn bench_dir(o: &Options) -> Result<(), Box<dyn Error>> {
    let files = elf_files(&o.dir, o.n, o.any)?;
    let bytes: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    let mut row = Features::default();
    // Warm-up (page cache, lazily built tables).
    for (_, b) in &files {
        extract_into(b, &mut row);
    }
    // times[f][r]: file f in round r. Rounds interleave files so a burst of load
    // from other processes hits every file a little rather than one file a lot.
    let mut times = vec![Vec::with_capacity(o.rounds); files.len()];
    let mut parsed = 0usize;
    let start = Instant::now();
    for _ in 0..o.rounds {
        for ((_, b), t) in files.iter().zip(times.iter_mut()) {
            let begin = Instant::now();
            extract_into(b, &mut row);
            t.push(begin.elapsed());
            parsed += usize::from(row.parsed);
        }
    }
    let wall = start.elapsed();
    // Per file, the median of its rounds: robust to preemption on a shared machine.
    let mut medians: Vec<Duration> = times
        .iter_mut()
        .map(|t| {
            t.sort_unstable();
            t.get(t.len() / 2).copied().unwrap_or_default()
        })
        .collect();
    let median_total: Duration = medians.iter().sum();
    medians.sort_unstable();
    let mib = bytes as f64 / (1 << 20) as f64;
    println!(
        "files: {} {} from {} ({:.1} MiB, mean {:.0} KiB), rounds: {}",
        files.len(),
        if o.any { "regular files" } else { "ELF" },
        o.dir.display(),
        mib,
        bytes as f64 / 1024.0 / files.len().max(1) as f64,
        o.rounds
    );
    println!("parsed: {} of {}", parsed / o.rounds.max(1), files.len());
    println!(
        "throughput (per-file medians): {:.0} MiB/s = {:.3} ms/MiB; (wall, all rounds): {:.0} MiB/s",
        mib / median_total.as_secs_f64(),
        median_total.as_secs_f64() * 1e3 / mib,
        mib * o.rounds as f64 / wall.as_secs_f64()
    );
    println!(
        "per file (median of rounds): p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        percentile(&medians, 0.5).as_secs_f64() * 1e6,
        percentile(&medians, 0.99).as_secs_f64() * 1e6,
        medians.last().copied().unwrap_or_default().as_secs_f64() * 1e6
    );
    bench_inference(&files, o.rounds, o.bundle.as_deref())
}

/// Inference latency of every model of the built-in bundle (or the bundle in
/// `dir`) on the same files' rows (features extracted beforehand): p50/p99/max
/// µs over all calls.
fn bench_inference(
    files: &Loaded,
    rounds: usize,
    dir: Option<&Path>,
) -> Result<(), Box<dyn Error>> {
    let bundle = match dir {
        Some(d) => vigil_models::bundle::Bundle::load_dir(d)?,
        None => vigil_models::bundle::Bundle::builtin()?,
    };
    let rows: Vec<Vec<f32>> = files
        .iter()
        .map(|(_, b)| {
            let mut row = Features::default();
            vigil_models::features::extract_schema_into(b, bundle.schema(), &mut row);
            row.values
        })
        .collect();
    for model in bundle.models() {
        for r in &rows {
            model.score(r)?; // warm-up
        }
        let mut times = Vec::with_capacity(rows.len() * rounds);
        for _ in 0..rounds.max(1) * 4 {
            for r in &rows {
                let t = Instant::now();
                std::hint::black_box(model.score(std::hint::black_box(r))?);
                times.push(t.elapsed());
            }
        }
        times.sort_unstable();
        println!(
            "inference {} ({} calls): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            model.spec.name,
            times.len(),
            percentile(&times, 0.5).as_secs_f64() * 1e6,
            percentile(&times, 0.99).as_secs_f64() * 1e6,
            times.last().copied().unwrap_or_default().as_secs_f64() * 1e6
        );
    }
    Ok(())
}

fn check_tar(archive: &Path) -> Result<(), Box<dyn Error>> {
    let col = |n: &str| column(n).ok_or_else(|| format!("no column {n}"));
    let (elf, script, phdrs, shdrs, dynamic) = (
        col("fmt_elf")?,
        col("fmt_script")?,
        col("fmt_elf_phdrs_ok")?,
        col("fmt_elf_shdrs_ok")?,
        col("fmt_elf_dynamic_ok")?,
    );
    let mut row = Features::default();
    let (mut elves, mut scripts, mut others, mut failures) = (0u64, 0u64, 0u64, Vec::new());
    let (mut extract_time, mut slowest) = (Duration::ZERO, (Duration::ZERO, String::new()));
    let start = Instant::now();
    let summary = for_each_member::<Box<dyn Error>, _>(archive, |name, bytes| {
        let t = Instant::now();
        extract_into(bytes, &mut row);
        let took = t.elapsed();
        extract_time += took;
        if took > slowest.0 {
            slowest = (took, name.to_owned());
        }
        let v = |i: usize| row.values.get(i).copied().unwrap_or(0.0) == 1.0;
        if let Some((i, x)) = row.values.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(format!("{name}: column {i} = {x}").into());
        }
        if v(elf) {
            elves += 1;
            if !row.parsed {
                let which = [(phdrs, "phdrs"), (shdrs, "shdrs"), (dynamic, "dynamic")]
                    .iter()
                    .filter(|(i, _)| !v(*i))
                    .map(|(_, n)| *n)
                    .collect::<Vec<_>>()
                    .join("+");
                failures.push(format!("{name} ({} bytes): failed {which}", bytes.len()));
            }
        } else if v(script) {
            scripts += 1;
        } else {
            others += 1;
        }
        Ok(())
    })?;
    let wall = start.elapsed();
    println!(
        "archive: {} members ({:.1} MiB), {} skipped oversize, {} non-file entries",
        summary.members,
        summary.bytes as f64 / (1 << 20) as f64,
        summary.skipped_oversize,
        summary.skipped_other
    );
    println!("formats: {elves} ELF, {scripts} script, {others} other");
    println!("ELF parse failures: {}", failures.len());
    for f in &failures {
        println!("  {f}");
    }
    println!(
        "time: {:.2} s wall (xz + tar + extract), {:.3} s extracting ({:.0} MiB/s), slowest {:.0} µs ({})",
        wall.as_secs_f64(),
        extract_time.as_secs_f64(),
        summary.bytes as f64 / (1 << 20) as f64 / extract_time.as_secs_f64().max(1e-9),
        slowest.0.as_secs_f64() * 1e6,
        slowest.1
    );
    Ok(())
}

/// Prints the nonzero columns of one file's row (a debugging aid).
fn dump(path: &Path) -> Result<(), Box<dyn Error>> {
    let bytes = std::fs::read(path)?;
    let row = vigil_models::features::extract(&bytes);
    println!("{}: parsed {}", path.display(), row.parsed);
    for (name, v) in vigil_models::features::names().iter().zip(&row.values) {
        if *v != 0.0 && !name.starts_with("byte_") {
            println!("  {name} = {v}");
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let o = options()?;
    if let Some(path) = &o.dump {
        return dump(path);
    }
    match &o.tar {
        Some(archive) => check_tar(archive),
        None => bench_dir(&o),
    }
}
