//! YARA rules: compile a rule set once per content generation, scan bytes with it.
//!
//! Owns: finding the rule files under the configured paths, compiling them with
//! yara-x (one namespace per file, so files cannot collide or depend on each other),
//! the compile-error policy ([`RuleErrorPolicy`]), and turning matches into
//! [`Reason`]s (id `namespace:rule`, detail from `threat_name`/`description` and
//! `severity` metadata, score from `severity`). Must not own: when to reload (the
//! agent compiles off the hot path and swaps the generation), reading the scanned
//! file, weights or thresholds.
//!
//! Built-in rules: vigil's own rule pack ([`builtin_rules`], `policy/rules/builtin.yar`,
//! written from the training corpus's families) is compiled into the binary and added
//! to every set loaded with `builtin = true` (`content.builtin_rules`), in the
//! reserved namespace [`BUILTIN_NAMESPACE`]; its matches name `built-in` as their
//! source instead of a file.
//!
//! Scanners: a `yara_x::Scanner` borrows its `Rules` and allocates a WASM store when
//! created, which costs far more than scanning a small file (see the crate docs for
//! the numbers), so the daemon keeps one [`RuleScanner`] per worker thread and per
//! generation: [`RuleSet`] is a cheap `Arc` clone, and a worker that sees a new
//! generation drops its scanner and makes one from the new set. yara-x has no
//! scanner that owns its rules, and a self-referential struct would need `unsafe`.
//! [`RuleSet::scan`] makes a throwaway scanner for one-off callers (`vigil scan`).
//!
//! Timeouts: yara-x checks its deadline on a one-second heartbeat (a thread it starts
//! itself the first time a timeout is set), rounding the timeout up to whole seconds
//! and possibly firing up to a second early. [`RuleScanner::scan`] therefore asks
//! for one second more than the timeout it is given: a scan is never cut short
//! before `timeout`, and stops at most about a second after it.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use yara_x::{Compiler, MetaValue, ScanError, Scanner, SourceCode};

use crate::config::RuleErrorPolicy;
use crate::error::Error;
use crate::score::{MALICIOUS_SCORE, Stage};
use crate::verdict::Reason;

mod bytes;
mod elf_symbols;
pub use bytes::{from_bytes, to_bytes};
use elf_symbols::ElfSymbols;

/// Score of a matching rule without usable `severity` metadata: a rule match is
/// specific, so it is conclusive by default.
pub const DEFAULT_RULE_SCORE: u32 = MALICIOUS_SCORE;

/// File name extensions of YARA rule files.
pub const RULE_EXTENSIONS: [&str; 2] = ["yar", "yara"];

/// Directory levels searched below a configured rule directory.
pub const MAX_RULE_DIR_DEPTH: usize = 8;

/// vigil's own rule pack (`content.builtin_rules`), as its source text.
///
/// The text is stored masked in the binary ([`MASKED_RULES`]): in the clear,
/// every string the rules look for would be in vigil's own executable, and
/// its own rules (and any scanner using them) would judge vigil malicious,
/// denying its own commands on a default install.
pub fn builtin_rules() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let bytes: Vec<u8> = MASKED_RULES
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask_byte(i))
            .collect();
        // The source file is UTF-8 (include_str! below checks it at build time).
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The byte XORed into position `i` of the rule text: it varies with the
/// position, so a string repeated in the rules leaves no repeated pattern.
const fn mask_byte(i: usize) -> u8 {
    let x = (i as u32).wrapping_mul(0x9E37_79B1) ^ 0x5A5A_A5A5;
    (x ^ (x >> 13) ^ (x >> 24)) as u8
}

/// The rule source, UTF-8 checked at build time and only ever used in
/// constant evaluation (never emitted into the binary).
const RULE_SOURCE: &str = include_str!("../rules/builtin.yar");

