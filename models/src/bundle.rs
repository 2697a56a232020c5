//! The model bundle: ONNX models plus the manifest that says what they expect
//! and how to read their scores, loaded and run with tract.
//!
//! Owns the manifest format and every check made on load. A bundle that loads is
//! consistent: each model file's SHA-256 equals the manifest's, the feature
//! schema is one this build extracts ([`Schema`], up to [`SCHEMA_VERSION`]) and
//! the width is that schema's, each graph takes one `[1, width]` float input and
//! yields one score, and that score is finite on an all-zero row. Anything else
//! is an [`Error::Bundle`] naming the bundle and the problem, so the daemon can
//! refuse it and keep its previous content.
//!
//! Layout of a bundle directory: `manifest.json` and the `.onnx` files it names.
//! The bundle trained by `models/train` is compiled into the binary
//! ([`Bundle::builtin`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

use crate::error::Error;
use crate::features::{Linkage, SCHEMA_VERSION, Schema};

/// The manifest format this build reads.
pub const FORMAT: u32 = 1;

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format; must equal [`FORMAT`].
    pub format: u32,
    /// Bundle name, e.g. `vigil-elf`.
    pub name: String,
    /// Bundle version (the training date and a counter, by convention).
    pub version: String,
    /// When it was trained (ISO 8601 date).
    pub trained: String,
    /// Feature schema the models were trained on.
    pub feature_schema: u32,
    /// Feature columns per row.
    pub feature_count: usize,
    /// The models, in the order they run.
    pub models: Vec<ModelSpec>,
    /// Measured metrics, as written by the trainer (shown by `vigil status`;
    /// not interpreted).
    #[serde(default)]
    pub metrics: serde_json::Value,
}

/// What a model's score means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// A probability of being malware, in [0, 1].
    Classifier,
    /// A distance from what benign programs look like; unbounded, higher is stranger.
    Anomaly,
}

/// One model of the bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Stable identifier, reported as the finding's id (e.g. `model.elf-gbdt`).
    pub name: String,
    /// What the score means.
    pub kind: ModelKind,
    /// The ONNX file, relative to the bundle.
    pub file: String,
    /// SHA-256 of that file, lower-case hex.
    pub sha256: String,
    /// Scores at or above this are a detection (chosen on validation at
    /// `target_fpr`).
    pub threshold: f32,
    /// Scores at or above this (and below `threshold`) are suspicious.
    pub threshold_suspicious: f32,
    /// Scores at or above this make a file malicious on the model alone:
    /// calibrated on held-out benign files (none trained or validated on) so
    /// that at most 1 in 10,000 reach it. Absent: the model never blocks alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_block: Option<f32>,
    /// The block threshold for dynamically linked files
    /// ([`crate::features::Linkage::Dynamic`]), calibrated on those calibration files alone at
    /// the same rate; `threshold_block` then applies to the others. Absent:
    /// `threshold_block` applies to every file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_block_dynamic: Option<f32>,
    /// The false-positive rate `threshold` was chosen for, on validation.
    pub target_fpr: f64,
    /// Whether the daemon runs it by default.
    pub enabled: bool,
    /// Largest file (bytes) the model is applied to: the size range it was
    /// trained on. Larger files are not scored (a model says nothing useful
    /// outside its training distribution).
    #[serde(default = "unlimited")]
    pub max_input_size: u64,
}

impl ModelSpec {
    /// The block threshold for a file of `linkage`: `threshold_block_dynamic`
    /// for dynamic files when the manifest has one, else `threshold_block`.
    pub fn block_threshold(&self, linkage: Linkage) -> Option<f32> {
        match linkage {
            Linkage::Dynamic => self.threshold_block_dynamic.or(self.threshold_block),
            Linkage::Static => self.threshold_block,
        }
    }
}

fn unlimited() -> u64 {
    u64::MAX
}

/// A loaded, checked bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Where it came from (`builtin` or a directory), for messages.
    pub origin: String,
    /// Its manifest.
    pub manifest: Manifest,
    schema: Schema,
    models: Vec<Model>,
}

