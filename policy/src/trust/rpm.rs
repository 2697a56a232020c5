//! rpm's database, as `rpm -qa --queryformat` prints it.
//!
//! Owns: the query format [`QUERY_FORMAT`] the agent runs `rpm` with, and the
//! parser of its output ([`parse_query`]) into packages and the regular files
//! whose content they installed, each with rpm's digest. Must not own: running
//! `rpm` or hashing files (the agent's `vigil trust update`).
//!
//! Why the `rpm` program and not the database files: rpm has used Berkeley DB,
//! NDB and SQLite over the years, with headers in its own binary format; the
//! query interface is the one every version keeps stable.
//!
//! The output is one header line per package, then one line per file:
//! ```text
//! @@vigil-rpm\tNAME\tEPOCHNUM\tVERSION\tRELEASE\tARCH\tFILEDIGESTALGO\tINSTALLTID
//! FILEMODES\tFILEFLAGS\tFILESTATES\tFILEDIGESTS\tFILENAMES
//! ```
//! The file name comes last so that a tab in it survives; a newline in a file
//! name cannot be told apart from the next record (the line after it is then
//! malformed and the whole query is refused, never half-read).

use sha2::{Digest, Sha256};

use crate::error::Error;

/// The `--queryformat` for `rpm -qa` whose output [`parse_query`] reads.
pub const QUERY_FORMAT: &str = concat!(
    "@@vigil-rpm\\t%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t",
    "%{FILEDIGESTALGO}\\t%{INSTALLTID}\\n",
    "[%{FILEMODES}\\t%{FILEFLAGS}\\t%{FILESTATES}\\t%{FILEDIGESTS}\\t%{FILENAMES}\\n]",
);

/// Start of a package header line.
const HEADER: &[u8] = b"@@vigil-rpm\t";
/// `%ghost`: listed, but not part of the payload (logs, state files).
const RPMFILE_GHOST: u32 = 1 << 6;
/// `FILESTATES` of a file rpm installed (not replaced, not skipped, not shared).
const RPMFILE_STATE_NORMAL: i64 = 0;
/// File type bits of `FILEMODES` and the regular-file type.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;

/// A file digest algorithm rpm records (`FILEDIGESTALGO`, OpenPGP numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgo {
    /// 1, the default before rpm 4.6 (and when the tag is absent).
    Md5,
    /// 2.
    Sha1,
    /// 8, the default since.
    Sha256,
    /// 9.
    Sha384,
    /// 10.
    Sha512,
    /// 11.
    Sha224,
}

impl DigestAlgo {
    /// The algorithm of rpm's (OpenPGP) number, if it is one of these.
    pub fn from_rpm(id: u32) -> Option<DigestAlgo> {
        Some(match id {
            1 => DigestAlgo::Md5,
            2 => DigestAlgo::Sha1,
            8 => DigestAlgo::Sha256,
            9 => DigestAlgo::Sha384,
            10 => DigestAlgo::Sha512,
            11 => DigestAlgo::Sha224,
            _ => return None,
        })
    }

    /// Digest length in bytes.
    pub fn len(self) -> usize {
        match self {
            DigestAlgo::Md5 => 16,
            DigestAlgo::Sha1 => 20,
            DigestAlgo::Sha224 => 28,
            DigestAlgo::Sha256 => 32,
            DigestAlgo::Sha384 => 48,
            DigestAlgo::Sha512 => 64,
        }
    }

    /// Always false (a digest has bytes); for clippy's `len_without_is_empty`.
    pub fn is_empty(self) -> bool {
        false
    }

    /// `md5`, `sha256`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgo::Md5 => "md5",
            DigestAlgo::Sha1 => "sha1",
            DigestAlgo::Sha224 => "sha224",
            DigestAlgo::Sha256 => "sha256",
            DigestAlgo::Sha384 => "sha384",
            DigestAlgo::Sha512 => "sha512",
        }
    }
}

