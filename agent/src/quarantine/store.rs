//! The quarantine store: moving a detected file in, and restoring or deleting it.
//!
//! Owns the store directory (`quarantine.dir`, 0700, root) and its items. An item is
//! two files named by its id: `<id>.bin`, the content XORed with a keystream derived
//! from a random per-item key (neither executable nor matched by other scanners),
//! and `<id>.json`, its [`Record`]. An item exists once its record does; the record
//! is written (tmp + fsync + rename + directory fsync) only after the content, so
//! `<id>.bin` without a record is an interrupted move and [`Store::open`] removes it.
//!
//! Must not own: deciding what to quarantine (the worker's decision) or who may
//! restore (the control socket). Runs on the quarantine thread only, never on the
//! hot path.
//!
//! # The move never loses the file
//! 1. Resolve the parent directory with `O_NOFOLLOW` component by component
//!    ([`open_parent`]) and open the file with `O_NOFOLLOW` from that fd; it must be
//!    the detected inode (same device and inode as the event's file).
//! 2. Copy and transform the content into the store, fsync it, write and fsync the
//!    record, fsync the store directory. The content is always copied (never
//!    renamed into the store), because it must be transformed anyway and the store
//!    is usually on another filesystem.
//! 3. Rename the original to a staging name *in its own directory*
//!    (`renameat2(RENAME_NOREPLACE)`), check that the staged file is still the
//!    detected inode (else rename it back and drop the item), unlink it and fsync
//!    the directory.
//!
//! A crash before the record's rename leaves the original in place (and a stray
//! `.bin` that the next start removes); after it, the file is in the store (and may
//! also remain at its path, or at the staging name, until unlinked). Never neither.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags, openat, renameat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, futimens};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fsync, unlinkat};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::path::{WalkError, open_parent};

/// Format version of [`Record`].
pub const RECORD_VERSION: u32 = 1;
/// Length of the keystream period (bytes) derived from an item's key.
const KEYSTREAM_LEN: usize = 4096;
/// Copy buffer size.
const COPY_CHUNK: usize = 256 * 1024;

/// Errors of store operations; each names the file or item concerned.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// The original path could not be resolved without following a symlink.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation and the file.
        what: String,
        /// Why.
        source: io::Error,
    },
    /// The path no longer names the detected file (moved, replaced, or raced).
    #[error("{0:?} is no longer the detected file (it was moved or replaced); left alone")]
    NotSameFile(OsString),
    /// The content changed since the detection.
    #[error("{0:?} changed since it was detected; left alone")]
    Changed(OsString),
    /// No item with this id.
    #[error("no quarantined item {0}")]
    NoSuchItem(String),
    /// An item id that is not 16 hex digits.
    #[error("not a quarantine item id: {0:?}")]
    BadId(String),
    /// An item's record or content is damaged.
    #[error("quarantined item {id} is damaged: {why}")]
    Corrupt {
        /// The item.
        id: String,
        /// What is wrong.
        why: String,
    },
    /// The restore target exists and overwriting was not asked for.
    #[error("{0:?} exists; restore to another path with --to, or replace it with --overwrite")]
    Exists(OsString),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(Errno) -> QuarantineError {
    let what = what.into();
    move |errno| QuarantineError::Io {
        what,
        source: io::Error::from(errno),
    }
}

fn io_err2(what: impl Into<String>) -> impl FnOnce(io::Error) -> QuarantineError {
    let what = what.into();
    move |source| QuarantineError::Io { what, source }
}

/// Seconds and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Time {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds.
    pub nsec: i64,
}

