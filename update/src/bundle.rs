//! vigil's own content bundles: how a fleet publishes its rules and hash lists.
//!
//! Owns: the bundle format and its two operations. A bundle is `NAME.tar.gz`
//! holding [`MANIFEST`] (format, version, creation time, and every file's path,
//! size and SHA-256) and the files of the packed directory (`hashes/…` hash
//! lists, `rules/…` YARA files, anything else such as a licence), plus a
//! detached `NAME.tar.gz.minisig`: a minisign signature of the archive's bytes
//! whose trusted comment carries the version. The signature is checked before
//! the archive is opened; the manifest then binds every member.
//! Must not own: fetching, or where the daemon loads bundle content from
//! (`layout.rs`).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::Error;
use crate::verify;

/// The manifest's name inside a bundle.
pub const MANIFEST: &str = "vigil-bundle.json";
/// The bundle format this build writes and reads.
pub const FORMAT: u32 = 1;

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path inside the bundle.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// The manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The publisher's version (default: the UTC time of packing).
    pub version: String,
    /// When it was packed (RFC 3339).
    pub created: String,
    /// Every file, sorted by path.
    pub files: Vec<FileEntry>,
}

/// Packs the regular files below `dir` into `out` (a `.tar.gz`) and writes
/// `out.minisig` signed with the minisign secret key `key`. Returns the manifest.
///
/// # Errors
///
/// [`Error::Invalid`] for a symbolic link or special file in `dir`, a name that
/// is not UTF-8, or an empty directory; [`Error::Io`] for read and write
/// failures; the key errors of [`verify::sign`].
pub fn pack(dir: &Path, key: &Path, out: &Path, version: &str) -> Result<Manifest, Error> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(Error::Invalid {
            path: dir.to_owned(),
            message: "no files to pack".to_owned(),
        });
    }
    let mut entries = Vec::with_capacity(files.len());
    let mut contents = Vec::with_capacity(files.len());
    for (relative, path) in files {
        let bytes = fs::read(&path).map_err(Error::io(&path, "cannot read"))?;
        entries.push(FileEntry {
            path: relative.clone(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
        });
        contents.push((relative, bytes));
    }
    let manifest = Manifest {
        format: FORMAT,
        version: version.to_owned(),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        files: entries,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Invalid {
        path: out.to_owned(),
        message: format!("cannot write the manifest: {e}"),
    })?;
    let write_error = Error::io(out, "cannot write the bundle");
    let archive = (|| -> io::Result<Vec<u8>> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mut add = |name: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_cksum();
            tar.append_data(&mut header, name, bytes)
        };
        add(MANIFEST, &manifest_json)?;
        for (name, bytes) in &contents {
            add(name, bytes)?;
        }
        tar.into_inner()?.finish()
    })()
    .map_err(write_error)?;
    let signature = verify::sign(key, &archive, &format!("vigil-bundle version:{version}"))?;
    fs::write(out, &archive).map_err(Error::io(out, "cannot write the bundle"))?;
    let sig_path = signature_path(out);
    fs::write(&sig_path, signature).map_err(Error::io(&sig_path, "cannot write the signature"))?;
    Ok(manifest)
}

/// `<bundle>.minisig`.
pub fn signature_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

/// Regular files below `dir`, as (relative UTF-8 path, path); refuses links and
/// special files.
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), Error> {
    for entry in fs::read_dir(dir).map_err(Error::io(dir, "cannot list"))? {
        let entry = entry.map_err(Error::io(dir, "cannot list"))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(Error::io(&path, "cannot stat"))?;
        let invalid = |message: &str| Error::Invalid {
            path: path.clone(),
            message: message.to_owned(),
        };
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_file() {
            let relative = path
                .strip_prefix(root)
                .ok()
                .and_then(|p| p.to_str())
                .ok_or_else(|| invalid("file name is not UTF-8"))?
                .to_owned();
            if relative == MANIFEST {
                return Err(invalid("a file named like the manifest cannot be packed"));
            }
            out.push((relative, path));
        } else {
            return Err(invalid(
                "only regular files and directories can be packed (links are refused)",
            ));
        }
    }
    Ok(())
}

