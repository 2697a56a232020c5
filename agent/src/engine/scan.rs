//! The scan pipeline: a file's bytes, read once through a descriptor, to a decision.
//!
//! Owns the per-thread buffers and the order of the stages: SHA-256 (and MD5 only
//! when an MD5 list is loaded) against the allowlist (a hit skips every stage below
//! and the file is clean), then the hash database, then the ELF and script
//! heuristics, then the YARA rules, then (ELF files only) the model bundle, then
//! [`decide`]. It does not answer events or
//! touch the cache: the worker (daemon) and `vigil scan` (CLI) call
//! [`Scanner::scan_fd`] and act on the result.
//!
//! That order is the order of the findings, not always of the work: an ELF file
//! of 256 KiB or more that the trust store does not vouch for
//! has its ELF stages (one parse, the heuristics, the model) started on a second
//! thread as soon as it is read, while the scanning thread digests it and runs
//! the rules. Their findings are taken in the order above and dropped when an
//! earlier stage decided (a listed or allowed hash, a known content, a
//! conclusive heuristic or rule), so the decision is the one the sequence gives;
//! the rules still start only after the hash said nothing.
//!
//! The daemon hands in the fanotify event fd: reading by path would re-enter
//! fanotify and race with renames. Reads use `pread` from offset 0, so the event
//! fd's own offset does not matter. One pass fills the content buffer the later
//! stages read (and feeds the digests, unless the ELF stages will start beside
//! them); files above [`CONTENT_CAP`] are only hashed.
//! A file whose SHA-256 equals the trust store's for its path (a package file as
//! installed) is only looked up in the hash lists: provenance stands in for the
//! expensive stages, never for the blocklist.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use md5::Md5;
use nix::errno::Errno;
use sha2::{Digest, Sha256};
use vigil_policy::verdict::{clamav_reason, hash_reason, is_conclusive};
use vigil_policy::{Decision, HashEntry, Reason, RuleScanner, TrustEntry, decide, heuristics};

use vigil_elf::ElfView;
use vigil_models::sniff::{FileKind, sniff};

use crate::daemon::latency::StageTimes;
use crate::engine::generation::Generation;
use crate::engine::model::ModelStage;
use crate::engine::own_exe::OwnExecutable;

/// Bytes read per `pread`: large enough to amortise the syscall, small enough to
/// stay in L2 while both digests consume it.
pub const READ_CHUNK: usize = 256 * 1024;
/// Largest file whose content is kept in memory for heuristics and rules; larger
/// files are hashed only. Matches the heuristics' own parse cap.
pub const CONTENT_CAP: u64 = 64 * 1024 * 1024;
/// Capacity a worker's content buffer keeps between scans, so one large file does
/// not pin its memory forever.
const CONTENT_KEEP: usize = 8 * 1024 * 1024;

/// How much work a scan does once the verdict is certain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Stop at the first stage that makes the file malicious (the daemon's hot path).
    FirstMalicious,
    /// Run every stage (`vigil scan --explain`).
    All,
}

/// What a scan found.
#[derive(Debug)]
pub struct ScanResult {
    /// SHA-256 of the bytes read.
    pub sha256: [u8; 32],
    /// Bytes read (the file's size unless it changed during the scan).
    pub size: u64,
    /// The decision reached from every stage's findings.
    pub decision: Decision,
    /// How long each stage took.
    pub times: StageTimes,
    /// The content matched the trust store's SHA-256 for its path, so only the
    /// hash lists ran (rules, heuristics and model were skipped).
    pub trusted: bool,
    /// The allow entry the file's hash matched: no detection stage ran and the
    /// decision is clean.
    pub allowed: Option<HashEntry>,
    /// The decision was already known for this content (the caller's `known`):
    /// only the hash ran.
    pub known: bool,
    /// A stage failed (the rule stage's timeout, on a loaded machine) and the
    /// decision was reached without it. Good enough to answer with; the daemon
    /// does not keep such a verdict on disk, so the next start scans again.
    pub partial: bool,
}

/// A reusable scanner: one per worker thread (it owns its buffers).
pub struct Scanner {
    chunk: Vec<u8>,
    content: Vec<u8>,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    /// A scanner with its read buffer allocated.
    pub fn new() -> Scanner {
        Scanner {
            chunk: vec![0; READ_CHUNK],
            content: Vec::new(),
        }
    }