/// The metadata record of one item (`<id>.json`). Field names are stable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// [`RECORD_VERSION`].
    pub v: u32,
    /// The item id (16 hex digits).
    pub id: String,
    /// The original path's bytes, hex (paths need not be UTF-8).
    pub path_hex: String,
    /// The original path for display (lossy).
    pub path: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// `st_mode` permission bits (including set-id and sticky bits).
    pub mode: u32,
    /// Content size in bytes.
    pub size: u64,
    /// Access time.
    pub atime: Time,
    /// Modification time.
    pub mtime: Time,
    /// Status change time (informational: it cannot be restored).
    pub ctime: Time,
    /// SHA-256 of the original content, hex.
    pub sha256: String,
    /// The keystream key, hex. Empty in the copy shown to users
    /// ([`Record::public`]); never empty on disk.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// The verdict that led here.
    pub verdict: String,
    /// The detection reasons (as in the event log).
    pub reasons: serde_json::Value,
    /// When the item was stored (RFC 3339).
    pub quarantined_at: String,
    /// The same, seconds since the epoch (for retention).
    pub quarantined_unix: u64,
    /// The content generation that decided.
    pub generation: u64,
    /// The process whose access was denied.
    pub pid: i32,
    /// Its executable, if known.
    pub executable: Option<String>,
}

impl Record {
    /// The record as shown to users: everything but the key.
    pub fn public(&self) -> Record {
        Record {
            key: String::new(),
            ..self.clone()
        }
    }

    /// The original path as bytes.
    ///
    /// # Errors
    /// [`QuarantineError::Corrupt`] when `path_hex` is not hex.
    pub fn original_path(&self) -> Result<OsString, QuarantineError> {
        hex::decode(&self.path_hex)
            .map(|b| OsStr::from_bytes(&b).to_owned())
            .map_err(|e| QuarantineError::Corrupt {
                id: self.id.clone(),
                why: format!("path_hex: {e}"),
            })
    }
}

/// What the worker knew about the detected file.
#[derive(Debug, Clone)]
pub struct Detected {
    /// Its path when detected (from the event fd).
    pub path: PathBuf,
    /// `st_dev` of the event's file.
    pub dev: u64,
    /// `st_ino` of the event's file.
    pub ino: u64,
    /// SHA-256 of the content that was judged, if read.
    pub sha256: Option<[u8; 32]>,
    /// The verdict.
    pub verdict: String,
    /// The reasons, as in the event log.
    pub reasons: serde_json::Value,
    /// The generation that decided.
    pub generation: u64,
    /// The accessing process.
    pub pid: i32,
    /// Its executable.
    pub executable: Option<String>,
    /// Its uid.
    pub process_uid: Option<u32>,
}

/// An open store directory.
pub struct Store {
    dir: PathBuf,
    fd: OwnedFd,
}

impl Store {
    /// Opens (creating, 0700) the store at `dir`, tightens its mode to 0700 and
    /// removes what an interrupted move or delete left behind.
    ///
    /// # Errors
    /// When the directory cannot be created or opened, or is a symlink.
    pub fn open(dir: &Path) -> Result<Store, QuarantineError> {
        let what = || format!("quarantine store {}", dir.display());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err2(what()))?;
        let (parent, name) = open_parent(dir.as_os_str())?;
        let fd = openat(
            &parent,
            name.as_os_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err(what()))?;
        let st = fstat(&fd).map_err(io_err(what()))?;
        if st.st_mode & 0o077 != 0 {
            fchmod(&fd, Mode::from_bits_truncate(0o700)).map_err(io_err(what()))?;
        }
        let store = Store {
            dir: dir.to_path_buf(),
            fd,
        };
        store.recover()?;
        Ok(store)
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes temporary files and content without a record.
    fn recover(&self) -> Result<(), QuarantineError> {
        for name in self.names()? {
            let s = name.to_string_lossy();
            let orphan = s
                .strip_suffix(".bin")
                .is_some_and(|id| !self.dir.join(format!("{id}.json")).exists());
            if s.ends_with(".tmp") || orphan {
                tracing::info!(file = %s, "quarantine: removing what an interrupted operation left");
                let _ = unlinkat(&self.fd, name.as_os_str(), UnlinkatFlags::NoRemoveDir);
            }
        }
        let _ = fsync(&self.fd);
        Ok(())
    }

