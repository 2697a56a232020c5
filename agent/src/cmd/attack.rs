//! `vigil model attack`: the adaptive black-box attacker, per ELF sample of an
//! archive (read and mutated in memory only, never written or run).
//!
//! Owns the measurement around [`vigil_models::attack::search`]: the per-sample
//! CSV, the summary, and the feature rows of the evasive variants (for
//! adversarial training). The search sees only the classifier's score; the
//! whole pipeline (hash lists, rules, heuristics, model: the engine's
//! [`scan_bytes`], as `vigil model mutations` uses it) judges the original and
//! the final variant afterwards, so the report says what the attack buys
//! against the model alone and against the default configuration.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use sha2::{Digest, Sha256};
use vigil_models::attack::{Attack, Found, search};
use vigil_models::features::{self, Features};
use vigil_models::sniff::{FileKind, sniff};
use vigil_policy::Verdict;
use vigil_policy::verdict::ModelThresholds;

use crate::cmd::features::{format_row, header};
use crate::engine::generation::Generation;
use crate::engine::scan::{Depth, scan_bytes};

/// What to attack and how hard.
#[derive(Debug)]
pub struct Options<'a> {
    /// Queries per sample, the first (the unmodified file) included.
    pub queries: u32,
    /// Mixed with each sample's SHA-256 to seed its search, so a sample's
    /// result depends on neither the archive order nor `--only`.
    pub seed: u64,
    /// Benign binaries the mutations borrow from (at least one).
    pub donors: &'a [Vec<u8>],
    /// Only the samples with these SHA-256 digests (lower-case hex).
    pub only: Option<&'a HashSet<String>>,
}

/// Totals over the samples attacked.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// ELF samples attacked.
    pub samples: u64,
    /// Samples the model alone blocked (score at or above the block threshold)
    /// before the attack, and after it.
    pub model_blocked_start: u64,
    /// See `model_blocked_start`.
    pub model_blocked_final: u64,
    /// Samples the model detected (at or above the detection threshold)
    /// before the attack, and after it.
    pub model_detected_start: u64,
    /// See `model_detected_start`.
    pub model_detected_final: u64,
    /// Samples the whole pipeline denied (verdict malicious) before the
    /// attack, and after it (the final variant).
    pub pipeline_denied_start: u64,
    /// See `pipeline_denied_start`.
    pub pipeline_denied_final: u64,
    /// Queries spent in all.
    pub queries: u64,
    /// Seconds spent searching (the pipeline checks not included).
    pub search_seconds: f64,
    /// Feature rows written for evasive variants.
    pub evasive_rows: u64,
    /// The block and detection thresholds used (the block threshold of
    /// statically linked samples).
    pub block_threshold: f32,
    /// The block threshold of dynamically linked samples.
    pub block_threshold_dynamic: f32,
    /// See `block_threshold`.
    pub detect_threshold: f32,
    /// Queries allowed per sample.
    pub budget: u32,
}

impl Summary {
    /// A few lines for people, with rates.
    pub fn text(&self) -> String {
        let pct = |a: u64, b: u64| {
            if b == 0 {
                "n/a".to_owned()
            } else {
                format!("{:.1} %", 100.0 * a as f64 / b as f64)
            }
        };
        let n = self.samples;
        format!(
            "attacked {n} ELF samples, at most {} queries each: {:.1} queries and {:.3} s per sample on average\n\
             model alone, block threshold {:.6} (dynamic files {:.6}): blocked {} before, {} after ({} of the blocked evaded)\n\
             model alone, detection threshold {:.6}: detected {} before, {} after ({} of the detected evaded)\n\
             whole pipeline: denied {} before ({}), {} after ({}); {} of the denied evaded\n\
             evasive variants' feature rows: {}",
            self.budget,
            self.queries as f64 / n.max(1) as f64,
            self.search_seconds / n.max(1) as f64,
            self.block_threshold,
            self.block_threshold_dynamic,
            self.model_blocked_start,
            self.model_blocked_final,
            pct(
                self.model_blocked_start - self.model_blocked_final.min(self.model_blocked_start),
                self.model_blocked_start
            ),
            self.detect_threshold,
            self.model_detected_start,
            self.model_detected_final,
            pct(
                self.model_detected_start
                    - self.model_detected_final.min(self.model_detected_start),
                self.model_detected_start
            ),
            self.pipeline_denied_start,
            pct(self.pipeline_denied_start, n),
            self.pipeline_denied_final,
            pct(self.pipeline_denied_final, n),
            pct(
                self.pipeline_denied_start
                    - self.pipeline_denied_final.min(self.pipeline_denied_start),
                self.pipeline_denied_start
            ),
            self.evasive_rows,
        )
    }
}

