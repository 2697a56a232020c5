//! The one error type of `vigil-policy`.
//!
//! Owns: nothing but the [`Error`] enum. Every variant carries where the problem is
//! (file, 1-based line, config key or glob pattern) so that `Display` alone is a
//! complete message for the operator: `path:line: what is wrong`. Errors are built
//! while loading configuration and content; on the hot path only a failed YARA scan
//! ([`Error::RuleTimeout`] allocates nothing, [`Error::RuleScan`] is exceptional).

use std::io;
use std::path::{Path, PathBuf};
use std::string::FromUtf8Error;
use std::time::Duration;

/// Everything that can go wrong while loading configuration, exclusions, hash lists or
/// YARA rules, or while scanning with YARA rules.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },

    /// A config file is not valid TOML, or the deserializer rejected it.
    #[error("{}: {message}", at(path, *line))]
    Toml {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the problem (0 when unknown).
        line: usize,
        /// What is wrong, starting with "invalid TOML:" for syntax errors.
        message: String,
    },

    /// A config file uses a key the schema does not have.
    #[error("{}: unknown key `{key}` (expected one of {expected})", at(path, *line))]
    UnknownKey {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the key.
        line: usize,
        /// The full dotted key, e.g. `decision.moed`.
        key: String,
        /// The keys allowed at that place, comma-separated.
        expected: String,
    },

    /// A config value has the wrong TOML type.
    #[error("{}: `{key}`: expected {expected}, found {found}", at(path, *line))]
    WrongType {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the value.
        line: usize,
        /// The full dotted key, e.g. `decision.deadline_ms`.
        key: String,
        /// What the schema wants, e.g. "an integer".
        expected: String,
        /// What the file has, e.g. "a string".
        found: String,
    },

    /// A config value has the right type but is not acceptable (range, relative path, …).
    #[error("{}: `{key}`: {message}", at(path, *line))]
    InvalidValue {
        /// The config file that set the value.
        path: PathBuf,
        /// 1-based line of the value (0 when unknown).
        line: usize,
        /// The full dotted key.
        key: String,
        /// What is wrong with it.
        message: String,
    },

    /// A hash list has a malformed line.
    #[error("{}: {message}", at(path, *line))]
    HashList {
        /// The hash list file.
        path: PathBuf,
        /// 1-based line number (0 when the problem is not tied to a line).
        line: usize,
        /// What is wrong with the line.
        message: String,
    },

    /// A YARA rule file does not compile.
    #[error("{}: {message}", at(path, *line))]
    Rule {
        /// The rule file.
        path: PathBuf,
        /// 1-based line of the first error (0 when unknown).
        line: usize,
        /// yara-x's error code, title and label, e.g.
        /// `error[E009]: unknown identifier `foo`: this identifier has not been declared`.
        message: String,
    },

    /// The rules compiled, but yara-x could not turn them into native code.
    #[error(
        "the YARA rules compiled, but their native code could not be built: {message} \
         (a sandbox that forbids executable memory, such as systemd's \
         MemoryDenyWriteExecute=yes, prevents it)"
    )]
    RuleBuild {
        /// What yara-x said when it gave up.
        message: String,
    },

    /// Compiled rules handed over as bytes ([`crate::rules::from_bytes`]) could
    /// not be read back.
    #[error("compiled YARA rules could not be read back: {message}")]
    RuleBytes {
        /// What is wrong with the bytes.
        message: String,
    },

    /// A rule path names neither a file nor a directory holding `.yar`/`.yara` files.
    #[error("{}: no YARA rule files (*.yar, *.yara) found", path.display())]
    NoRules {
        /// The configured path.
        path: PathBuf,
    },

    /// A YARA scan ran out of time.
    #[error("YARA scan timed out after {} ms", timeout.as_millis())]
    RuleTimeout {
        /// The timeout that expired.
        timeout: Duration,
    },

    /// A YARA scan failed for another reason.
    #[error("YARA scan failed: {message}")]
    RuleScan {
        /// What yara-x said.
        message: String,
    },

    /// A trust store file is damaged or not a trust store.
    #[error("{}: {message}", path.display())]
    TrustStore {
        /// The store file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A package manager's query output (`rpm -qa --queryformat`) has a
    /// malformed line.
    #[error("{origin}: line {line}: {message}")]
    PackageQuery {
        /// The query, e.g. `rpm -qa --dbpath /var/lib/rpm`.
        origin: String,
        /// 1-based line of the output.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },

    /// A glob pattern in the exclusions does not compile.
    #[error("`{key}`: invalid glob pattern `{pattern}`: {message}")]
    Glob {
        /// The config key the pattern came from (`exclude.paths`).
        key: &'static str,
        /// The pattern as written.
        pattern: String,
        /// Why it does not compile.
        message: String,
    },

    /// A ClamAV database (a `.cvd`/`.cld` container or a hash file, loose or
    /// inside one) is damaged or malformed.
    #[error("{}{}: {message}", path.display(), member_suffix(member.as_deref(), *line))]
    ClamAv {
        /// The file in the database directory.
        path: PathBuf,
        /// The member inside a container (`main.hdb`), if the problem is in one.
        member: Option<String>,
        /// 1-based line in the hash file (0 when not tied to a line).
        line: usize,
        /// What is wrong.
        message: String,
    },

    /// The ClamAV index's scratch file (see `clamdb::scratch`) could not be
    /// created, written or read back while loading.
    #[error("ClamAV index: {message}")]
    ClamAvScratch {
        /// What failed, naming the directory.
        message: String,
    },
}

/// `:member:line`, `:member`, `:line` or nothing, after a ClamAV file's path.
fn member_suffix(member: Option<&str>, line: usize) -> String {
    match (member, line) {
        (Some(member), 0) => format!(":{member}"),
        (Some(member), line) => format!(":{member}:{line}"),
        (None, 0) => String::new(),
        (None, line) => format!(":{line}"),
    }
}

/// 1-based line of the first byte that is not UTF-8, for "not valid UTF-8" errors.
pub(crate) fn utf8_error_line(error: &FromUtf8Error) -> usize {
    let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
    1 + valid.iter().filter(|&&byte| byte == b'\n').count()
}

/// Renders `path:line`, or just `path` when the line is unknown (0).
fn at(path: &Path, line: usize) -> String {
    if line == 0 {
        path.display().to_string()
    } else {
        format!("{}:{line}", path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_and_key() {
        let cases: Vec<(Error, &str)> = vec![
            (
                Error::UnknownKey {
                    path: "/etc/vigil/vigil.toml".into(),
                    line: 7,
                    key: "decision.moed".into(),
                    expected: "mode, deadline_ms".into(),
                },
                "/etc/vigil/vigil.toml:7: unknown key `decision.moed` (expected one of mode, deadline_ms)",
            ),
            (
                Error::WrongType {
                    path: "/etc/vigil/vigil.toml".into(),
                    line: 3,
                    key: "decision.deadline_ms".into(),
                    expected: "an integer".into(),
                    found: "a string".into(),
                },
                "/etc/vigil/vigil.toml:3: `decision.deadline_ms`: expected an integer, found a string",
            ),
            (
                Error::InvalidValue {
                    path: "a.toml".into(),
                    line: 0,
                    key: "scan.workers".into(),
                    message: "too many".into(),
                },
                "a.toml: `scan.workers`: too many",
            ),
            (
                Error::HashList {
                    path: "x.hsb".into(),
                    line: 2,
                    message: "bad".into(),
                },
                "x.hsb:2: bad",
            ),
            (
                Error::Rule {
                    path: "/rules/a.yar".into(),
                    line: 4,
                    message: "error[E009]: unknown identifier `x`".into(),
                },
                "/rules/a.yar:4: error[E009]: unknown identifier `x`",
            ),
            (
                Error::NoRules {
                    path: "/rules".into(),
                },
                "/rules: no YARA rule files (*.yar, *.yara) found",
            ),
            (
                Error::PackageQuery {
                    origin: "rpm -qa".into(),
                    line: 3,
                    message: "bad".into(),
                },
                "rpm -qa: line 3: bad",
            ),
            (
                Error::RuleTimeout {
                    timeout: Duration::from_millis(1500),
                },
                "YARA scan timed out after 1500 ms",
            ),
            (
                Error::Glob {
                    key: "exclude.paths",
                    pattern: "[".into(),
                    message: "unclosed".into(),
                },
                "`exclude.paths`: invalid glob pattern `[`: unclosed",
            ),
            (
                Error::ClamAv {
                    path: "/var/lib/clamav/main.cvd".into(),
                    member: Some("main.hdb".into()),
                    line: 9,
                    message: "bad".into(),
                },
                "/var/lib/clamav/main.cvd:main.hdb:9: bad",
            ),
            (
                Error::ClamAv {
                    path: "/var/lib/clamav/daily.cld".into(),
                    member: None,
                    line: 0,
                    message: "truncated".into(),
                },
                "/var/lib/clamav/daily.cld: truncated",
            ),
        ];
        for (error, want) in cases {
            assert_eq!(error.to_string(), want);
        }
    }
}
