//! Line parsers for the hash list formats: ClamAV `.hsb`/`.hdb` (and the
//! false-positive lists `.sfp`/`.fp` in the same line formats) and plain SHA-256 lists.
//!
//! Owns: the syntax of one line of each format and its error messages. Must not own:
//! the database, file reading or line numbering (`hashdb.rs` adds file and line to
//! the message).

use std::borrow::Cow;
use std::path::Path;

/// The format of a hash list file, chosen from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// ClamAV `HASH:SIZE:NAME[:FLEVEL]`, SHA-256 (`.hsb`, and the unofficial `.hsu`).
    Hsb,
    /// ClamAV `MD5:SIZE:NAME[:FLEVEL]` (`.hdb`, and the unofficial `.hdu`).
    Hdb,
    /// `<sha256> [name]` per line, as `sha256sum` writes.
    Plain,
}

impl Format {
    /// The format for a file name. ClamAV's false-positive lists use the same
    /// line formats: `.sfp` as `.hsb`, `.fp` as `.hdb`.
    pub(crate) fn of(path: &Path) -> Format {
        let extension = path.extension().and_then(|ext| ext.to_str()).unwrap_or("");
        let is = |name: &str| extension.eq_ignore_ascii_case(name);
        if is("hsb") || is("hsu") || is("sfp") {
            Format::Hsb
        } else if is("hdb") || is("hdu") || is("fp") {
            Format::Hdb
        } else {
            Format::Plain
        }
    }

    /// True for ClamAV's false-positive lists (`.fp`, `.sfp`): files to allow.
    pub(crate) fn is_allow_list(path: &Path) -> bool {
        path.extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| ext.eq_ignore_ascii_case("fp") || ext.eq_ignore_ascii_case("sfp"))
    }
}

/// A digest as read from a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Digest {
    /// SHA-256.
    Sha256([u8; 32]),
    /// MD5.
    Md5([u8; 16]),
}

/// One parsed entry line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    pub(crate) digest: Digest,
    /// Exact file size the entry requires; `None` = any size.
    pub(crate) size: Option<u64>,
    pub(crate) name: Cow<'a, str>,
}

/// Parses one line; `Ok(None)` for blank and `#` comment lines.
///
/// # Errors
///
/// A message saying what is wrong with the line (without file or line number).
pub(crate) fn parse_line(format: Format, line: &str) -> Result<Option<Line<'_>>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    match format {
        Format::Hsb => clamav(line, |hash| match hash.len() {
            40 => Err("SHA-1 hashes are not supported; use SHA-256".to_owned()),
            _ => decode::<32>(hash, "a SHA-256").map(Digest::Sha256),
        }),
        Format::Hdb => clamav(line, |hash| decode::<16>(hash, "an MD5").map(Digest::Md5)),
        Format::Plain => plain(line).map(Some),
    }
}

/// `HASH:SIZE:NAME[:FLEVEL]`.
fn clamav(
    line: &str,
    digest: impl Fn(&str) -> Result<Digest, String>,
) -> Result<Option<Line<'_>>, String> {
    let mut fields = line.split(':');
    let (Some(hash), Some(size), Some(name), flevel, None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        let count = line.split(':').count();
        return Err(format!(
            "expected HASH:SIZE:NAME[:FLEVEL], found {count} field{}",
            if count == 1 { "" } else { "s" }
        ));
    };
    let digest = digest(hash)?;
    let size = match size {
        "*" => None,
        size => Some(
            size.parse::<u64>()
                .map_err(|_| format!("expected the file size in bytes or `*`, found `{size}`"))?,
        ),
    };
    if name.is_empty() {
        return Err("missing signature name".to_owned());
    }
    if let Some(flevel) = flevel {
        if flevel.parse::<u32>().is_err() {
            return Err(format!(
                "expected a functionality level (a decimal integer), found `{flevel}`"
            ));
        }
    }
    Ok(Some(Line {
        digest,
        size,
        name: Cow::Borrowed(name),
    }))
}

/// `<sha256> [name]`, the name optionally prefixed by `*` (sha256sum binary mode).
fn plain(line: &str) -> Result<Line<'_>, String> {
    let (hash, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    // sha256sum prefixes the line with `\` when it escaped the file name.
    let hash = hash.strip_prefix('\\').unwrap_or(hash);
    let digest = decode::<32>(hash, "a SHA-256")?;
    let rest = rest.trim_start();
    let name = rest.strip_prefix('*').unwrap_or(rest).trim();
    let name = if name.is_empty() {
        Cow::Owned(format!("sha256:{}", hash[..12].to_ascii_lowercase()))
    } else {
        Cow::Borrowed(name)
    };
    Ok(Line {
        digest: Digest::Sha256(digest),
        size: None,
        name,
    })
}

