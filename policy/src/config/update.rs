//! The `[update]` table: where `vigil update` fetches content from and keeps it.
//!
//! Owns: the keys of `[update]` and `[[update.sources]]`, their defaults, and the
//! parsing of a source's `verify` string into a [`Verify`]. Must not own:
//! fetching, signature checking or unpacking (the `vigil-update` crate), or what
//! the daemon loads from the update directory (also `vigil-update`).
//!
//! Why `verify` is one string (`"minisign:<key>"`, `"sha256:<digest>"`,
//! `"none"`) and not a table: the administrator copies it from the publisher's
//! page in one piece, and `"none"` has to be written out, never implied.

use std::path::PathBuf;

use serde::Deserialize;

/// Default `update.dir`.
pub const DEFAULT_UPDATE_DIR: &str = "/var/lib/vigil/updates";
/// Default `update.keep`: versions kept besides the current one.
pub const DEFAULT_UPDATE_KEEP: u32 = 3;
/// Largest accepted `update.keep`.
pub const MAX_UPDATE_KEEP: u32 = 100;
/// Default `update.timeout_s`: a whole download (connect to last byte).
pub const DEFAULT_UPDATE_TIMEOUT_S: u64 = 300;
/// Largest accepted `update.timeout_s`.
pub const MAX_UPDATE_TIMEOUT_S: u64 = 3600;
/// Default `update.max_download_size`: 512 MiB (ClamAV's main.cvd is ~170 MB).
pub const DEFAULT_MAX_DOWNLOAD_SIZE: u64 = 512 * 1024 * 1024;
/// Default `update.max_unpacked_size`: 2 GiB, the most one source may unpack to.
pub const DEFAULT_MAX_UNPACKED_SIZE: u64 = 2 * 1024 * 1024 * 1024;
/// Default `update.max_files`: members one archive may unpack.
pub const DEFAULT_MAX_FILES: u64 = 100_000;

/// The `[update]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateConfig {
    /// Versioned content directories and the `current` link; absolute.
    pub dir: PathBuf,
    /// Previous versions kept for `vigil update --rollback`, 0..=[`MAX_UPDATE_KEEP`].
    pub keep: u32,
    /// Seconds one download may take, 1..=[`MAX_UPDATE_TIMEOUT_S`].
    pub timeout_s: u64,
    /// Largest download accepted, in bytes; > 0.
    pub max_download_size: u64,
    /// Largest total an archive may unpack to, in bytes; > 0.
    pub max_unpacked_size: u64,
    /// Most members an archive may unpack; > 0.
    pub max_files: u64,
    /// The sources, fetched in order.
    pub sources: Vec<SourceConfig>,
}

impl Default for UpdateConfig {
    fn default() -> UpdateConfig {
        UpdateConfig {
            dir: PathBuf::from(DEFAULT_UPDATE_DIR),
            keep: DEFAULT_UPDATE_KEEP,
            timeout_s: DEFAULT_UPDATE_TIMEOUT_S,
            max_download_size: DEFAULT_MAX_DOWNLOAD_SIZE,
            max_unpacked_size: DEFAULT_MAX_UNPACKED_SIZE,
            max_files: DEFAULT_MAX_FILES,
            sources: Vec::new(),
        }
    }
}

/// One `[[update.sources]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique; names the source's directory in a version, so `[A-Za-z0-9._-]+`.
    pub name: String,
    /// `https://…`, or `http://…` for a source verified by signature or digest.
    pub url: String,
    /// What the URL serves.
    pub format: SourceFormat,
    /// How the download is verified before anything reads it, as written
    /// (validated at load; [`SourceConfig::verification`] parses it).
    pub verify: String,
    /// A disabled source is neither fetched nor loaded (shipped definitions stay
    /// off until the administrator accepts their licence).
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// For `yara-archive`: globs on member paths (after the archive's single
    /// top-level directory, if it has one) of the rule files to keep; empty
    /// keeps every `.yar`/`.yara` file.
    #[serde(default)]
    pub include: Vec<String>,
}

fn enabled_default() -> bool {
    true
}

impl SourceConfig {
    /// The parsed `verify` value.
    ///
    /// # Errors
    ///
    /// What is wrong with the string (a loaded [`super::Config`] never has one).
    pub fn verification(&self) -> Result<Verify, String> {
        Verify::parse(&self.verify)
    }
}

/// What a source serves (`format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    /// A `.tar.gz`, `.tgz`, `.tar` or `.zip` of YARA rule files.
    YaraArchive,
    /// One hash list: plain `sha256sum` style, ClamAV `.hsb` or `.hdb` (by the
    /// URL's extension).
    HashList,
    /// vigil's own bundle (`vigil bundle pack`): a `.tar.gz` with a manifest.
    Bundle,
}

impl SourceFormat {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::YaraArchive => "yara-archive",
            SourceFormat::HashList => "hash-list",
            SourceFormat::Bundle => "bundle",
        }
    }
}

/// How a download is verified (`verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// A minisign (Ed25519) signature at `<url>.minisig` by this public key
    /// (the base64 line of a minisign `.pub` file).
    Minisign(String),
    /// The download's SHA-256 must be this digest (lowercase hex).
    Sha256(String),
    /// Not verified: allowed over HTTPS only, and flagged in `vigil status`.
    None,
}

impl Verify {
    /// The TOML spelling of the kind: `minisign`, `sha256` or `none`.
    pub fn kind(&self) -> &'static str {
        match self {
            Verify::Minisign(_) => "minisign",
            Verify::Sha256(_) => "sha256",
            Verify::None => "none",
        }
    }
}

impl Verify {
    /// Parses `"minisign:<key>"`, `"sha256:<digest>"` or `"none"`.
    ///
    /// # Errors
    ///
    /// A message naming what was expected and what was found.
    pub fn parse(text: &str) -> Result<Verify, String> {
        if text == "none" {
            return Ok(Verify::None);
        }
        if let Some(key) = text.strip_prefix("minisign:") {
            let key = key.trim();
            let base64 = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=';
            // A minisign public key is 42 bytes: 56 base64 characters.
            if key.len() != 56 || !key.chars().all(base64) {
                return Err(format!(
                    "expected \"minisign:\" and the 56-character base64 public key (the second line of a minisign .pub file), found {text:?}"
                ));
            }
            return Ok(Verify::Minisign(key.to_owned()));
        }
        if let Some(digest) = text.strip_prefix("sha256:") {
            if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "expected \"sha256:\" and 64 hex digits, found {text:?}"
                ));
            }
            return Ok(Verify::Sha256(digest.to_ascii_lowercase()));
        }
        Err(format!(
            "expected \"minisign:<public key>\", \"sha256:<digest>\" or \"none\", found {text:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_strings_parse() {
        let key = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
        let digest = "AB".repeat(32);
        let cases: [(String, Result<Verify, &str>); 6] = [
            ("none".into(), Ok(Verify::None)),
            (format!("minisign:{key}"), Ok(Verify::Minisign(key.into()))),
            (
                format!("sha256:{digest}"),
                Ok(Verify::Sha256(digest.to_ascii_lowercase())),
            ),
            ("minisign:short".into(), Err("56-character")),
            ("sha256:abc".into(), Err("64 hex digits")),
            ("gpg:xyz".into(), Err("expected \"minisign:<public key>\"")),
        ];
        for (text, want) in cases {
            match (Verify::parse(&text), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }
}
