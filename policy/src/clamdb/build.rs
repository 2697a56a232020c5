//! Building the [`Index`] without holding every record in memory.
//!
//! Owns: writing names to the scratch file as entries arrive, sorting records
//! in bounded runs (an external merge sort), and merging the runs into the
//! scratch file's sorted tables while the prefixes are collected. Must not own:
//! the layout's reading side (`index.rs`) or parsing lists (`clamdb.rs`).
//!
//! Why runs: 4 million records are 104 MB; sorting them in one vector made the
//! load's peak RSS twice the index. Here at most [`RUN_BYTES`] of records per
//! kind are in memory: a full run is sorted and written to a second unlinked
//! file, and [`Builder::finish`] merges the runs (and the last, in-memory one)
//! into the scratch file, keeping the first loaded entry of each digest.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::index::{
    ArenaFull, Index, Origin, Record, SIZE_ANY, SIZE_LARGE, ScratchFile, Table, prefix,
};
use super::names::NamesBuilder;
use super::scratch::{self, Scratch};
use crate::error::Error;

/// Records of one kind kept in memory before they are sorted and written out
/// as a run: 16 MiB (about 700,000 MD5 or 420,000 SHA-256 records).
const RUN_BYTES: usize = 16 << 20;
/// Bytes buffered before a write to, or read from, a scratch file.
const IO_BYTES: usize = 256 << 10;

/// Why an entry could not be added.
#[derive(Debug)]
pub enum AddError {
    /// The names would pass 4 GiB.
    ArenaFull,
    /// A scratch file could not be written (the message names its directory).
    Scratch(String),
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddError::ArenaFull => f.write_str("more than 4 GiB of signature names"),
            AddError::Scratch(message) => f.write_str(message),
        }
    }
}

impl From<ArenaFull> for AddError {
    fn from(_: ArenaFull) -> AddError {
        AddError::ArenaFull
    }
}

/// Sequential writes at an offset of a file, buffered.
#[derive(Debug)]
struct Appender {
    at: u64,
    buf: Vec<u8>,
}

impl Appender {
    fn new(at: u64) -> Appender {
        Appender {
            at,
            buf: Vec::with_capacity(IO_BYTES),
        }
    }

    /// The offset the next byte will have.
    fn end(&self) -> u64 {
        self.at + self.buf.len() as u64
    }

    fn maybe_flush(&mut self, file: &File) -> std::io::Result<()> {
        if self.buf.len() >= IO_BYTES {
            self.flush(file)?;
        }
        Ok(())
    }