/// Decodes exactly `N` bytes of case-insensitive hex.
fn decode<const N: usize>(hash: &str, what: &str) -> Result<[u8; N], String> {
    let digits = 2 * N;
    let count = hash.chars().count();
    if count != digits {
        return Err(format!(
            "expected {digits} hex digits for {what}, found {count} character{}",
            if count == 1 { "" } else { "s" }
        ));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(hash, &mut out).map_err(|error| match error {
        hex::FromHexError::InvalidHexCharacter { c, index } => format!(
            "expected {digits} hex digits for {what}, found {c:?} at position {}",
            index + 1
        ),
        hex::FromHexError::OddLength | hex::FromHexError::InvalidStringLength => {
            format!("expected {digits} hex digits for {what}")
        }
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "275A021BBFB6489E54D471899F7DB9D1663FC695EC2FE2A2C4538AABF651FD0F";
    const MD5: &str = "44d88612fea8a8f36de82e1278abb02f";

    fn sha() -> Digest {
        let mut out = [0; 32];
        hex::decode_to_slice(SHA, &mut out).unwrap();
        Digest::Sha256(out)
    }

    fn md5() -> Digest {
        let mut out = [0; 16];
        hex::decode_to_slice(MD5, &mut out).unwrap();
        Digest::Md5(out)
    }

    fn ok(digest: Digest, size: Option<u64>, name: &str) -> Result<Option<Line<'static>>, String> {
        Ok(Some(Line {
            digest,
            size,
            name: Cow::Owned(name.to_owned()),
        }))
    }

    #[test]
    fn format_from_extension() {
        let cases = [
            ("a.hsb", Format::Hsb),
            ("a.HSB", Format::Hsb),
            ("a.hsu", Format::Hsb),
            ("a.hdb", Format::Hdb),
            ("a.hdu", Format::Hdb),
            ("a.sfp", Format::Hsb),
            ("a.FP", Format::Hdb),
            ("a.txt", Format::Plain),
            ("SHA256SUMS", Format::Plain),
            ("dir.hsb/list", Format::Plain),
        ];
        for (name, format) in cases {
            assert_eq!(Format::of(Path::new(name)), format, "{name}");
        }
    }

    #[test]
    fn lines_table() {
        let sha_short = &SHA[..63];
        let cases: Vec<(Format, String, Result<Option<Line<'static>>, String>)> = vec![
            (Format::Hsb, String::new(), Ok(None)),
            (Format::Hsb, "   ".into(), Ok(None)),
            (Format::Hsb, "# comment".into(), Ok(None)),
            (
                Format::Hsb,
                format!("{SHA}:68:Eicar"),
                ok(sha(), Some(68), "Eicar"),
            ),
            (
                Format::Hsb,
                format!("{SHA}:*:Eicar:73"),
                ok(sha(), None, "Eicar"),
            ),
            (
                Format::Hsb,
                format!("  {SHA}:*:Eicar:73\r"),
                ok(sha(), None, "Eicar"),
            ),
            (
                Format::Hsb,
                format!("{sha_short}:*:X"),
                Err("expected 64 hex digits for a SHA-256, found 63 characters".into()),
            ),
            (
                Format::Hsb,
                format!("{}:*:X", "a".repeat(40)),
                Err("SHA-1 hashes are not supported; use SHA-256".into()),
            ),
            (
                Format::Hsb,
                format!("{}g:*:X", &SHA[..63]),
                Err("expected 64 hex digits for a SHA-256, found 'g' at position 64".into()),
            ),
            (
                Format::Hsb,
                format!("{SHA}:12k:X"),
                Err("expected the file size in bytes or `*`, found `12k`".into()),
            ),
            (
                Format::Hsb,
                format!("{SHA}:*:"),
                Err("missing signature name".into()),
            ),
            (
                Format::Hsb,
                format!("{SHA}:*"),
                Err("expected HASH:SIZE:NAME[:FLEVEL], found 2 fields".into()),
            ),
            (
                Format::Hsb,
                format!("{SHA}:*:X:73:80"),
                Err("expected HASH:SIZE:NAME[:FLEVEL], found 5 fields".into()),
            ),
            (
                Format::Hsb,
                format!("{SHA}:*:X:new"),
                Err("expected a functionality level (a decimal integer), found `new`".into()),
            ),
            (
                Format::Hdb,
                format!("{MD5}:68:Eicar"),
                ok(md5(), Some(68), "Eicar"),
            ),
            (
                Format::Hdb,
                format!("{}:*:E", MD5.to_uppercase()),
                ok(md5(), None, "E"),
            ),
            (
                Format::Hdb,
                format!("{SHA}:68:Eicar"),
                Err("expected 32 hex digits for an MD5, found 64 characters".into()),
            ),
            (
                Format::Plain,
                SHA.into(),
                ok(sha(), None, "sha256:275a021bbfb6"),
            ),
            (
                Format::Plain,
                format!("{SHA}  file name"),
                ok(sha(), None, "file name"),
            ),
            (
                Format::Plain,
                format!("{SHA} *bin.exe"),
                ok(sha(), None, "bin.exe"),
            ),
            (
                Format::Plain,
                format!("\t{SHA}\tname \t"),
                ok(sha(), None, "name"),
            ),
            (
                Format::Plain,
                format!("\\{SHA}  a\\nb"),
                ok(sha(), None, "a\\nb"),
            ),
            (
                Format::Plain,
                format!("{SHA} *"),
                ok(sha(), None, "sha256:275a021bbfb6"),
            ),
            (Format::Plain, "  # comment".into(), Ok(None)),
            (
                Format::Plain,
                format!("{SHA}:68:X"),
                Err("expected 64 hex digits for a SHA-256, found 69 characters".into()),
            ),
            (
                Format::Plain,
                "é".into(),
                Err("expected 64 hex digits for a SHA-256, found 1 character".into()),
            ),
        ];
        for (format, line, want) in cases {
            assert_eq!(parse_line(format, &line), want, "{format:?} {line:?}");
        }
    }
}