/// One file whose content the package installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmFile<'a> {
    /// Path relative to the root (rpm's absolute name without its leading `/`).
    pub rel: &'a [u8],
    /// rpm's digest of the content, in the package's [`RpmPackage::algo`].
    pub digest: Vec<u8>,
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmPackage<'a> {
    /// `NAME`.
    pub name: String,
    /// `EPOCHNUM` (0 without an epoch).
    pub epoch: u64,
    /// `VERSION`.
    pub version: String,
    /// `RELEASE`.
    pub release: String,
    /// `ARCH` (`(none)` for rpm's `gpg-pubkey` entries).
    pub arch: String,
    /// Its file digest algorithm: `Err(id)` for one not in [`DigestAlgo`].
    pub algo: Result<DigestAlgo, u32>,
    /// Regular files rpm installed, with their digests (empty when `algo` is
    /// unknown: nothing can be checked).
    pub files: Vec<RpmFile<'a>>,
    /// Listed regular files left out: `%ghost`, not installed (`--excludedocs`,
    /// other languages, replaced by another package, net-shared), or without a
    /// digest, or all of them when `algo` is unknown.
    pub files_skipped: usize,
    /// Bytes of the package's query output (header and file lines).
    pub listing_len: u64,
    /// SHA-256 of those bytes.
    pub listing_sha256: [u8; 32],
}

impl RpmPackage<'_> {
    /// `[EPOCH:]VERSION-RELEASE[.ARCH]`, as `rpm -q` names it after the name.
    pub fn evra(&self) -> String {
        let mut out = String::new();
        if self.epoch != 0 {
            out.push_str(&format!("{}:", self.epoch));
        }
        out.push_str(&format!("{}-{}", self.version, self.release));
        if self.arch != "(none)" && !self.arch.is_empty() {
            out.push('.');
            out.push_str(&self.arch);
        }
        out
    }

    /// The identity of the package's listing: an equal one (same NEVRA, same
    /// install transaction, same files and digests) needs no rehash.
    pub fn fingerprint(&self) -> super::Fingerprint {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.listing_sha256[..8]);
        super::Fingerprint {
            size: self.listing_len,
            mtime_ns: 0,
            inode: u64::from_le_bytes(first),
        }
    }
}

/// Parses the output of `rpm -qa --queryformat QUERY_FORMAT`. `origin` names the
/// query in errors (e.g. `rpm -qa --dbpath /var/lib/rpm`).
///
/// # Errors
/// [`Error::PackageQuery`] naming `origin` and the 1-based line of the first
/// malformed line: a file line before any header, a header or file line with
/// too few fields, a number that is not one, a digest that is not hex of the
/// package's algorithm's length.
pub fn parse_query<'a>(output: &'a [u8], origin: &str) -> Result<Vec<RpmPackage<'a>>, Error> {
    let mut out: Vec<RpmPackage<'a>> = Vec::new();
    let mut hasher: Option<Sha256> = None;
    let mut lines = output.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let bad = |message: String| Error::PackageQuery {
            origin: origin.to_owned(),
            line: index + 1,
            message,
        };
        if line.is_empty() {
            // Only the end of the output (after the final newline) may be empty.
            if lines.peek().is_none() {
                break;
            }
            return Err(bad("empty line".into()));
        }
        if let Some(header) = line.strip_prefix(HEADER) {
            finish(&mut out, hasher.take());
            let fields: Vec<&[u8]> = header.split(|&b| b == b'\t').collect();
            let [name, epoch, version, release, arch, algo, _tid] = fields[..] else {
                return Err(bad(format!(
                    "package header with {} fields, expected 7",
                    fields.len()
                )));
            };
            let text = |field: &[u8], what: &str| {
                String::from_utf8(field.to_vec()).map_err(|_| bad(format!("{what} is not UTF-8")))
            };
            let name = text(name, "NAME")?;
            if name.is_empty() {
                return Err(bad("empty NAME".into()));
            }
            let epoch = number(epoch).ok_or_else(|| bad("EPOCHNUM is not a number".into()))?;
            let algo = match algo {
                // Absent in packages from before rpm 4.6: MD5.
                b"(none)" => Ok(DigestAlgo::Md5),
                id => {
                    let id = number(id)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| bad("FILEDIGESTALGO is not a number".into()))?;
                    DigestAlgo::from_rpm(id).ok_or(id)
                }
            };
            let mut sha = Sha256::new();
            sha.update(line);
            sha.update(b"\n");
            hasher = Some(sha);
            out.push(RpmPackage {
                name,
                epoch,
                version: text(version, "VERSION")?,
                release: text(release, "RELEASE")?,
                arch: text(arch, "ARCH")?,
                algo,
                files: Vec::new(),
                files_skipped: 0,
                listing_len: line.len() as u64 + 1,
                listing_sha256: [0; 32],
            });
            continue;
        }
        let (Some(package), Some(sha)) = (out.last_mut(), hasher.as_mut()) else {
            return Err(bad("file line before any package header".into()));
        };
        sha.update(line);
        sha.update(b"\n");
        package.listing_len += line.len() as u64 + 1;
        let mut fields = line.splitn(5, |&b| b == b'\t');
        let (Some(mode), Some(flags), Some(state), Some(digest), Some(path)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(bad(
                "expected `mode<TAB>flags<TAB>state<TAB>digest<TAB>path`".into(),
            ));
        };
        // FILEMODES is a 16-bit field some rpm versions print signed.
        let mode =
            signed(mode).ok_or_else(|| bad("FILEMODES is not a number".into()))? as u32 & 0xffff;
        let flags = number(flags)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad("FILEFLAGS is not a number".into()))?;
        let state = signed(state).ok_or_else(|| bad("FILESTATES is not a number".into()))?;
        let Some(rel) = path.strip_prefix(b"/").filter(|r| !r.is_empty()) else {
            return Err(bad("file name is not an absolute path".into()));
        };
        if mode & S_IFMT != S_IFREG {
            continue; // directories, symlinks, devices: no content to trust
        }
        let algo = match package.algo {
            Ok(algo) => algo,
            Err(_) => {
                package.files_skipped += 1;
                continue;
            }
        };
        if flags & RPMFILE_GHOST != 0 || state != RPMFILE_STATE_NORMAL || digest.is_empty() {
            package.files_skipped += 1;
            continue;
        }
        let mut bytes = vec![0u8; algo.len()];
        if digest.len() != 2 * algo.len() || hex::decode_to_slice(digest, &mut bytes).is_err() {
            return Err(bad(format!(
                "file digest is not {} hex digits ({})",
                2 * algo.len(),
                algo.as_str()
            )));
        }
        package.files.push(RpmFile { rel, digest: bytes });
    }
    finish(&mut out, hasher.take());
    Ok(out)
}

