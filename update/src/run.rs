//! One `vigil update` run: fetch every enabled source, verify, unpack into a
//! staged version, have the caller load it exactly as the daemon would, and
//! only then switch.
//!
//! Owns: the order of those steps and what a failure at each leaves behind. A
//! source that fails (download, verification, unpacking) keeps its previous
//! content in the new version and its error is reported; a staged version that
//! does not load is discarded whole; `current` changes only by
//! [`crate::store::Store::commit`] after the check passed. Must not own: the
//! loading itself (the caller's `check`, which is the agent's generation
//! loader) or the daemon reload (the agent's command line).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use sha2::{Digest as _, Sha256};
use vigil_policy::{SourceConfig, SourceFormat, UpdateConfig, Verify};

use crate::error::Error;
use crate::fetch::{self, Fetched};
use crate::layout::{HASHES, RULES, VERSION_MANIFEST};
use crate::store::{SourceRecord, SourceState, State, Store, VersionManifest, link_tree};
use crate::unpack::{self, Limits};
use crate::{bundle, verify};

/// Largest `.minisig` file accepted.
const MAX_SIGNATURE_SIZE: u64 = 64 * 1024;
/// Hash list extensions kept from a `hash-list` URL; anything else is a plain list.
const HASH_LIST_EXTENSIONS: [&str; 6] = ["hsb", "hdb", "hsu", "hdu", "sha256", "sha256sum"];

/// What happened to one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceOutcome {
    /// New content was downloaded, verified and unpacked.
    Updated {
        /// Its version.
        version: String,
        /// Bytes downloaded.
        bytes: u64,
    },
    /// The server answered 304, or sent the same bytes again.
    NotModified,
    /// It failed; its previous content (if any) is kept.
    Failed,
}

/// The result of a run.
#[derive(Debug)]
pub struct Report {
    /// Each enabled source, in order.
    pub sources: Vec<(String, SourceOutcome)>,
    /// The version switched to, if any.
    pub switched: Option<String>,
    /// The version in force before.
    pub previous: Option<String>,
    /// Every error, per source or for the run.
    pub errors: Vec<Error>,
    /// Versions deleted by pruning.
    pub pruned: Vec<String>,
}

impl Report {
    /// Exit code for scripts: 2 on any error, else 0 if a new version is in
    /// force, else 1 (nothing new).
    pub fn exit_code(&self) -> u8 {
        if !self.errors.is_empty() {
            2
        } else if self.switched.is_some() {
            0
        } else {
            1
        }
    }
}

