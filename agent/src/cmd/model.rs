//! `vigil model`: the model bundle from the command line.
//!
//! Owns the tools around [`vigil_models::bundle`]: `info` (what a bundle is and
//! holds), `score` (scores of feature rows with tract, which the trainer compares
//! with its own to 1e-5), `mutations` (how many detections survive each
//! evasion-style mutation, for the model alone and for the whole pipeline) and
//! `attack` (the adaptive attacker, in [`crate::cmd::attack`]); samples are read
//! and mutated in memory only.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;

use sha2::{Digest, Sha256};
use vigil_models::bundle::{Bundle, ModelKind};
use vigil_models::features;
use vigil_models::mutate::{self, Mutation};
use vigil_models::sniff::{FileKind, sniff};
use vigil_policy::Stage;

use crate::cmd::attack;
use crate::engine::generation::Generation;
use crate::engine::scan::{Depth, scan_bytes};

/// `vigil model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCmd {
    /// Describe a bundle (the built-in one by default) after checking it.
    Info {
        /// A bundle directory instead of the built-in bundle.
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
    /// Score feature rows (CSV from `vigil features`, or any CSV with a sha256
    /// column and every feature column) with every model of the bundle.
    Score {
        /// A bundle directory instead of the built-in bundle.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// The CSV file ("-" for stdin).
        csv: PathBuf,
    },
    /// Apply each evasion-style mutation to the ELF samples of an archive (in
    /// memory) and write, per sample and mutation, the classifier's score and
    /// the whole pipeline's verdict as CSV.
    Mutations {
        /// Configuration file (content, thresholds, `content.model`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The malware archive (`.tar`/`.tar.xz`).
        #[arg(long)]
        tar: PathBuf,
        /// A benign binary whose bytes and strings some mutations borrow.
        #[arg(long)]
        donor: PathBuf,
        /// A file of SHA-256 digests, one per line: only these samples.
        #[arg(long)]
        only: Option<PathBuf>,
    },
    /// Attack each ELF sample of an archive (in memory) with a query-limited
    /// black-box search over sequences of mutations, the classifier's score its
    /// only feedback; write per sample the scores before and after, the queries
    /// used, whether the model and the whole pipeline were evaded, and the
    /// winning sequence as CSV, and a summary on stderr.
    Attack {
        /// Configuration file (content, thresholds, `content.model`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// A bundle directory in place of the configuration's `content.model`.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// A malware archive (`.tar`/`.tar.xz`; repeatable).
        #[arg(long, required = true)]
        tar: Vec<PathBuf>,
        /// A benign binary the mutations borrow from (repeatable: more donors,
        /// a richer search).
        #[arg(long, required = true)]
        donor: Vec<PathBuf>,
        /// A file of SHA-256 digests, one per line: only these samples.
        #[arg(long)]
        only: Option<PathBuf>,
        /// Classifier queries per sample, the unmodified file's included.
        #[arg(long, default_value_t = 200)]
        queries: u32,
        /// Seeds every search (mixed with each sample's SHA-256).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also write the feature rows (as `vigil features`, with `label`,
        /// `mutation` = the sequence and `origin`) of the variants that fell
        /// below a threshold the original reached, for adversarial training.
        #[arg(long)]
        emit_rows: Option<PathBuf>,
        /// Also write the summary as JSON to this file.
        #[arg(long)]
        summary: Option<PathBuf>,
    },
}

