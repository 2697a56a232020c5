//! The built-in rules (`policy/rules/builtin.yar`) against real data: each rule
//! must match its family's samples in the malware corpus, and no rule may match a
//! benign file of this machine.
//!
//! Owns: reading the corpus archives member by member in memory (no sample is
//! ever written to disk), the family labels of `builtin_rules/families.csv`, the
//! per-family floors below, and the benign sweep. Must not own: the rules (they are
//! `vigil_policy::rules::builtin_rules()`, compiled as the daemon compiles them) or
//! the verdict (a built-in match is a rule finding like any other;
//! `policy/src/verdict.rs` weighs it).
//!
//! The corpus is `$VIGIL_CORPUS` or `../shared/corpus` beside the workspace; the
//! corpus test prints `SKIPPED` and passes when it is absent, as the other corpus
//! users do. `families.csv` labels the samples of the families the rules target:
//! the manifests' family column where there is one, else (extra archive only) the
//! family names the third-party rules in `../shared/content/yara` give: those rules
//! were used to label, never as a source for ours.
//!
//! The benign sweep scans every regular file up to [`BENIGN_MAX`] bytes under
//! `$VIGIL_BENIGN_ROOTS` (colon-separated), by default [`BENIGN_ROOTS`] (what fits
//! the CI budget). The full sweep of `/usr` and `/opt`:
//!
//! ```text
//! VIGIL_BENIGN_ROOTS=/usr:/opt VIGIL_BENIGN_MAX=67108864 \
//!     cargo test -p vigil-policy --test builtin_rules -- --nocapture
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vigil_policy::RuleSet;
use vigil_policy::config::RuleErrorPolicy;
use vigil_policy::rules::{BUILTIN_NAMESPACE, builtin_rules};

/// Default roots of the benign sweep.
const BENIGN_ROOTS: &[&str] = &["/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu"];

/// Default size cap of a benign file (bytes); larger files are skipped and counted.
const BENIGN_MAX: u64 = 16 << 20;

/// Time a scan may take (far above what any file here needs).
const SCAN_TIMEOUT: Duration = Duration::from_secs(10);

/// The corpus archives: (short name, file name).
const ARCHIVES: &[(&str, &str)] = &[
    ("train", "linux-malware-train.tar.xz"),
    ("extra", "linux-malware-extra.tar.xz"),
];

/// Samples each family's rules matched when the rules were written (measured
/// 2026-12, technique rows 2026-12-05; see docs/builtin-rules.md): (archive,
/// family, matched). A rule change that matches fewer fails here.
const FLOORS: &[(&str, &str, usize)] = &[
    ("train", "bash-hook", 5),
    ("train", "bpfdoor", 21),
    ("train", "darknexus", 35),
    ("train", "ddos-bot", 16),
    ("train", "ddostf", 4),
    ("train", "dirtycow", 1),
    ("train", "earthwrom", 4),
    ("train", "gafgyt", 19),
    ("train", "hidden-shell", 7),
    ("train", "init-persistence", 7),
    ("train", "kernel-rootkit", 7),
    ("train", "kthread-masquerade", 5),
    ("train", "ld_preload-rootkit", 3),
    ("train", "lockbit", 16),
    ("train", "mirai", 107),
    ("train", "overlayfs-exploit", 1),
    ("train", "preload-hider", 11),
    ("train", "preload-injector", 1),
    ("train", "pscan", 1),
    ("train", "ransomware", 5),
    ("train", "setag", 2),
    ("train", "silent-insmod", 4),
    ("train", "smtp-backdoor", 1),
    ("train", "sshd-backdoor", 4),
    ("train", "symbiote", 4),
    ("train", "tsunami", 1),
    ("train", "xorddos", 3),
    ("extra", "adb-spreader", 1),
    ("extra", "ddos-bot", 28),
    ("extra", "ddostf", 2),
    ("extra", "diamorphine", 3),
    ("extra", "dirtycow", 2),
    ("extra", "dos-tool", 37),
    ("extra", "gafgyt", 150),
    ("extra", "hidden-shell", 20),
    ("extra", "init-persistence", 17),
    ("extra", "kernel-rootkit", 6),
    ("extra", "ld_preload-rootkit", 11),
    ("extra", "lkm-rootkit", 4),
    ("extra", "miner-config", 3),
    ("extra", "mirai", 351),
    ("extra", "preload-hider", 14),
    ("extra", "process-hider", 3),
    ("extra", "pscan", 15),
    ("extra", "setag", 17),
    ("extra", "tor-dos", 3),
    ("extra", "tsunami", 80),
    ("extra", "wopbot", 7),
    ("extra", "xorddos", 21),
];

fn builtin_set() -> RuleSet {
    let (set, warnings) = RuleSet::load(&[], RuleErrorPolicy::Refuse, true).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    set
}

/// Rule name → the `family` its metadata names, read from the rule text.
fn rule_families() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current = None;
    for line in builtin_rules().lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("rule ") {
            current = rest.split_whitespace().next().map(str::to_owned);
        } else if let Some(value) = line.strip_prefix("family = ")
            && let Some(rule) = current.take()
        {
            out.insert(rule, value.trim_matches('"').to_owned());
        }
    }
    out
}

/// (archive, sha256) → families, from `builtin_rules/families.csv`.
fn labels() -> HashMap<(String, String), Vec<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/builtin_rules/families.csv");
    let text = fs::read_to_string(&path).unwrap();
    let mut out = HashMap::new();
    for (index, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(
            fields.len(),
            4,
            "{}:{}: {line:?}",
            path.display(),
            index + 1
        );
        let families = fields[2].split('+').map(str::to_owned).collect();
        out.insert((fields[0].to_owned(), fields[1].to_owned()), families);
    }
    out
}

