//! What one rule scan costs, by input size: `cargo bench -p vigil-policy --bench
//! rules -- [RULE_PATH ...] [--input=FILE ...]` (the built-in rules plus these;
//! absolute paths, cargo runs benches in the package's directory). Prints the
//! median and p99 per scan of empty, 4 KiB and 1 MiB inputs, so the fixed cost
//! of a scan (what every small file pays) is seen apart from the per-byte one,
//! then of each `--input` file (a real binary: what a cold exec pays).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use vigil_policy::config::RuleErrorPolicy;
use vigil_policy::rules::RuleSet;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let paths: Vec<PathBuf> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .collect();
    let files: Vec<(String, Vec<u8>)> = args
        .iter()
        .filter_map(|a| a.strip_prefix("--input="))
        .map(|path| match std::fs::read(path) {
            Ok(bytes) => (path.to_owned(), bytes),
            Err(error) => {
                eprintln!("--input={path}: {error}");
                std::process::exit(1);
            }
        })
        .collect();
    let (set, warnings) = match RuleSet::load(&paths, RuleErrorPolicy::Skip, true) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("rules: {error}");
            std::process::exit(1);
        }
    };
    println!(
        "{} rules from {} files ({} skipped)",
        set.len(),
        set.files(),
        warnings.len()
    );
    let mut scanner = set.scanner();
    let mut text = Vec::new();
    while text.len() < 1 << 20 {
        text.extend_from_slice(b"the quick brown fox jumps over the lazy dog 0123456789\n");
    }
    let mut inputs: Vec<(&str, &[u8])> = vec![
        ("empty", b""),
        ("4 KiB zeros", &[0u8; 4096]),
        ("4 KiB text", &text[..4096]),
        ("1 MiB text", &text[..1 << 20]),
    ];
    inputs.extend(
        files
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.as_slice())),
    );
    for (name, bytes) in inputs {
        let rounds = if bytes.len() > 4096 { 50 } else { 5000 };
        let mut ns = Vec::with_capacity(rounds);
        for round in 0..rounds + rounds / 10 {
            let start = Instant::now();
            if let Err(error) = scanner.scan(bytes, Duration::from_secs(10)) {
                eprintln!("scan: {error}");
                std::process::exit(1);
            }
            if round >= rounds / 10 {
                ns.push(start.elapsed().as_nanos() as u64);
            }
        }
        ns.sort_unstable();
        println!(
            "{name:>12}: p50 {:>8.1} us  p99 {:>8.1} us",
            ns[ns.len() / 2] as f64 / 1e3,
            ns[ns.len() * 99 / 100] as f64 / 1e3
        );
    }
}