/// Runs one `vigil model` subcommand.
///
/// # Errors
/// A bundle, CSV or archive that cannot be read.
pub fn run(command: ModelCmd) -> anyhow::Result<u8> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match command {
        ModelCmd::Info { bundle } => {
            let bundle = load(bundle.as_deref())?;
            write!(out, "{}", info(&bundle))?;
        }
        ModelCmd::Score { bundle, csv } => {
            let bundle = load(bundle.as_deref())?;
            let n = if csv.as_os_str() == "-" {
                score(&bundle, std::io::stdin().lock(), &mut out)?
            } else {
                let file = std::fs::File::open(&csv).with_context(|| csv.display().to_string())?;
                score(&bundle, file, &mut out).with_context(|| csv.display().to_string())?
            };
            eprintln!("scored {n} rows");
        }
        ModelCmd::Mutations {
            config,
            tar,
            donor,
            only,
        } => {
            let generation = crate::cmd::load_generation(config.as_deref())?;
            let donor =
                std::fs::read(&donor).with_context(|| format!("--donor {}", donor.display()))?;
            let only = only.as_deref().map(read_only).transpose()?;
            let n = mutations(&generation, &tar, &donor, only.as_ref(), &mut out)?;
            eprintln!("wrote {n} rows");
        }
        ModelCmd::Attack {
            config,
            bundle,
            tar,
            donor,
            only,
            queries,
            seed,
            emit_rows,
            summary,
        } => {
            let mut generation = crate::cmd::load_generation(config.as_deref())?;
            if let Some(dir) = bundle {
                generation.config.content.model = vigil_policy::ModelSource::Dir(dir);
                generation.model = crate::engine::model::ModelStage::load(&generation.config)?;
            }
            let donors = donor
                .iter()
                .map(|d| std::fs::read(d).with_context(|| format!("--donor {}", d.display())))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let only = only.as_deref().map(read_only).transpose()?;
            let opts = attack::Options {
                queries,
                seed,
                donors: &donors,
                only: only.as_ref(),
            };
            let mut rows = match &emit_rows {
                Some(p) => Some(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("--emit-rows {}", p.display()))?,
                )),
                None => None,
            };
            let totals = attack::attack(
                &generation,
                &tar,
                &opts,
                &mut out,
                rows.as_mut().map(|r| r as &mut dyn Write),
            )?;
            if let (Some(r), Some(p)) = (rows.as_mut(), &emit_rows) {
                r.flush()
                    .with_context(|| format!("--emit-rows {}", p.display()))?;
            }
            if let Some(p) = summary {
                std::fs::write(&p, serde_json::to_vec_pretty(&totals)?)
                    .with_context(|| format!("--summary {}", p.display()))?;
            }
            eprintln!("{}", totals.text());
        }
    }
    std::io::Write::flush(&mut out)?;
    Ok(0)
}

/// The SHA-256 digests listed in `path`, one per line, lower-cased.
fn read_only(path: &Path) -> anyhow::Result<HashSet<String>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("--only {}", path.display()))?
        .lines()
        .map(|l| l.trim().to_ascii_lowercase())
        .filter(|l| !l.is_empty())
        .collect())
}

/// Loads `dir`, or the built-in bundle.
///
/// # Errors
/// The bundle's load error.
pub fn load(dir: Option<&Path>) -> anyhow::Result<Bundle> {
    Ok(match dir {
        Some(d) => Bundle::load_dir(d)?,
        None => Bundle::builtin()?,
    })
}

/// A human-readable description of `bundle`.
pub fn info(bundle: &Bundle) -> String {
    let m = &bundle.manifest;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bundle {} version {} (trained {}, from {})",
        m.name, m.version, m.trained, bundle.origin
    );
    let _ = writeln!(
        out,
        "feature schema {} with {} columns",
        m.feature_schema, m.feature_count
    );
    for model in bundle.models() {
        let s = &model.spec;
        let _ = writeln!(
            out,
            "  {:<12} {:<10} threshold {:.6} (suspicious {:.6}, blocks {}, target FPR {}) {} sha256 {}",
            s.name,
            match s.kind {
                ModelKind::Classifier => "classifier",
                ModelKind::Anomaly => "anomaly",
            },
            s.threshold,
            s.threshold_suspicious,
            match (s.threshold_block, s.threshold_block_dynamic) {
                (None, _) => "never alone".to_owned(),
                (Some(b), None) => format!("at {b:.6}"),
                (Some(b), Some(d)) => format!("at {b:.6}, dynamic files at {d:.6}"),
            },
            s.target_fpr,
            if s.enabled { "enabled " } else { "disabled" },
            s.sha256
        );
    }
    if !m.metrics.is_null() {
        let _ = writeln!(out, "metrics: {}", m.metrics);
    }
    out
}

