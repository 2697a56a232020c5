//! Script interpreters: the programs whose opens of a plain text file are scanned
//! as a script (`watch.interpreters`), whatever the file's first bytes.
//!
//! Owns: the compiled name patterns and the match of an executable's path against
//! them. Must not own: reading `/proc` (the agent asks with the path it read) or
//! what a script looks like ([`crate::heuristics::script::looks_like_text`]).
//!
//! Matching is by the executable's file name: `bash ./x` and `sh < ./x` run a
//! script the kernel never execs, and only the name says which program reads it
//! as code. A renamed copy of an interpreter is therefore not recognised (see
//! docs/failure-modes.md, Coverage).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::Error;

/// Config key of the patterns, for error messages.
const KEY: &str = "watch.interpreters";

/// Default `watch.interpreters`: shells, the scripting languages droppers use,
/// and busybox (whose `sh` applet is the shell of most embedded systems).
pub const DEFAULT_INTERPRETERS: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "ash",
    "zsh",
    "ksh",
    "ksh93",
    "mksh",
    "pdksh",
    "yash",
    "csh",
    "tcsh",
    "fish",
    "busybox",
    "python",
    "python[0-9]*",
    "pypy",
    "pypy[0-9]*",
    "perl",
    "perl[0-9]*",
    "ruby",
    "ruby[0-9]*",
    "php",
    "php[0-9]*",
    "php-cgi*",
    "node",
    "nodejs",
    "lua",
    "lua[0-9]*",
    "luajit",
    "tclsh",
    "tclsh[0-9]*",
    "expect",
];

/// The compiled `watch.interpreters` patterns.
#[derive(Debug, Clone)]
pub struct Interpreters {
    names: GlobSet,
}

impl Interpreters {
    /// Compiles the name patterns (globs over a file name: `python3*`).
    ///
    /// # Errors
    /// [`Error::Glob`] naming the first pattern that does not compile, or one with
    /// a `/` (a pattern matches a file name, not a path).
    pub fn new(patterns: &[String]) -> Result<Interpreters, Error> {
        let mut names = GlobSetBuilder::new();
        for pattern in patterns {
            names.add(compile(pattern).map_err(|message| Error::Glob {
                key: KEY,
                pattern: pattern.clone(),
                message,
            })?);
        }
        let names = names.build().map_err(|error| Error::Glob {
            key: KEY,
            pattern: error.glob().unwrap_or_default().to_owned(),
            message: error.kind().to_string(),
        })?;
        Ok(Interpreters { names })
    }

    /// True when no pattern is configured: no open is scanned for its opener.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// True when the file name of `exe` matches a pattern. A program replaced on
    /// disk since it started (`/usr/bin/bash (deleted)`) matches by its old name.
    pub fn matches(&self, exe: &Path) -> bool {
        let Some(name) = exe.file_name() else {
            return false;
        };
        let bytes = name.as_bytes();
        let name = OsStr::from_bytes(bytes.strip_suffix(b" (deleted)").unwrap_or(bytes));
        self.names.is_match(Path::new(name))
    }
}

/// Compiles one pattern, or says why it is not one.
pub(crate) fn compile(pattern: &str) -> Result<Glob, String> {
    if pattern.contains('/') {
        return Err("a pattern matches the program's file name, without a directory".to_owned());
    }
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|error| error.kind().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Interpreters {
        let list: Vec<String> = DEFAULT_INTERPRETERS.iter().map(|s| s.to_string()).collect();
        Interpreters::new(&list).unwrap()
    }

    #[test]
    fn default_list_matches_interpreters_and_nothing_else() {
        let interp = defaults();
        for exe in [
            "/usr/bin/bash",
            "/bin/sh",
            "/usr/bin/dash",
            "/usr/bin/python3",
            "/usr/bin/python3.11",
            "/usr/local/bin/python3.13",
            "/usr/bin/perl",
            "/usr/bin/perl5.36.0",
            "/usr/bin/php8.2",
            "/usr/bin/node",
            "/usr/bin/lua5.4",
            "/bin/busybox",
            "/usr/bin/bash (deleted)",
        ] {
            assert!(interp.matches(Path::new(exe)), "{exe}");
        }
        for exe in [
            "/usr/bin/cat",
            "/usr/bin/cp",
            "/usr/bin/gcc",
            "/usr/bin/shred",
            "/usr/bin/sha256sum",
            "/usr/bin/bashbug",
            "/usr/bin/python-config",
            "/usr/bin/perldoc",
            "/usr/lib/node_modules",
            "/",
        ] {
            assert!(!interp.matches(Path::new(exe)), "{exe}");
        }
    }

    #[test]
    fn empty_list_matches_nothing() {
        let interp = Interpreters::new(&[]).unwrap();
        assert!(interp.is_empty());
        assert!(!interp.matches(Path::new("/usr/bin/bash")));
    }

    #[test]
    fn bad_patterns_are_named() {
        for (pattern, wanted) in [
            ("/usr/bin/bash", "without a directory"),
            ("python[", "unclosed character class"),
        ] {
            let err = Interpreters::new(&[pattern.to_owned()]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("watch.interpreters"), "{text}");
            assert!(text.contains(pattern), "{text}");
            assert!(text.contains(wanted), "{text}");
        }
    }
}