/// [`RULE_SOURCE`] masked at build time; the only copy in the binary.
static MASKED_RULES: [u8; RULE_SOURCE.len()] = {
    let src = RULE_SOURCE.as_bytes();
    let mut out = [0u8; RULE_SOURCE.len()];
    let mut i = 0;
    while i < src.len() {
        out[i] = src[i] ^ mask_byte(i);
        i += 1;
    }
    out
};

/// Namespace of the built-in rules (a rule file named `builtin.yar` gets another).
pub const BUILTIN_NAMESPACE: &str = "builtin";

/// How the built-in rules are named where a rule file's path would be.
pub const BUILTIN_RULES_SOURCE: &str = "<built-in>";

/// A compiled rule set. Cloning is cheap (the compiled rules are shared).
#[derive(Clone)]
pub struct RuleSet {
    rules: Arc<yara_x::Rules>,
    /// Rule file of each namespace, for match details.
    sources: Arc<HashMap<String, PathBuf>>,
    files: usize,
    count: usize,
    /// SHA-256 over every compiled source (namespace, path, text), in order.
    digest: [u8; 32],
    /// The `elf` module's symbol tables no rule reads (see [`elf_symbols`]).
    elf_symbols: ElfSymbols,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("files", &self.files)
            .field("rules", &self.count)
            .finish()
    }
}

/// A rule file left out of the set (only with [`RuleErrorPolicy::Skip`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleWarning {
    /// The file, or the configured directory that held no rule files.
    pub path: PathBuf,
    /// 1-based line of the problem (0 when not tied to a line).
    pub line: usize,
    /// What is wrong, as in the matching [`Error`].
    pub message: String,
}

impl fmt::Display for RuleWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
        }
    }
}

impl RuleWarning {
    fn from_error(error: Error) -> RuleWarning {
        match error {
            Error::Rule {
                path,
                line,
                message,
            } => RuleWarning {
                path,
                line,
                message,
            },
            other => RuleWarning {
                path: PathBuf::new(),
                line: 0,
                message: other.to_string(),
            },
        }
    }
}

/// One rule file read into memory.
struct Source {
    path: PathBuf,
    text: Vec<u8>,
    namespace: String,
}

impl RuleSet {
    /// A set with no rules: every scan finds nothing.
    pub fn empty() -> RuleSet {
        RuleSet {
            rules: Arc::new(Compiler::new().build()),
            sources: Arc::new(HashMap::new()),
            files: 0,
            count: 0,
            digest: digest_of(&[]),
            elf_symbols: ElfSymbols::default(),
        }
    }