/// Reads feature rows (CSV with a `sha256` column and every feature column, in
/// any order) from `input` and writes `sha256,<model>,…` with every model's score.
///
/// # Errors
/// A missing column, a value that is not a number, or a write error; the message
/// names the line.
pub fn score(
    bundle: &Bundle,
    input: impl std::io::Read,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let mut lines = BufReader::new(input).lines();
    let header = lines
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty input: expected a CSV header"))??;
    let cols: Vec<&str> = header.split(',').collect();
    let find = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .ok_or_else(|| anyhow::anyhow!("header has no column {name:?}"))
    };
    let sha_col = find("sha256")?;
    // A row file of a newer schema holds the bundle's columns too (schemas are
    // prefixes); columns are found by name.
    let feature_cols: Vec<usize> = bundle
        .schema()
        .names()
        .iter()
        .map(|n| find(n))
        .collect::<Result<_, _>>()?;
    write!(out, "sha256")?;
    for m in bundle.models() {
        write!(out, ",{}", m.spec.name)?;
    }
    writeln!(out)?;
    let mut row = vec![0f32; bundle.schema().width()];
    let mut n = 0u64;
    for (i, line) in lines.enumerate() {
        let line = line?;
        let fields: Vec<&str> = line.split(',').collect();
        let lineno = i + 2;
        for (slot, &c) in row.iter_mut().zip(&feature_cols) {
            let text = fields
                .get(c)
                .ok_or_else(|| anyhow::anyhow!("line {lineno}: too few columns"))?;
            *slot = text.parse().map_err(|_| {
                anyhow::anyhow!("line {lineno}, column {}: not a number: {text:?}", cols[c])
            })?;
        }
        write!(out, "{}", fields.get(sha_col).copied().unwrap_or(""))?;
        for m in bundle.models() {
            write!(out, ",{:.9e}", m.score(&row)?)?;
        }
        writeln!(out)?;
        n += 1;
    }
    Ok(n)
}

/// Applies every mutation to each ELF member of `archive` (only those whose
/// SHA-256 is in `only`, when given) and writes one CSV row per sample and
/// mutation: whether it applied, the classifier's score and detection, and the
/// whole pipeline's verdict under `generation` (its model stage included).
///
/// # Errors
/// An unreadable archive, a generation without a model stage, or a write error.
pub fn mutations(
    generation: &Generation,
    archive: &Path,
    donor: &[u8],
    only: Option<&HashSet<String>>,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let stage = generation
        .model
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("content.model is \"none\": nothing to measure"))?;
    let classifier = stage
        .bundle()
        .models()
        .iter()
        .find(|m| m.spec.kind == ModelKind::Classifier)
        .ok_or_else(|| anyhow::anyhow!("the bundle has no classifier"))?;
    let threshold = generation
        .config
        .decision
        .model_threshold
        .map_or(classifier.spec.threshold, |t| t as f32);
    writeln!(
        out,
        "sha256,mutation,applied,model_score,model_detect,verdict,stages"
    )?;
    let mut rules = generation.rules.scanner();
    let mut rows = 0u64;
    let mut failed: Option<anyhow::Error> = None;
    vigil_models::tarsource::for_each_member(archive, |_name: &str, bytes: &[u8]| {
        if failed.is_some() || sniff(bytes) != FileKind::Elf {
            return Ok::<(), vigil_models::Error>(());
        }
        let digest = Sha256::digest(bytes);
        let sha = hex::encode(digest);
        if only.is_some_and(|o| !o.contains(&sha)) {
            return Ok(());
        }
        let seed = u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]));
        let variants = std::iter::once(("none", Some(bytes.to_vec()))).chain(
            Mutation::ALL
                .into_iter()
                .map(|m| (m.as_str(), mutate::apply(m, bytes, donor, seed))),
        );
        for (name, variant) in variants {
            let line = match &variant {
                None => format!("{sha},{name},0,,,,"),
                Some(v) => {
                    let mut row = features::Features::default();
                    features::extract_schema_into(v, stage.bundle().schema(), &mut row);
                    let score = classifier.score(&row.values).unwrap_or(f32::NAN);
                    let result = scan_bytes(v, generation, &mut rules, Depth::All);
                    let stages: Vec<&str> = Stage::ALL
                        .into_iter()
                        .filter(|s| {
                            result
                                .decision
                                .reasons
                                .iter()
                                .any(|r| r.stage == *s && r.score > 0)
                        })
                        .map(|s| s.as_str())
                        .collect();
                    format!(
                        "{sha},{name},1,{score:.6},{},{},{}",
                        u8::from(score >= threshold),
                        result.decision.verdict.as_str(),
                        stages.join("+")
                    )
                }
            };
            if let Err(e) = writeln!(out, "{line}") {
                failed = Some(e.into());
                break;
            }
            rows += 1;
        }
        Ok(())
    })
    .map_err(|e| anyhow::anyhow!("{}: {e}", archive.display()))?;
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(rows)
}
