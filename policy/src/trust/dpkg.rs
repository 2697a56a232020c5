//! dpkg's database: the `status` file (with the journal in `updates/`) and the
//! `info/<package>.md5sums` lists.
//!
//! Owns the parsers only; pure, no I/O. The agent's `vigil trust update` reads
//! the files, checks each installed file against its MD5 and stores its SHA-256
//! in the [`TrustStore`](super::TrustStore).

use std::collections::HashMap;
use std::path::Path;

use crate::error::Error;

/// One package from dpkg's `status` file whose files are on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpkgPackage {
    /// `Package:`.
    pub name: String,
    /// `Architecture:`.
    pub arch: String,
    /// `Version:`.
    pub version: String,
}

impl DpkgPackage {
    /// The names dpkg may give this package's `info/` files, most specific first
    /// (`name:arch` for `Multi-Arch: same` packages, else `name`).
    pub fn info_names(&self) -> [String; 2] {
        [format!("{}:{}", self.name, self.arch), self.name.clone()]
    }
}

/// Package states whose files are unpacked on disk (dpkg's `Status:` third word).
const ON_DISK: [&str; 5] = [
    "installed",
    "unpacked",
    "half-configured",
    "triggers-awaited",
    "triggers-pending",
];

/// The packages of dpkg's `status` file whose files are on disk, in file order.
/// Stanzas without a name or in other states (`config-files`, `not-installed`,
/// `half-installed`) are skipped.
pub fn parse_dpkg_status(text: &str) -> Vec<DpkgPackage> {
    parse_dpkg_database(text, &[] as &[&str])
}

/// The packages whose files are on disk per dpkg's `status` file and the
/// journal in its `updates/` directory (`updates`: the files' contents in
/// numeric order), in `status` order with new packages last.
///
/// dpkg records each change in a journal file first and folds the journal
/// into `status` only at a checkpoint (at the latest when it exits): a file
/// trigger that dpkg runs sees the packages of its own run only there. A
/// journal stanza replaces the package's entry (same name and architecture);
/// one in a state without files on disk removes it.
pub fn parse_dpkg_database<S: AsRef<str>>(status: &str, updates: &[S]) -> Vec<DpkgPackage> {
    let mut order: Vec<Option<DpkgPackage>> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let texts = std::iter::once(status).chain(updates.iter().map(|u| u.as_ref()));
    for (package, state) in texts.flat_map(stanzas) {
        let on_disk = ON_DISK.contains(&state).then_some(package.clone());
        let key = (package.name, package.arch);
        match index.get(&key) {
            Some(&i) => order[i] = on_disk,
            None => {
                index.insert(key, order.len());
                order.push(on_disk);
            }
        }
    }
    order.into_iter().flatten().collect()
}

/// Every stanza of a `status`-format text that names a package, with the
/// third word of its `Status:` (the package state).
fn stanzas(text: &str) -> impl Iterator<Item = (DpkgPackage, &str)> {
    text.split("\n\n").filter_map(|stanza| {
        let (mut name, mut arch, mut version, mut status) = (None, "", "", "");
        for line in stanza.lines() {
            if line.starts_with([' ', '\t']) {
                continue; // continuation of a multi-line field
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key {
                "Package" => name = Some(value),
                "Architecture" => arch = value,
                "Version" => version = value,
                "Status" => status = value,
                _ => {}
            }
        }
        let state = status.split_whitespace().nth(2).unwrap_or("");
        name.map(|name| {
            (
                DpkgPackage {
                    name: name.to_owned(),
                    arch: arch.to_owned(),
                    version: version.to_owned(),
                },
                state,
            )
        })
    })
}

/// One line of an `md5sums` list: the digest and the path relative to the root
/// (no leading `/`), as bytes (paths need not be UTF-8).
pub type Md5Line<'a> = ([u8; 16], &'a [u8]);

/// Parses an `info/<package>.md5sums` list (`<32 hex digits>  <path>` per line).
///
/// # Errors
/// [`Error::HashList`] naming `origin` and the line of a malformed entry.
pub fn parse_md5sums<'a>(text: &'a [u8], origin: &Path) -> Result<Vec<Md5Line<'a>>, Error> {
    let mut out = Vec::new();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = |message: &str| Error::HashList {
            path: origin.to_owned(),
            line: index + 1,
            message: message.to_owned(),
        };
        if line.len() < 34 || line[32] != b' ' {
            return Err(bad("expected `<md5>  <path>`"));
        }
        let mut md5 = [0u8; 16];
        hex::decode_to_slice(&line[..32], &mut md5).map_err(|_| bad("invalid MD5 digest"))?;
        // Two spaces (text mode) or space-star (binary mode) separate the fields.
        let path = &line[34..];
        let path = path.strip_prefix(b"/").unwrap_or(path);
        if path.is_empty() {
            return Err(bad("empty path"));
        }
        out.push((md5, path));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_keeps_packages_on_disk() {
        let text = "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\nDescription: x\n more text\n\n\
                    Package: b\nStatus: deinstall ok config-files\nVersion: 2\n\n\
                    Package: c\nStatus: install ok unpacked\nArchitecture: all\nVersion: 3\n\n\
                    Package: d\nStatus: install reinstreq half-installed\nVersion: 4\n";
        let got = parse_dpkg_status(text);
        let names: Vec<_> = got.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(got[0].version, "1.0");
        assert_eq!(got[0].info_names(), ["a:amd64".to_owned(), "a".to_owned()]);
    }

    #[test]
    fn dpkg_journal_overrides_status() {
        let status = "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n\
                      Package: b\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n\n\
                      Package: c\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n";
        let updates = [
            // An upgrade of a, the removal of b, then a new package d and its
            // i386 twin of a.
            "Package: a\nStatus: install ok unpacked\nArchitecture: amd64\nVersion: 2\n",
            "Package: b\nStatus: deinstall ok config-files\nArchitecture: all\nVersion: 1\n",
            "Package: d\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n\n\
             Package: a\nStatus: install ok installed\nArchitecture: i386\nVersion: 2\n",
            "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2\n",
        ];
        let got: Vec<_> = parse_dpkg_database(status, &updates)
            .into_iter()
            .map(|p| format!("{}:{} {}", p.name, p.arch, p.version))
            .collect();
        assert_eq!(got, ["a:amd64 2", "c:all 1", "d:all 1", "a:i386 2"]);
        assert_eq!(parse_dpkg_status(status).len(), 3);
    }

    #[test]
    fn md5sums_lines() {
        let text = b"d41d8cd98f00b204e9800998ecf8427e  usr/bin/true\n\
                     0123456789abcdef0123456789abcdef  usr/share/a b\n\n";
        let got = parse_md5sums(text, Path::new("x.md5sums")).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, b"usr/bin/true");
        assert_eq!(got[1].1, b"usr/share/a b");
        assert_eq!(hex::encode(got[0].0), "d41d8cd98f00b204e9800998ecf8427e");
        for (bad, want) in [
            (&b"zz  usr/x\n"[..], "x.md5sums:1: expected"),
            (
                &b"\nd41d8cd98f00b204e9800998ecf8427g  usr/x\n"[..],
                "x.md5sums:2: invalid MD5",
            ),
        ] {
            let error = parse_md5sums(bad, Path::new("x.md5sums"))
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(want), "{error}");
        }
    }
}