/// Checks an archive's members against its manifest, in memory: every member
/// listed with its size and SHA-256, every listed file present, nothing else
/// but directories. Returns the manifest.
///
/// # Errors
///
/// A message naming the member or manifest problem.
pub fn check_members(archive: &[u8], max_bytes: u64) -> Result<Manifest, String> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let mut manifest: Option<Manifest> = None;
    let mut digests: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut total = 0u64;
    let entries = tar.entries().map_err(|e| format!("damaged bundle: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("damaged or truncated bundle: {e}"))?;
        let kind = entry.header().entry_type();
        if kind.is_dir()
            || matches!(
                kind,
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
            )
        {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if !kind.is_file() {
            return Err(format!(
                "member {name:?}: only files are allowed in a bundle"
            ));
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(max_bytes.saturating_sub(total) + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("member {name:?}: damaged or truncated: {e}"))?;
        total += bytes.len() as u64;
        if total > max_bytes {
            return Err(format!(
                "unpacks to more than update.max_unpacked_size ({max_bytes} bytes)"
            ));
        }
        if name == MANIFEST {
            let parsed: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{MANIFEST}: malformed: {e}"))?;
            if parsed.format != FORMAT {
                return Err(format!(
                    "{MANIFEST}: format {} is not supported (this vigil reads format {FORMAT})",
                    parsed.format
                ));
            }
            manifest = Some(parsed);
        } else if digests
            .insert(
                name.clone(),
                (bytes.len() as u64, hex::encode(Sha256::digest(&bytes))),
            )
            .is_some()
        {
            return Err(format!("member {name:?}: appears twice"));
        }
    }
    let manifest = manifest.ok_or_else(|| format!("no {MANIFEST} in the bundle"))?;
    for file in &manifest.files {
        match digests.remove(&file.path) {
            None => {
                return Err(format!(
                    "{MANIFEST} lists {:?}, which the bundle lacks",
                    file.path
                ));
            }
            Some((size, sha256)) if size != file.size || sha256 != file.sha256 => {
                return Err(format!(
                    "member {:?}: SHA-256 {sha256} ({size} bytes) does not match the manifest's {} ({} bytes)",
                    file.path, file.sha256, file.size
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = digests.keys().next() {
        return Err(format!("member {extra:?} is not in {MANIFEST}"));
    }
    Ok(manifest)
}

/// `vigil bundle verify`: the signature at `<bundle>.minisig` by `public_key`
/// (the base64 key line), then the members against the manifest.
///
/// # Errors
///
/// [`Error::Io`] if a file cannot be read; [`Error::Invalid`] naming the
/// bundle and what fails.
pub fn verify_file(bundle: &Path, public_key: &str) -> Result<Manifest, Error> {
    let bytes = fs::read(bundle).map_err(Error::io(bundle, "cannot read the bundle"))?;
    let sig_path = signature_path(bundle);
    let signature =
        fs::read_to_string(&sig_path).map_err(Error::io(&sig_path, "cannot read the signature"))?;
    let invalid = |message: String| Error::Invalid {
        path: bundle.to_owned(),
        message,
    };
    verify::check(
        &vigil_policy::Verify::Minisign(public_key.trim().to_owned()),
        &bytes,
        Some(&signature),
    )
    .map_err(invalid)?;
    check_members(&bytes, u64::MAX - 1).map_err(invalid)
}

/// Writes a new key pair to `prefix.key` (secret, mode 0600, refusing to
/// overwrite) and `prefix.pub`; returns the public key line.
///
/// # Errors
///
/// [`Error::Io`] if a file exists or cannot be written.
pub fn keygen(prefix: &Path) -> Result<String, Error> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let (public_file, secret_file, public) =
        verify::keygen().map_err(|message| Error::Invalid {
            path: prefix.to_owned(),
            message,
        })?;
    let with = |ext: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(ext);
        PathBuf::from(name)
    };
    let secret_path = with(".key");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_path)
        .map_err(Error::io(&secret_path, "cannot create the secret key"))?;
    file.write_all(secret_file.as_bytes())
        .map_err(Error::io(&secret_path, "cannot write the secret key"))?;
    let public_path = with(".pub");
    fs::write(&public_path, public_file)
        .map_err(Error::io(&public_path, "cannot write the public key"))?;
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_verify_and_tamper() {
        let dir = std::env::temp_dir().join(format!("vigil-bundle-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let content = dir.join("content");
        fs::create_dir_all(content.join("hashes")).unwrap();
        fs::create_dir_all(content.join("rules/linux")).unwrap();
        fs::write(
            content.join("hashes/local.sha256"),
            format!("{} Test\n", "ab".repeat(32)),
        )
        .unwrap();
        fs::write(
            content.join("rules/linux/a.yar"),
            "rule a { condition: false }\n",
        )
        .unwrap();
        let public = keygen(&dir.join("k")).unwrap();
        assert!(keygen(&dir.join("k")).is_err(), "overwrote a key");
        let out = dir.join("b.tar.gz");
        let manifest = pack(&content, &dir.join("k.key"), &out, "42").unwrap();
        let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["hashes/local.sha256", "rules/linux/a.yar"]);
        assert_eq!(verify_file(&out, &public).unwrap(), manifest);

        let other = keygen(&dir.join("other")).unwrap();
        let error = verify_file(&out, &other).unwrap_err().to_string();
        assert!(error.contains("different from public key"), "{error}");

        let mut bytes = fs::read(&out).unwrap();
        let last = bytes.len() - 10;
        bytes[last] ^= 1;
        fs::write(&out, &bytes).unwrap();
        let error = verify_file(&out, &public).unwrap_err().to_string();
        assert!(error.contains("bad minisign signature"), "{error}");

        std::os::unix::fs::symlink("/etc/passwd", content.join("link")).unwrap();
        let error = pack(&content, &dir.join("k.key"), &out, "43")
            .unwrap_err()
            .to_string();
        assert!(error.contains("links are refused"), "{error}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