    fn flush(&mut self, file: &File) -> std::io::Result<()> {
        file.write_all_at(&self.buf, self.at)?;
        self.at += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// One kind's records while loading.
#[derive(Debug)]
struct Pending<const N: usize> {
    /// The current run, unsorted.
    records: Vec<Record<N>>,
    /// Runs written to the runs file: (offset, records).
    runs: Vec<(u64, usize)>,
    /// Records added in all.
    total: usize,
}

impl<const N: usize> Default for Pending<N> {
    fn default() -> Self {
        Pending {
            records: Vec::new(),
            runs: Vec::new(),
            total: 0,
        }
    }
}

/// Collects entries, then writes the sorted tables once ([`Builder::finish`]).
#[derive(Debug)]
pub struct Builder {
    index: Index,
    scratch: Scratch,
    names: NamesBuilder,
    /// Names go to the scratch file from offset 0.
    out: Appender,
    /// Full runs, in a second unlinked file created at the first full run.
    runs: Option<(File, Appender)>,
    md5: Pending<16>,
    sha256: Pending<32>,
    /// [`RUN_BYTES`], smaller in tests so that they merge several runs.
    run_bytes: usize,
}

impl Builder {
    /// A builder for the database directory `dir` whose scratch file is in the
    /// first usable directory of `scratch_dirs` (see [`scratch::create`]).
    ///
    /// # Errors
    ///
    /// [`Error::ClamAvScratch`] if no directory allows a scratch file.
    pub fn new(dir: &Path, scratch_dirs: &[&Path]) -> Result<Builder, Error> {
        Ok(Builder {
            index: Index {
                dir: dir.to_owned(),
                ..Index::default()
            },
            scratch: scratch::create(scratch_dirs)?,
            names: NamesBuilder::default(),
            out: Appender::new(0),
            runs: None,
            md5: Pending::default(),
            sha256: Pending::default(),
            run_bytes: RUN_BYTES,
        })
    }

    /// The same builder with runs of `bytes` of records (tests merge runs).
    #[cfg(test)]
    pub fn with_run_bytes(mut self, bytes: usize) -> Builder {
        self.run_bytes = bytes;
        self
    }

    /// Starts the entries of one file (or container member).
    pub fn begin(&mut self, path: &Path, member: &str) -> Result<(), AddError> {
        let first_name = u32::try_from(self.out.end()).map_err(|_| ArenaFull)?;
        self.index.origins.push(Origin {
            first_name,
            path: path.to_owned(),
            member: member.to_owned(),
        });
        Ok(())
    }

    /// Adds an MD5 entry of the current origin.
    pub fn add_md5(
        &mut self,
        digest: [u8; 16],
        size: Option<u64>,
        name: &str,
    ) -> Result<(), AddError> {
        let (size, name) = self.push_name(size, name)?;
        push(
            &mut self.md5,
            Record { digest, size, name },
            self.run_bytes,
            &self.scratch,
            &mut self.runs,
        )
    }

    /// Adds a SHA-256 entry of the current origin.
    pub fn add_sha256(
        &mut self,
        digest: [u8; 32],
        size: Option<u64>,
        name: &str,
    ) -> Result<(), AddError> {
        let (size, name) = self.push_name(size, name)?;
        push(
            &mut self.sha256,
            Record { digest, size, name },
            self.run_bytes,
            &self.scratch,
            &mut self.runs,
        )
    }

    fn push_name(&mut self, size: Option<u64>, name: &str) -> Result<(u32, u32), AddError> {
        let offset = u32::try_from(self.out.end()).map_err(|_| ArenaFull)?;
        self.names.encode(name, &mut self.out.buf)?;
        // Offsets are u32: the whole of the names must stay addressable.
        u32::try_from(self.out.end()).map_err(|_| ArenaFull)?;
        self.out
            .maybe_flush(&self.scratch.file)
            .map_err(|e| AddError::Scratch(write_error(&self.scratch, &e)))?;
        let size = match size {
            None => SIZE_ANY,
            Some(size) => u32::try_from(size).map_or(SIZE_LARGE, |s| s.min(SIZE_LARGE)),
        };
        Ok((size, offset))
    }

    /// Writes the sorted tables after the names, one record per distinct
    /// digest (the first loaded), and returns the index reading them.
    ///
    /// # Errors
    ///
    /// [`Error::ClamAvScratch`] if a scratch file cannot be written or read.
    pub fn finish(mut self) -> Result<Index, Error> {
        let fail = |scratch: &Scratch, e: std::io::Error| Error::ClamAvScratch {
            message: write_error(scratch, &e),
        };
        let runs = self.runs.take().map(|(file, mut appender)| {
            let flushed = appender.flush(&file);
            (file, flushed)
        });
        let runs_file = match runs {
            Some((file, Ok(()))) => Some(file),
            Some((_, Err(e))) => return Err(fail(&self.scratch, e)),
            None => None,
        };
        let file = &self.scratch.file;
        let md5 = merge(self.md5, runs_file.as_ref(), file, &mut self.out);
        self.index.md5 = md5.map_err(|e| fail(&self.scratch, e))?;
        let sha256 = merge(self.sha256, runs_file.as_ref(), file, &mut self.out);
        self.index.sha256 = sha256.map_err(|e| fail(&self.scratch, e))?;
        self.out.flush(file).map_err(|e| fail(&self.scratch, e))?;
        self.index.families = self.names.finish();
        self.index.origins.shrink_to_fit();
        self.index.scratch = Some(ScratchFile {
            bytes: self.out.end(),
            dir: self.scratch.dir,
            file: Arc::new(self.scratch.file),
        });
        Ok(self.index)
    }
}

fn write_error(scratch: &Scratch, e: &std::io::Error) -> String {
    format!(
        "cannot write the index's scratch file in {}: {e}",
        scratch.dir.display()
    )
}

/// Adds `record`, writing the run out as a sorted run when it is full.
fn push<const N: usize>(
    pending: &mut Pending<N>,
    record: Record<N>,
    run_bytes: usize,
    scratch: &Scratch,
    runs: &mut Option<(File, Appender)>,
) -> Result<(), AddError> {
    let run = (run_bytes / std::mem::size_of::<Record<N>>()).max(1);
    if pending.records.capacity() == 0 {
        // Exactly one run's worth: a growing vector would overshoot by half.
        pending.records.reserve_exact(run);
    }
    pending.records.push(record);
    pending.total += 1;
    if pending.records.len() < run {
        return Ok(());
    }
    let error = |e: std::io::Error| AddError::Scratch(write_error(scratch, &e));
    if runs.is_none() {
        let file = tempfile::tempfile_in(&scratch.dir).map_err(error)?;
        *runs = Some((file, Appender::new(0)));
    }
    let Some((file, out)) = runs.as_mut() else {
        return Ok(());
    };
    pending
        .records
        .sort_unstable_by(|a, b| a.key().cmp(&b.key()));
    pending.runs.push((out.end(), pending.records.len()));
    for record in pending.records.drain(..) {
        record.write_to(&mut out.buf);
        out.maybe_flush(file).map_err(error)?;
    }
    Ok(())
}

/// A sorted run being merged: records read back from the runs file, or the
/// last run, still in memory.
enum Run<'a, const N: usize> {
    File {
        file: &'a File,
        at: u64,
        left: usize,
        buf: Vec<u8>,
        pos: usize,
    },
    Memory(std::vec::IntoIter<Record<N>>),
}

impl<const N: usize> Run<'_, N> {
    fn next(&mut self) -> std::io::Result<Option<Record<N>>> {
        match self {
            Run::Memory(records) => Ok(records.next()),
            Run::File {
                file,
                at,
                left,
                buf,
                pos,
            } => {
                let width = Record::<N>::WIDTH;
                if *pos >= buf.len() {
                    if *left == 0 {
                        return Ok(None);
                    }
                    let n = (*left).min(IO_BYTES / width);
                    buf.resize(n * width, 0);
                    file.read_exact_at(buf, *at)?;
                    *at += buf.len() as u64;
                    *left -= n;
                    *pos = 0;
                }
                let record = buf.get(*pos..).and_then(Record::<N>::read_from);
                *pos += width;
                record.map(Some).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "short run")
                })
            }
        }
    }
}

