//! A loaded rule set as bytes, for a process that must not compile rules itself.
//!
//! Compiling runs yara-x's code generator, whose code and heap then stay in the
//! compiling process's resident memory for its whole life. The daemon therefore
//! has a short-lived child of its own build compile ([`RuleSet::load`]) and send
//! back [`to_bytes`]'s output; [`from_bytes`] maps the native code without
//! compiling anything.
//!
//! The bytes hold machine code that is run as it is: they must come from
//! [`to_bytes`] of the same build, handed over directly (a pipe from a child),
//! never from a file another user can write. yara-x and wasmtime check that the
//! code was built for this engine, so a different build is an error, not a crash.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;
use std::sync::Arc;

use super::{ElfSymbols, RuleSet, RuleWarning};
use crate::error::Error;

/// First bytes of the encoding; the last one is its version.
const MAGIC: &[u8; 8] = b"vigilrs\x02";

/// `set` and the warnings of its load, as bytes for [`from_bytes`].
///
/// # Errors
/// [`Error::RuleBytes`] when yara-x cannot serialize the set.
pub fn to_bytes(set: &RuleSet, warnings: &[RuleWarning]) -> Result<Vec<u8>, Error> {
    let rules = set.rules.serialize().map_err(|e| Error::RuleBytes {
        message: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(rules.len() + 4096);
    out.extend_from_slice(MAGIC);
    put_u64(&mut out, set.files as u64);
    put_u64(&mut out, set.count as u64);
    out.extend_from_slice(&set.digest);
    out.push(set.elf_symbols.to_byte());
    let mut sources: Vec<_> = set.sources.iter().collect();
    sources.sort();
    put_u64(&mut out, sources.len() as u64);
    for (namespace, path) in sources {
        put_bytes(&mut out, namespace.as_bytes());
        put_bytes(&mut out, path.as_os_str().as_bytes());
    }
    put_u64(&mut out, warnings.len() as u64);
    for warning in warnings {
        put_bytes(&mut out, warning.path.as_os_str().as_bytes());
        put_u64(&mut out, warning.line as u64);
        put_bytes(&mut out, warning.message.as_bytes());
    }
    out.extend_from_slice(&rules);
    Ok(out)
}

/// The set and warnings [`to_bytes`] encoded (see the module docs for where the
/// bytes may come from).
///
/// # Errors
/// [`Error::RuleBytes`] naming what is wrong: not this encoding, cut short, or
/// rules yara-x refuses (another build's code).
pub fn from_bytes(bytes: &[u8]) -> Result<(RuleSet, Vec<RuleWarning>), Error> {
    let mut reader = Reader { bytes, at: 0 };
    if reader.take(MAGIC.len(), "the header")? != MAGIC {
        return Err(reader.error("not compiled rules of this version (wrong header)"));
    }
    let files = reader.usize("the file count")?;
    let count = reader.usize("the rule count")?;
    let mut digest = [0u8; 32];
    digest.copy_from_slice(reader.take(32, "the digest")?);
    let flags = reader.take(1, "the ELF symbol flags")?[0];
    let elf_symbols = ElfSymbols::from_byte(flags)
        .ok_or_else(|| reader.error(&format!("unknown ELF symbol flags {flags:#x}")))?;
    let mut sources = HashMap::new();
    for _ in 0..reader.usize("the source count")? {
        let namespace = String::from_utf8(reader.field("a namespace")?.to_vec())
            .map_err(|_| reader.error("a namespace is not UTF-8"))?;
        let path = PathBuf::from(OsStr::from_bytes(reader.field("a source path")?));
        sources.insert(namespace, path);
    }
    let mut warnings = Vec::new();
    for _ in 0..reader.usize("the warning count")? {
        let path = PathBuf::from(OsStr::from_bytes(reader.field("a warning's path")?));
        let line = reader.usize("a warning's line")?;
        let message = String::from_utf8_lossy(reader.field("a warning's message")?).into_owned();
        warnings.push(RuleWarning {
            path,
            line,
            message,
        });
    }
    let rules = yara_x::Rules::deserialize(&bytes[reader.at..]).map_err(|e| Error::RuleBytes {
        message: format!("the compiled rules: {e}"),
    })?;
    let set = RuleSet {
        rules: Arc::new(rules),
        sources: Arc::new(sources),
        files,
        count,
        digest,
        elf_symbols,
    };
    Ok((set, warnings))
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, field: &[u8]) {
    put_u64(out, field.len() as u64);
    out.extend_from_slice(field);
}

/// Reads [`to_bytes`]'s fields in order; every error names the field.
struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, len: usize, what: &str) -> Result<&'b [u8], Error> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.error(&format!("cut short in {what}")));
        };
        let field = &self.bytes[self.at..end];
        self.at = end;
        Ok(field)
    }

    fn usize(&mut self, what: &str) -> Result<usize, Error> {
        let raw = self.take(8, what)?;
        let mut le = [0u8; 8];
        le.copy_from_slice(raw);
        usize::try_from(u64::from_le_bytes(le))
            .map_err(|_| self.error(&format!("{what} is too large")))
    }

    fn field(&mut self, what: &str) -> Result<&'b [u8], Error> {
        let len = self.usize(what)?;
        self.take(len, what)
    }

    fn error(&self, message: &str) -> Error {
        Error::RuleBytes {
            message: format!("{message} (at byte {} of {})", self.at, self.bytes.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::RuleErrorPolicy;

    fn loaded() -> (RuleSet, Vec<RuleWarning>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("probe.yar"),
            "rule Probe { strings: $a = \"vigil-bytes-probe\" condition: $a }",
        )
        .unwrap();
        std::fs::write(dir.path().join("broken.yar"), "rule {").unwrap();
        let (set, warnings) =
            RuleSet::load(&[dir.path().to_path_buf()], RuleErrorPolicy::Skip, true).unwrap();
        (set, warnings, dir)
    }

    #[test]
    fn a_set_read_back_scans_and_reports_like_the_original() {
        let (set, warnings, _dir) = loaded();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let bytes = to_bytes(&set, &warnings).unwrap();
        let (back, back_warnings) = from_bytes(&bytes).unwrap();
        assert_eq!(back_warnings, warnings);
        assert_eq!(back.digest(), set.digest());
        assert_eq!(back.len(), set.len());
        assert_eq!(back.files(), set.files());
        let data = b"xx vigil-bytes-probe xx";
        let timeout = Duration::from_secs(5);
        let found = back.scan(data, timeout).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            format!("{found:?}"),
            format!("{:?}", set.scan(data, timeout).unwrap())
        );
        assert!(back.scan(b"nothing here", timeout).unwrap().is_empty());
    }

    #[test]
    fn damaged_bytes_are_a_named_error() {
        let (set, warnings, _dir) = loaded();
        let bytes = to_bytes(&set, &warnings).unwrap();
        let cases: [(&[u8], &str); 4] = [
            (b"", "cut short in the header"),
            (b"ELF\x7f and more bytes", "wrong header"),
            (&bytes[..40], "cut short in the digest"),
            (&bytes[..bytes.len() - 100], "the compiled rules"),
        ];
        for (input, expected) in cases {
            let error = from_bytes(input).unwrap_err().to_string();
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }
}
