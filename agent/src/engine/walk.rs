//! Walking trees of files for the batch commands (`eval`, `features`).
//!
//! Owns nothing. The daemon never walks: it only sees the files the kernel names.

use std::path::{Path, PathBuf};

/// Calls `f` for every regular file at or below `path`, in sorted order, without
/// following symlinks (a link cannot lead the walk out of the tree or into a
/// loop). Unreadable entries are skipped.
pub fn regular_files(path: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return;
    };
    if md.is_dir() {
        let Ok(rd) = std::fs::read_dir(path) else {
            return;
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            regular_files(&e, f);
        }
    } else if md.is_file() {
        f(path);
    }
}