    /// Compiles every `.yar`/`.yara` file named in `paths` or found below the
    /// directories among them (recursively, hidden entries skipped, sorted by path),
    /// each once, each in its own namespace named after the file, and with `builtin`
    /// the built-in rules ([`builtin_rules`]) first. With
    /// [`RuleErrorPolicy::Skip`] a file that does not compile (or a directory without
    /// rule files) is left out and reported as a warning; with
    /// [`RuleErrorPolicy::Refuse`] it fails the load.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] if a path or file cannot be read; with `Refuse`,
    /// [`Error::Rule`] naming the file, line and yara-x's message for the first
    /// file that does not compile, and [`Error::NoRules`] for a directory that holds
    /// no rule file. The built-in rules always compile (a unit test holds them to
    /// it); were they not to, that is an [`Error::Rule`] naming [`BUILTIN_RULES_SOURCE`]
    /// whatever `on_error` says.
    pub fn load(
        paths: &[PathBuf],
        on_error: RuleErrorPolicy,
        builtin: bool,
    ) -> Result<(RuleSet, Vec<RuleWarning>), Error> {
        let mut warnings = Vec::new();
        let mut files = Vec::new();
        for path in paths {
            let before = files.len();
            collect(path, 0, &mut files)?;
            if files.len() == before {
                let error = Error::NoRules { path: path.clone() };
                match on_error {
                    RuleErrorPolicy::Refuse => return Err(error),
                    RuleErrorPolicy::Skip => warnings.push(RuleWarning {
                        path: path.clone(),
                        line: 0,
                        message: "no YARA rule files (*.yar, *.yara) found".to_owned(),
                    }),
                }
            }
        }
        files.sort();
        files.dedup();
        let mut sources = Vec::with_capacity(files.len() + 1);
        let mut namespaces: HashMap<String, usize> = HashMap::new();
        // Reserved whether or not the built-in rules are on, so a file's namespace
        // (and so its reason ids) does not depend on that setting.
        namespaces.insert(BUILTIN_NAMESPACE.to_owned(), 1);
        if builtin {
            sources.push(Source {
                path: PathBuf::from(BUILTIN_RULES_SOURCE),
                text: builtin_rules().as_bytes().to_vec(),
                namespace: BUILTIN_NAMESPACE.to_owned(),
            });
        }
        for path in files {
            let text = fs::read(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            let namespace = namespace_for(&path, &mut namespaces);
            sources.push(Source {
                path,
                text,
                namespace,
            });
        }
        // Compile everything; with Skip, drop the files that failed and compile the
        // rest again (a failed file may have left some of its rules in the compiler,
        // and a skipped file must be left out whole).
        loop {
            let failed = match compile(&sources, on_error) {
                Ok(set) => return Ok((set, warnings)),
                Err(Failed::Build(error)) => return Err(error),
                Err(Failed::Sources(failed)) => failed,
            };
            let mut dropped = Vec::with_capacity(failed.len());
            for (index, error) in failed {
                if sources[index].namespace == BUILTIN_NAMESPACE {
                    return Err(error);
                }
                match on_error {
                    RuleErrorPolicy::Refuse => return Err(error),
                    RuleErrorPolicy::Skip => {
                        warnings.push(RuleWarning::from_error(error));
                        dropped.push(index);
                    }
                }
            }
            for index in dropped.into_iter().rev() {
                sources.remove(index);
            }
        }
    }

    /// Number of rules compiled (private rules included).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the set has no rules.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of rule files compiled.
    pub fn files(&self) -> usize {
        self.files
    }

    /// SHA-256 of what was compiled: each source's namespace, path and text, in
    /// compile order (files left out under `skip` are not in it). Two sets with
    /// the same digest judge every file alike, so the agent's persistent verdict
    /// cache binds its verdicts to it.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// A scanner for this set, to be reused for many scans on one thread.
    pub fn scanner(&self) -> RuleScanner<'_> {
        RuleScanner {
            set: self,
            scanner: Scanner::new(&self.rules),
        }
    }

    /// Scans `bytes` with a scanner made for this one call (see [`RuleScanner::scan`]).
    ///
    /// # Errors
    ///
    /// As [`RuleScanner::scan`].
    pub fn scan(&self, bytes: &[u8], timeout: Duration) -> Result<Vec<Reason>, Error> {
        self.scanner().scan(bytes, timeout)
    }
}

/// A reusable yara-x scanner bound to one [`RuleSet`]; one per thread.
pub struct RuleScanner<'r> {
    set: &'r RuleSet,
    scanner: Scanner<'r>,
}

impl RuleScanner<'_> {
    /// Scans `bytes`; one [`Reason`] (stage [`Stage::Rules`]) per matching public
    /// rule, in rule order.
    ///
    /// # Errors
    ///
    /// [`Error::RuleTimeout`] when the scan ran out of time (see the module docs on
    /// granularity), [`Error::RuleScan`] for anything else yara-x reports.
    pub fn scan(&mut self, bytes: &[u8], timeout: Duration) -> Result<Vec<Reason>, Error> {
        self.scanner
            .set_timeout(timeout.saturating_add(Duration::from_secs(1)));
        if let Some(elf) = self.set.elf_symbols.output_for(bytes) {
            self.scanner
                .set_module_output(elf)
                .map_err(|error| Error::RuleScan {
                    message: error.to_string(),
                })?;
        }
        let results = self.scanner.scan(bytes).map_err(|error| match error {
            ScanError::Timeout => Error::RuleTimeout { timeout },
            other => Error::RuleScan {
                message: other.to_string(),
            },
        })?;
        Ok(results
            .matching_rules()
            .map(|rule| rule_reason(&rule, &self.set.sources))
            .collect())
    }
}