/// Runs an update with `config`. `check(version_dir)` must load the staged
/// version the way the daemon will and return the loader's error message.
/// Errors that stop the run before any source is tried (the store cannot be
/// opened, the lock is held) are in [`Report::errors`] too.
pub fn update(config: &UpdateConfig, check: &dyn Fn(&Path) -> Result<(), String>) -> Report {
    let mut report = Report {
        sources: Vec::new(),
        switched: None,
        previous: None,
        errors: Vec::new(),
        pruned: Vec::new(),
    };
    let store = match Store::open(&config.dir) {
        Ok(store) => store,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    let _lock = match store.lock() {
        Ok(lock) => lock,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    if let Err(e) = run(&store, config, check, &mut report) {
        report.errors.push(e);
    }
    report
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn run(
    store: &Store,
    config: &UpdateConfig,
    check: &dyn Fn(&Path) -> Result<(), String>,
    report: &mut Report,
) -> Result<(), Error> {
    let current = store.current()?;
    report.previous = current.clone();
    let previous = match &current {
        Some(version) => Some((store.version_dir(version), store.manifest(version)?)),
        None => None,
    };
    let mut state = store.state().unwrap_or_default();
    let version = store.new_version_name();
    let staged = store.staging(&version)?;
    let downloads = staged.with_extension("downloads");
    fs::create_dir_all(&downloads).map_err(Error::io(&downloads, "cannot create"))?;

    let mut manifest = VersionManifest {
        version: version.clone(),
        created: now(),
        sources: Vec::new(),
    };
    let mut changed = false;
    for source in config.sources.iter().filter(|s| s.enabled) {
        let before = previous.as_ref().and_then(|(dir, m)| {
            m.sources
                .iter()
                .find(|r| r.name == source.name && dir.join(&source.name).is_dir())
                .map(|r| (dir.join(&source.name), r.clone()))
        });
        let checked = now();
        let entry = state.sources.entry(source.name.clone()).or_default();
        entry.last_check = Some(checked.clone());
        let result = fetch_source(
            source,
            config,
            before.as_ref().map(|b| &b.1),
            &staged,
            &downloads,
        );
        let outcome = match result {
            Ok(Some(record)) => {
                changed = true;
                let outcome = SourceOutcome::Updated {
                    version: record.version.clone(),
                    bytes: record.size,
                };
                manifest.sources.push(record);
                succeeded(entry, &checked);
                outcome
            }
            Ok(None) => {
                succeeded(entry, &checked);
                carry(&before, source, &staged, &mut manifest)?;
                SourceOutcome::NotModified
            }
            Err(error) => {
                entry.last_error = Some(error.to_string());
                report.errors.push(error);
                // Whatever was half-written for it goes; its old content stays.
                let _ = fs::remove_dir_all(staged.join(&source.name));
                carry(&before, source, &staged, &mut manifest)?;
                SourceOutcome::Failed
            }
        };
        report.sources.push((source.name.clone(), outcome));
    }
    let _ = fs::remove_dir_all(&downloads);

    let finish = |state: &mut State, error: Option<String>| {
        state.last_error = error;
        store.save_state(state)
    };
    if !changed {
        let _ = fs::remove_dir_all(&staged);
        return finish(&mut state, None);
    }
    let manifest_path = staged.join(VERSION_MANIFEST);
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| Error::Invalid {
        path: manifest_path.clone(),
        message: e.to_string(),
    })?;
    fs::write(&manifest_path, text).map_err(Error::io(&manifest_path, "cannot write"))?;
    if let Err(message) = check(&staged) {
        let _ = fs::remove_dir_all(&staged);
        let error = Error::Check { message };
        finish(&mut state, Some(error.to_string()))?;
        return Err(error);
    }
    store.commit(&staged, &version)?;
    report.switched = Some(version);
    report.pruned = store.prune(config.keep as usize)?;
    finish(&mut state, None)
}

fn succeeded(entry: &mut SourceState, checked: &str) {
    entry.last_success = Some(checked.to_owned());
    entry.last_error = None;
}

/// Carries a source's previous content (hard links) and record into the new version.
fn carry(
    before: &Option<(PathBuf, SourceRecord)>,
    source: &SourceConfig,
    staged: &Path,
    manifest: &mut VersionManifest,
) -> Result<(), Error> {
    if let Some((dir, record)) = before {
        link_tree(dir, &staged.join(&source.name))?;
        manifest.sources.push(record.clone());
    }
    Ok(())
}

/// Fetches one source into `staged/<name>`. `Ok(None)`: not modified.
fn fetch_source(
    source: &SourceConfig,
    config: &UpdateConfig,
    before: Option<&SourceRecord>,
    staged: &Path,
    downloads: &Path,
) -> Result<Option<SourceRecord>, Error> {
    let verify = source.verification().map_err(|message| Error::Verify {
        source_name: source.name.clone(),
        url: source.url.clone(),
        message,
    })?;
    let fetch_error = |url: &str, message: String| Error::Fetch {
        source_name: source.name.clone(),
        url: url.to_owned(),
        message,
    };
    // Conditional only when we hold this URL's content.
    let same = before.filter(|b| b.url == source.url);
    let request = fetch::Request {
        url: &source.url,
        etag: same.and_then(|b| b.etag.as_deref()),
        last_modified: same.and_then(|b| b.last_modified.as_deref()),
        timeout: Duration::from_secs(config.timeout_s),
        max_size: config.max_download_size,
        https_only: verify == Verify::None,
    };
    let (bytes, etag, last_modified) =
        match fetch::get(&request).map_err(|m| fetch_error(&source.url, m))? {
            Fetched::NotModified if same.is_some() => return Ok(None),
            Fetched::NotModified => {
                return Err(fetch_error(
                    &source.url,
                    "the server answered 304 Not Modified to an unconditional request".to_owned(),
                ));
            }
            Fetched::Body {
                bytes,
                etag,
                last_modified,
            } => (bytes, etag, last_modified),
        };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    // A server without conditional requests sends the same bytes again.
    if same.is_some_and(|b| b.sha256 == sha256) {
        return Ok(None);
    }
    let download = downloads.join(&source.name);
    fs::write(&download, &bytes).map_err(Error::io(&download, "cannot write the download"))?;

    let signature = match &verify {
        Verify::Minisign(_) => {
            let url = format!("{}.minisig", source.url);
            let request = fetch::Request {
                url: &url,
                etag: None,
                last_modified: None,
                timeout: Duration::from_secs(config.timeout_s),
                max_size: MAX_SIGNATURE_SIZE,
                https_only: false,
            };
            match fetch::get(&request)
                .map_err(|m| fetch_error(&url, format!("the signature: {m}")))?
            {
                Fetched::Body { bytes, .. } => Some(String::from_utf8_lossy(&bytes).into_owned()),
                Fetched::NotModified => {
                    return Err(fetch_error(
                        &url,
                        "the signature: unexpected 304".to_owned(),
                    ));
                }
            }
        }
        Verify::Sha256(_) | Verify::None => None,
    };
    verify::check(&verify, &bytes, signature.as_deref()).map_err(|message| Error::Verify {
        source_name: source.name.clone(),
        url: source.url.clone(),
        message,
    })?;

    let archive_error = |e: unpack::UnpackError| Error::Archive {
        source_name: source.name.clone(),
        url: source.url.clone(),
        member: e.member,
        message: e.message,
    };
    let limits = Limits {
        max_files: config.max_files,
        max_bytes: config.max_unpacked_size,
    };
    let target = staged.join(&source.name);
    let mkdir = |dir: &Path| fs::create_dir_all(dir).map_err(Error::io(dir, "cannot create"));
    let (files, version) = match source.format {
        SourceFormat::HashList => {
            let dir = target.join(HASHES);
            mkdir(&dir)?;
            let extension = url_extension(&source.url)
                .filter(|e| HASH_LIST_EXTENSIONS.contains(&e.as_str()))
                .unwrap_or_else(|| "sha256".to_owned());
            let file = dir.join(format!("{}.{extension}", source.name));
            fs::write(&file, &bytes).map_err(Error::io(&file, "cannot write"))?;
            (1, None)
        }
        SourceFormat::YaraArchive => {
            let dir = target.join(RULES);
            mkdir(&dir)?;
            let include = include_set(&source.include).map_err(|message| Error::Archive {
                source_name: source.name.clone(),
                url: source.url.clone(),
                member: None,
                message,
            })?;
            let keep = |path: &Path| {
                let rule = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    e.eq_ignore_ascii_case("yar") || e.eq_ignore_ascii_case("yara")
                });
                rule && include.as_ref().is_none_or(|set| set.is_match(path))
            };
            let written =
                unpack::unpack(&bytes, &dir, limits, true, &keep).map_err(archive_error)?;
            if written.is_empty() {
                return Err(Error::Archive {
                    source_name: source.name.clone(),
                    url: source.url.clone(),
                    member: None,
                    message: format!(
                        "no .yar/.yara file in the archive matches `include` ({})",
                        if source.include.is_empty() {
                            "none given: every rule file".to_owned()
                        } else {
                            source.include.join(", ")
                        }
                    ),
                });
            }
            (written.len(), None)
        }
        SourceFormat::Bundle => {
            let manifest =
                bundle::check_members(&bytes, config.max_unpacked_size).map_err(|message| {
                    Error::Archive {
                        source_name: source.name.clone(),
                        url: source.url.clone(),
                        member: None,
                        message,
                    }
                })?;
            mkdir(&target)?;
            let keep = |path: &Path| path != Path::new(bundle::MANIFEST);
            let written =
                unpack::unpack(&bytes, &target, limits, false, &keep).map_err(archive_error)?;
            (written.len(), Some(manifest.version))
        }
    };
    let version = version
        .or_else(|| etag.as_ref().map(|e| e.trim_matches('"').to_owned()))
        .or_else(|| last_modified.clone())
        .unwrap_or_else(|| sha256[..12].to_owned());
    Ok(Some(SourceRecord {
        name: source.name.clone(),
        url: source.url.clone(),
        format: source.format.as_str().to_owned(),
        verify: verify.kind().to_owned(),
        version,
        size: bytes.len() as u64,
        sha256,
        etag,
        last_modified,
        fetched: now(),
        files,
    }))
}

/// The lowercase extension of a URL's path (query and fragment removed).
fn url_extension(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let name = path.rsplit('/').next()?;
    let (_, extension) = name.rsplit_once('.')?;
    Some(extension.to_ascii_lowercase())
}

/// The `include` globs (`*` does not cross `/`), or `None` for "everything".
fn include_set(patterns: &[String]) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("`include`: invalid glob pattern `{pattern}`: {}", e.kind()))?;
        set.add(glob);
    }
    set.build().map(Some).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_extensions() {
        for (url, want) in [
            ("https://h/x/eset.hsb", Some("hsb")),
            ("https://h/x/list.SHA256?token=1", Some("sha256")),
            ("https://h/x/noext", None),
        ] {
            assert_eq!(url_extension(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn include_globs_do_not_cross_directories() {
        let set = include_set(&["yara/rules/Linux_*".to_owned()])
            .unwrap()
            .unwrap();
        assert!(set.is_match("yara/rules/Linux_Trojan_X.yar"));
        assert!(!set.is_match("yara/rules/sub/Linux_X.yar"));
        assert!(!set.is_match("yara/rules/Windows_X.yar"));
        assert!(include_set(&[]).unwrap().is_none());
    }
}
