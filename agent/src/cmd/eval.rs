//! `vigil eval`: detection and false-positive counts per stage, over labelled sets.
//!
//! Owns the walk over each set (a directory tree, or a `.tar`/`.tar.xz` archive read
//! member by member into memory — malware samples are never written to disk, let
//! alone made executable) and the tally. Every stage runs on every file (no early
//! exit), so each stage's own contribution shows. A stage "detects" a file when its
//! weighted score alone reaches the malicious threshold; "combined" is the verdict
//! of all stages together, as the daemon would decide. Every set is also broken
//! down by stratum (ELF type, linkage, machine; scripts), with what the whole
//! configuration makes malicious (denied in enforce mode), suspicious (logged,
//! allowed) and clean (missed, for malware) beside what the model stage alone
//! decides, so a weak stratum shows even when the totals look fine.
//!
//! With a per-file writer ([`evaluate_set`]'s `per_file`), every evaluated file
//! also gets one CSV line ([`PER_FILE_HEADER`]): its verdict, the model stage's
//! verdict alone, the ids of every finding, and the weighted score of every stage
//! but the model (`other_score`), so reports can break detection down by any
//! grouping (malware family, source) the caller knows and this does not, and can
//! replay the verdict with another model's points (out-of-fold scores).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vigil_models::features;
use vigil_models::sniff::{FileKind, sniff};
use vigil_policy::verdict::weighted_score;
use vigil_policy::{Decision, RuleScanner, Stage, Verdict};

use crate::cmd::features::csv_field;
use crate::engine::generation::Generation;
use crate::engine::scan::{CONTENT_CAP, Depth, scan_bytes};

/// Which label a set carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// Every file is known malware: findings are detections.
    Malicious,
    /// Every file is known good: findings are false positives.
    Benign,
}

/// Columns of the per-file CSV.
pub const PER_FILE_HEADER: &str =
    "set,label,name,sha256,strata,verdict,model_verdict,findings,other_score";

/// The tally of one set.
#[derive(Debug, Default)]
pub struct Tally {
    /// Files evaluated (executable kinds unless `all_files`).
    pub files: u64,
    /// Files a stage alone made malicious, by stage name.
    pub by_stage: BTreeMap<&'static str, u64>,
    /// Files the combined verdict made malicious.
    pub malicious: u64,
    /// Files the combined verdict made suspicious.
    pub suspicious: u64,
    /// Files not evaluated (not ELF or script, or unreadable).
    pub skipped: u64,
    /// For benign sets: every false positive (non-clean file) with its decision.
    pub flagged: Vec<(String, Decision)>,
    /// Per stratum (a file counts in one stratum of each kind: type, linkage,
    /// machine), in [`STRATA`] order.
    pub strata: BTreeMap<usize, StratumTally>,
}

/// What one stratum of a set came to.
#[derive(Debug, Default, Clone, Copy)]
pub struct StratumTally {
    /// Files evaluated.
    pub files: u64,
    /// The combined verdict is malicious (denied in enforce mode).
    pub malicious: u64,
    /// The combined verdict is suspicious (logged, allowed).
    pub suspicious: u64,
    /// The model stage alone reaches the malicious threshold (it blocks alone).
    pub model_malicious: u64,
    /// The model stage alone reaches the suspicious threshold, not the malicious one.
    pub model_suspicious: u64,
}

/// Stratum names, as printed; a file's strata are [`strata_of`].
pub const STRATA: [&str; 14] = [
    "ELF type exec",
    "ELF type dyn",
    "ELF type rel",
    "ELF type other",
    "ELF static",
    "ELF dynamic",
    "ELF x86-64",
    "ELF x86",
    "ELF arm/aarch64",
    "ELF mips",
    "ELF ppc/ppc64",
    "ELF other machine",
    "script",
    "other",
];

