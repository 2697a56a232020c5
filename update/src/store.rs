//! The versioned store under `update.dir`: versions, the `current` link, the
//! staging area, pruning, rollback, the run lock and the per-source state file.
//!
//! Owns: every change to the update directory. The switch is a rename of a new
//! symlink over `current` (atomic: a reader sees the old version or the new one,
//! never neither); versions are built in `staging/` and renamed into
//! `versions/` whole. Must not own: what goes into a version (`run.rs`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::layout::{CURRENT, STAGING, STATE, VERSION_MANIFEST, VERSIONS};

/// One source as recorded in a version's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// The source's name.
    pub name: String,
    /// Where it was fetched from.
    pub url: String,
    /// `yara-archive`, `hash-list` or `bundle`.
    pub format: String,
    /// `minisign`, `sha256` or `none`.
    pub verify: String,
    /// The content's version: a bundle's own, else the ETag, Last-Modified or
    /// the download's SHA-256 prefix.
    pub version: String,
    /// The download's SHA-256.
    pub sha256: String,
    /// The download's size in bytes.
    #[serde(default)]
    pub size: u64,
    /// The response's ETag, sent back as `If-None-Match`.
    #[serde(default)]
    pub etag: Option<String>,
    /// The response's Last-Modified, sent back as `If-Modified-Since`.
    #[serde(default)]
    pub last_modified: Option<String>,
    /// When it was downloaded (RFC 3339).
    pub fetched: String,
    /// Files unpacked.
    pub files: usize,
}

/// A version's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VersionManifest {
    /// The version's name.
    pub version: String,
    /// When it was built (RFC 3339).
    pub created: String,
    /// The sources it holds.
    pub sources: Vec<SourceRecord>,
}

/// The last check of one source.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SourceState {
    /// When it was last checked (RFC 3339).
    #[serde(default)]
    pub last_check: Option<String>,
    /// When a check last succeeded (new content or not modified).
    #[serde(default)]
    pub last_success: Option<String>,
    /// The last check's error, if it failed.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct State {
    /// By source name.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceState>,
    /// The last run's error that was not about one source (e.g. a failed check).
    #[serde(default)]
    pub last_error: Option<String>,
}

