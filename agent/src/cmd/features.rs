//! `vigil features`: feature rows for training, from files or archives.
//!
//! Owns the CSV layout: `sha256,name,schema,parsed,<label columns>,<features…>`, one
//! row per file, with the feature columns in [`vigil_models::features::names`] order.
//! The daemon and the trainer therefore share one extractor and one column order.
//! Archives are read member by member in memory (the malware corpus is never
//! unpacked to disk).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vigil_models::features::{self, Features, SCHEMA_VERSION};
use vigil_models::mutate::{self, Mutation};
use vigil_models::sniff::sniff;

/// What `vigil features` wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    /// Rows written.
    pub rows: u64,
    /// Files skipped (not ELF or script, unless all files were asked for; unreadable).
    pub skipped: u64,
}

/// Writes the header and one row per ELF file or script found in `paths` and
/// `archives` (every file with `all_files`). `labels` are `(column, value)` pairs
/// repeated on every row. With a `donor` (mutations on), every ELF file also gets
/// one row per applicable [`Mutation`], and the columns `mutation` and `origin`
/// follow the labels.
///
/// # Errors
/// A label that is not `KEY=VALUE`, an unreadable archive, or a write error.
pub fn run(
    out: &mut impl Write,
    paths: &[PathBuf],
    archives: &[PathBuf],
    labels: &[String],
    all_files: bool,
    donor: Option<&[u8]>,
) -> anyhow::Result<Written> {
    let labels: Vec<(&str, &str)> = labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| anyhow::anyhow!("--label {l:?}: expected KEY=VALUE"))
        })
        .collect::<Result<_, _>>()?;
    writeln!(out, "{}", header(&labels, donor.is_some()))?;

    let mut written = Written::default();
    let mut row = Features::default();
    let mut line = String::new();
    let mut one_row = |name: &str,
                       bytes: &[u8],
                       mutation: Option<(&str, &str)>,
                       written: &mut Written|
     -> io::Result<()> {
        format_row(&mut line, &mut row, name, bytes, &labels, mutation);
        written.rows += 1;
        writeln!(out, "{line}")
    };
    let mut emit = |name: &str, bytes: &[u8], written: &mut Written| -> io::Result<()> {
        if !all_files && !sniff(bytes).is_executable() {
            written.skipped += 1;
            return Ok(());
        }
        let Some(donor) = donor else {
            return one_row(name, bytes, None, written);
        };
        let digest = Sha256::digest(bytes);
        let origin = hex::encode(digest);
        one_row(name, bytes, Some(("none", &origin)), written)?;
        let seed = u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]));
        for m in Mutation::ALL {
            if let Some(v) = mutate::apply(m, bytes, donor, seed) {
                one_row(name, &v, Some((m.as_str(), &origin)), written)?;
            }
        }
        Ok(())
    };
    for archive in archives {
        vigil_models::tarsource::for_each_member(archive, |name: &str, bytes: &[u8]| {
            emit(name, bytes, &mut written).map_err(anyhow::Error::from)
        })
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", archive.display()))?;
    }
    for path in paths {
        let mut failed = None;
        crate::engine::walk::regular_files(path, &mut |p: &Path| {
            if failed.is_some() {
                return;
            }
            match std::fs::read(p) {
                Ok(bytes) => failed = emit(&p.to_string_lossy(), &bytes, &mut written).err(),
                Err(_) => written.skipped += 1,
            }
        });
        if let Some(e) = failed {
            return Err(e.into());
        }
    }
    Ok(written)
}

/// The header line (without its newline): `sha256,name,schema,parsed`, the
/// label columns, `mutation,origin` when `mutations`, then every feature.
pub(crate) fn header(labels: &[(&str, &str)], mutations: bool) -> String {
    let mut header = vec!["sha256", "name", "schema", "parsed"];
    header.extend(labels.iter().map(|(k, _)| *k));
    if mutations {
        header.extend(["mutation", "origin"]);
    }
    header.extend(features::names());
    header
        .iter()
        .map(|h| csv_field(h))
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes into `line` the row of `bytes` under [`header`] (`row` is scratch
/// space for the features): the same labels, and `(mutation, origin)` exactly
/// when the header has those columns.
pub(crate) fn format_row(
    line: &mut String,
    row: &mut Features,
    name: &str,
    bytes: &[u8],
    labels: &[(&str, &str)],
    mutation: Option<(&str, &str)>,
) {
    use std::fmt::Write as _;
    features::extract_into(bytes, row);
    line.clear();
    line.push_str(&hex::encode(Sha256::digest(bytes)));
    line.push(',');
    line.push_str(&csv_field(name));
    let _ = write!(line, ",{SCHEMA_VERSION},{}", u8::from(row.parsed));
    for (_, v) in labels {
        line.push(',');
        line.push_str(&csv_field(v));
    }
    if let Some((m, origin)) = mutation {
        line.push(',');
        line.push_str(&csv_field(m));
        line.push(',');
        line.push_str(&csv_field(origin));
    }
    for v in &row.values {
        let _ = write!(line, ",{v}");
    }
}

/// Quotes a CSV field when it holds a comma, quote or line break.
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_one_column_per_header_field() {
        let dir = std::env::temp_dir().join(format!("vigil-features-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.sh"), b"#!/bin/sh\necho a\n").unwrap();
        std::fs::write(dir.join("b.txt"), b"not code").unwrap();
        let mut out = Vec::new();
        let w = run(
            &mut out,
            std::slice::from_ref(&dir),
            &[],
            &["label=1".into(), "family=test,x".into()],
            false,
            None,
        )
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((w.rows, w.skipped), (1, 1));
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let header_cols = lines[0].split(',').count();
        assert_eq!(header_cols, 4 + 2 + features::names().len());
        // The quoted label value holds one comma.
        assert_eq!(lines[1].split(',').count(), header_cols + 1);
        assert!(lines[1].contains("\"test,x\""));
    }

    #[test]
    fn bad_label_is_an_error() {
        let err = run(&mut Vec::new(), &[], &[], &["nolabel".into()], false, None).unwrap_err();
        assert!(err.to_string().contains("KEY=VALUE"), "{err}");
    }
}
