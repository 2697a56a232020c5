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
use vigil_models::features;
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
    thresholds: ModelThresholds,
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
                let mut block = m.spec.threshold_block.unwrap_or(f32::INFINITY);
                if m.spec.kind == ModelKind::Classifier {
                    if let Some(t) = config.decision.model_threshold {
                        detect = t as f32;
                    }
                    if let Some(t) = config.decision.model_block_threshold {
                        block = t as f32;
                    }
                }
                // Lowest first, whichever were overridden: a raised detection
                // threshold raises the block threshold with it (a file is never
                // blocked by a score the configuration does not even detect).
                Active {
                    index,
                    thresholds: ModelThresholds {
                        suspicious: m.spec.threshold_suspicious.min(detect),
                        detect,
                        block: block.max(detect),
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
                    let r = model_reason(&model.spec.name, score, &a.thresholds);
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
    pub fn classifier(&self) -> Option<(&Model, ModelThresholds)> {
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