/// The update directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directories cannot be created.
    pub fn open(dir: &Path) -> Result<Store, Error> {
        for sub in [VERSIONS, STAGING] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(Error::io(&path, "cannot create"))?;
        }
        Ok(Store {
            dir: dir.to_owned(),
        })
    }

    /// Opens the store at `dir` for reading only; `None` if it does not exist.
    pub fn existing(dir: &Path) -> Option<Store> {
        dir.join(VERSIONS).is_dir().then(|| Store {
            dir: dir.to_owned(),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The version `current` points to, if any.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the link exists but cannot be read.
    pub fn current(&self) -> Result<Option<String>, Error> {
        let link = self.dir.join(CURRENT);
        match fs::read_link(&link) {
            Ok(target) => Ok(target
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&link, "cannot read the current-version link")(e)),
        }
    }

    /// Every version, oldest first (names sort by time).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `versions/` cannot be listed.
    pub fn versions(&self) -> Result<Vec<String>, Error> {
        let dir = self.dir.join(VERSIONS);
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::io(&dir, "cannot list"))? {
            let entry = entry.map_err(Error::io(&dir, "cannot list"))?;
            if entry.path().is_dir() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The directory of a version.
    pub fn version_dir(&self, version: &str) -> PathBuf {
        self.dir.join(VERSIONS).join(version)
    }

    /// The manifest of a version.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Invalid`] if it cannot be read or parsed.
    pub fn manifest(&self, version: &str) -> Result<VersionManifest, Error> {
        let path = self.version_dir(version).join(VERSION_MANIFEST);
        let text = fs::read_to_string(&path).map_err(Error::io(&path, "cannot read"))?;
        serde_json::from_str(&text).map_err(|e| Error::Invalid {
            path,
            message: format!("malformed version manifest: {e}"),
        })
    }

    /// A fresh, empty staging directory for `version`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be made.
    pub fn staging(&self, version: &str) -> Result<PathBuf, Error> {
        let dir = self.dir.join(STAGING).join(version);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(Error::io(&dir, "cannot clear"))?;
        }
        fs::create_dir_all(&dir).map_err(Error::io(&dir, "cannot create"))?;
        Ok(dir)
    }

    /// A name for a new version: the UTC time, with `-2`, `-3`… if taken.
    pub fn new_version_name(&self) -> String {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let base: String = now.chars().filter(|c| *c != '-' && *c != ':').collect();
        let taken = |name: &str| {
            self.version_dir(name).exists() || self.dir.join(STAGING).join(name).exists()
        };
        if !taken(&base) {
            return base;
        }
        (2..)
            .map(|n| format!("{base}-{n}"))
            .find(|name| !taken(name))
            .unwrap_or(base)
    }

    /// Moves a staged version into `versions/` and points `current` at it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the rename or the switch fails (the staged directory is
    /// then left for the next run to clear).
    pub fn commit(&self, staged: &Path, version: &str) -> Result<(), Error> {
        let target = self.version_dir(version);
        fs::rename(staged, &target)
            .map_err(Error::io(&target, "cannot move the new version in"))?;
        self.switch(version)
    }

    /// Points `current` at `version`, atomically.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the link cannot be made or renamed.
    pub fn switch(&self, version: &str) -> Result<(), Error> {
        let temp = self.dir.join(format!(".{CURRENT}.{}", std::process::id()));
        let _ = fs::remove_file(&temp);
        let relative = Path::new(VERSIONS).join(version);
        std::os::unix::fs::symlink(&relative, &temp)
            .map_err(Error::io(&temp, "cannot create a link"))?;
        let link = self.dir.join(CURRENT);
        fs::rename(&temp, &link).map_err(Error::io(&link, "cannot switch the current-version link"))
    }

    /// Deletes versions beyond the `keep` newest besides the current one.
    /// Returns the names deleted.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if listing or deleting fails.
    pub fn prune(&self, keep: usize) -> Result<Vec<String>, Error> {
        let current = self.current()?;
        let others: Vec<String> = self
            .versions()?
            .into_iter()
            .filter(|v| Some(v) != current.as_ref())
            .collect();
        let excess = others.len().saturating_sub(keep);
        let mut deleted = Vec::new();
        for version in others.into_iter().take(excess) {
            let dir = self.version_dir(&version);
            fs::remove_dir_all(&dir).map_err(Error::io(&dir, "cannot delete an old version"))?;
            deleted.push(version);
        }
        Ok(deleted)
    }

    /// Points `current` at the version before it. Returns (from, to).
    ///
    /// # Errors
    ///
    /// [`Error::NoPrevious`] if there is none; [`Error::Io`] as [`Store::switch`].
    pub fn rollback(&self) -> Result<(Option<String>, String), Error> {
        let current = self.current()?;
        let versions = self.versions()?;
        let previous = match &current {
            Some(c) => versions.iter().rev().find(|v| *v < c).cloned(),
            None => None,
        };
        let Some(previous) = previous else {
            return Err(Error::NoPrevious {
                dir: self.dir.clone(),
                current,
            });
        };
        self.switch(&previous)?;
        Ok((current, previous))
    }

    /// Reads `state.json` (empty if absent).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Invalid`] if it cannot be read or parsed.
    pub fn state(&self) -> Result<State, Error> {
        let path = self.dir.join(STATE);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| Error::Invalid {
                path,
                message: format!("malformed state file: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(Error::io(&path, "cannot read")(e)),
        }
    }

    /// Writes `state.json` (through a temporary file and a rename).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be written.
    pub fn save_state(&self, state: &State) -> Result<(), Error> {
        let path = self.dir.join(STATE);
        let temp = self.dir.join(format!(".{STATE}.{}", std::process::id()));
        let text = serde_json::to_string_pretty(state).map_err(|e| Error::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        fs::write(&temp, text).map_err(Error::io(&temp, "cannot write"))?;
        fs::rename(&temp, &path).map_err(Error::io(&path, "cannot replace"))
    }

    /// Takes the run lock (`staging/.lock`, holding the pid), so a timer run and
    /// a manual run do not build versions at once. A lock left by a process that
    /// no longer exists is taken over.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the pid that holds it; [`Error::Io`].
    pub fn lock(&self) -> Result<Lock, Error> {
        let path = self.dir.join(STAGING).join(".lock");
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    use std::io::Write as _;
                    file.write_all(std::process::id().to_string().as_bytes())
                        .map_err(Error::io(&path, "cannot write the lock"))?;
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = fs::read_to_string(&path).unwrap_or_default();
                    let alive = holder
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                    if alive {
                        return Err(Error::Invalid {
                            path,
                            message: format!(
                                "another vigil update is running (pid {})",
                                holder.trim()
                            ),
                        });
                    }
                    fs::remove_file(&path)
                        .map_err(Error::io(&path, "cannot remove a stale lock"))?;
                }
                Err(e) => return Err(Error::io(&path, "cannot create the lock")(e)),
            }
        }
        Err(Error::Invalid {
            path,
            message: "cannot take the lock".to_owned(),
        })
    }
}

/// The run lock; released when dropped.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Copies a directory tree by hard links (a source that did not change is
/// carried into the new version without copying its bytes).
///
/// # Errors
///
/// [`Error::Io`] if a link or directory cannot be made.
pub fn link_tree(from: &Path, to: &Path) -> Result<(), Error> {
    fs::create_dir_all(to).map_err(Error::io(to, "cannot create"))?;
    for entry in fs::read_dir(from).map_err(Error::io(from, "cannot list"))? {
        let entry = entry.map_err(Error::io(from, "cannot list"))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(Error::io(&source, "cannot stat"))?;
        if kind.is_dir() {
            link_tree(&source, &target)?;
        } else if kind.is_file() {
            fs::hard_link(&source, &target).map_err(Error::io(&target, "cannot link"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_prune_and_rollback() {
        let dir = std::env::temp_dir().join(format!("vigil-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.current().unwrap(), None);
        assert!(matches!(store.rollback(), Err(Error::NoPrevious { .. })));
        for version in ["v1", "v2", "v3", "v4"] {
            let staged = store.staging(version).unwrap();
            fs::write(staged.join("f"), version).unwrap();
            store.commit(&staged, version).unwrap();
        }
        assert_eq!(store.current().unwrap().as_deref(), Some("v4"));
        assert_eq!(fs::read_to_string(dir.join("current/f")).unwrap(), "v4");
        assert_eq!(store.prune(2).unwrap(), ["v1"]);
        assert_eq!(store.rollback().unwrap(), (Some("v4".into()), "v3".into()));
        assert_eq!(fs::read_to_string(dir.join("current/f")).unwrap(), "v3");
        // Pruning never deletes the current version.
        assert_eq!(store.prune(0).unwrap(), ["v2", "v4"]);
        assert_eq!(store.versions().unwrap(), ["v3"]);
        let lock = store.lock().unwrap();
        assert!(store.lock().is_err());
        drop(lock);
        assert!(store.lock().is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }
}