/// Stores the listing digest of the last package.
fn finish(out: &mut [RpmPackage<'_>], hasher: Option<Sha256>) {
    if let (Some(package), Some(sha)) = (out.last_mut(), hasher) {
        package.listing_sha256 = sha.finalize().into();
    }
}

fn number(field: &[u8]) -> Option<u64> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

fn signed(field: &[u8]) -> Option<i64> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "299001868fb8c02fd431c336c6d058f5558c5dff5b5af5e6fe04b870a6a9cbba";

    /// Output as rpm 4.18 printed it for a test package (plus an MD5 one and
    /// rpm's pseudo-package for an imported key).
    fn sample() -> String {
        format!(
            "@@vigil-rpm\ttool\t0\t1.0\t1\tnoarch\t8\t1795864077\n\
             33188\t17\t0\t{SHA}\t/etc/tool.conf\n\
             41471\t0\t0\t\t/usr/bin/tool-link\n\
             33261\t0\t0\t{SHA}\t/usr/bin/tool\n\
             16877\t0\t0\t\t/usr/share/tool\n\
             33188\t0\t2\t{SHA}\t/usr/share/doc/tool/README\n\
             32768\t64\t0\t\t/var/log/tool.log\n\
             33188\t0\t0\t{SHA}\t/usr/share/tool/with\ttab\n\
             @@vigil-rpm\told\t2\t0.9\t3.el5\tx86_64\t(none)\t1\n\
             33261\t0\t0\td41d8cd98f00b204e9800998ecf8427e\t/usr/bin/old\n\
             @@vigil-rpm\tgpg-pubkey\t0\tabcd\t1234\t(none)\t(none)\t5\n"
        )
    }

    #[test]
    fn packages_and_their_regular_files() {
        let text = sample();
        let got = parse_query(text.as_bytes(), "rpm -qa").unwrap();
        assert_eq!(got.len(), 3);
        let tool = &got[0];
        assert_eq!(
            (tool.name.as_str(), tool.evra()),
            ("tool", "1.0-1.noarch".into())
        );
        assert_eq!(tool.algo, Ok(DigestAlgo::Sha256));
        let rels: Vec<&[u8]> = tool.files.iter().map(|f| f.rel).collect();
        assert_eq!(
            rels,
            [
                &b"etc/tool.conf"[..],
                b"usr/bin/tool",
                b"usr/share/tool/with\ttab"
            ]
        );
        assert_eq!(hex::encode(&tool.files[1].digest), SHA);
        // The ghost and the file not installed (--excludedocs).
        assert_eq!(tool.files_skipped, 2);
        let old = &got[1];
        assert_eq!(old.algo, Ok(DigestAlgo::Md5), "no FILEDIGESTALGO: MD5");
        assert_eq!(old.evra(), "2:0.9-3.el5.x86_64");
        assert_eq!(old.files[0].digest.len(), 16);
        assert_eq!(got[2].evra(), "abcd-1234");
        assert!(got[2].files.is_empty());
        // The fingerprint covers the package's own lines only.
        let sum: u64 = got.iter().map(|p| p.listing_len).sum();
        assert_eq!(sum, text.len() as u64);
        assert_ne!(tool.fingerprint(), old.fingerprint());
        let again = parse_query(text.as_bytes(), "rpm -qa").unwrap();
        assert_eq!(again[0].fingerprint(), tool.fingerprint());
        let changed = text.replace("1795864077", "1795864078");
        let changed = parse_query(changed.as_bytes(), "rpm -qa").unwrap();
        assert_ne!(changed[0].fingerprint(), tool.fingerprint());
        assert_eq!(changed[1].fingerprint(), old.fingerprint());
        assert!(parse_query(b"", "rpm -qa").unwrap().is_empty());
    }

    #[test]
    fn unknown_digest_algorithm_skips_the_files() {
        let text = "@@vigil-rpm\tnew\t0\t1\t1\tx86_64\t12\t1\n\
                    33261\t0\t0\tabcdef\t/usr/bin/new\n";
        let got = parse_query(text.as_bytes(), "rpm -qa").unwrap();
        assert_eq!(got[0].algo, Err(12));
        assert!(got[0].files.is_empty());
        assert_eq!(got[0].files_skipped, 1);
    }

    #[test]
    fn malformed_output_names_the_line() {
        let header = "@@vigil-rpm\tp\t0\t1\t1\tnoarch\t8\t1\n";
        let cases: Vec<(String, &str)> = vec![
            (
                format!("33261\t0\t0\t{SHA}\t/usr/bin/x\n"),
                "rpm -qa: line 1: file line before any package header",
            ),
            (
                "@@vigil-rpm\tp\t0\t1\n".into(),
                "rpm -qa: line 1: package header with 3 fields, expected 7",
            ),
            (
                "@@vigil-rpm\tp\tx\t1\t1\tnoarch\t8\t1\n".into(),
                "rpm -qa: line 1: EPOCHNUM is not a number",
            ),
            (
                "@@vigil-rpm\tp\t0\t1\t1\tnoarch\tsha\t1\n".into(),
                "rpm -qa: line 1: FILEDIGESTALGO is not a number",
            ),
            (
                format!("{header}33261\t0\t0\t{SHA}\n"),
                "rpm -qa: line 2: expected `mode<TAB>flags",
            ),
            (
                format!("{header}rwx\t0\t0\t{SHA}\t/usr/bin/x\n"),
                "rpm -qa: line 2: FILEMODES is not a number",
            ),
            (
                format!("{header}33261\t0\t0\t{SHA}\tusr/bin/x\n"),
                "rpm -qa: line 2: file name is not an absolute path",
            ),
            (
                format!("{header}33261\t0\t0\td41d8cd98f00b204e9800998ecf8427e\t/usr/bin/x\n"),
                "rpm -qa: line 2: file digest is not 64 hex digits (sha256)",
            ),
            (
                format!("{header}\n33261\t0\t0\t{SHA}\t/usr/bin/x\n"),
                "rpm -qa: line 2: empty line",
            ),
            (
                format!("{header}33261\t0\t0\t{SHA}\t/usr/bin/a\nb\n"),
                "rpm -qa: line 3: expected `mode<TAB>flags",
            ),
        ];
        for (text, want) in cases {
            let error = parse_query(text.as_bytes(), "rpm -qa")
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(want), "{text:?}: {error}");
        }
    }
}