/// Adds the rule files at or below `path` to `files`.
fn collect(path: &Path, depth: usize, files: &mut Vec<PathBuf>) -> Result<(), Error> {
    let read_error = |source: io::Error| Error::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = fs::metadata(path).map_err(read_error)?;
    if metadata.is_file() {
        // A file named explicitly is a rule file whatever its name; one found in a
        // directory must have a rule extension.
        files.push(path.to_owned());
        return Ok(());
    }
    if !metadata.is_dir() || depth > MAX_RULE_DIR_DEPTH {
        return Ok(());
    }
    for entry in fs::read_dir(path).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let child = entry.path();
        let is_dir = fs::metadata(&child).map(|m| m.is_dir()).unwrap_or(false);
        if is_dir {
            collect(&child, depth + 1, files)?;
        } else if RULE_EXTENSIONS
            .iter()
            .any(|ext| child.extension().is_some_and(|have| have == *ext))
        {
            files.push(child);
        }
    }
    Ok(())
}

/// A namespace named after the file stem (identifier characters only), made unique.
fn namespace_for(path: &Path, taken: &mut HashMap<String, usize>) -> String {
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut base: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if base.is_empty() || base.starts_with(|c: char| c.is_ascii_digit()) {
        base.insert(0, '_');
    }
    let seen = taken.entry(base.clone()).or_insert(0);
    *seen += 1;
    if *seen == 1 {
        base
    } else {
        format!("{base}_{seen}")
    }
}

/// Builds the compiled rules' native code. yara-x panics when it cannot (its
/// own code is assumed valid; the one cause seen is a process that may not make
/// memory executable), which becomes an error naming that cause here.
fn build(compiler: Compiler<'_>) -> Result<yara_x::Rules, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || compiler.build())).map_err(
        |payload| Error::RuleBuild {
            message: payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("yara-x panicked")
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        },
    )
}

/// Why [`compile`] produced no set.
enum Failed {
    /// Every `(index, error)` of a source that failed, in file order (with
    /// `Refuse`, only the first); never empty.
    Sources(Vec<(usize, Error)>),
    /// The sources compiled, the native code could not be built.
    Build(Error),
}

/// Compiles `sources`.
fn compile(sources: &[Source], on_error: RuleErrorPolicy) -> Result<RuleSet, Failed> {
    let mut compiler = Compiler::new();
    let mut failed = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        compiler.new_namespace(&source.namespace);
        let origin = source.path.display().to_string();
        let code = SourceCode::from(source.text.as_slice()).with_origin(origin);
        if let Err(error) = compiler.add_source(code) {
            failed.push((index, compile_error(source, &error)));
            if on_error == RuleErrorPolicy::Refuse {
                return Err(Failed::Sources(failed));
            }
        }
    }
    if !failed.is_empty() {
        return Err(Failed::Sources(failed));
    }
    let rules = build(compiler).map_err(Failed::Build)?;
    let count = rules.iter().count();
    let elf_symbols = ElfSymbols::of(
        rules.imports().any(|module| module == "elf"),
        sources.iter().map(|source| source.text.as_slice()),
    );
    let names = sources
        .iter()
        .map(|source| (source.namespace.clone(), source.path.clone()))
        .collect();
    Ok(RuleSet {
        rules: Arc::new(rules),
        sources: Arc::new(names),
        files: sources.len(),
        count,
        digest: digest_of(sources),
        elf_symbols,
    })
}