/// One loaded model.
#[derive(Debug, Clone)]
pub struct Model {
    /// Its manifest entry.
    pub spec: ModelSpec,
    width: usize,
    plan: Arc<TypedRunnableModel>,
}

const BUILTIN_MANIFEST: &[u8] = include_bytes!("../bundle/manifest.json");
const BUILTIN_FILES: &[(&str, &[u8])] = &[
    (
        "elf-classifier.onnx",
        include_bytes!("../bundle/elf-classifier.onnx"),
    ),
    (
        "elf-anomaly.onnx",
        include_bytes!("../bundle/elf-anomaly.onnx"),
    ),
];

impl Bundle {
    /// The bundle compiled into this build (trained by `models/train`).
    ///
    /// # Errors
    /// Only if the build embedded an inconsistent bundle; tests prove it does not.
    pub fn builtin() -> Result<Bundle, Error> {
        Bundle::from_parts("builtin", BUILTIN_MANIFEST, |file| {
            BUILTIN_FILES
                .iter()
                .find(|(name, _)| *name == file)
                .map(|(_, bytes)| bytes.to_vec())
                .ok_or_else(|| format!("no embedded file {file:?}"))
        })
    }

    /// Loads the bundle in directory `dir`.
    ///
    /// # Errors
    /// An unreadable or inconsistent bundle (see the module docs).
    pub fn load_dir(dir: &Path) -> Result<Bundle, Error> {
        let manifest_path = dir.join("manifest.json");
        let manifest = std::fs::read(&manifest_path)
            .map_err(|e| bundle_err(dir, format!("{}: {e}", manifest_path.display())))?;
        Bundle::from_parts(&dir.display().to_string(), &manifest, |file| {
            let path: PathBuf = dir.join(file);
            if Path::new(file).components().count() != 1 {
                return Err(format!(
                    "model file {file:?} must be a plain name inside the bundle"
                ));
            }
            std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
        })
    }

    /// Builds a bundle from a manifest and a way to read the files it names.
    fn from_parts(
        origin: &str,
        manifest: &[u8],
        mut read: impl FnMut(&str) -> Result<Vec<u8>, String>,
    ) -> Result<Bundle, Error> {
        let fail = |reason: String| bundle_err(Path::new(origin), reason);
        let manifest: Manifest =
            serde_json::from_slice(manifest).map_err(|e| fail(format!("manifest.json: {e}")))?;
        if manifest.format != FORMAT {
            return Err(fail(format!(
                "manifest format {} (this build reads {FORMAT})",
                manifest.format
            )));
        }
        let schema = Schema::new(manifest.feature_schema).ok_or_else(|| {
            fail(format!(
                "trained on feature schema {}; this build extracts schemas 1 to {SCHEMA_VERSION}",
                manifest.feature_schema
            ))
        })?;
        let width = schema.width();
        if manifest.feature_count != width {
            return Err(fail(format!(
                "manifest says feature schema {} with {} columns; that schema has {width} columns",
                manifest.feature_schema, manifest.feature_count
            )));
        }
        let mut models = Vec::with_capacity(manifest.models.len());
        for spec in &manifest.models {
            let bytes = read(&spec.file).map_err(&fail)?;
            let actual = hex::encode(Sha256::digest(&bytes));
            if !actual.eq_ignore_ascii_case(&spec.sha256) {
                return Err(fail(format!(
                    "{}: SHA-256 is {actual}, the manifest says {}",
                    spec.file, spec.sha256
                )));
            }
            if !(spec.threshold.is_finite() && spec.threshold_suspicious.is_finite())
                || spec.threshold_suspicious > spec.threshold
            {
                return Err(fail(format!(
                    "{}: thresholds must be finite with threshold_suspicious <= threshold",
                    spec.name
                )));
            }
            if let Some(block) = spec.threshold_block
                && !(block.is_finite() && block >= spec.threshold)
            {
                return Err(fail(format!(
                    "{}: threshold_block must be finite and at least threshold ({}), found {block}",
                    spec.name, spec.threshold
                )));
            }
            if let Some(block) = spec.threshold_block_dynamic
                && !(spec.threshold_block.is_some() && block.is_finite() && block >= spec.threshold)
            {
                return Err(fail(format!(
                    "{}: threshold_block_dynamic needs threshold_block and must be finite and at least threshold ({}), found {block}",
                    spec.name, spec.threshold
                )));
            }
            let plan = optimize(&bytes, width).map_err(|e| fail(format!("{}: {e}", spec.file)))?;
            let model = Model {
                spec: spec.clone(),
                width,
                plan,
            };
            match model.score(&vec![0.0; width]) {
                Ok(s) if s.is_finite() => {}
                Ok(s) => return Err(fail(format!("{}: score {s} on a zero row", spec.file))),
                Err(e) => return Err(fail(format!("{}: {e}", spec.file))),
            }
            models.push(model);
        }
        Ok(Bundle {
            origin: origin.to_string(),
            manifest,
            schema,
            models,
        })
    }

