//! The update directory's layout, and what the daemon loads from it.
//!
//! ```text
//! <update.dir>/
//!   current -> versions/20261204T231000Z      the version in force (a symlink)
//!   versions/<version>/manifest.json          which sources, from where, which version
//!   versions/<version>/<source>/hashes/…      hash lists (loaded like content.hashes)
//!   versions/<version>/<source>/rules/…       YARA files (loaded like content.rules)
//!   staging/                                  downloads and versions being built
//!   state.json                                last check and last error per source
//! ```
//!
//! Owns: these names and [`Loadable`], the one answer to "what does the daemon
//! load from the update directory", which `vigil update` also uses to check a
//! staged version before switching to it. Must not own: loading itself (the
//! agent's generation does it with the same loaders as `[content]`).

use std::path::{Path, PathBuf};

use vigil_policy::UpdateConfig;

use crate::error::Error;

/// The link to the version in force.
pub const CURRENT: &str = "current";
/// The directory of versions.
pub const VERSIONS: &str = "versions";
/// The directory where downloads land and versions are built.
pub const STAGING: &str = "staging";
/// Per-source check times and errors.
pub const STATE: &str = "state.json";
/// A version's manifest.
pub const VERSION_MANIFEST: &str = "manifest.json";
/// A source's hash lists inside a version.
pub const HASHES: &str = "hashes";
/// A source's YARA files inside a version.
pub const RULES: &str = "rules";

/// What one version contributes to a generation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loadable {
    /// The version's name.
    pub version: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Hash list directories, one per enabled source that has one.
    pub hashes: Vec<PathBuf>,
    /// Rule directories, one per enabled source that has one.
    pub rules: Vec<PathBuf>,
}

/// What the daemon loads from the version directory `dir`: for each enabled
/// source of `config` in order, `<source>/hashes` and `<source>/rules` when
/// they exist. A source that is not configured or disabled contributes nothing,
/// so disabling a source and reloading drops its content.
pub fn loadable(dir: &Path, config: &UpdateConfig) -> Loadable {
    let mut out = Loadable {
        version: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        dir: dir.to_owned(),
        ..Loadable::default()
    };
    for source in config.sources.iter().filter(|s| s.enabled) {
        let base = dir.join(&source.name);
        let hashes = base.join(HASHES);
        if hashes.is_dir() {
            out.hashes.push(hashes);
        }
        let rules = base.join(RULES);
        if rules.is_dir() {
            out.rules.push(rules);
        }
    }
    out
}

/// What the daemon loads now: [`loadable`] of the version `current` points to,
/// or `None` when there is no `current` link (never updated).
///
/// # Errors
///
/// [`Error::Io`] when `current` exists but cannot be resolved (a dangling link).
pub fn current(config: &UpdateConfig) -> Result<Option<Loadable>, Error> {
    let link = config.dir.join(CURRENT);
    match std::fs::symlink_metadata(&link) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&link, "cannot read the current-version link")(e)),
        Ok(_) => {}
    }
    let dir = std::fs::canonicalize(&link).map_err(Error::io(
        &link,
        "the current-version link does not resolve (run `vigil update --rollback` or `vigil update`)",
    ))?;
    Ok(Some(loadable(&dir, config)))
}