/// [`RuleSet::digest`] of `sources`: every field length-prefixed, so no two
/// different lists of sources feed the hash the same bytes.
fn digest_of(sources: &[Source]) -> [u8; 32] {
    let mut sha = Sha256::new();
    for source in sources {
        let path = source.path.as_os_str().as_encoded_bytes();
        for field in [source.namespace.as_bytes(), path, source.text.as_slice()] {
            sha.update((field.len() as u64).to_le_bytes());
            sha.update(field);
        }
    }
    sha.finalize().into()
}

/// `path:line: error[E…]: title: label` for a compile error.
fn compile_error(source: &Source, error: &yara_x::errors::CompileError) -> Error {
    let label = error.labels().next();
    let line = label.as_ref().map_or(0, |label| {
        let end = label.span().start().min(source.text.len());
        1 + source.text[..end].iter().filter(|&&b| b == b'\n').count()
    });
    let mut message = format!("error[{}]: {}", error.code(), error.title());
    if let Some(label) = label
        && !label.text().is_empty()
        && label.text() != error.title()
    {
        message.push_str(": ");
        message.push_str(label.text());
    }
    Error::Rule {
        path: source.path.clone(),
        line,
        message,
    }
}

/// Score from `severity` metadata: an integer 0–100 (clamped; Elastic's scale), or
/// `critical`/`high` → 100, `medium` → 60, `low` → 30, `info` → 10; anything else
/// (or none) → [`DEFAULT_RULE_SCORE`].
pub fn severity_score(severity: Option<&MetaValue<'_>>) -> u32 {
    match severity {
        Some(MetaValue::Integer(value)) => u32::try_from((*value).clamp(0, 100)).unwrap_or(0),
        Some(MetaValue::Float(value)) if value.is_finite() => {
            value.clamp(0.0, 100.0).round() as u32
        }
        Some(MetaValue::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
            "critical" | "high" => 100,
            "medium" => 60,
            "low" => 30,
            "info" | "informational" => 10,
            other => other
                .parse::<u32>()
                .map_or(DEFAULT_RULE_SCORE, |value| value.min(100)),
        },
        _ => DEFAULT_RULE_SCORE,
    }
}

fn meta_text(value: &MetaValue<'_>) -> String {
    match value {
        MetaValue::Integer(value) => value.to_string(),
        MetaValue::Float(value) => value.to_string(),
        MetaValue::Bool(value) => value.to_string(),
        MetaValue::String(text) => (*text).to_owned(),
        MetaValue::Bytes(bytes) => String::from_utf8_lossy(bytes.as_ref()).into_owned(),
    }
}

