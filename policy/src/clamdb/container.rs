//! ClamAV's database containers: `.cvd` (as published) and `.cld` (as freshclam
//! keeps it after applying incremental updates).
//!
//! Owns: the 512-byte header (`ClamAV-VDB:time:version:sigs:flevel:md5:dsig:builder:stime`,
//! padded with spaces), the body that follows it (a gzipped tar, or a plain tar:
//! freshclam writes `.cld` files uncompressed unless `CompressLocalDatabase`),
//! and the MD5 of a `.cvd` body, which the header carries. Must not own: which
//! members are loaded or how their lines are parsed (`clamdb.rs`).
//!
//! The header's digital signature (`dsig`, by Cisco-Talos's key) is not checked:
//! freshclam checked it when it downloaded the file, and vigil trusts the
//! directory freshclam owns. The MD5 still catches a truncated or damaged body.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use md5::{Digest as _, Md5};

/// Size of the header that precedes the tar.
pub const HEADER_SIZE: usize = 512;

/// What the header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The database version (`daily` grows by one per published update).
    pub version: u64,
    /// Number of signatures the publisher counted.
    pub signatures: u64,
    /// MD5 of everything after the header, for `.cvd`.
    pub md5: Option<[u8; 16]>,
}

/// Parses the 512-byte header.
///
/// # Errors
///
/// A message saying which field is wrong.
pub fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| "the header is not text (not a ClamAV database?)".to_owned())?;
    let text = text.trim_end_matches([' ', '\0', '\n']);
    let Some(rest) = text.strip_prefix("ClamAV-VDB:") else {
        return Err(
            "the header does not start with `ClamAV-VDB:` (not a ClamAV database)".to_owned(),
        );
    };
    let fields: Vec<&str> = rest.split(':').collect();
    if fields.len() < 6 {
        return Err(format!(
            "the header has {} fields after `ClamAV-VDB:`, expected at least 6",
            fields.len()
        ));
    }
    let number = |index: usize, what: &str| {
        fields[index]
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("the header's {what} is not a number: `{}`", fields[index]))
    };
    let version = number(1, "version")?;
    let signatures = number(2, "signature count")?;
    let md5 = match hex::decode(fields[4].trim()) {
        Ok(bytes) => <[u8; 16]>::try_from(bytes).ok(),
        Err(_) => None,
    };
    Ok(Header {
        version,
        signatures,
        md5,
    })
}

/// Reads only the header of a container.
///
/// # Errors
///
/// I/O errors, or a message for a short or malformed header.
pub fn read_header(path: &Path) -> Result<Header, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut header = [0u8; HEADER_SIZE];
    file.read_exact(&mut header)
        .map_err(|e| format!("cannot read the 512-byte header: {e}"))?;
    parse_header(&header)
}

/// Reads a container, calling `member` with the name and a reader of each regular
/// tar member. With `check_md5` (a `.cvd`), the body's MD5 must equal the
/// header's.
///
/// # Errors
///
/// `Err((member, message))`: the member being read when it failed (if any) and
/// what is wrong: a bad header, a damaged gzip or tar stream, an MD5 mismatch,
/// or the error `member` returned.
pub fn read(
    path: &Path,
    check_md5: bool,
    mut member: impl FnMut(&str, &mut dyn BufRead) -> Result<(), (usize, String)>,
) -> Result<Header, (Option<String>, usize, String)> {
    let whole = |message: String| (None, 0, message);
    let mut file = File::open(path).map_err(|e| whole(format!("cannot open: {e}")))?;
    let mut raw = [0u8; HEADER_SIZE];
    file.read_exact(&mut raw)
        .map_err(|e| whole(format!("cannot read the 512-byte header: {e}")))?;
    let header = parse_header(&raw).map_err(whole)?;
    let expected_md5 = match (check_md5, header.md5) {
        (true, Some(md5)) => Some(md5),
        (true, None) => {
            return Err(whole(
                "the header's MD5 field is not 32 hex digits".to_owned(),
            ));
        }
        (false, _) => None,
    };
    let mut body = BufReader::new(Hashing {
        inner: file,
        md5: Md5::new(),
    });
    let gzipped = body
        .fill_buf()
        .map_err(|e| whole(format!("cannot read the body: {e}")))?
        .starts_with(&[0x1f, 0x8b]);
    if gzipped {
        let mut decoder = flate2::bufread::GzDecoder::new(&mut body);
        members(&mut decoder, &mut member)?;
        // Read what the tar reader left (the end-of-archive blocks, gzip trailer).
        io::copy(&mut decoder, &mut io::sink())
            .map_err(|e| whole(format!("damaged gzip stream: {e}")))?;
    } else {
        members(&mut body, &mut member)?;
    }
    io::copy(&mut body, &mut io::sink()).map_err(|e| whole(format!("cannot read: {e}")))?;
    if let Some(expected) = expected_md5 {
        let actual: [u8; 16] = body.into_inner().md5.finalize().into();
        if actual != expected {
            return Err(whole(format!(
                "the body's MD5 is {}, the header says {} (damaged or truncated)",
                hex::encode(actual),
                hex::encode(expected)
            )));
        }
    }
    Ok(header)
}

/// Walks the tar, handing each regular member to `member`.
fn members(
    tar: &mut dyn Read,
    member: &mut impl FnMut(&str, &mut dyn BufRead) -> Result<(), (usize, String)>,
) -> Result<(), (Option<String>, usize, String)> {
    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|e| (None, 0, format!("damaged tar: {e}")))?;
    let mut seen = 0usize;
    for entry in entries {
        let entry = entry.map_err(|e| (None, 0, format!("damaged tar or gzip stream: {e}")))?;
        seen += 1;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = match entry.path() {
            Ok(path) => path.to_string_lossy().into_owned(),
            Err(e) => return Err((None, 0, format!("tar member with a bad name: {e}"))),
        };
        let mut reader = BufReader::new(entry);
        member(&name, &mut reader)
            .map_err(|(line, message)| (Some(name.clone()), line, message))?;
        // Drain what the callback did not read, so a short read is seen here.
        io::copy(&mut reader, &mut io::sink())
            .map_err(|e| (Some(name.clone()), 0, format!("truncated member: {e}")))?;
    }
    if seen == 0 {
        return Err((
            None,
            0,
            "the container holds no files (truncated?)".to_owned(),
        ));
    }
    Ok(())
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    md5: Md5,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.md5.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_or_say_what_is_wrong() {
        let md5 = "0123456789abcdef0123456789abcdef";
        let good = format!(
            "ClamAV-VDB:14 Nov 2025 08-07 -0500:27823:2077316:90:{md5}:sig:builder:1763125621"
        );
        let header = parse_header(format!("{good:<512}").as_bytes()).unwrap();
        assert_eq!(header.version, 27823);
        assert_eq!(header.signatures, 2077316);
        assert_eq!(header.md5.map(hex::encode).as_deref(), Some(md5));
        let cld = parse_header(b"ClamAV-VDB:x:5:10:90:X:X:builder:0").unwrap();
        assert_eq!((cld.version, cld.md5), (5, None));
        for (bad, want) in [
            (&b"PK\x03\x04"[..], "does not start with `ClamAV-VDB:`"),
            (b"ClamAV-VDB:a:b", "expected at least 6"),
            (b"ClamAV-VDB:t:v1:10:90:X:X", "version is not a number"),
            (b"\xff\xfe", "not text"),
        ] {
            let error = parse_header(bad).unwrap_err();
            assert!(error.contains(want), "{error}");
        }
    }
}
