//! Reads the regular-file members of a `.tar.xz` (or plain `.tar`) archive into
//! memory one at a time and hands each to a callback: how the training corpus
//! (live malware) is read, so that no sample is ever written to disk.
//!
//! Owns one reusable member buffer. The format is decided by content (the xz magic),
//! not the file name. Members larger than [`MAX_MEMBER_LEN`] are skipped and counted,
//! never read into memory; directories, links and other entries are skipped. The
//! caller owns whatever it derives from the members.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::Error;

/// Members larger than this are skipped (the corpus holds files under 4 MiB; the
/// cap bounds memory whatever the archive claims).
pub const MAX_MEMBER_LEN: u64 = 64 << 20;

/// The xz stream magic.
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];

/// What [`for_each_member`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Regular members handed to the callback.
    pub members: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Regular members skipped for exceeding [`MAX_MEMBER_LEN`].
    pub skipped_oversize: u64,
    /// Entries that are not regular files (directories, links, ...).
    pub skipped_other: u64,
}

/// Calls `f(name, bytes)` for every regular member of `archive` (a `.tar.xz` or a
/// plain `.tar`), in archive order, with the member's path inside the archive
/// (lossily UTF-8) and its whole content in memory.
///
/// # Errors
///
/// [`Error::Open`] when the archive cannot be opened, [`Error::Read`] when the xz or
/// tar stream is corrupt, [`Error::Member`] when a member cannot be read; any error
/// `f` returns stops the walk and is returned as is.
pub fn for_each_member<E, F>(archive: &Path, mut f: F) -> Result<Summary, E>
where
    E: From<Error>,
    F: FnMut(&str, &[u8]) -> Result<(), E>,
{
    let open_err = |source| Error::Open {
        path: archive.to_path_buf(),
        source,
    };
    let file = File::open(archive).map_err(open_err)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let is_xz = reader.fill_buf().map_err(open_err)?.starts_with(XZ_MAGIC);
    if is_xz {
        walk(archive, xz2::bufread::XzDecoder::new(reader), &mut f)
    } else {
        walk(archive, reader, &mut f)
    }
}

fn walk<R, E, F>(archive: &Path, reader: R, f: &mut F) -> Result<Summary, E>
where
    R: Read,
    E: From<Error>,
    F: FnMut(&str, &[u8]) -> Result<(), E>,
{
    let read_err = |source| Error::Read {
        path: archive.to_path_buf(),
        source,
    };
    let mut tar = tar::Archive::new(reader);
    let mut summary = Summary::default();
    let mut buf = Vec::new();
    for entry in tar.entries().map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        if !entry.header().entry_type().is_file() {
            summary.skipped_other += 1;
            continue;
        }
        let name = entry.path_bytes();
        let name = String::from_utf8_lossy(&name).into_owned();
        let size = entry.size();
        if size > MAX_MEMBER_LEN {
            summary.skipped_oversize += 1;
            continue;
        }
        buf.clear();
        // The header's size is trusted only up to the cap.
        let mut limited = entry.take(MAX_MEMBER_LEN + 1);
        if let Err(source) = limited.read_to_end(&mut buf) {
            return Err(Error::Member {
                path: archive.to_path_buf(),
                member: name,
                source,
            }
            .into());
        }
        summary.members += 1;
        summary.bytes = summary.bytes.saturating_add(buf.len() as u64);
        f(&name, &buf)?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A scratch directory removed on drop.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("vigil-models-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tar_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_size(0);
        dir.set_mode(0o755);
        dir.set_cksum();
        b.append_data(&mut dir, "samples/", std::io::empty())
            .unwrap();
        for (name, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o400);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn reads_plain_and_xz() {
        let scratch = Scratch::new("tar");
        let raw = tar_bytes(&[("samples/a", b"hello"), ("samples/b", b"\x7fELF")]);
        let plain = scratch.0.join("t.tar");
        std::fs::write(&plain, &raw).unwrap();
        let xz = scratch.0.join("t.tar.xz");
        let mut enc = xz2::write::XzEncoder::new(Vec::new(), 6);
        enc.write_all(&raw).unwrap();
        std::fs::write(&xz, enc.finish().unwrap()).unwrap();
        for path in [&plain, &xz] {
            let mut seen = Vec::new();
            let summary = for_each_member::<Error, _>(path, |name, bytes| {
                seen.push((name.to_owned(), bytes.to_vec()));
                Ok(())
            })
            .unwrap();
            assert_eq!(summary.members, 2);
            assert_eq!(summary.bytes, 9);
            assert_eq!(summary.skipped_other, 1);
            assert_eq!(seen[0], ("samples/a".to_owned(), b"hello".to_vec()));
            assert_eq!(seen[1].1, b"\x7fELF".to_vec());
        }
    }

    #[test]
    fn callback_error_stops_the_walk() {
        #[derive(Debug)]
        enum E {
            Lib,
            Stop,
        }
        impl From<Error> for E {
            fn from(_: Error) -> E {
                E::Lib
            }
        }
        let scratch = Scratch::new("stop");
        let path = scratch.0.join("t.tar");
        std::fs::write(&path, tar_bytes(&[("a", b"1"), ("b", b"2")])).unwrap();
        let mut calls = 0;
        let r = for_each_member(&path, |_, _| {
            calls += 1;
            Err(E::Stop)
        });
        assert!(matches!(r, Err(E::Stop)));
        assert_eq!(calls, 1);
        assert!(matches!(
            for_each_member(&scratch.0.join("missing"), |_, _| Ok::<(), E>(())),
            Err(E::Lib)
        ));
    }

    #[test]
    fn corrupt_archive_is_an_error() {
        let scratch = Scratch::new("corrupt");
        let path = scratch.0.join("bad.tar.xz");
        let mut bytes = XZ_MAGIC.to_vec();
        bytes.extend_from_slice(&[0x55; 100]);
        std::fs::write(&path, bytes).unwrap();
        let r = for_each_member::<Error, _>(&path, |_, _| Ok(()));
        assert!(matches!(r, Err(Error::Read { .. })), "{r:?}");
    }
}