    /// Reads the file behind `fd` (of `size` bytes per `fstat`) from offset 0 to EOF
    /// in one pass and runs every stage of `generation`; `rules` must be a scanner of
    /// `generation.rules`. Two shortcuts after the hash:
    /// - `trust`, the trust store's entry for the file's path: when the content's
    ///   SHA-256 equals its, the hash lists still run but the expensive stages are
    ///   skipped ([`ScanResult::trusted`]);
    /// - `known`, the decision already reached on a content's SHA-256 under this
    ///   generation, if any: when it answers, no later stage runs
    ///   ([`ScanResult::known`]). Callers without such a memory pass `&|_| None`.
    ///
    /// # Errors
    /// The `pread` errno (`EIO`, …). `EINTR` is retried. A rule-stage failure (its
    /// timeout) is logged and the other stages' findings still decide.
    #[allow(clippy::too_many_arguments)]
    pub fn scan_fd(
        &mut self,
        fd: BorrowedFd<'_>,
        size: u64,
        generation: &Generation,
        rules: &mut RuleScanner<'_>,
        depth: Depth,
        trust: Option<&TrustEntry>,
        known: &dyn Fn(&[u8; 32]) -> Option<Decision>,
    ) -> Result<ScanResult, Errno> {
        let started = Instant::now();
        let keep = size <= CONTENT_CAP;
        // A large file the trust store does not vouch for is read whole before it
        // is digested, so that its ELF stages can start beside the digests.
        let beside_first = keep && size >= PARALLEL_FROM as u64 && trust.is_none();
        self.content.clear();
        if keep {
            self.content.reserve(usize::try_from(size).unwrap_or(0));
        }
        let mut digests = (!beside_first).then(|| Digests::new(generation));
        let mut offset: u64 = 0;
        loop {
            let n = match nix::sys::uio::pread(fd, &mut self.chunk, offset as i64) {
                Ok(0) => break,
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            };
            let chunk = &self.chunk[..n];
            // A file growing during the scan past the cap stops feeding the content
            // stages rather than growing the buffer without bound.
            let room = keep && (self.content.len() as u64) < CONTENT_CAP;
            if digests.is_none() && !room {
                // The rest will not be kept: digest what was, then the rest as read.
                let mut d = Digests::new(generation);
                d.update(&self.content);
                digests = Some(d);
            }
            if let Some(d) = digests.as_mut() {
                d.update(chunk);
            }
            if room {
                self.content.extend_from_slice(chunk);
            }
            offset += n as u64;
        }
        let content = keep.then_some(self.content.as_slice());
        let after_read = |beside: Option<ElfBeside<'_>>| {
            let (sha256, md5) = match digests {
                Some(d) => d.finish(),
                None => Digests::of(content.unwrap_or_default(), generation),
            };
            let times = StageTimes {
                hash: Some(started.elapsed()),
                ..StageTimes::default()
            };
            if let Some(decision) = known(&sha256) {
                // What the ELF stages find beside is dropped with `beside`
                // (their scope still waits for the thread).
                return ScanResult {
                    sha256,
                    size: offset,
                    decision,
                    times,
                    trusted: false,
                    allowed: None,
                    known: true,
                    partial: false,
                };
            }
            let trusted = trust.is_some_and(|t| t.sha256 == sha256);
            let digests = (sha256, md5);
            judge(
                digests, offset, content, trusted, generation, rules, depth, beside, times,
            )
        };
        // A thread scope only where a thread may start: not per small file.
        let result = match content.filter(|_| beside_first) {
            Some(c) => {
                std::thread::scope(|s| after_read(ElfBeside::start(s, c, generation, depth)))
            }
            None => after_read(None),
        };
        if self.content.capacity() > CONTENT_KEEP {
            self.content = Vec::new();
        }
        Ok(result)
    }
}