/// Merges one kind's runs into `out` (the scratch file), keeping the first
/// loaded record of each digest; returns the table of their prefixes.
fn merge<const N: usize>(
    mut pending: Pending<N>,
    runs_file: Option<&File>,
    file: &File,
    out: &mut Appender,
) -> std::io::Result<Table> {
    pending
        .records
        .sort_unstable_by(|a, b| a.key().cmp(&b.key()));
    let mut runs: Vec<Run<'_, N>> = Vec::with_capacity(pending.runs.len() + 1);
    if let Some(runs_file) = runs_file {
        for &(at, left) in &pending.runs {
            runs.push(Run::File {
                file: runs_file,
                at,
                left,
                buf: Vec::new(),
                pos: 0,
            });
        }
    }
    runs.push(Run::Memory(pending.records.into_iter()));
    let mut heads = Vec::with_capacity(runs.len());
    for run in &mut runs {
        heads.push(run.next()?);
    }
    let mut table = Table {
        prefixes: Vec::with_capacity(pending.total),
        start: out.end(),
    };
    let mut last: Option<[u8; N]> = None;
    loop {
        // Few runs (one per 16 MiB of records): a linear scan for the least.
        let mut least: Option<(usize, Record<N>)> = None;
        for (i, head) in heads.iter().enumerate() {
            if let Some(record) = head
                && least.is_none_or(|(_, l)| record.key() < l.key())
            {
                least = Some((i, *record));
            }
        }
        let Some((i, record)) = least else {
            break;
        };
        if let (Some(head), Some(run)) = (heads.get_mut(i), runs.get_mut(i)) {
            *head = run.next()?;
        }
        if last == Some(record.digest) {
            continue;
        }
        last = Some(record.digest);
        record.write_to(&mut out.buf);
        out.maybe_flush(file)?;
        table.prefixes.push(prefix(&record.digest));
    }
    table.prefixes.shrink_to_fit();
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several runs per kind, duplicates across runs: the first loaded wins.
    #[test]
    fn runs_merge_in_order_keeping_the_first_entry() {
        let tmp = std::env::temp_dir();
        let builder = Builder::new(Path::new("/db"), &[&tmp]).unwrap();
        // Runs of 5 MD5 records (and 3 SHA-256 ones).
        let mut b = builder.with_run_bytes(5 * std::mem::size_of::<Record<16>>());
        b.begin(Path::new("/db/a.hdb"), "").unwrap();
        let md5 = |i: u32| {
            let mut d = [0u8; 16];
            d[..4].copy_from_slice(&(i.wrapping_mul(2_654_435_761)).to_be_bytes());
            d
        };
        for i in 0..37 {
            b.add_md5(md5(i), Some(u64::from(i)), &format!("First-{i}-0"))
                .unwrap();
            b.add_sha256([i as u8; 32], None, &format!("Sha-{i}-1"))
                .unwrap();
        }
        b.begin(Path::new("/db/b.hdb"), "").unwrap();
        for i in (0..37).step_by(3) {
            b.add_md5(md5(i), Some(u64::from(i)), &format!("Again-{i}-0"))
                .unwrap();
        }
        assert!(b.md5.runs.len() >= 8, "{}", b.md5.runs.len());
        let index = b.finish().unwrap();
        assert_eq!((index.md5_len(), index.sha256_len()), (37, 37));
        assert!(index.md5.prefixes.windows(2).all(|w| w[0] < w[1]));
        for i in 0..37 {
            let hit = index.lookup_md5(&md5(i), u64::from(i)).unwrap();
            assert_eq!(
                (hit.name.to_string(), hit.path),
                (format!("First-{i}-0"), Path::new("/db/a.hdb")),
            );
            let sha = index.lookup_sha256(&[i as u8; 32], 1).unwrap();
            assert_eq!(sha.name.to_string(), format!("Sha-{i}-1"));
        }
        // Names, then 37 MD5 and 37 SHA-256 records.
        let (bytes, _) = index.scratch().unwrap();
        assert_eq!(bytes, index.sha256.start + 37 * 40);
        assert_eq!(index.sha256.start, index.md5.start + 37 * 24);
    }
}
