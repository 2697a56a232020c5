//! A generation: one immutable snapshot of configuration and detection content.
//!
//! Owns the loading and validation of everything a decision depends on. The daemon
//! keeps the current generation in an `ArcSwap`; each decision pins the generation
//! it started with, so a reload never changes the rules under a running scan.
//! Loading happens off the hot path (startup, SIGHUP, `vigil reload`); a failed load
//! leaves the running generation in place.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vigil_policy::{
    Allowlist, ClamDb, Config, Exclusions, ExecPolicy, HashDb, Interpreters, RuleSet, TrustStore,
};

use crate::engine::content_id::ContentId;
use crate::engine::model::ModelStage;
use crate::engine::rule_child::{self, CompiledBy};

/// Where the daemon and the CLI look for their configuration by default.
pub const DEFAULT_CONFIG: &str = "/etc/vigil/vigil.toml";

/// Errors that make a generation unloadable.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The configuration or a content file is invalid (the message names file, line
    /// and key).
    #[error(transparent)]
    Policy(#[from] vigil_policy::Error),
    /// The model bundle is unreadable or fails its checks.
    #[error(transparent)]
    Model(#[from] vigil_models::Error),
    /// The update directory's `current` link does not resolve.
    #[error(transparent)]
    Update(#[from] vigil_update::Error),
    /// A `trusted-only` rule is configured but the trust store does not exist.
    #[error(
        "{}: no trust store, but policy.profile or policy.rules use \"trusted-only\" (run `vigil trust update` first)",
        .0.display()
    )]
    NoTrustStore(PathBuf),
}

/// One immutable snapshot of configuration and content.
#[derive(Debug)]
pub struct Generation {
    /// Monotonic id, starting at 1; part of every verdict-cache key.
    pub id: u64,
    /// The validated configuration.
    pub config: Config,
    /// Where the configuration came from (`None`: built-in defaults).
    pub config_path: Option<PathBuf>,
    /// The known-bad hash database (`content.hashes`, then the update's lists).
    pub hashes: HashDb,
    /// ClamAV's hash databases (`content.clamav_db`), in a compact index.
    pub clamav: ClamDb,
    /// The update version loaded beside `[content]` (`update.dir/current`).
    pub update: Option<vigil_update::layout::Loadable>,
    /// The allow lists (`content.allow`), checked right after hashing.
    pub allow: Allowlist,
    /// Hashes both allowed and blocked, one line each naming both entries
    /// (logged at load, shown by `vigil check-config`).
    pub allow_conflicts: Vec<String>,
    /// The compiled YARA rules: the built-in ones (`content.builtin_rules`) and the
    /// configured files; empty when neither is on.
    pub rules: RuleSet,
    /// Rule files left out under `content.rules_on_error = "skip"`.
    pub rule_warnings: Vec<vigil_policy::RuleWarning>,
    /// Who compiled the rules: in the daemon a child ([`rule_child`]), unless
    /// it failed.
    pub rules_compiled_by: CompiledBy,
    /// Compiled path and process exclusions.
    pub exclusions: Exclusions,
    /// The programs whose opens of text files are scanned as scripts
    /// (`watch.interpreters`).
    pub interpreters: Interpreters,
    /// The model stage (`None` with `content.model = "none"`).
    pub model: Option<ModelStage>,
    /// The exec rules (`[policy]`: the administrator's, then the profile's).
    pub exec_policy: ExecPolicy,
    /// The package trust store (`policy.trust_db`), when it exists; required by a
    /// `trusted-only` rule.
    pub trust: Option<TrustStore>,
    /// A digest of the content above that produces verdicts (not the reload
    /// counter): what the persistent verdict cache binds its verdicts to.
    pub content_id: ContentId,
    /// How long loading took, for the log.
    pub load_ms: u128,
}