/// The indices into [`STRATA`] of one file: for ELF its type, its linkage
/// ([`features::Linkage`], as the block thresholds are calibrated per linkage) and its machine, read with the model's own header features.
fn strata_of(bytes: &[u8]) -> Vec<usize> {
    match sniff(bytes) {
        FileKind::Elf => {}
        FileKind::Script => return vec![12],
        FileKind::Other => return vec![13],
    }
    let row = features::extract(bytes);
    let on = |name: &str| features::column(name).is_some_and(|c| row.values[c] > 0.0);
    let kind = if on("hdr_type_exec") {
        0
    } else if on("hdr_type_dyn") {
        1
    } else if on("hdr_type_rel") {
        2
    } else {
        3
    };
    let linkage = match row.linkage() {
        features::Linkage::Dynamic => 5,
        features::Linkage::Static => 4,
    };
    let machine = if on("hdr_machine_x86_64") {
        6
    } else if on("hdr_machine_x86") {
        7
    } else if on("hdr_machine_arm") || on("hdr_machine_aarch64") {
        8
    } else if on("hdr_machine_mips") {
        9
    } else if on("hdr_machine_ppc") || on("hdr_machine_ppc64") {
        10
    } else {
        11
    };
    vec![kind, linkage, machine]
}

/// Evaluates one set; `path` is a directory, a file, or a `.tar`/`.tar.xz` archive.
///
/// # Errors
/// When the archive is unreadable.
pub fn evaluate_set(
    generation: &Generation,
    path: &Path,
    label: Label,
    all_files: bool,
    mut per_file: Option<&mut dyn std::io::Write>,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut rules = generation.rules.scanner();
    let mut failed: Option<std::io::Error> = None;
    let set = path.display().to_string();
    let mut one = |name: &str, bytes: &[u8], tally: &mut Tally| {
        if !all_files && !sniff(bytes).is_executable() {
            tally.skipped += 1;
            return;
        }
        let line = record(tally, name, bytes, generation, &mut rules, label);
        if let Some(w) = per_file.as_mut()
            && failed.is_none()
            && let Err(e) = writeln!(w, "{},{line}", csv_field(&set))
        {
            failed = Some(e);
        }
    };
    if is_archive(path) {
        vigil_models::tarsource::for_each_member(path, |name: &str, bytes: &[u8]| {
            // The corpus archive holds samples/<sha256> plus a manifest; the manifest
            // is text and is skipped by the executable filter like any data file.
            one(name, bytes, &mut tally);
            Ok::<(), vigil_models::Error>(())
        })
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    } else {
        crate::engine::walk::regular_files(path, &mut |p: &Path| match read_capped(p) {
            Some(bytes) => one(&p.to_string_lossy(), &bytes, &mut tally),
            None => tally.skipped += 1,
        });
    }
    if let Some(e) = failed {
        return Err(anyhow::anyhow!("writing the per-file report: {e}"));
    }
    Ok(tally)
}

/// Tallies one file; returns its per-file CSV line without the set column.
fn record(
    tally: &mut Tally,
    name: &str,
    bytes: &[u8],
    generation: &Generation,
    rules: &mut RuleScanner<'_>,
    label: Label,
) -> String {
    let result = scan_bytes(bytes, generation, rules, Depth::All);
    let decision = result.decision;
    tally.files += 1;
    let policy = &generation.config.decision;
    let mut model_alone = Verdict::Clean;
    let mut other_score = 0u32;
    for stage in Stage::ALL {
        let score = decision
            .reasons
            .iter()
            .filter(|r| r.stage == stage)
            .map(|r| weighted_score(r, &policy.weights))
            .fold(0u32, u32::saturating_add);
        let alone = Verdict::from_score(score, policy);
        if alone == Verdict::Malicious {
            *tally.by_stage.entry(stage.as_str()).or_default() += 1;
        }
        if stage == Stage::Model {
            model_alone = alone;
        } else {
            other_score = other_score.saturating_add(score);
        }
    }
    let strata = strata_of(bytes);
    let findings: Vec<&str> = decision
        .reasons
        .iter()
        .filter(|r| r.score > 0)
        .map(|r| r.id.as_str())
        .collect();
    let line = format!(
        "{},{},{},{},{},{},{},{other_score}",
        match label {
            Label::Malicious => "malicious",
            Label::Benign => "benign",
        },
        csv_field(name),
        hex::encode(Sha256::digest(bytes)),
        strata
            .iter()
            .filter_map(|&i| STRATA.get(i).copied())
            .collect::<Vec<_>>()
            .join(";"),
        decision.verdict.as_str(),
        model_alone.as_str(),
        csv_field(&findings.join(";")),
    );
    for index in strata {
        let st = tally.strata.entry(index).or_default();
        st.files += 1;
        match decision.verdict {
            Verdict::Malicious => st.malicious += 1,
            Verdict::Suspicious => st.suspicious += 1,
            Verdict::Clean => {}
        }
        match model_alone {
            Verdict::Malicious => st.model_malicious += 1,
            Verdict::Suspicious => st.model_suspicious += 1,
            Verdict::Clean => {}
        }
    }
    match decision.verdict {
        Verdict::Malicious => tally.malicious += 1,
        Verdict::Suspicious => tally.suspicious += 1,
        Verdict::Clean => return line,
    }
    if label == Label::Benign {
        tally.flagged.push((name.to_string(), decision));
    }
    line
}