    fn names(&self) -> Result<Vec<OsString>, QuarantineError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(io_err2(format!("listing {}", self.dir.display())))?;
        Ok(entries.flatten().map(|e| e.file_name()).collect())
    }

    /// Every item's record, oldest first. Unreadable records are skipped (logged).
    ///
    /// # Errors
    /// When the directory cannot be listed.
    pub fn list(&self) -> Result<Vec<Record>, QuarantineError> {
        let mut records = Vec::new();
        for name in self.names()? {
            let s = name.to_string_lossy();
            let Some(id) = s.strip_suffix(".json") else {
                continue;
            };
            match self.record(id) {
                Ok(r) => records.push(r),
                Err(e) => crate::warn_limited!(error = %e, "quarantine: unreadable record"),
            }
        }
        records.sort_by(|a, b| (a.quarantined_unix, &a.id).cmp(&(b.quarantined_unix, &b.id)));
        Ok(records)
    }

    /// The record of item `id`.
    ///
    /// # Errors
    /// [`QuarantineError::BadId`], [`QuarantineError::NoSuchItem`] or
    /// [`QuarantineError::Corrupt`].
    pub fn record(&self, id: &str) -> Result<Record, QuarantineError> {
        check_id(id)?;
        let file = self.open_item(&format!("{id}.json"))?;
        let record: Record = serde_json::from_reader(io::BufReader::new(file)).map_err(|e| {
            QuarantineError::Corrupt {
                id: id.to_owned(),
                why: format!("record: {e}"),
            }
        })?;
        if record.id != id {
            return Err(QuarantineError::Corrupt {
                id: id.to_owned(),
                why: format!("record names item {}", record.id),
            });
        }
        Ok(record)
    }

    fn open_item(&self, name: &str) -> Result<File, QuarantineError> {
        match openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::ENOENT) => Err(QuarantineError::NoSuchItem(
                name.split('.').next().unwrap_or(name).to_owned(),
            )),
            Err(e) => Err(io_err(format!("opening {name} in the store"))(e)),
        }
    }

    /// Moves the detected file into the store (see the module doc for the order of
    /// operations) and returns its record.
    ///
    /// # Errors
    /// The path cannot be resolved without symlinks, no longer names the detected
    /// inode, changed since detection, or a system call failed. On every error the
    /// original stays where it was.
    pub fn quarantine(&self, d: &Detected) -> Result<Record, QuarantineError> {
        let path = d.path.as_os_str();
        let (parent, name) = open_parent(path)?;
        let src = match openat(
            &parent,
            name.as_os_str(),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // A symlink in the final component, or the file is gone.
            Err(Errno::ELOOP | Errno::ENOENT) => {
                return Err(QuarantineError::NotSameFile(path.to_owned()));
            }
            Err(e) => return Err(io_err(format!("opening {}", d.path.display()))(e)),
        };
        let st = fstat(&src).map_err(io_err(format!("fstat {}", d.path.display())))?;
        if !same_file(&st, d) || !is_regular(&st) {
            return Err(QuarantineError::NotSameFile(path.to_owned()));
        }
        let id = random_id()?;
        let key = random_key()?;
        let bin = format!("{id}.bin");
        let (sha, size) = self
            .write_new(&format!("{bin}.tmp"), |out| {
                transform_copy(&mut File::from(src), out, &key, Direction::Encode)
            })
            .inspect_err(|_| self.remove_quietly(&format!("{bin}.tmp")))?;
        if d.sha256.is_some_and(|want| want != sha) {
            self.remove_quietly(&format!("{bin}.tmp"));
            return Err(QuarantineError::Changed(path.to_owned()));
        }
        self.rename_in_store(&format!("{bin}.tmp"), &bin)?;
        fault("data");
        let now = SystemTime::now();
        let record = Record {
            v: RECORD_VERSION,
            id: id.clone(),
            path_hex: hex::encode(path.as_bytes()),
            path: d.path.to_string_lossy().into_owned(),
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
            size,
            atime: Time {
                sec: st.st_atime,
                nsec: st.st_atime_nsec,
            },
            mtime: Time {
                sec: st.st_mtime,
                nsec: st.st_mtime_nsec,
            },
            ctime: Time {
                sec: st.st_ctime,
                nsec: st.st_ctime_nsec,
            },
            sha256: hex::encode(sha),
            key: hex::encode(key),
            verdict: d.verdict.clone(),
            reasons: d.reasons.clone(),
            quarantined_at: humantime::format_rfc3339_seconds(now).to_string(),
            quarantined_unix: now.duration_since(UNIX_EPOCH).map_or(0, |t| t.as_secs()),
            generation: d.generation,
            pid: d.pid,
            executable: d.executable.clone(),
        };
        self.write_record(&record)
            .inspect_err(|_| self.remove_quietly(&bin))?;
        fault("stored");

        // Now take the original away, checking that it is still the same inode.
        let staging = format!(".vigil-quarantine-{id}");
        if let Err(e) = renameat2(
            &parent,
            name.as_os_str(),
            &parent,
            staging.as_str(),
            RenameFlags::RENAME_NOREPLACE,
        ) {
            self.remove_item_quietly(&id);
            return Err(match e {
                Errno::ENOENT => QuarantineError::NotSameFile(path.to_owned()),
                e => io_err(format!("renaming {} to {staging}", d.path.display()))(e),
            });
        }
        let staged = fstatat(&parent, staging.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW);
        if !staged.is_ok_and(|s| same_file(&s, d)) {
            // Raced: someone put another file under the name. Give it back.
            let _ = renameat2(
                &parent,
                staging.as_str(),
                &parent,
                name.as_os_str(),
                RenameFlags::RENAME_NOREPLACE,
            );
            self.remove_item_quietly(&id);
            return Err(QuarantineError::NotSameFile(path.to_owned()));
        }
        unlinkat(&parent, staging.as_str(), UnlinkatFlags::NoRemoveDir)
            .map_err(io_err(format!("unlinking {}", d.path.display())))?;
        fsync(&parent).map_err(io_err("fsync of the original's directory"))?;
        fault("unlinked");
        Ok(record)
    }

    /// Restores item `id` to `to` (default: its original path) with its owner, mode
    /// and times, then deletes the item. The target is created with `O_EXCL` under a
    /// temporary name and renamed into place with `RENAME_NOREPLACE`, unless
    /// `overwrite`, which replaces an existing file (never a directory).
    ///
    /// # Errors
    /// A damaged item (wrong SHA-256), a target path that cannot be resolved without
    /// symlinks, an existing target without `overwrite`, or a failed system call. On
    /// error the item stays in the store.
    pub fn restore(
        &self,
        id: &str,
        to: Option<&OsStr>,
        overwrite: bool,
    ) -> Result<(Record, OsString), QuarantineError> {
        let record = self.record(id)?;
        let target = match to {
            Some(t) => t.to_owned(),
            None => record.original_path()?,
        };
        let (parent, name) = open_parent(&target)?;
        let key = decode_key(&record)?;
        let tmp = format!(".vigil-restore-{id}");
        let out = openat(
            &parent,
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(io_err(format!("creating {tmp} next to {target:?}")))?;
        let written = (|| {
            let mut out = File::from(out);
            let mut data = self.open_item(&format!("{id}.bin"))?;
            let (sha, _) = transform_copy(&mut data, &mut out, &key, Direction::Decode)
                .map_err(io_err2(format!("writing {target:?}")))?;
            if hex::encode(sha) != record.sha256 {
                return Err(QuarantineError::Corrupt {
                    id: id.to_owned(),
                    why: "content does not match its SHA-256".to_owned(),
                });
            }
            // chown before chmod: chown clears set-id bits.
            let what = || format!("setting owner, mode and times of {target:?}");
            fchown(
                out.as_fd(),
                Some(Uid::from_raw(record.uid)),
                Some(Gid::from_raw(record.gid)),
            )
            .map_err(io_err(what()))?;
            fchmod(out.as_fd(), Mode::from_bits_truncate(record.mode)).map_err(io_err(what()))?;
            let ts = |t: Time| TimeSpec::new(t.sec, t.nsec);
            futimens(out.as_fd(), &ts(record.atime), &ts(record.mtime)).map_err(io_err(what()))?;
            out.sync_all()
                .map_err(io_err2(format!("fsync {target:?}")))?;
            Ok(())
        })();
        let placed = written.and_then(|()| {
            let flags = if overwrite {
                RenameFlags::empty()
            } else {
                RenameFlags::RENAME_NOREPLACE
            };
            renameat2(&parent, tmp.as_str(), &parent, name.as_os_str(), flags).map_err(
                |e| match e {
                    Errno::EEXIST => QuarantineError::Exists(target.clone()),
                    e => io_err(format!("renaming into {target:?}"))(e),
                },
            )
        });
        if let Err(e) = placed {
            let _ = unlinkat(&parent, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        fsync(&parent).map_err(io_err(format!("fsync of the directory of {target:?}")))?;
        self.delete(id)?;
        Ok((record, target))
    }

    /// Deletes item `id` (record first, so a crash leaves only an orphan `.bin`
    /// that the next start removes).
    ///
    /// # Errors
    /// No such item, or the unlink failed.
    pub fn delete(&self, id: &str) -> Result<(), QuarantineError> {
        check_id(id)?;
        match unlinkat(
            &self.fd,
            format!("{id}.json").as_str(),
            UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) => {}
            Err(Errno::ENOENT) => return Err(QuarantineError::NoSuchItem(id.to_owned())),
            Err(e) => return Err(io_err(format!("deleting item {id}"))(e)),
        }
        let _ = unlinkat(
            &self.fd,
            format!("{id}.bin").as_str(),
            UnlinkatFlags::NoRemoveDir,
        );
        fsync(&self.fd).map_err(io_err("fsync of the store"))?;
        Ok(())
    }

    /// Applies retention: deletes items older than `max_age_days` (0 = no limit),
    /// then the oldest while the stored content exceeds `max_total_size` bytes
    /// (0 = no limit). Returns the deleted ids.
    ///
    /// # Errors
    /// When the store cannot be listed.
    pub fn prune(
        &self,
        max_total_size: u64,
        max_age_days: u64,
        now: SystemTime,
    ) -> Result<Vec<String>, QuarantineError> {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |t| t.as_secs());
        let records = self.list()?;
        let mut total: u64 = records.iter().map(|r| r.size).sum();
        let mut deleted = Vec::new();
        for r in &records {
            let too_old = max_age_days > 0
                && now.saturating_sub(r.quarantined_unix) > max_age_days.saturating_mul(86_400);
            let too_big = max_total_size > 0 && total > max_total_size;
            if (too_old || too_big) && self.delete(&r.id).is_ok() {
                total = total.saturating_sub(r.size);
                deleted.push(r.id.clone());
            }
        }
        Ok(deleted)
    }

    /// Creates `name` in the store (O_EXCL, 0600), fills it with `fill`, fsyncs.
    fn write_new<T>(
        &self,
        name: &str,
        fill: impl FnOnce(&mut File) -> io::Result<T>,
    ) -> Result<T, QuarantineError> {
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(io_err(format!("creating {name} in the store")))?;
        let mut file = File::from(fd);
        let out = fill(&mut file).map_err(io_err2(format!("writing {name} in the store")))?;
        file.sync_all()
            .map_err(io_err2(format!("fsync of {name} in the store")))?;
        Ok(out)
    }

    fn rename_in_store(&self, from: &str, to: &str) -> Result<(), QuarantineError> {
        renameat2(&self.fd, from, &self.fd, to, RenameFlags::RENAME_NOREPLACE)
            .map_err(io_err(format!("renaming {from} in the store")))
    }

    fn write_record(&self, record: &Record) -> Result<(), QuarantineError> {
        let name = format!("{}.json", record.id);
        let tmp = format!("{name}.tmp");
        self.write_new(&tmp, |f| {
            serde_json::to_writer_pretty(&mut *f, record)?;
            f.write_all(b"\n")
        })
        .inspect_err(|_| self.remove_quietly(&tmp))?;
        self.rename_in_store(&tmp, &name)
            .inspect_err(|_| self.remove_quietly(&tmp))?;
        fsync(&self.fd).map_err(io_err("fsync of the store"))
    }

    fn remove_quietly(&self, name: &str) {
        let _ = unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir);
    }

    fn remove_item_quietly(&self, id: &str) {
        self.remove_quietly(&format!("{id}.json"));
        self.remove_quietly(&format!("{id}.bin"));
        let _ = fsync(&self.fd);
    }
}