/// Runs every stage on a file already in memory (`vigil eval` reads the corpus
/// this way, so no sample is ever written to disk).
pub fn scan_bytes(
    bytes: &[u8],
    generation: &Generation,
    rules: &mut RuleScanner<'_>,
    depth: Depth,
) -> ScanResult {
    let size = bytes.len() as u64;
    let content = (size <= CONTENT_CAP).then_some(bytes);
    let mut after = |beside: Option<ElfBeside<'_>>| {
        let digests = Digests::of(bytes, generation);
        let times = StageTimes::default();
        judge(
            digests, size, content, false, generation, rules, depth, beside, times,
        )
    };
    match content.filter(|c| c.len() >= PARALLEL_FROM) {
        Some(c) => std::thread::scope(|s| after(ElfBeside::start(s, c, generation, depth))),
        None => after(None),
    }
}

/// After the digests: the allow list, then (unless it matched) [`evaluate`] on
/// `content` (none when `trusted`: the hash lists only), as a [`ScanResult`].
#[allow(clippy::too_many_arguments)]
fn judge(
    (sha256, md5): ([u8; 32], Option<[u8; 16]>),
    size: u64,
    content: Option<&[u8]>,
    trusted: bool,
    generation: &Generation,
    rules: &mut RuleScanner<'_>,
    depth: Depth,
    beside: Option<ElfBeside<'_>>,
    mut times: StageTimes,
) -> ScanResult {
    let allowed = allowlisted(generation, &sha256, md5.as_ref(), size, &mut times);
    let mut partial = false;
    let decision = match allowed {
        Some(_) => decide(Vec::new(), &generation.config.decision),
        None => evaluate(
            &sha256,
            md5.as_ref(),
            size,
            content.filter(|_| !trusted),
            generation,
            rules,
            depth,
            beside,
            &mut times,
            &mut partial,
        ),
    };
    ScanResult {
        sha256,
        size,
        decision,
        times,
        trusted,
        allowed,
        known: false,
        partial,
    }
}

/// SHA-256 always, MD5 only when a list needs it (an `.hdb` block list or an
/// `.fp` allow list).
struct Digests {
    sha256: Sha256,
    md5: Option<Md5>,
}

