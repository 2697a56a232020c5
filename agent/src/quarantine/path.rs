//! Resolving a path to a held directory fd without following any symlink.
//!
//! Owns nothing beyond the fds it returns. Every quarantine and restore operation
//! names its file as (directory fd, final name) obtained here: each component is
//! opened with `openat(…, O_NOFOLLOW | O_DIRECTORY)` from the previous one, starting
//! at `/`, so a symlink swapped into any component of the path makes the walk fail
//! (`ELOOP`/`ENOTDIR`) instead of redirecting it (ClamAV CVE-2020-3350). `..` is
//! refused, so the walk can never climb out of the directory it was given.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

/// Flags for each directory of the walk.
const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Why a path could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// Not absolute, empty, ends in `/`, or contains `..`.
    #[error("not a plain absolute file path: {0:?}")]
    NotPlain(OsString),
    /// A component could not be opened as a real directory (a symlink gives
    /// `ELOOP`, a file `ENOTDIR`).
    #[error("{component:?} in {path:?}: {errno}")]
    Component {
        /// The whole path.
        path: OsString,
        /// The component that failed.
        component: OsString,
        /// Why.
        errno: Errno,
    },
}

/// Opens the directory holding `path`'s last component, component by component
/// from `/` with `O_NOFOLLOW`, and returns it with that last component.
///
/// # Errors
/// [`WalkError::NotPlain`] for relative paths, `..` or a trailing `/`;
/// [`WalkError::Component`] when a component is missing, not a directory, or a
/// symlink.
pub fn open_parent(path: &OsStr) -> Result<(OwnedFd, OsString), WalkError> {
    let bytes = path.as_bytes();
    let not_plain = || WalkError::NotPlain(path.to_owned());
    if !bytes.starts_with(b"/") || bytes.ends_with(b"/") {
        return Err(not_plain());
    }
    let parts: Vec<&[u8]> = bytes
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Err(not_plain());
    };
    if parts.iter().any(|p| *p == b"..") {
        return Err(not_plain());
    }
    let fail = |component: &[u8], errno| WalkError::Component {
        path: path.to_owned(),
        component: OsStr::from_bytes(component).to_owned(),
        errno,
    };
    let mut dir =
        openat(nix::fcntl::AT_FDCWD, "/", DIR_FLAGS, Mode::empty()).map_err(|e| fail(b"/", e))?;
    for part in dirs {
        dir = openat(&dir, OsStr::from_bytes(part), DIR_FLAGS, Mode::empty())
            .map_err(|e| fail(part, e))?;
    }
    Ok((dir, OsStr::from_bytes(last).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn refuses_relative_dotdot_and_trailing_slash() {
        for p in ["", "rel/x", "/a/../b", "/a/b/", "/"] {
            assert!(
                matches!(open_parent(OsStr::new(p)), Err(WalkError::NotPlain(_))),
                "{p:?}"
            );
        }
    }

    #[test]
    fn a_symlinked_directory_stops_the_walk() {
        let base = std::env::temp_dir().join(format!("vigil-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("real")).unwrap();
        symlink(base.join("real"), base.join("link")).unwrap();
        let (_, name) = open_parent(base.join("real/f").as_os_str()).unwrap();
        assert_eq!(name, "f");
        match open_parent(base.join("link/f").as_os_str()) {
            Err(WalkError::Component {
                component, errno, ..
            }) => {
                assert_eq!(component, "link");
                assert!(matches!(errno, Errno::ELOOP | Errno::ENOTDIR), "{errno}");
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