fn same_file(st: &FileStat, d: &Detected) -> bool {
    st.st_dev == d.dev && st.st_ino == d.ino
}

fn is_regular(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
}

fn check_id(id: &str) -> Result<(), QuarantineError> {
    if id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        Ok(())
    } else {
        Err(QuarantineError::BadId(id.to_owned()))
    }
}

fn decode_key(record: &Record) -> Result<[u8; 32], QuarantineError> {
    hex::decode(&record.key)
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| QuarantineError::Corrupt {
            id: record.id.clone(),
            why: "key is not 32 bytes of hex".to_owned(),
        })
}

fn random_bytes<const N: usize>() -> Result<[u8; N], QuarantineError> {
    let mut buf = [0u8; N];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(io_err2("reading /dev/urandom"))?;
    Ok(buf)
}

fn random_id() -> Result<String, QuarantineError> {
    Ok(hex::encode(random_bytes::<8>()?))
}

fn random_key() -> Result<[u8; 32], QuarantineError> {
    random_bytes::<32>()
}

/// The keystream period for `key`: SHA-256(key ‖ block index), concatenated.
fn keystream(key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(KEYSTREAM_LEN);
    let mut i: u64 = 0;
    while out.len() < KEYSTREAM_LEN {
        let mut h = Sha256::new();
        h.update(key);
        h.update(i.to_le_bytes());
        out.extend_from_slice(&h.finalize());
        i += 1;
    }
    out
}

