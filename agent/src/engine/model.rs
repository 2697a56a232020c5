//! The model stage: the bundle's models run on ELF content after the hash,
//! heuristic and rule stages.
//!
//! Owns which models of the bundle run and with which thresholds (the bundle's,
//! or `decision.model_threshold` / `decision.model_block_threshold` for the
//! classifier; the verdict they lead to is `policy::verdict::model_reason`'s).
//! Loaded with a generation,
//! so a bundle that fails its checks fails the load and a reload keeps the
//! running content.

use vigil_elf::ElfView;
use vigil_models::bundle::{Bundle, Model, ModelKind};
use vigil_models::features::{self, Linkage};
use vigil_policy::verdict::{ModelThresholds, model_reason};
use vigil_policy::{Config, ModelSource, Reason};

/// The loaded model stage of one generation.
#[derive(Debug)]
pub struct ModelStage {
    bundle: Bundle,
    active: Vec<Active>,
}

#[derive(Debug)]
struct Active {
    index: usize,
    thresholds: Thresholds,
}

/// A model's thresholds as this stage applies them: the block threshold
/// depends on the file's [`Linkage`] when the bundle calibrated one per
/// linkage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// For statically linked files (and every file when the bundle has no
    /// dynamic block threshold).
    pub base: ModelThresholds,
    /// The block threshold for dynamically linked files.
    pub block_dynamic: f32,
}

impl Thresholds {
    /// The thresholds a file of `linkage` is judged by.
    pub fn for_linkage(&self, linkage: Linkage) -> ModelThresholds {
        match linkage {
            Linkage::Static => self.base,
            Linkage::Dynamic => ModelThresholds {
                block: self.block_dynamic,
                ..self.base
            },
        }
    }
}

impl ModelStage {
    /// The stage `config` asks for (`None` for `content.model = "none"`).
    ///
    /// # Errors
    /// A bundle that cannot be read or fails its checks (named in the message).
    pub fn load(config: &Config) -> Result<Option<ModelStage>, vigil_models::Error> {
        let bundle = match &config.content.model {
            ModelSource::None => return Ok(None),
            ModelSource::Builtin => Bundle::builtin()?,
            ModelSource::Dir(dir) => Bundle::load_dir(dir)?,
        };
        let active = bundle
            .models()
            .iter()
            .enumerate()
            .filter(|(_, m)| m.spec.enabled)
            .map(|(index, m)| {
                let mut detect = m.spec.threshold;
                let block_of = |l| m.spec.block_threshold(l).unwrap_or(f32::INFINITY);
                let (mut block, mut block_dynamic) =
                    (block_of(Linkage::Static), block_of(Linkage::Dynamic));
                if m.spec.kind == ModelKind::Classifier {
                    if let Some(t) = config.decision.model_threshold {
                        detect = t as f32;
                    }
                    // One configured block threshold for every linkage: the
                    // operator's number is what they get.
                    if let Some(t) = config.decision.model_block_threshold {
                        block = t as f32;
                        block_dynamic = t as f32;
                    }
                }
                // Lowest first, whichever were overridden: a raised detection
                // threshold raises the block thresholds with it (a file is never
                // blocked by a score the configuration does not even detect).
                Active {
                    index,
                    thresholds: Thresholds {
                        base: ModelThresholds {
                            suspicious: m.spec.threshold_suspicious.min(detect),
                            detect,
                            block: block.max(detect),
                        },
                        block_dynamic: block_dynamic.max(detect),
                    },
                }
            })
            .collect();
        Ok(Some(ModelStage { bundle, active }))
    }