impl Digests {
    fn new(generation: &Generation) -> Digests {
        let md5 = generation.hashes.needs_md5()
            || generation.allow.needs_md5()
            || generation.clamav.needs_md5();
        Digests {
            sha256: Sha256::new(),
            md5: md5.then(Md5::new),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        if let Some(m) = self.md5.as_mut() {
            m.update(bytes);
        }
    }

    fn finish(self) -> ([u8; 32], Option<[u8; 16]>) {
        (
            self.sha256.finalize().into(),
            self.md5.map(|m| m.finalize().into()),
        )
    }

    fn of(bytes: &[u8], generation: &Generation) -> ([u8; 32], Option<[u8; 16]>) {
        let mut d = Digests::new(generation);
        d.update(bytes);
        d.finish()
    }
}

/// The allow entry for the file's digests, if any (cloned only on a hit, which
/// ends the scan): vigil's own executable ([`OwnExecutable`]), then the allow
/// lists. The lookup's time counts to the hash stage.
fn allowlisted(
    generation: &Generation,
    sha256: &[u8; 32],
    md5: Option<&[u8; 16]>,
    size: u64,
    times: &mut StageTimes,
) -> Option<HashEntry> {
    if let Some(own) = OwnExecutable::current().filter(|o| o.is(sha256, size)) {
        return Some(own.entry());
    }
    if generation.allow.is_empty() {
        return None;
    }
    let lookup = Instant::now();
    let hit = generation.allow.lookup(sha256, md5, size).cloned();
    times.hash = Some(times.hash.unwrap_or_default() + lookup.elapsed());
    hit
}

/// The stages after reading: hash lookups, then (with the content in memory)
/// heuristics, rules and model, then the decision. `beside`, when given, is
/// computing the ELF stages (parse, heuristics, model) of `content` on another
/// thread; their findings are taken in the usual order. Adds each stage's time
/// to `times` (the lookups to `times.hash`); sets `partial` when a stage failed.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    sha256: &[u8; 32],
    md5: Option<&[u8; 16]>,
    size: u64,
    content: Option<&[u8]>,
    generation: &Generation,
    rules: &mut RuleScanner<'_>,
    depth: Depth,
    beside: Option<ElfBeside<'_>>,
    times: &mut StageTimes,
    partial: &mut bool,
) -> Decision {
    let lookups = Instant::now();
    let mut reasons: Vec<Reason> = Vec::new();
    if let Some(entry) = generation.hashes.lookup_sha256(sha256, size) {
        reasons.push(hash_reason(entry));
    }
    if let Some(entry) = md5.and_then(|d| generation.hashes.lookup_md5(d, size)) {
        reasons.push(hash_reason(entry));
    }
    if reasons.is_empty() && !generation.clamav.is_empty() {
        // Only when the lists above said nothing: one hash reason is conclusive.
        if let Some(hit) = generation.clamav.lookup_sha256(sha256, size) {
            reasons.push(clamav_reason(&hit));
        } else if let Some(hit) = md5.and_then(|d| generation.clamav.lookup_md5(d, size)) {
            reasons.push(clamav_reason(&hit));
        }
    }
    times.hash = Some(times.hash.unwrap_or_default() + lookups.elapsed());
    let policy = &generation.config.decision;
    let done =
        |reasons: &[Reason]| depth == Depth::FirstMalicious && is_conclusive(reasons, policy);
    let Some(content) = content.filter(|_| !done(&reasons)) else {
        // Whatever the ELF stages found beside is dropped, as if they had not run.
        return decide(reasons, policy);
    };
    let mut rule_stage = |reasons: &mut Vec<Reason>, times: &mut StageTimes, failed: &mut bool| {
        let t = Instant::now();
        match rules.scan(content, generation.config.scan.rule_timeout) {
            Ok(found) => reasons.extend(found),
            Err(e) => {
                *failed = true;
                crate::warn_limited!(error = %e, "rule stage failed; deciding without it")
            }
        }
        times.rules = Some(t.elapsed());
    };
    if let Some(beside) = beside {
        // The rules run while the ELF stages finish; a stage a conclusive one
        // before it made unneeded is dropped, as if it had not run.
        let (mut ruled, mut rule_time, mut rules_failed) =
            (Vec::new(), StageTimes::default(), false);
        if !generation.rules.is_empty() {
            rule_stage(&mut ruled, &mut rule_time, &mut rules_failed);
        }
        let elf = beside.finish(partial);
        if let Some((found, took)) = elf.heuristics {
            reasons.extend(found);
            times.heuristics = Some(took);
        }
        if !done(&reasons) {
            reasons.extend(ruled);
            times.rules = rule_time.rules;
            *partial |= rules_failed;
        }
        if let Some((found, took)) = elf.model.filter(|_| !done(&reasons)) {
            reasons.extend(found);
            times.model = Some(took);
        }
        return decide(reasons, policy);
    }
    // One parse of the ELF tables for the heuristics and the model (its time
    // counts to the heuristics, or to the model when they are off).
    let is_elf = sniff(content) == FileKind::Elf;
    let mut parse_time = Duration::ZERO;
    let view = (is_elf && (generation.config.heuristics.enabled || generation.model.is_some()))
        .then(|| {
            let t = Instant::now();
            let view = ElfView::parse(content);
            parse_time = t.elapsed();
            view
        });
    if generation.config.heuristics.enabled {
        let t = Instant::now();
        reasons.extend(heuristics::analyze_parsed(content, view.as_ref()));
        times.heuristics = Some(t.elapsed() + std::mem::take(&mut parse_time));
    }
    if !generation.rules.is_empty() && !done(&reasons) {
        rule_stage(&mut reasons, times, partial);
    }
    if let Some((model, view)) = generation.model.as_ref().zip(view.as_ref())
        && !done(&reasons)
    {
        let (found, took) = score(model, content, view, depth == Depth::All);
        reasons.extend(found);
        times.model = Some(took + parse_time);
    }
    decide(reasons, policy)
}

/// Files at least this large have their ELF stages (parse, heuristics, model)
/// run on a second thread while the scanning thread digests the file and runs
/// the rules: for the harness's 667 KiB static binary with a default install's
/// content, digests 0.4 ms, rules 0.55 ms, parse and heuristics 0.17 ms, model
/// 0.84 ms (`cargo bench -p vigil --bench scan`). Below it a thread costs more
/// than it saves.
const PARALLEL_FROM: usize = 256 * 1024;

/// The ELF stages of one file, running on their own thread.
struct ElfBeside<'scope> {
    handle: std::thread::ScopedJoinHandle<'scope, ElfFindings>,
}