impl Generation {
    /// Loads the configuration at `path` (or, when `None`, [`DEFAULT_CONFIG`] if it
    /// exists, else the built-in defaults) and all content it names.
    ///
    /// # Errors
    /// Any invalid config key, unreadable or malformed hash list, or bad exclusion
    /// pattern; the message names the file and line.
    pub fn load(id: u64, path: Option<&Path>) -> Result<Generation, LoadError> {
        Generation::load_with_update(id, path, None)
    }

    /// As [`Generation::load`], but with the update version directory `staged`
    /// in place of `update.dir/current` (`vigil update` checks a staged
    /// version with exactly the daemon's loader before switching to it).
    ///
    /// # Errors
    /// As [`Generation::load`].
    pub fn load_with_update(
        id: u64,
        path: Option<&Path>,
        staged: Option<&Path>,
    ) -> Result<Generation, LoadError> {
        Generation::load_from(id, path, staged, None)
    }

    /// As [`Generation::load`], for the daemon: the rules are compiled by a
    /// child process ([`rule_child`]), so the daemon never runs the code
    /// generator.
    ///
    /// # Errors
    /// As [`Generation::load`].
    pub fn load_in_daemon(id: u64, path: Option<&Path>) -> Result<Generation, LoadError> {
        Generation::load_from(id, path, None, Some(Path::new(rule_child::SELF_EXE)))
    }

    /// The loader; `rule_compiler`, when given, is the program whose
    /// `compile-rules` command compiles the rules.
    fn load_from(
        id: u64,
        path: Option<&Path>,
        staged: Option<&Path>,
        rule_compiler: Option<&Path>,
    ) -> Result<Generation, LoadError> {
        let started = Instant::now();
        let (config, config_path) = load_config(path)?;
        let update = match staged {
            Some(dir) => Some(vigil_update::layout::loadable(dir, &config.update)),
            None => vigil_update::layout::current(&config.update)?,
        };
        let mut hash_paths = config.content.hashes.clone();
        let mut rule_paths = config.content.rules.clone();
        if let Some(update) = &update {
            hash_paths.extend(update.hashes.iter().cloned());
            rule_paths.extend(update.rules.iter().cloned());
        }
        let hashes = HashDb::load(&hash_paths, config.content.builtin)?;
        let clamav = match &config.content.clamav_db {
            // The index's scratch file: the daemon's cache directory, or the
            // temporary directory for a user's `vigil scan` that cannot write it.
            Some(dir) => ClamDb::load(dir, &[&config.cache.dir, &std::env::temp_dir()])?,
            None => ClamDb::empty(),
        };
        let allow = Allowlist::load(&config.content.allow)?;
        let allow_conflicts = allow
            .conflicts(&hashes)
            .iter()
            .map(|c| c.describe())
            .collect();
        let exclusions = Exclusions::new(&config.exclude)?;
        let interpreters = Interpreters::new(&config.watch.interpreters)?;
        let (on_error, builtin) = (config.content.rules_on_error, config.content.builtin_rules);
        let (rules, rule_warnings, rules_compiled_by) = match rule_compiler {
            Some(program) => {
                let loaded = rule_child::load(program, &rule_paths, on_error, builtin)?;
                (loaded.set, loaded.warnings, loaded.by)
            }
            None => {
                let (set, warnings) = RuleSet::load(&rule_paths, on_error, builtin)?;
                (set, warnings, CompiledBy::ThisProcess)
            }
        };
        let model = ModelStage::load(&config)?;
        let exec_policy = ExecPolicy::new(&config.policy)?;
        let trust = load_trust(&config, &exec_policy)?;
        let mut generation = Generation {
            id,
            model,
            exec_policy,
            trust,
            config,
            config_path,
            hashes,
            clamav,
            update,
            allow,
            allow_conflicts,
            rules,
            rule_warnings,
            rules_compiled_by,
            exclusions,
            interpreters,
            content_id: ContentId::default(),
            load_ms: 0,
        };
        generation.content_id = ContentId::of(&generation);
        generation.load_ms = started.elapsed().as_millis();
        Ok(generation)
    }

