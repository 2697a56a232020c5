//! Exclusions: files and processes that are never scanned.
//!
//! Owns: the compiled path glob set and the set of excluded executables, built once
//! per config generation. Must not own: how the agent answers an excluded event (it
//! allows at once, in the reader, before the worker queue). Matching does no I/O;
//! process lookup never allocates, path matching may allocate globset's scratch
//! space on a thread's first use.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::config::Exclude;
use crate::error::Error;

/// Config key of the path patterns, for error messages.
const PATHS_KEY: &str = "exclude.paths";

/// Compiled `[exclude]` table.
#[derive(Debug, Clone)]
pub struct Exclusions {
    paths: GlobSet,
    processes: HashSet<PathBuf>,
}

impl Exclusions {
    /// Compiles the path patterns and indexes the executables.
    ///
    /// # Errors
    ///
    /// [`Error::Glob`] naming the first pattern that does not compile.
    pub fn new(cfg: &Exclude) -> Result<Exclusions, Error> {
        let mut paths = GlobSetBuilder::new();
        for pattern in &cfg.paths {
            paths.add(compile_glob(pattern).map_err(|error| glob_error(pattern, &error))?);
        }
        let paths = paths.build().map_err(|error| {
            let pattern = error.glob().unwrap_or_default().to_owned();
            glob_error(&pattern, &error)
        })?;
        Ok(Exclusions {
            paths,
            processes: cfg.processes.iter().cloned().collect(),
        })
    }

    /// True if there are no path patterns (the agent can skip path lookups).
    pub fn is_empty_paths(&self) -> bool {
        self.paths.is_empty()
    }

    /// True if there are no excluded executables.
    pub fn is_empty_processes(&self) -> bool {
        self.processes.is_empty()
    }

    /// True if `path` matches any pattern. Works on non-UTF-8 paths (matched as bytes).
    pub fn path_excluded(&self, path: &Path) -> bool {
        self.paths.is_match(path)
    }

    /// True if `exe` is exactly one of the excluded executables.
    pub fn process_excluded(&self, exe: &Path) -> bool {
        self.processes.contains(exe)
    }
}

/// Compiles one pattern the way exclusions use it: `*` and `?` never match `/`,
/// `**` matches across directories.
///
/// # Errors
///
/// The globset error if the pattern is malformed.
pub(crate) fn compile_glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).build()
}

fn glob_error(pattern: &str, error: &globset::Error) -> Error {
    Error::Glob {
        key: PATHS_KEY,
        pattern: pattern.to_owned(),
        message: error.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    fn exclusions(paths: &[&str], processes: &[&str]) -> Exclusions {
        Exclusions::new(&Exclude {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            processes: processes.iter().map(PathBuf::from).collect(),
        })
        .unwrap()
    }

    #[test]
    fn path_patterns() {
        let ex = exclusions(
            &["/proc/**", "/home/*/.cache/**", "**/*.log", "/srv/data"],
            &[],
        );
        let cases = [
            ("/proc/1/maps", true),
            ("/proc", false),
            ("/home/ann/.cache/x/y", true),
            ("/home/ann/sub/.cache/x", false),
            ("/var/log/syslog.log", true),
            ("/a.log", true),
            ("/var/log/syslog", false),
            ("/srv/data", true),
            ("/srv/data/file", false),
            ("/srv", false),
        ];
        for (path, want) in cases {
            assert_eq!(ex.path_excluded(Path::new(path)), want, "{path}");
        }
        assert!(!ex.is_empty_paths());
        assert!(ex.is_empty_processes());
    }

    #[test]
    fn star_does_not_cross_directories() {
        let ex = exclusions(&["/tmp/*.o"], &[]);
        assert!(ex.path_excluded(Path::new("/tmp/a.o")));
        assert!(!ex.path_excluded(Path::new("/tmp/dir/a.o")));
    }

    #[test]
    fn non_utf8_paths_match_as_bytes() {
        let ex = exclusions(&["/data/**"], &[]);
        let path = Path::new(OsStr::from_bytes(b"/data/caf\xe9/x"));
        assert!(ex.path_excluded(path));
        let other = Path::new(OsStr::from_bytes(b"/other/caf\xe9"));
        assert!(!ex.path_excluded(other));
    }

    #[test]
    fn processes_match_exactly() {
        let ex = exclusions(&[], &["/usr/bin/rsync"]);
        let cases = [
            ("/usr/bin/rsync", true),
            ("/usr/bin/rsync2", false),
            ("/usr/bin", false),
            ("/usr/local/bin/rsync", false),
        ];
        for (exe, want) in cases {
            assert_eq!(ex.process_excluded(Path::new(exe)), want, "{exe}");
        }
        assert!(ex.is_empty_paths());
        assert!(!ex.is_empty_processes());
    }

    #[test]
    fn bad_glob_names_pattern_and_key() {
        let error = Exclusions::new(&Exclude {
            paths: vec!["/ok".into(), "/bad/{a,b".into()],
            processes: vec![],
        })
        .unwrap_err();
        assert!(
            matches!(&error, Error::Glob { key: "exclude.paths", pattern, .. } if pattern == "/bad/{a,b"),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("`exclude.paths`: invalid glob pattern `/bad/{a,b`: "),
            "{error}"
        );
    }
}