fn corpus_dir() -> PathBuf {
    std::env::var_os("VIGIL_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
        PathBuf::from,
    )
}

/// Calls `f(member name, bytes)` for each regular member of a `.tar.xz`, in memory.
fn for_each_member(archive: &Path, mut f: impl FnMut(&str, &[u8])) {
    let file = BufReader::with_capacity(1 << 16, File::open(archive).unwrap());
    let mut tar = tar::Archive::new(xz2::bufread::XzDecoder::new(file));
    let mut buf = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        buf.clear();
        entry.read_to_end(&mut buf).unwrap();
        f(&name, &buf);
    }
}

#[derive(Default)]
struct Tally {
    size: usize,
    /// Matched by a rule of this family.
    by_family: usize,
    /// Matched by any built-in rule.
    by_any: usize,
}

#[test]
fn each_rule_matches_its_family_in_the_corpus() {
    let dir = corpus_dir();
    if ARCHIVES.iter().any(|(_, file)| !dir.join(file).is_file()) {
        println!(
            "SKIPPED: the malware corpus is not at {} (set VIGIL_CORPUS)",
            dir.display()
        );
        return;
    }
    let started = Instant::now();
    let set = builtin_set();
    let mut scanner = set.scanner();
    let families = rule_families();
    assert_eq!(families.len(), set.len(), "every rule names its family");
    let labels = labels();
    let mut tallies: BTreeMap<(&str, String), Tally> = BTreeMap::new();
    // Per rule: matches in its family, matches elsewhere (other or no label).
    let mut per_rule: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut scanned = 0usize;
    for &(archive, file) in ARCHIVES {
        for_each_member(&dir.join(file), |name, bytes| {
            let Some(sha) = name.rsplit('/').next().filter(|s| s.len() == 64) else {
                return; // the manifest
            };
            scanned += 1;
            let matched: BTreeSet<String> = scanner
                .scan(bytes, SCAN_TIMEOUT)
                .unwrap()
                .into_iter()
                .map(|r| {
                    let rule = r.id.strip_prefix(BUILTIN_NAMESPACE).unwrap();
                    rule.trim_start_matches(':').to_owned()
                })
                .collect();
            let fams = labels
                .get(&(archive.to_owned(), sha.to_owned()))
                .cloned()
                .unwrap_or_default();
            for rule in &matched {
                let entry = per_rule.entry(rule.clone()).or_default();
                if fams.contains(&families[rule]) {
                    entry.0 += 1;
                } else {
                    entry.1 += 1;
                }
            }
            for family in fams {
                let tally = tallies.entry((archive, family.clone())).or_default();
                tally.size += 1;
                tally.by_family += usize::from(matched.iter().any(|r| families[r] == family));
                tally.by_any += usize::from(!matched.is_empty());
            }
        });
    }
    println!("{scanned} corpus files in {:.1?}", started.elapsed());
    println!("archive family               by its rules  by any rule  size");
    for ((archive, family), t) in &tallies {
        println!(
            "{archive:<7} {family:<20} {:>12} {:>12} {:>5}",
            t.by_family, t.by_any, t.size
        );
    }
    println!("rule                              in family  elsewhere in the corpus");
    for (rule, (inside, outside)) in &per_rule {
        println!("{rule:<34} {inside:>9} {outside:>9}");
    }
    for (rule, family) in &families {
        let (inside, _) = per_rule.get(rule).copied().unwrap_or_default();
        assert!(inside > 0, "{rule} matches no sample of {family}");
    }
    for &(archive, family, floor) in FLOORS {
        let got = tallies
            .get(&(archive, family.to_owned()))
            .map_or(0, |t| t.by_family);
        assert!(
            got >= floor,
            "{archive} {family}: {got} samples matched, {floor} when the rules were written"
        );
    }
}

/// Regular files at or below `path` (symbolic links are not followed).
fn walk(path: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_file() {
        out.push(path.to_owned());
    } else if meta.is_dir()
        && let Ok(entries) = fs::read_dir(path)
    {
        for entry in entries.flatten() {
            walk(&entry.path(), out);
        }
    }
}

#[test]
fn no_rule_matches_a_benign_file() {
    let roots: Vec<PathBuf> = match std::env::var("VIGIL_BENIGN_ROOTS") {
        Ok(list) => list.split(':').map(PathBuf::from).collect(),
        Err(_) => BENIGN_ROOTS.iter().map(PathBuf::from).collect(),
    };
    let max: u64 = std::env::var("VIGIL_BENIGN_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(BENIGN_MAX);
    let started = Instant::now();
    let set = builtin_set();
    let mut scanner = set.scanner();
    let mut files = Vec::new();
    for root in &roots {
        walk(root, &mut files);
    }
    let (mut scanned, mut bytes, mut skipped) = (0usize, 0u64, 0usize);
    let mut matches = Vec::new();
    for path in &files {
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        if meta.len() > max {
            skipped += 1;
            continue;
        }
        let Ok(content) = fs::read(path) else {
            continue;
        };
        scanned += 1;
        bytes += content.len() as u64;
        for reason in scanner.scan(&content, SCAN_TIMEOUT).unwrap() {
            matches.push(format!("{}: {}", path.display(), reason.id));
        }
    }
    println!(
        "benign sweep of {roots:?}: {scanned} files, {:.2} GB, {skipped} over {max} bytes skipped, {} matches, {:.1?}",
        bytes as f64 / 1e9,
        matches.len(),
        started.elapsed()
    );
    assert!(scanned > 0, "no benign files under {roots:?}");
    assert!(
        matches.is_empty(),
        "built-in rules matched benign files:\n{}",
        matches.join("\n")
    );
}