    /// Logs who compiled the rules, the ClamAV index's size and scratch file,
    /// the rule files left out of this generation (`rules_on_error = "skip"`)
    /// and every hash that is both allowed and blocked.
    pub fn log_warnings(&self) {
        if let Some((bytes, dir)) = self.clamav.scratch() {
            tracing::info!(
                entries = self.clamav.len(),
                memory_bytes = self.clamav.heap_bytes(),
                scratch_bytes = bytes,
                scratch_dir = %dir.display(),
                "ClamAV index loaded"
            );
        }
        match &self.rules_compiled_by {
            CompiledBy::ThisProcess => {}
            CompiledBy::Child { ms } => {
                tracing::info!(
                    rules = self.rules.len(),
                    ms,
                    "rules compiled by a child process"
                );
            }
            CompiledBy::Fallback(why) => tracing::warn!(
                reason = %why,
                "rules compiled in the daemon: the compiling child process failed"
            ),
        }
        for w in &self.rule_warnings {
            tracing::warn!(file = %w.path.display(), line = w.line, message = %w.message, "rule file skipped");
        }
        for conflict in &self.allow_conflicts {
            tracing::warn!(conflict = %conflict, "hash on a block list and allowed");
        }
    }

    /// A one-line description for logs and `STATUS=`.
    pub fn summary(&self) -> String {
        format!(
            "generation {} mode={} hashes={} clamav={} update={} allowed={} rules={} heuristics={} model={} profile={} exec_rules={} trusted_files={} config={}",
            self.id,
            mode_str(self.config.decision.mode),
            self.hashes.len(),
            self.clamav.len(),
            self.update.as_ref().map_or("none", |u| u.version.as_str()),
            self.allow.len(),
            self.rules.len(),
            if self.config.heuristics.enabled {
                "on"
            } else {
                "off"
            },
            self.model
                .as_ref()
                .map_or_else(|| "none".to_string(), ModelStage::summary),
            self.exec_policy.profile().as_str(),
            self.exec_policy.len(),
            self.trust.as_ref().map_or(0, TrustStore::len),
            self.config_path.as_deref().map_or_else(
                || "<built-in defaults>".to_string(),
                |p| p.display().to_string()
            ),
        )
    }
}

/// Loads `policy.trust_db`. A missing store is no store, unless a `trusted-only`
/// rule needs one: then (as for a damaged store) loading fails, so a daemon never
/// starts, or reloads into, a policy that would deny every exec.
fn load_trust(config: &Config, policy: &ExecPolicy) -> Result<Option<TrustStore>, LoadError> {
    let path = &config.policy.trust_db;
    match TrustStore::load(path) {
        Ok(store) => Ok(Some(store)),
        Err(vigil_policy::Error::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound && !policy.uses_trust() =>
        {
            Ok(None)
        }
        Err(vigil_policy::Error::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Err(LoadError::NoTrustStore(path.clone()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads the configuration a command should use. An explicit path must exist; the
/// default path may be absent (built-in defaults then).
///
/// # Errors
/// As [`Config::load`].
pub fn load_config(path: Option<&Path>) -> Result<(Config, Option<PathBuf>), vigil_policy::Error> {
    match path {
        Some(p) => Ok((Config::load(p)?, Some(p.to_path_buf()))),
        None => {
            let default = Path::new(DEFAULT_CONFIG);
            if default.exists() {
                Ok((Config::load(default)?, Some(default.to_path_buf())))
            } else {
                Ok((Config::default(), None))
            }
        }
    }
}

/// Stable name of a mode.
pub fn mode_str(mode: vigil_policy::Mode) -> &'static str {
    match mode {
        vigil_policy::Mode::Enforce => "enforce",
        vigil_policy::Mode::Audit => "audit",
    }
}