    /// The feature schema every model of the bundle reads: extract rows with
    /// [`crate::features::extract_schema_into`] for it.
    pub fn schema(&self) -> Schema {
        self.schema
    }

    /// The models, in manifest order.
    pub fn models(&self) -> &[Model] {
        &self.models
    }

    /// The model called `name`.
    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.spec.name == name)
    }
}

impl Model {
    /// The model's score for one feature row.
    ///
    /// # Errors
    /// A row that is not the bundle schema's width, or a tract failure (which the
    /// load-time check makes unexpected).
    pub fn score(&self, row: &[f32]) -> Result<f32, Error> {
        if row.len() != self.width {
            return Err(Error::Inference(format!(
                "row has {} values, expected {}",
                row.len(),
                self.width
            )));
        }
        let input = Tensor::from_shape(&[1, self.width], row)
            .map_err(|e| Error::Inference(e.to_string()))?;
        let out = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| Error::Inference(e.to_string()))?;
        let view = out
            .first()
            .ok_or_else(|| Error::Inference("no output".into()))?
            .to_plain_array_view::<f32>()
            .map_err(|e| Error::Inference(e.to_string()))?;
        view.iter()
            .next()
            .copied()
            .ok_or_else(|| Error::Inference("empty output".into()))
    }
}

/// Parses, types with a fixed `[1, width]` input and optimizes once.
fn optimize(onnx: &[u8], width: usize) -> TractResult<Arc<TypedRunnableModel>> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(onnx))?
        .with_input_fact(0, f32::fact([1, width]).into())?
        .into_optimized()?;
    if model.output_outlets()?.len() != 1 {
        return Err(TractError::msg("expected one output"));
    }
    model.into_runnable()
}

