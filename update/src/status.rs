//! What `vigil update --status` and `vigil status` report about updates.
//!
//! Owns: [`UpdateStatus`], built from the configuration, the current version's
//! manifest and `state.json`. Must not own: printing (the agent does it).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use vigil_policy::UpdateConfig;

use crate::store::Store;

/// The state of one configured source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// `yara-archive`, `hash-list` or `bundle`.
    pub format: String,
    /// `minisign`, `sha256` or `none`.
    pub verify: String,
    /// `verify = "none"`: the content is not checked against a key or digest.
    pub unverified: bool,
    /// Configured on (`enabled`).
    pub enabled: bool,
    /// The version in force, if the current version holds this source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When that content was downloaded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched: Option<String>,
    /// Seconds since then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_s: Option<u64>,
    /// When it was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<String>,
    /// The last check's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Updates as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// `update.dir`.
    pub dir: String,
    /// The version in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Every version kept, oldest first.
    pub versions: Vec<String>,
    /// The last run's error that was not about one source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Each configured source.
    pub sources: Vec<SourceStatus>,
}

/// Reads the status of `config`'s store. Never fails: what cannot be read is
/// reported in `last_error`.
pub fn status(config: &UpdateConfig) -> UpdateStatus {
    let mut out = UpdateStatus {
        dir: config.dir.display().to_string(),
        current: None,
        versions: Vec::new(),
        last_error: None,
        sources: Vec::new(),
    };
    let store = Store::existing(&config.dir);
    let mut records = Vec::new();
    let mut state = crate::store::State::default();
    if let Some(store) = &store {
        let mut note = |e: crate::Error| {
            out.last_error.get_or_insert_with(|| e.to_string());
        };
        match store.current() {
            Ok(current) => out.current = current,
            Err(e) => note(e),
        }
        match store.versions() {
            Ok(versions) => out.versions = versions,
            Err(e) => note(e),
        }
        if let Some(current) = out.current.clone() {
            match store.manifest(&current) {
                Ok(manifest) => records = manifest.sources,
                Err(e) => note(e),
            }
        }
        match store.state() {
            Ok(s) => state = s,
            Err(e) => note(e),
        }
        if out.last_error.is_none() {
            out.last_error = state.last_error.clone();
        }
    }
    for source in &config.sources {
        let record = records.iter().find(|r| r.name == source.name);
        let checked = state.sources.get(&source.name);
        let fetched = record.map(|r| r.fetched.clone());
        let age_s = fetched
            .as_deref()
            .and_then(|f| humantime::parse_rfc3339(f).ok())
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .map(|d| d.as_secs());
        let verify = source
            .verification()
            .map(|v| v.kind().to_owned())
            .unwrap_or_else(|e| format!("invalid: {e}"));
        out.sources.push(SourceStatus {
            name: source.name.clone(),
            url: source.url.clone(),
            format: source.format.as_str().to_owned(),
            unverified: verify == "none",
            verify,
            enabled: source.enabled,
            version: record.map(|r| r.version.clone()),
            fetched,
            age_s,
            last_check: checked.and_then(|c| c.last_check.clone()),
            last_error: checked.and_then(|c| c.last_error.clone()),
        });
    }
    out
}