    /// Scores ELF `content` (parsed as `elf`) with every active model whose
    /// `max_input_size` it fits and adds a reason for each score at or above
    /// its suspicious threshold (for every score with `explain`, as 0-point
    /// information).
    pub fn evaluate(
        &self,
        content: &[u8],
        elf: &ElfView<'_>,
        reasons: &mut Vec<Reason>,
        explain: bool,
    ) {
        let size = content.len() as u64;
        if !self
            .active
            .iter()
            .any(|a| size <= self.bundle.models()[a.index].spec.max_input_size)
        {
            return;
        }
        let mut row = features::Features::default();
        features::extract_with_view(content, Some(elf), self.bundle.schema(), &mut row);
        for a in &self.active {
            let model = &self.bundle.models()[a.index];
            if size > model.spec.max_input_size {
                continue;
            }
            match model.score(&row.values) {
                Ok(score) => {
                    let t = a.thresholds.for_linkage(row.linkage());
                    let r = model_reason(&model.spec.name, score, &t);
                    if explain || r.score > 0 {
                        reasons.push(r);
                    }
                }
                Err(e) => {
                    crate::warn_limited!(model = %model.spec.name, error = %e, "model failed; deciding without it")
                }
            }
        }
    }

    /// The first enabled classifier and the thresholds this stage applies to
    /// it (the configuration's overrides included), as the daemon decides
    /// with them; `None` when no classifier is enabled.
    pub fn classifier(&self) -> Option<(&Model, Thresholds)> {
        self.active.iter().find_map(|a| {
            let m = &self.bundle.models()[a.index];
            (m.spec.kind == ModelKind::Classifier).then_some((m, a.thresholds))
        })
    }

    /// The bundle, for `vigil status` and `vigil model`.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// One line for logs: bundle name, version and the models that run.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self
            .active
            .iter()
            .map(|a| self.bundle.models()[a.index].spec.name.as_str())
            .collect();
        format!(
            "{} {} ({})",
            self.bundle.manifest.name,
            self.bundle.manifest.version,
            if names.is_empty() {
                "no model enabled".to_string()
            } else {
                names.join(", ")
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_policy::score::{MALICIOUS_SCORE, SUSPICIOUS_SCORE};

    /// A copy of the shipped bundle whose classifier detects everything,
    /// blocks every dynamically linked file and no static one.
    fn bundle_blocking_dynamic_files(dir: &std::path::Path) {
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/bundle");
        std::fs::create_dir_all(dir).unwrap();
        for entry in std::fs::read_dir(&shipped).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        let path = dir.join("manifest.json");
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let classifier = manifest["models"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|m| m["kind"] == "classifier")
            .unwrap();
        classifier["threshold_suspicious"] = 0.0.into();
        classifier["threshold"] = 0.0.into();
        classifier["threshold_block"] = 2.0.into();
        classifier["threshold_block_dynamic"] = 0.0.into();
        std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    }

    /// The points the classifier gives `bytes`.
    fn points(stage: &ModelStage, bytes: &[u8]) -> u32 {
        let mut reasons = Vec::new();
        stage.evaluate(bytes, &ElfView::parse(bytes), &mut reasons, true);
        reasons
            .iter()
            .find(|r| r.id.starts_with("model.elf-gbdt"))
            .unwrap()
            .score
    }

    #[test]
    fn the_block_threshold_follows_the_files_linkage() {
        let dir = std::env::temp_dir().join(format!("vigil-model-linkage-{}", std::process::id()));
        bundle_blocking_dynamic_files(&dir);
        let mut config = Config::default();
        config.content.model = ModelSource::Dir(dir.clone());
        let stage = ModelStage::load(&config).unwrap().unwrap();
        // A bare 64-bit executable header: no interpreter, no dynamic section.
        let mut bare = vec![0u8; 64];
        bare[..4].copy_from_slice(b"\x7fELF");
        (bare[4], bare[5], bare[6]) = (2, 1, 1);
        bare[16] = 2; // ET_EXEC
        bare[18] = 62; // x86-64
        bare[20] = 1;
        bare[52] = 64; // e_ehsize
        let dynamic = std::fs::read("/bin/true").unwrap();
        assert_eq!(points(&stage, &dynamic), MALICIOUS_SCORE);
        assert_eq!(points(&stage, &bare), SUSPICIOUS_SCORE);
        // The configured block threshold applies to every linkage.
        config.decision.model_block_threshold = Some(1.0);
        let stage = ModelStage::load(&config).unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(stage.classifier().unwrap().1.block_dynamic, 1.0);
        assert_eq!(points(&stage, &dynamic), SUSPICIOUS_SCORE);
        assert_eq!(points(&stage, &bare), SUSPICIOUS_SCORE);
    }
}