/// Renders the tallies as a table followed by every false positive.
pub fn render(sets: &[(PathBuf, Label, Tally)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>7} {:>7} {:>7} {:>11} {:>7} {:>14} {:>14}  set",
        "label", "files", "hash", "rules", "heuristics", "model", "malicious", "suspicious"
    );
    for (path, label, t) in sets {
        let stage = |s: Stage| t.by_stage.get(s.as_str()).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<10} {:>7} {:>7} {:>7} {:>11} {:>7} {:>14} {:>14}  {} ({} skipped)",
            match label {
                Label::Malicious => "malicious",
                Label::Benign => "benign",
            },
            t.files,
            stage(Stage::Hash),
            stage(Stage::Rules),
            stage(Stage::Heuristics),
            stage(Stage::Model),
            pct(t.malicious, t.files),
            pct(t.suspicious, t.files),
            path.display(),
            t.skipped,
        );
    }
    for (path, label, t) in sets {
        let _ = writeln!(
            out,
            "\n{} set {} by stratum (malicious = denied in enforce mode; clean = {}):",
            match label {
                Label::Malicious => "malicious",
                Label::Benign => "benign",
            },
            path.display(),
            match label {
                Label::Malicious => "missed",
                Label::Benign => "allowed silently",
            },
        );
        let _ = writeln!(
            out,
            "  {:<18} {:>6} {:>14} {:>14} {:>14} {:>22} {:>22}",
            "stratum",
            "files",
            "malicious",
            "suspicious",
            "clean",
            "model alone malicious",
            "model alone suspicious"
        );
        for (&index, st) in &t.strata {
            let clean = st.files - st.malicious - st.suspicious;
            let _ = writeln!(
                out,
                "  {:<18} {:>6} {:>14} {:>14} {:>14} {:>22} {:>22}",
                STRATA.get(index).copied().unwrap_or("?"),
                st.files,
                pct(st.malicious, st.files),
                pct(st.suspicious, st.files),
                pct(clean, st.files),
                pct(st.model_malicious, st.files),
                pct(st.model_suspicious, st.files),
            );
        }
    }
    for (path, label, t) in sets {
        if *label != Label::Benign || t.flagged.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\nfalse positives in {}:", path.display());
        for (name, d) in &t.flagged {
            let why: Vec<String> = d
                .reasons
                .iter()
                .filter(|r| r.score > 0)
                .map(|r| format!("{} ({})", r.id, r.score))
                .collect();
            let _ = writeln!(out, "  {} {}: {}", d.verdict.as_str(), name, why.join(", "));
        }
    }
    out
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        return "0".into();
    }
    format!("{n} ({:.1}%)", n as f64 * 100.0 / of as f64)
}

fn is_archive(path: &Path) -> bool {
    let name = path.to_string_lossy();
    path.is_file()
        && (name.ends_with(".tar") || name.ends_with(".tar.xz") || name.ends_with(".txz"))
}

/// A file's bytes, unless it is larger than the content cap or unreadable.
fn read_capped(path: &Path) -> Option<Vec<u8>> {
    let md = std::fs::metadata(path).ok()?;
    if md.len() > CONTENT_CAP {
        return None;
    }
    std::fs::read(path).ok()
}