/// Attacks each ELF member of `archives` (those in `opts.only`, when given)
/// with at most `opts.queries` classifier queries, aiming below the detection
/// threshold, and writes one CSV row per sample to `out`. With `rows`, also
/// writes (as `vigil features` does, with `label`, `mutation` = the winning
/// sequence and `origin` = the sample's SHA-256) the feature rows of the
/// variants that fell below a threshold (block or detection) the original
/// reached.
///
/// # Errors
/// An unreadable archive, a generation without an enabled classifier, a model
/// that fails to run, or a write error.
pub fn attack(
    generation: &Generation,
    archives: &[PathBuf],
    opts: &Options<'_>,
    out: &mut impl Write,
    mut rows: Option<&mut dyn Write>,
) -> anyhow::Result<Summary> {
    let stage = generation
        .model
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("content.model is \"none\": nothing to attack"))?;
    let (classifier, t) = stage
        .classifier()
        .ok_or_else(|| anyhow::anyhow!("the bundle has no enabled classifier"))?;
    anyhow::ensure!(!opts.donors.is_empty(), "at least one --donor is needed");
    let donors: Vec<&[u8]> = opts.donors.iter().map(Vec::as_slice).collect();
    let schema = stage.bundle().schema();
    let max_size = usize::try_from(classifier.spec.max_input_size).unwrap_or(usize::MAX);
    let mut summary = Summary {
        block_threshold: t.base.block,
        block_threshold_dynamic: t.block_dynamic,
        detect_threshold: t.base.detect,
        budget: opts.queries,
        ..Summary::default()
    };
    writeln!(
        out,
        "sha256,start_score,final_score,queries,evaded_block,evaded_detect,queries_to_evade_block,queries_to_evade_detect,verdict_start,verdict_final,evaded_pipeline,seconds,sequence"
    )?;
    let labels = [("label", "1")];
    if let Some(r) = rows.as_deref_mut() {
        writeln!(r, "{}", header(&labels, true))?;
    }
    let mut scanner = generation.rules.scanner();
    let mut row = Features::default();
    let mut line = String::new();
    let mut failed: Option<anyhow::Error> = None;
    for archive in archives {
        vigil_models::tarsource::for_each_member(archive, |name: &str, bytes: &[u8]| {
            if failed.is_some() || sniff(bytes) != FileKind::Elf {
                return Ok::<(), vigil_models::Error>(());
            }
            let digest = Sha256::digest(bytes);
            let sha = hex::encode(digest);
            if opts.only.is_some_and(|o| !o.contains(&sha)) {
                return Ok(());
            }
            let seed = opts.seed ^ u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]));
            // The original's linkage picks its block threshold; the
            // mutations leave the interpreter and needed libraries alone.
            features::extract_schema_into(bytes, schema, &mut row);
            let t = t.for_linkage(row.linkage());
            let attack = Attack {
                queries: opts.queries,
                goal: t.detect,
                seed,
                max_size,
            };
            let started = Instant::now();
            let found = search(bytes, &donors, &attack, |v: &[u8]| {
                features::extract_schema_into(v, schema, &mut row);
                classifier.score(&row.values)
            })?;
            let seconds = started.elapsed().as_secs_f64();
            let before = scan_bytes(bytes, generation, &mut scanner, Depth::All)
                .decision
                .verdict;
            let after = if found.steps.is_empty() {
                before
            } else {
                scan_bytes(&found.variant, generation, &mut scanner, Depth::All)
                    .decision
                    .verdict
            };
            let sequence = found.sequence();
            summary.tally(found.start, found.best, &t, before, after);
            summary.queries += u64::from(found.queries);
            summary.search_seconds += seconds;
            let result = (|| -> anyhow::Result<()> {
                writeln!(
                    out,
                    "{sha},{},{},{},{},{},{},{},{},{},{},{seconds:.4},{sequence}",
                    found.start,
                    found.best,
                    found.queries,
                    evaded(found.start >= t.block, found.best >= t.block),
                    evaded(found.start >= t.detect, found.best >= t.detect),
                    crossed(&found, t.block),
                    crossed(&found, t.detect),
                    before.as_str(),
                    after.as_str(),
                    evaded(before == Verdict::Malicious, after == Verdict::Malicious),
                )?;
                let evasive = (found.start >= t.block && found.best < t.block)
                    || (found.start >= t.detect && found.best < t.detect);
                if let Some(r) = rows.as_deref_mut().filter(|_| evasive) {
                    format_row(
                        &mut line,
                        &mut row,
                        name,
                        &found.variant,
                        &labels,
                        Some((&sequence, &sha)),
                    );
                    writeln!(r, "{line}")?;
                    summary.evasive_rows += 1;
                }
                Ok(())
            })();
            if let Err(e) = result {
                failed = Some(e);
            }
            Ok(())
        })
        .map_err(|e| anyhow::anyhow!("{}: {e}", archive.display()))?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(summary)
}

impl Summary {
    /// Counts one sample: its model scores before and after under `t`, and
    /// the pipeline's verdicts before and after.
    fn tally(
        &mut self,
        start: f32,
        best: f32,
        t: &ModelThresholds,
        before: Verdict,
        after: Verdict,
    ) {
        self.samples += 1;
        self.model_blocked_start += u64::from(start >= t.block);
        self.model_blocked_final += u64::from(best >= t.block);
        self.model_detected_start += u64::from(start >= t.detect);
        self.model_detected_final += u64::from(best >= t.detect);
        self.pipeline_denied_start += u64::from(before == Verdict::Malicious);
        self.pipeline_denied_final += u64::from(after == Verdict::Malicious);
    }
}

/// The queries the search needed to get below `threshold`, empty when the
/// original already was or no variant got there.
fn crossed(found: &Found, threshold: f32) -> String {
    match found.queries_below(threshold) {
        Some(q) if found.start >= threshold => q.to_string(),
        _ => String::new(),
    }
}

/// `n/a` when the original was not caught, else whether the variant escaped.
fn evaded(caught_before: bool, caught_after: bool) -> &'static str {
    match (caught_before, caught_after) {
        (false, _) => "n/a",
        (true, false) => "yes",
        (true, true) => "no",
    }
}