/// Which way [`transform_copy`] goes; the SHA-256 is always of the plain side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Plain file in, stored form out.
    Encode,
    /// Stored form in, plain file out.
    Decode,
}

/// Copies `from` to `to` XORed with `key`'s keystream; returns the SHA-256 of the
/// plain side and the length.
fn transform_copy(
    from: &mut File,
    to: &mut File,
    key: &[u8; 32],
    direction: Direction,
) -> io::Result<([u8; 32], u64)> {
    let stream = keystream(key);
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut sha = Sha256::new();
    let mut offset: u64 = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &mut buf[..n];
        if direction == Direction::Encode {
            sha.update(&*chunk);
        }
        // The period divides COPY_CHUNK, but a short read may leave any offset.
        let start = (offset % KEYSTREAM_LEN as u64) as usize;
        for (i, b) in chunk.iter_mut().enumerate() {
            *b ^= stream[(start + i) % KEYSTREAM_LEN];
        }
        if direction == Direction::Decode {
            sha.update(&*chunk);
        }
        to.write_all(chunk)?;
        offset += n as u64;
    }
    Ok((sha.finalize().into(), offset))
}

#[cfg(debug_assertions)]
fn fault(point: &str) {
    if std::env::var("VIGIL_TEST_QUARANTINE_CRASH").is_ok_and(|p| p == point) {
        tracing::warn!(point, "test fault injection: SIGKILL");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(not(debug_assertions))]
fn fault(_: &str) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;
    use std::os::unix::fs::MetadataExt;
    use std::time::Duration;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("vigil-qstore-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("files")).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn detected(path: &Path, sha256: Option<[u8; 32]>) -> Detected {
        let md = std::fs::metadata(path).unwrap();
        Detected {
            path: path.to_path_buf(),
            dev: md.dev(),
            ino: md.ino(),
            sha256,
            verdict: "malicious".into(),
            reasons: serde_json::json!([]),
            generation: 1,
            pid: 1,
            executable: None,
            process_uid: None,
        }
    }

    #[test]
    fn quarantine_then_restore_round_trips() {
        let s = Scratch::new("roundtrip");
        let store = Store::open(&s.0.join("store")).unwrap();
        let file = s.0.join("files/sample");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let sha: [u8; 32] = Sha256::digest(&data).into();
        let record = store.quarantine(&detected(&file, Some(sha))).unwrap();
        assert!(!file.exists());
        assert_eq!(record.sha256, hex::encode(sha));
        let stored = std::fs::read(s.0.join(format!("store/{}.bin", record.id))).unwrap();
        assert_eq!(stored.len(), data.len());
        assert_ne!(stored, data);
        assert_eq!(store.list().unwrap(), vec![record.clone()]);
        let (_, target) = store.restore(&record.id, None, false).unwrap();
        assert_eq!(target, file.as_os_str());
        assert_eq!(std::fs::read(&file).unwrap(), data);
        assert!(store.list().unwrap().is_empty());
        assert!(matches!(
            store.restore(&record.id, None, false),
            Err(QuarantineError::NoSuchItem(_))
        ));
    }

    #[test]
    fn a_changed_or_replaced_file_is_left_alone() {
        let s = Scratch::new("changed");
        let store = Store::open(&s.0.join("store")).unwrap();
        let file = s.0.join("files/sample");
        std::fs::write(&file, b"now").unwrap();
        let d = detected(&file, Some([0; 32]));
        assert!(matches!(
            store.quarantine(&d),
            Err(QuarantineError::Changed(_))
        ));
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, b"now").unwrap(); // same name, another inode
        let mut other = detected(&file, None);
        other.ino = other.ino.wrapping_add(1);
        assert!(matches!(
            store.quarantine(&other),
            Err(QuarantineError::NotSameFile(_))
        ));
        assert!(file.exists());
        assert!(store.list().unwrap().is_empty());
        assert!(store.names().unwrap().is_empty(), "{:?}", store.names());
    }

    #[test]
    fn prune_by_age_then_size_and_recover_orphans() {
        let s = Scratch::new("prune");
        let dir = s.0.join("store");
        let store = Store::open(&dir).unwrap();
        let mut ids = Vec::new();
        for (i, len) in [100usize, 200, 300].into_iter().enumerate() {
            let file = s.0.join(format!("files/f{i}"));
            std::fs::write(&file, vec![i as u8; len]).unwrap();
            ids.push(store.quarantine(&detected(&file, None)).unwrap().id);
            std::thread::sleep(Duration::from_millis(1100)); // distinct seconds
        }
        let now = SystemTime::now();
        // Nothing is older than a day, 600 bytes fit in 1000.
        assert!(store.prune(1000, 1, now).unwrap().is_empty());
        // Over 450 bytes: the oldest go first until it fits.
        assert_eq!(store.prune(450, 0, now).unwrap(), ids[..2].to_vec());
        // Two days later everything is too old.
        let later = now + Duration::from_secs(2 * 86_400);
        assert_eq!(store.prune(0, 1, later).unwrap(), ids[2..].to_vec());

        std::fs::write(dir.join("0123456789abcdef.bin"), b"orphan").unwrap();
        std::fs::write(dir.join("0123456789abcdef.json.tmp"), b"{").unwrap();
        drop(store);
        let store = Store::open(&dir).unwrap();
        assert!(store.names().unwrap().is_empty(), "{:?}", store.names());
    }

    #[test]
    fn non_utf8_paths_round_trip_as_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let s = Scratch::new("bytes");
        let store = Store::open(&s.0.join("store")).unwrap();
        let mut raw = s.0.join("files").into_os_string().into_vec();
        raw.extend_from_slice(b"/bad-\xff\xfe-name");
        let file = PathBuf::from(OsString::from_vec(raw.clone()));
        std::fs::write(&file, b"payload").unwrap();
        let record = store.quarantine(&detected(&file, None)).unwrap();
        assert!(!file.exists());
        assert_eq!(record.original_path().unwrap().as_bytes(), &raw[..]);
        let (_, target) = store.restore(&record.id, None, false).unwrap();
        assert_eq!(target.as_bytes(), &raw[..]);
        assert_eq!(std::fs::read(&file).unwrap(), b"payload");
    }

    #[test]
    fn ids_are_checked() {
        for bad in [
            "",
            "../x",
            "0123456789ABCDEF",
            "0123456789abcde",
            "0123456789abcdefg",
        ] {
            assert!(
                matches!(check_id(bad), Err(QuarantineError::BadId(_))),
                "{bad}"
            );
        }
        assert!(check_id("0123456789abcdef").is_ok());
    }
}