fn rule_reason(rule: &yara_x::Rule<'_, '_>, sources: &HashMap<String, PathBuf>) -> Reason {
    let mut threat = None;
    let mut description = None;
    let mut severity = None;
    for (key, value) in rule.metadata() {
        match key {
            "threat_name" if threat.is_none() => threat = Some(meta_text(&value)),
            "description" if description.is_none() => description = Some(meta_text(&value)),
            "severity" if severity.is_none() => severity = Some(value),
            _ => {}
        }
    }
    let score = severity_score(severity.as_ref());
    let mut detail = threat
        .or(description)
        .unwrap_or_else(|| rule.identifier().to_owned());
    if let Some(severity) = &severity {
        detail.push_str(&format!(" (severity {})", meta_text(severity)));
    }
    if rule.namespace() == BUILTIN_NAMESPACE {
        detail.push_str(&format!("; rule {} (built-in)", rule.identifier()));
    } else if let Some(path) = sources.get(rule.namespace()) {
        detail.push_str(&format!(
            "; rule {} in {}",
            rule.identifier(),
            path.display()
        ));
    }
    Reason {
        stage: Stage::Rules,
        id: format!("{}:{}", rule.namespace(), rule.identifier()),
        score,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-rules-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Rule text assembled at run time; `marker` is the string the rule looks for.
    fn rule(name: &str, marker: &str, meta: &str) -> String {
        let meta = if meta.is_empty() {
            String::new()
        } else {
            format!("  meta:\n{meta}")
        };
        format!(
            "rule {name} {{\n{meta}  strings:\n    $a = \"{marker}\"\n  condition:\n    $a\n}}\n"
        )
    }

    #[test]
    fn digest_changes_with_any_compiled_text_and_only_then() {
        let dir = scratch("digest");
        let file = dir.join("a.yar");
        fs::write(&file, rule("One", "vigil-marker-one", "")).unwrap();
        let load = |builtin| {
            RuleSet::load(
                std::slice::from_ref(&file),
                RuleErrorPolicy::Refuse,
                builtin,
            )
            .unwrap()
            .0
            .digest()
        };
        let first = load(false);
        assert_eq!(first, load(false), "same files, same digest");
        assert_ne!(first, load(true), "the built-in rules are part of it");
        assert_ne!(first, RuleSet::empty().digest());
        fs::write(&file, rule("One", "vigil-marker-two", "")).unwrap();
        assert_ne!(first, load(false), "one changed string");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn load_compiles_files_and_directories_sorted() {
        let dir = scratch("load");
        fs::create_dir_all(dir.join("sub/.hidden")).unwrap();
        fs::write(
            dir.join("b.yar"),
            rule(
                "Two",
                "vigil-marker-two",
                "    threat_name = \"Linux.Test.Two\"\n    severity = 50\n",
            ),
        )
        .unwrap();
        fs::write(dir.join("sub/a.yara"), rule("One", "vigil-marker-one", "")).unwrap();
        // Same rule name in another file: fine, namespaces differ.
        fs::write(
            dir.join("sub/c.yar"),
            rule("One", "vigil-marker-three", "    severity = \"high\"\n"),
        )
        .unwrap();
        fs::write(dir.join("sub/notes.txt"), "not a rule").unwrap();
        fs::write(dir.join("sub/.hidden/x.yar"), "garbage").unwrap();
        let explicit = dir.join("explicit.rules");
        fs::write(&explicit, rule("Explicit", "vigil-marker-four", "")).unwrap();

        let (set, warnings) = RuleSet::load(
            &[dir.clone(), explicit.clone(), dir.join("b.yar")],
            RuleErrorPolicy::Refuse,
            false,
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!((set.files(), set.len()), (4, 4));

        let timeout = Duration::from_secs(5);
        type Case<'a> = (&'a [u8], &'a [(&'a str, u32)]);
        let cases: &[Case] = &[
            (b"nothing here", &[]),
            (b"xx vigil-marker-one xx", &[("a:One", 100)]),
            (b"vigil-marker-two", &[("b:Two", 50)]),
            (b"vigil-marker-three", &[("c:One", 100)]),
            (
                b"vigil-marker-four vigil-marker-one",
                &[("a:One", 100), ("explicit:Explicit", 100)],
            ),
        ];
        let mut scanner = set.scanner();
        for &(bytes, want) in cases {
            let got: Vec<(String, u32)> = scanner
                .scan(bytes, timeout)
                .unwrap()
                .into_iter()
                .map(|r| {
                    assert_eq!(r.stage, Stage::Rules);
                    (r.id, r.score)
                })
                .collect();
            let mut got = got;
            got.sort();
            let want: Vec<(String, u32)> = want.iter().map(|&(id, s)| (id.to_owned(), s)).collect();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(bytes));
            // The one-off scan agrees with the reused scanner.
            let mut again: Vec<(String, u32)> = set
                .scan(bytes, timeout)
                .unwrap()
                .into_iter()
                .map(|r| (r.id, r.score))
                .collect();
            again.sort();
            assert_eq!(again, want);
        }
        let two = set.scan(b"vigil-marker-two", timeout).unwrap();
        assert_eq!(
            two[0].detail,
            format!(
                "Linux.Test.Two (severity 50); rule Two in {}",
                dir.join("b.yar").display()
            )
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compile_errors_refuse_or_skip() {
        let dir = scratch("errors");
        fs::write(dir.join("a_good.yar"), rule("Good", "vigil-good", "")).unwrap();
        // Line 3 uses an undefined identifier.
        fs::write(
            dir.join("b_bad.yar"),
            "rule Fine { condition: true }\nrule Bad {\n  condition: no_such_thing\n}\n",
        )
        .unwrap();
        fs::write(dir.join("c_syntax.yar"), "\n\nrule {\n").unwrap();

        let error =
            RuleSet::load(std::slice::from_ref(&dir), RuleErrorPolicy::Refuse, false).unwrap_err();
        let text = error.to_string();
        let bad = dir.join("b_bad.yar");
        assert!(
            text.starts_with(&format!(
                "{}:3: error[E009]: unknown identifier `no_such_thing`",
                bad.display()
            )),
            "{text}"
        );
        assert!(matches!(error, Error::Rule { line: 3, .. }));

        let (set, warnings) =
            RuleSet::load(std::slice::from_ref(&dir), RuleErrorPolicy::Skip, false).unwrap();
        let places: Vec<(PathBuf, usize)> =
            warnings.iter().map(|w| (w.path.clone(), w.line)).collect();
        assert_eq!(
            places,
            vec![(bad.clone(), 3), (dir.join("c_syntax.yar"), 3)],
            "{warnings:?}"
        );
        // The bad file is left out whole, including its good rule.
        assert_eq!((set.files(), set.len()), (1, 1));
        assert!(set.scan(b"", Duration::from_secs(1)).unwrap().is_empty());
        assert_eq!(
            set.scan(b"vigil-good", Duration::from_secs(1))
                .unwrap()
                .len(),
            1
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_and_empty_paths() {
        let dir = scratch("empty");
        let missing = dir.join("missing.yar");
        assert!(matches!(
            RuleSet::load(std::slice::from_ref(&missing), RuleErrorPolicy::Skip, false),
            Err(Error::Read { path, .. }) if path == missing
        ));
        assert!(matches!(
            RuleSet::load(std::slice::from_ref(&dir), RuleErrorPolicy::Refuse, false),
            Err(Error::NoRules { path }) if path == dir
        ));
        let (set, warnings) =
            RuleSet::load(std::slice::from_ref(&dir), RuleErrorPolicy::Skip, false).unwrap();
        assert!(set.is_empty());
        assert_eq!(warnings.len(), 1);
        let (set, warnings) = RuleSet::load(&[], RuleErrorPolicy::Refuse, false).unwrap();
        assert!(set.is_empty() && warnings.is_empty());
        assert!(
            RuleSet::empty()
                .scan(b"x", Duration::from_secs(1))
                .unwrap()
                .is_empty()
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Bytes that carry the strings of one built-in rule (assembled here, not taken
    /// from a sample: harmless text behind an ELF magic).
    fn fake_xhide(magic: &[u8]) -> Vec<u8> {
        let mut bytes = magic.to_vec();
        for text in [
            "XHide - Process Faker",
            "Fake name process",
            "Full path seek",
        ] {
            bytes.extend_from_slice(b"\0padding\0");
            bytes.extend_from_slice(text.as_bytes());
        }
        bytes
    }

    #[test]
    fn builtin_rules_compile_and_name_their_source() {
        let (set, warnings) = RuleSet::load(&[], RuleErrorPolicy::Refuse, true).unwrap();
        assert!(warnings.is_empty());
        let declared = builtin_rules()
            .lines()
            .filter(|line| line.starts_with("rule "))
            .count();
        assert_eq!((set.files(), set.len()), (1, declared));
        // Every rule names its threat and the corpus family its tests count.
        for rule in set.rules.iter() {
            let keys: Vec<&str> = rule.metadata().map(|(key, _)| key).collect();
            for key in ["threat_name", "family", "description"] {
                assert!(keys.contains(&key), "{} lacks {key}", rule.identifier());
            }
        }
        let timeout = Duration::from_secs(5);
        let found = set.scan(&fake_xhide(b"\x7fELF"), timeout).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].id, "builtin:Vigil_XHide_ProcessFaker");
        assert_eq!(found[0].score, MALICIOUS_SCORE);
        assert_eq!(
            found[0].detail,
            "Linux.Hacktool.XHide; rule Vigil_XHide_ProcessFaker (built-in)"
        );
        // Only ELF files: the same text in a document does not match.
        assert!(set.scan(&fake_xhide(b"text"), timeout).unwrap().is_empty());
        // Off: nothing built in.
        let (off, _) = RuleSet::load(&[], RuleErrorPolicy::Refuse, false).unwrap();
        assert!(off.is_empty());
        assert!(
            off.scan(&fake_xhide(b"\x7fELF"), timeout)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn builtin_namespace_is_reserved() {
        let dir = scratch("reserved");
        fs::write(
            dir.join("builtin.yar"),
            rule("Mine", "vigil-marker-mine", ""),
        )
        .unwrap();
        for builtin in [false, true] {
            let (set, _) =
                RuleSet::load(std::slice::from_ref(&dir), RuleErrorPolicy::Refuse, builtin)
                    .unwrap();
            let found = set
                .scan(b"vigil-marker-mine", Duration::from_secs(1))
                .unwrap();
            assert_eq!(found[0].id, "builtin_2:Mine");
            assert!(
                found[0].detail.ends_with("builtin.yar"),
                "{}",
                found[0].detail
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn severity_table() {
        let cases: &[(Option<MetaValue<'_>>, u32)] = &[
            (None, 100),
            (Some(MetaValue::Integer(100)), 100),
            (Some(MetaValue::Integer(50)), 50),
            (Some(MetaValue::Integer(-3)), 0),
            (Some(MetaValue::Integer(1000)), 100),
            (Some(MetaValue::Float(72.4)), 72),
            (Some(MetaValue::Float(f64::NAN)), 100),
            (Some(MetaValue::String("High")), 100),
            (Some(MetaValue::String("medium")), 60),
            (Some(MetaValue::String("low")), 30),
            (Some(MetaValue::String("40")), 40),
            (Some(MetaValue::String("")), 100),
            (Some(MetaValue::Bool(true)), 100),
        ];
        for (value, want) in cases {
            assert_eq!(severity_score(value.as_ref()), *want, "{value:?}");
        }
    }

    #[test]
    fn namespaces_are_identifiers_and_unique() {
        let mut taken = HashMap::new();
        let cases = [
            ("/r/Linux_Trojan_Mirai.yar", "Linux_Trojan_Mirai"),
            ("/other/Linux_Trojan_Mirai.yar", "Linux_Trojan_Mirai_2"),
            ("/r/mozi-mozi.yar", "mozi_mozi"),
            ("/r/9lives.yara", "_9lives"),
            ("/r/.yar", "_yar"),
        ];
        for (path, want) in cases {
            assert_eq!(namespace_for(Path::new(path), &mut taken), want);
        }
    }

    #[test]
    fn timeout_is_never_shorter_than_asked() {
        // A rule that loops over a large input; with a 1 ms timeout the scan may
        // finish or time out, but it must not fail any other way, and a timeout must
        // say which timeout expired.
        let dir = scratch("timeout");
        fs::write(
            dir.join("slow.yar"),
            "rule Slow { condition: for all i in (0..filesize - 1) : (uint8(i) != 0xff) }\n",
        )
        .unwrap();
        let (set, _) =
            RuleSet::load(std::slice::from_ref(&dir), RuleErrorPolicy::Refuse, false).unwrap();
        let data = vec![0u8; 1 << 16];
        let started = Instant::now();
        match set.scan(&data, Duration::from_millis(1)) {
            Ok(found) => assert_eq!(found.len(), 1),
            Err(Error::RuleTimeout { timeout }) => {
                assert_eq!(timeout, Duration::from_millis(1));
                assert!(started.elapsed() >= Duration::from_millis(1));
            }
            Err(other) => panic!("{other}"),
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