/// What [`ElfBeside`] found: each stage's findings and time, `None` when it
/// did not run.
#[derive(Default)]
struct ElfFindings {
    heuristics: Option<(Vec<Reason>, Duration)>,
    model: Option<(Vec<Reason>, Duration)>,
}

impl<'scope> ElfBeside<'scope> {
    /// Starts the ELF stages of `content` when it is an ELF file and a stage
    /// needs its tables; `None` otherwise, or when no thread could be made (the
    /// caller then runs them itself).
    fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        content: &'env [u8],
        generation: &'env Generation,
        depth: Depth,
    ) -> Option<ElfBeside<'scope>> {
        let heuristics_on = generation.config.heuristics.enabled;
        if sniff(content) != FileKind::Elf || !(heuristics_on || generation.model.is_some()) {
            return None;
        }
        let run = move || {
            let t = Instant::now();
            let view = ElfView::parse(content);
            let mut found = ElfFindings::default();
            let mut parse_time = t.elapsed();
            if heuristics_on {
                let reasons = heuristics::analyze_parsed(content, Some(&view));
                found.heuristics = Some((reasons, t.elapsed()));
                parse_time = Duration::ZERO;
            }
            let conclusive = found.heuristics.as_ref().is_some_and(|(r, _)| {
                depth == Depth::FirstMalicious && is_conclusive(r, &generation.config.decision)
            });
            if let Some(model) = generation.model.as_ref().filter(|_| !conclusive) {
                let (reasons, took) = score(model, content, &view, depth == Depth::All);
                found.model = Some((reasons, took + parse_time));
            }
            found
        };
        std::thread::Builder::new()
            .name("vigil-elf".to_owned())
            .spawn_scoped(scope, run)
            .ok()
            .map(|handle| ElfBeside { handle })
    }

    /// Its findings; none, and `partial` set, if the thread panicked.
    fn finish(self, partial: &mut bool) -> ElfFindings {
        self.handle.join().unwrap_or_else(|_| {
            *partial = true;
            crate::warn_limited!("the ELF stages' thread failed; deciding without them");
            ElfFindings::default()
        })
    }
}

/// The model stage's findings on `content` and its time.
fn score(
    model: &ModelStage,
    content: &[u8],
    view: &ElfView<'_>,
    explain: bool,
) -> (Vec<Reason>, Duration) {
    let t = Instant::now();
    let mut found = Vec::new();
    model.evaluate(content, view, &mut found, explain);
    (found, t.elapsed())
}

/// SHA-256 and size of the file at `path`, read from the start (for `vigil
/// allow PATH`, by the command or, for a file it may not open, by the daemon). Refuses anything
/// but a regular file (opened non-blocking, so a FIFO cannot hang the caller).
///
/// # Errors
/// The open or read error, or "not a regular file".
pub fn hash_file(path: &std::path::Path) -> std::io::Result<([u8; 32], u64)> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOCTTY).bits())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sha.update(&buf[..n]);
        size += n as u64;
    }
    Ok((sha.finalize().into(), size))
}

/// Largest file the deadline hashes before it lets a timeout allow it: 16 MiB
/// take about 10 ms to hash on these machines, on the deadline thread.
pub const DEADLINE_HASH_CAP: u64 = 16 * 1024 * 1024;

/// Whether the file behind `fd` is on one of `generation`'s hash lists, by its
/// SHA-256 (and MD5 when an MD5 list is loaded). `None` when it was not hashed:
/// larger than [`DEADLINE_HASH_CAP`], or a read error. For the deadline thread,
/// which must never let a timeout allow a listed file.
pub fn listed(fd: BorrowedFd<'_>, generation: &Generation) -> Option<bool> {
    let size = u64::try_from(nix::sys::stat::fstat(fd).ok()?.st_size).ok()?;
    if size > DEADLINE_HASH_CAP {
        return None;
    }
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut sha = Sha256::new();
    let mut md5 = generation.hashes.needs_md5().then(Md5::new);
    let mut offset: u64 = 0;
    loop {
        let n = match nix::sys::uio::pread(fd, &mut chunk, i64::try_from(offset).ok()?) {
            Ok(0) => break,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
        };
        sha.update(&chunk[..n]);
        if let Some(m) = md5.as_mut() {
            m.update(&chunk[..n]);
        }
        offset += n as u64;
        if offset > DEADLINE_HASH_CAP {
            return None;
        }
    }
    let sha256: [u8; 32] = sha.finalize().into();
    let md5: Option<[u8; 16]> = md5.map(|m| m.finalize().into());
    Some(
        generation.hashes.lookup_sha256(&sha256, offset).is_some()
            || md5.is_some_and(|d| generation.hashes.lookup_md5(&d, offset).is_some())
            || generation.clamav.lookup_sha256(&sha256, offset).is_some()
            || md5.is_some_and(|d| generation.clamav.lookup_md5(&d, offset).is_some()),
    )
}