fn bundle_err(origin: &Path, reason: String) -> Error {
    Error::Bundle {
        origin: origin.display().to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_bundle_loads_and_scores() {
        let b = Bundle::builtin().unwrap();
        assert_eq!(b.manifest.feature_count, b.schema().width());
        assert!(
            b.models()
                .iter()
                .any(|m| m.spec.kind == ModelKind::Classifier)
        );
        let mut row = crate::features::Features::default();
        crate::features::extract_schema_into(
            &std::fs::read("/bin/sh").unwrap(),
            b.schema(),
            &mut row,
        );
        for m in b.models() {
            let s = m.score(&row.values).unwrap();
            assert!(s.is_finite(), "{}: {s}", m.spec.name);
            if m.spec.kind == ModelKind::Classifier {
                assert!((0.0..=1.0).contains(&s), "{s}");
            }
        }
    }

    fn copy_builtin(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("manifest.json"), BUILTIN_MANIFEST).unwrap();
        for (name, bytes) in BUILTIN_FILES {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }

    #[test]
    fn a_tampered_model_file_is_refused_by_hash() {
        let dir = std::env::temp_dir().join(format!("vigil-bundle-{}-a", std::process::id()));
        copy_builtin(&dir);
        assert!(Bundle::load_dir(&dir).is_ok());
        let file = dir.join(BUILTIN_FILES[0].0);
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, bytes).unwrap();
        let err = Bundle::load_dir(&dir).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            err.contains("SHA-256") && err.contains(BUILTIN_FILES[0].0),
            "{err}"
        );
    }

    #[test]
    fn a_block_threshold_below_the_detection_threshold_is_refused() {
        let dir = std::env::temp_dir().join(format!("vigil-bundle-{}-c", std::process::id()));
        copy_builtin(&dir);
        let builtin: Manifest = serde_json::from_slice(BUILTIN_MANIFEST).unwrap();
        let low = builtin.models[0].threshold / 2.0;
        type Edit = fn(&mut ModelSpec, f32);
        let cases: [(&str, Edit); 3] = [
            ("threshold_block must be finite and at least", |m, t| {
                m.threshold_block = Some(t);
            }),
            ("threshold_block_dynamic needs threshold_block", |m, t| {
                m.threshold_block_dynamic = Some(t);
            }),
            ("threshold_block_dynamic needs threshold_block", |m, _| {
                m.threshold_block = None;
                m.threshold_block_dynamic = Some(m.threshold);
            }),
        ];
        for (want, edit) in cases {
            let mut manifest = builtin.clone();
            edit(&mut manifest.models[0], low);
            let name = manifest.models[0].name.clone();
            std::fs::write(
                dir.join("manifest.json"),
                serde_json::to_vec(&manifest).unwrap(),
            )
            .unwrap();
            let err = Bundle::load_dir(&dir).unwrap_err().to_string();
            assert!(err.contains(&name) && err.contains(want), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_dynamic_block_threshold_applies_to_dynamic_files_only() {
        let mut spec = Bundle::builtin().unwrap().manifest.models[0].clone();
        spec.threshold_block = Some(0.99);
        spec.threshold_block_dynamic = None;
        assert_eq!(spec.block_threshold(Linkage::Dynamic), Some(0.99));
        spec.threshold_block_dynamic = Some(0.95);
        assert_eq!(spec.block_threshold(Linkage::Dynamic), Some(0.95));
        assert_eq!(spec.block_threshold(Linkage::Static), Some(0.99));
    }

    #[test]
    fn a_schema_mismatch_and_garbage_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("vigil-bundle-{}-b", std::process::id()));
        copy_builtin(&dir);
        let text = String::from_utf8(BUILTIN_MANIFEST.to_vec()).unwrap();
        let builtin = Bundle::builtin().unwrap().manifest;
        let wrong = text.replacen(
            &format!("\"feature_count\": {}", builtin.feature_count),
            "\"feature_count\": 744",
            1,
        );
        assert_ne!(wrong, text, "manifest layout changed");
        std::fs::write(dir.join("manifest.json"), wrong).unwrap();
        let err = Bundle::load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("744 columns"), "{err}");
        let unknown = text.replacen(
            &format!("\"feature_schema\": {}", builtin.feature_schema),
            "\"feature_schema\": 99",
            1,
        );
        assert_ne!(unknown, text, "manifest layout changed");
        std::fs::write(dir.join("manifest.json"), unknown).unwrap();
        let err = Bundle::load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("feature schema 99"), "{err}");
        std::fs::write(dir.join("manifest.json"), b"{not json").unwrap();
        let err = Bundle::load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("manifest.json"), "{err}");
        // A manifest that is fine, pointing at bytes that are not ONNX.
        std::fs::write(dir.join("manifest.json"), BUILTIN_MANIFEST).unwrap();
        let junk = b"this is not an onnx model".to_vec();
        let sha = hex::encode(Sha256::digest(&junk));
        std::fs::write(dir.join(BUILTIN_FILES[0].0), &junk).unwrap();
        let old = &Bundle::builtin().unwrap().manifest.models[0].sha256;
        std::fs::write(dir.join("manifest.json"), text.replace(old.as_str(), &sha)).unwrap();
        let err = Bundle::load_dir(&dir).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains(BUILTIN_FILES[0].0), "{err}");
        assert!(Bundle::load_dir(Path::new("/nonexistent/bundle")).is_err());
    }
}