/// Reads up to `buf.len()` leading bytes of the file behind `fd` (for sniffing).
///
/// # Errors
/// The `pread` errno.
pub fn read_prefix(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match nix::sys::uio::pread(fd, buf, 0) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Depth, PARALLEL_FROM, scan_bytes};
    use crate::engine::generation::Generation;
    use vigil_policy::score::Stage;

    /// A generation with one rule matching `marker` and the built-in model.
    fn generation(name: &str, marker: &str) -> Generation {
        generation_listing(name, marker, &[])
    }

    /// [`generation`] with a block list of `listed` SHA-256 digests.
    fn generation_listing(name: &str, marker: &str, listed: &[[u8; 32]]) -> Generation {
        let dir = std::env::temp_dir().join(format!("vigil-scan-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let rule = dir.join("marker.yar");
        std::fs::write(
            &rule,
            format!("rule marker {{ strings: $m = \"{marker}\" condition: $m }}\n"),
        )
        .unwrap();
        let list = dir.join("listed.sha256");
        let lines: String = listed
            .iter()
            .map(|d| format!("{}  listed\n", hex::encode(d)))
            .collect();
        std::fs::write(&list, lines).unwrap();
        let config = dir.join("vigil.toml");
        std::fs::write(
            &config,
            format!(
                "[content]\nhashes = [{list:?}]\nallow = []\nrules = [{rule:?}]\nbuiltin_rules = false\nmodel = \"builtin\"\n"
            ),
        )
        .unwrap();
        let generation = Generation::load(1, Some(&config)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        generation
    }

    /// A real ELF program of at least `len` bytes with `marker` at its end.
    fn elf_with(marker: &str, len: usize) -> Vec<u8> {
        let mut bytes = std::fs::read("/bin/true").unwrap();
        bytes.resize(len.max(bytes.len()), 0);
        bytes.extend_from_slice(marker.as_bytes());
        bytes
    }

    /// The rule and model findings' stages, in order (the padding may give
    /// heuristic ones too).
    fn stages(reasons: &[vigil_policy::Reason]) -> Vec<Stage> {
        reasons
            .iter()
            .map(|r| r.stage)
            .filter(|s| matches!(s, Stage::Rules | Stage::Model))
            .collect()
    }

    #[test]
    fn the_model_beside_the_rules_reports_as_after_them() {
        let marker = "vigil-scan-parallel-marker";
        let generation = generation("beside", marker);
        let mut rules = generation.rules.scanner();
        for len in [0, PARALLEL_FROM + 1] {
            let bytes = elf_with(marker, len);
            let all = scan_bytes(&bytes, &generation, &mut rules, Depth::All);
            assert_eq!(
                stages(&all.decision.reasons),
                [Stage::Rules, Stage::Model],
                "{} bytes: the rule's finding, then the model's",
                bytes.len()
            );
            assert!(all.times.rules.is_some() && all.times.model.is_some());
            // A conclusive rule ends the hot path's scan: whatever the model
            // found beside it is dropped, as when it ran after.
            let first = scan_bytes(&bytes, &generation, &mut rules, Depth::FirstMalicious);
            assert_eq!(stages(&first.decision.reasons), [Stage::Rules]);
            assert!(first.times.model.is_none(), "{} bytes", bytes.len());
        }
    }

    /// A large ELF file read through a descriptor: its ELF stages run beside
    /// the digests and rules, and every shortcut the hash gives still holds.
    #[test]
    fn the_hash_shortcuts_hold_with_the_elf_stages_beside() {
        use sha2::Digest as _;
        use std::os::fd::AsFd as _;
        let marker = "vigil-scan-beside-marker";
        let bytes = elf_with(marker, PARALLEL_FROM + 1);
        let digest: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        let path =
            std::env::temp_dir().join(format!("vigil-scanned-file-{}.elf", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let size = bytes.len() as u64;
        let mut scanner = super::Scanner::new();
        let mut scan =
            |generation: &Generation,
             depth: Depth,
             trust: Option<&vigil_policy::TrustEntry>,
             known: &dyn Fn(&[u8; 32]) -> Option<vigil_policy::Decision>| {
                let mut rules = generation.rules.scanner();
                let fd = file.as_fd();
                scanner
                    .scan_fd(fd, size, generation, &mut rules, depth, trust, known)
                    .unwrap()
            };

        // Unlisted: the rule's finding, then the model's, as in memory.
        let plain = generation("beside-plain", marker);
        let r = scan(&plain, Depth::All, None, &|_| None);
        assert_eq!(r.sha256, digest);
        assert_eq!(stages(&r.decision.reasons), [Stage::Rules, Stage::Model]);
        assert!(r.times.heuristics.is_some() && r.times.model.is_some());

        // Listed: the hash decides; what the rules and the ELF stages found is
        // dropped, as when they did not run.
        let listing = generation_listing("beside-listed", marker, &[digest]);
        let r = scan(&listing, Depth::FirstMalicious, None, &|_| None);
        let all: Vec<Stage> = r.decision.reasons.iter().map(|r| r.stage).collect();
        assert_eq!(all, [Stage::Hash]);
        assert_eq!(r.decision.verdict, vigil_policy::Verdict::Malicious);
        assert!(r.times.rules.is_none() && r.times.model.is_none() && r.times.heuristics.is_none());

        // Known content: the remembered decision, nothing else.
        let remembered = vigil_policy::decide(Vec::new(), &plain.config.decision);
        let r = scan(&plain, Depth::FirstMalicious, None, &|d| {
            (*d == digest).then(|| remembered.clone())
        });
        assert!(r.known);
        assert!(r.decision.reasons.is_empty());
        assert!(r.times.rules.is_none() && r.times.model.is_none());

        // Trusted (the trust store's digest for the path): hash lists only.
        let trust = vigil_policy::TrustEntry {
            sha256: digest,
            size,
            package: 0,
        };
        let r = scan(&plain, Depth::FirstMalicious, Some(&trust), &|_| None);
        assert!(r.trusted);
        assert!(r.decision.reasons.is_empty());
        let _ = std::fs::remove_file(&path);
    }

    use vigil_elf::ElfView;
    use vigil_models::features::{Features, Schema, extract_schema_into, extract_with_view};
    use vigil_policy::heuristics;

    /// What parsing once saves: the ELF heuristics and the model's features over
    /// the ELF files of /usr/bin, each parsing on its own (as before) and from
    /// one shared view, alternated in the same run. A measurement, not a check:
    /// `cargo test -p vigil --lib parse_once -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement; run by hand"]
    fn parse_once_measurement() {
        let files: Vec<Vec<u8>> = std::fs::read_dir("/usr/bin")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter(|b| b.starts_with(b"\x7fELF") && b.len() <= 8 << 20)
            .take(300)
            .collect();
        let bytes: usize = files.iter().map(Vec::len).sum();
        let mut row = Features::default();
        let (mut twice, mut once, mut parse) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for _ in 0..3 {
            let t = Instant::now();
            for f in &files {
                std::hint::black_box(heuristics::analyze(f));
                extract_schema_into(f, Schema::LATEST, &mut row);
            }
            twice += t.elapsed();
            let t = Instant::now();
            for f in &files {
                let p = Instant::now();
                let view = ElfView::parse(f);
                parse += p.elapsed();
                std::hint::black_box(heuristics::analyze_parsed(f, Some(&view)));
                extract_with_view(f, Some(&view), Schema::LATEST, &mut row);
            }
            once += t.elapsed();
        }
        let per = |d: Duration| d.as_secs_f64() * 1e6 / (3 * files.len()) as f64;
        println!(
            "{} ELF files ({} MiB) x 3: parsed twice {:.1} us/file, once {:.1} us/file \
             (ratio {:.3}); one parse {:.1} us/file",
            files.len(),
            bytes >> 20,
            per(twice),
            per(once),
            once.as_secs_f64() / twice.as_secs_f64(),
            per(parse)
        );
    }
}
