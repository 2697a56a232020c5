//! The daemon configuration: typed schema, built-in defaults and loading.
//!
//! Owns: the [`Config`] tree as the agent sees it, its defaults (the named consts
//! below; the score thresholds default to [`MALICIOUS_SCORE`] and
//! [`SUSPICIOUS_SCORE`]), and the rules for finding and merging `vigil.toml` with
//! `conf.d/*.toml`.
//! Must not own: hash list contents ([`crate::hashdb`]), glob matching
//! ([`crate::exclusions`]), or anything that touches the kernel. The agent turns a
//! loaded `Config` into a running generation; a config that fails to load is
//! rejected whole and the previous generation stays.
//!
//! Loading is three steps, each in its own private module:
//! 1. `layer`: every file is parsed and checked *on its own* (syntax, keys, types) so
//!    the error names the drop-in that is wrong; the layers are then merged.
//! 2. `schema`: the key/type table behind those per-file checks and their messages.
//! 3. `validate`: ranges and absolute paths, checked on the merged result; the error
//!    names the key and the file and line that last set it.

mod cache;
mod guard;
mod layer;
mod schema;
mod update;
mod validate;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::{Error, utf8_error_line};
use crate::score::{MALICIOUS_SCORE, SUSPICIOUS_SCORE, Stage};
pub use cache::{CacheConfig, DEFAULT_CACHE_DIR, DEFAULT_CACHE_MAX_ENTRIES, MAX_CACHE_MAX_ENTRIES};
pub use guard::{DEFAULT_MEMFD_PROGRAMS, GuardConfig, GuardMode};
use layer::Layer;
pub use update::{
    DEFAULT_MAX_DOWNLOAD_SIZE, DEFAULT_MAX_FILES, DEFAULT_MAX_UNPACKED_SIZE, DEFAULT_UPDATE_DIR,
    DEFAULT_UPDATE_KEEP, DEFAULT_UPDATE_TIMEOUT_S, MAX_UPDATE_KEEP, MAX_UPDATE_TIMEOUT_S,
    SourceConfig, SourceFormat, UpdateConfig, Verify,
};

/// Filesystems watched when the config names none; skipped if absent.
pub const DEFAULT_FILESYSTEMS: [&str; 5] = ["/", "/home", "/tmp", "/var/tmp", "/dev/shm"];
/// Default per-event deadline, in milliseconds.
pub const DEFAULT_DEADLINE_MS: u64 = 250;
/// Default `decision.flood_pending`: a few scans' worth per worker, far above
/// what one process of a normal workload keeps waiting.
pub const DEFAULT_FLOOD_PENDING: u32 = 64;
/// Largest accepted `decision.deadline_ms`: beyond a minute the machine looks hung.
pub const MAX_DEADLINE_MS: u64 = 60_000;
/// Default `daemon.nice`: ahead of ordinary processes, which wait on these
/// threads whenever they open or run a watched file.
pub const DEFAULT_NICE: i32 = -5;
/// Default `scan.max_file_size`: 256 MiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 256 * 1024 * 1024;
/// Largest accepted `scan.workers`.
pub const MAX_WORKERS: usize = 256;
/// Default `scan.queue_capacity`.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;
/// Largest accepted `scan.queue_capacity`.
pub const MAX_QUEUE_CAPACITY: usize = 1_000_000;
/// Default `scan.cache_capacity` (verdict cache entries).
pub const DEFAULT_CACHE_CAPACITY: usize = 65_536;
/// Default `scan.rule_timeout_ms`: one YARA scan may take at most this long.
pub const DEFAULT_RULE_TIMEOUT_MS: u64 = 1000;
/// Largest accepted `scan.rule_timeout_ms`.
pub const MAX_RULE_TIMEOUT_MS: u64 = 60_000;
/// Largest accepted `decision.weights.*`: beyond this one finding would swamp any
/// threshold and the weight is almost certainly a typo.
pub const MAX_WEIGHT: f64 = 100.0;
/// Default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/vigil/vigil.sock";
/// Default `quarantine.dir`.
pub const DEFAULT_QUARANTINE_DIR: &str = "/var/lib/vigil/quarantine";
/// Default `quarantine.max_total_size`: 1 GiB of stored content.
pub const DEFAULT_QUARANTINE_MAX_TOTAL_SIZE: u64 = 1024 * 1024 * 1024;
/// Default `quarantine.max_age_days`.
pub const DEFAULT_QUARANTINE_MAX_AGE_DAYS: u64 = 90;
/// Default `log.events_max_size`: 64 MiB.
pub const DEFAULT_EVENTS_MAX_SIZE: u64 = 64 * 1024 * 1024;
/// Default `log.events_keep`.
pub const DEFAULT_EVENTS_KEEP: u64 = 5;
/// Largest accepted `log.events_keep`.
pub const MAX_EVENTS_KEEP: u64 = 100;
/// Default `log.level` tracing filter.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Default `content.clamav_poll_s`.
pub const DEFAULT_CLAMAV_POLL_S: u64 = 60;
/// Largest accepted `content.clamav_poll_s` (one day).
pub const MAX_CLAMAV_POLL_S: u64 = 86_400;
/// Name of the drop-in directory next to the main config file.
pub const DROP_IN_DIR: &str = "conf.d";

/// The whole daemon configuration. `Config::default()` is what an empty file gives.
///
/// Not `Eq`: `decision.weights` are floats.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// What to watch and which opens to scan.
    pub watch: Watch,
    /// How verdicts become answers.
    pub decision: DecisionConfig,
    /// Content (hash lists, YARA rules) to load.
    pub content: Content,
    /// Scanner limits and capacities.
    pub scan: Scan,
    /// The built-in ELF and script heuristics.
    pub heuristics: HeuristicsConfig,
    /// Daemon plumbing.
    pub daemon: Daemon,
    /// The quarantine store and its retention.
    pub quarantine: Quarantine,
    /// Event log and tracing.
    pub log: Log,
    /// What is never scanned.
    pub exclude: Exclude,
    /// Exec rules, the profile and the package trust store.
    pub policy: PolicyConfig,
    /// The eBPF exec guard for filesystems no mark covers.
    pub guard: GuardConfig,
    /// Content updates (`vigil update`) and where they are kept.
    pub update: UpdateConfig,
    /// The persistent verdict cache.
    pub cache: CacheConfig,
}

/// The `[watch]` table: what the agent marks and which opens it scans.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Watch {
    /// `FAN_MARK_MOUNT` targets; default empty.
    pub mounts: Vec<WatchPath>,
    /// `FAN_MARK_FILESYSTEM` targets; default [`DEFAULT_FILESYSTEMS`], not required.
    pub filesystems: Vec<WatchPath>,
    /// Which plain opens (as opposed to execs) are scanned.
    pub scan_on_open: ScanOnOpen,
    /// Whether filesystems mounted after start (in any mount namespace) are
    /// marked too. Unset: on with the built-in `filesystems` list, off with an
    /// explicit one (which then means exactly those filesystems).
    pub new_mounts: Option<bool>,
    /// Programs (file-name globs) whose opens of a text file are scanned as a
    /// script whatever its first bytes, under `scan_on_open = "executable"` too;
    /// default [`crate::interpreters::DEFAULT_INTERPRETERS`], `[]` turns it off.
    pub interpreters: Vec<String>,
}

impl Default for Watch {
    fn default() -> Watch {
        Watch {
            mounts: Vec::new(),
            filesystems: DEFAULT_FILESYSTEMS
                .iter()
                .map(|path| WatchPath {
                    path: PathBuf::from(path),
                    required: false,
                })
                .collect(),
            scan_on_open: ScanOnOpen::default(),
            new_mounts: None,
            interpreters: crate::interpreters::DEFAULT_INTERPRETERS
                .iter()
                .map(|name| (*name).to_owned())
                .collect(),
        }
    }
}

/// One path to mark. Written in TOML as a plain string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "PathBuf")]
pub struct WatchPath {
    /// The absolute path.
    pub path: PathBuf,
    /// A required path missing at daemon start is an error; others are skipped.
    /// Paths written in a config file are required; built-in defaults are not.
    pub required: bool,
}

impl From<PathBuf> for WatchPath {
    fn from(path: PathBuf) -> WatchPath {
        WatchPath {
            path,
            required: true,
        }
    }
}

/// Which `FAN_OPEN_PERM` events are scanned (execs are always scanned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanOnOpen {
    /// Every open of a regular file.
    All,
    /// Opens of files with an execute bit, and what the agent classes as executable
    /// content (scripts run as `bash x.sh`, libraries mapped by `ld.so`).
    #[default]
    Executable,
    /// No opens; execs only.
    None,
}

/// The `[decision]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionConfig {
    /// Enforce (deny malicious files) or audit (allow and log).
    pub mode: Mode,
    /// Time allowed for a verdict; TOML key `deadline_ms`.
    #[serde(rename = "deadline_ms", deserialize_with = "millis")]
    pub deadline: Duration,
    /// Answer when the deadline passes.
    pub on_timeout: FailMode,
    /// Answer when the deadline passes on an exec; `None` (the default) takes
    /// `on_timeout`. `"deny"` closes what a timeout could let run unscanned by
    /// rules and model (a listed hash is never allowed by a timeout).
    pub on_timeout_exec: Option<FailMode>,
    /// Answer when the worker queue is full.
    pub on_overflow: FailMode,
    /// Answer to the further *opens* of a uid that already has
    /// `flood_pending` events waiting (its execs are still scanned).
    pub on_flood: FailMode,
    /// Events one uid (other than root) may have waiting for a worker before
    /// its opens are answered with `on_flood`; 1..=[`MAX_QUEUE_CAPACITY`].
    pub flood_pending: u32,
    /// Weighted total score at or above which a file is malicious; ≥ 1.
    pub malicious_score: u32,
    /// Weighted total score at or above which a file is suspicious;
    /// 1..=`malicious_score`.
    pub suspicious_score: u32,
    /// Per-stage factors applied to every reason's score.
    pub weights: Weights,
    /// What happens to a malicious file in enforce mode.
    pub on_malicious: VerdictAction,
    /// What happens to a suspicious file in enforce mode.
    pub on_suspicious: VerdictAction,
    /// What happens to a file found malicious when it is written (closed after
    /// a write, `scan.scan_on_write`), before anyone opens it again.
    pub on_malicious_write: WriteAction,
    /// Overrides the classifier's detection threshold from the model bundle
    /// (a probability in (0, 1]); `None` keeps the bundle's, which was chosen
    /// on validation at its target false-positive rate.
    pub model_threshold: Option<f64>,
    /// Overrides the classifier's block threshold from the model bundle (a
    /// probability in (0, 1], at least `model_threshold` when both are set): a
    /// score at or above it makes the file malicious on the model alone.
    /// `None` keeps the bundle's, calibrated on held-out benign files to block
    /// at most 1 in 10,000.
    pub model_block_threshold: Option<f64>,
}

impl Default for DecisionConfig {
    fn default() -> DecisionConfig {
        DecisionConfig {
            mode: Mode::default(),
            deadline: Duration::from_millis(DEFAULT_DEADLINE_MS),
            on_timeout: FailMode::default(),
            on_timeout_exec: None,
            on_overflow: FailMode::default(),
            on_flood: FailMode::Allow,
            flood_pending: DEFAULT_FLOOD_PENDING,
            malicious_score: MALICIOUS_SCORE,
            suspicious_score: SUSPICIOUS_SCORE,
            weights: Weights::default(),
            on_malicious: VerdictAction::Deny,
            on_suspicious: VerdictAction::Allow,
            on_malicious_write: WriteAction::Log,
            model_threshold: None,
            model_block_threshold: None,
        }
    }
}

/// Default `decision.weights.model` (see [`Weights::model`]).
pub const DEFAULT_MODEL_WEIGHT: f64 = 1.0;

/// The `[decision.weights]` table: each reason's score is multiplied by the weight of
/// its stage before the scores are added up. Finite, 0..=[`MAX_WEIGHT`]; 0 turns a
/// stage's findings into information only.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// Known-bad hash hits.
    pub hash: f64,
    /// YARA rule matches.
    pub rules: f64,
    /// ELF and script heuristics.
    pub heuristics: f64,
    /// The model bundle's models. 1 by default: the model's own thresholds
    /// already grade its findings (malicious at the block threshold,
    /// suspicious at the detection threshold, half that at the suspicious
    /// one; see [`crate::verdict::model_reason`]); 0.5 would make a block
    /// only suspicious.
    pub model: f64,
}

impl Default for Weights {
    fn default() -> Weights {
        Weights {
            hash: 1.0,
            rules: 1.0,
            heuristics: 1.0,
            model: DEFAULT_MODEL_WEIGHT,
        }
    }
}

impl Weights {
    /// The weight of one stage.
    pub fn of(&self, stage: Stage) -> f64 {
        match stage {
            Stage::Hash => self.hash,
            Stage::Rules => self.rules,
            Stage::Heuristics => self.heuristics,
            Stage::Model => self.model,
        }
    }
}

/// What a verdict leads to in enforce mode (`decision.on_malicious`,
/// `decision.on_suspicious`). Audit mode allows everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictAction {
    /// Deny the open or exec.
    Deny,
    /// Allow it (the verdict is still logged).
    Allow,
    /// Deny it, then (after the kernel was answered) move the file into the
    /// quarantine store.
    Quarantine,
}

impl VerdictAction {
    /// The TOML spelling, also used in logs and `--explain`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictAction::Deny => "deny",
            VerdictAction::Allow => "allow",
            VerdictAction::Quarantine => "quarantine",
        }
    }
}

/// What a malicious verdict at write time leads to (`decision.on_malicious_write`).
/// Either way the verdict is cached, so the exec or open that follows is
/// answered from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteAction {
    /// An event line (`event.action: "written"`) and an alert.
    #[default]
    Log,
    /// The same, and the file is moved into the quarantine store (in enforce
    /// mode).
    Quarantine,
}

impl WriteAction {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteAction::Log => "log",
            WriteAction::Quarantine => "quarantine",
        }
    }
}

/// Whether malicious verdicts are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny malicious files.
    #[default]
    Enforce,
    /// Allow everything; the caller logs what would have been denied.
    Audit,
}

impl Mode {
    /// The TOML spelling, also used in logs and `vigil status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

/// The answer given when no verdict is available (timeout, overflow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Fail open.
    #[default]
    Allow,
    /// Fail closed.
    Deny,
}

impl DecisionConfig {
    /// The deadline answer for an exec (`on_timeout_exec`) or an open
    /// (`on_timeout`).
    pub fn timeout_for(&self, exec: bool) -> FailMode {
        match (exec, self.on_timeout_exec) {
            (true, Some(mode)) => mode,
            (true, None) | (false, _) => self.on_timeout,
        }
    }
}

impl FailMode {
    /// The TOML spelling, also used in logs and `vigil status`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailMode::Allow => "allow",
            FailMode::Deny => "deny",
        }
    }
}

/// The `[content]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Content {
    /// Hash list files or directories (every regular, non-hidden file, sorted by name).
    pub hashes: Vec<PathBuf>,
    /// Allow lists (files or directories): an allowed hash skips every detection
    /// stage. Default [`crate::allowlist::DEFAULT_ALLOW_DIR`]; `vigil allow` writes
    /// to the first directory here.
    pub allow: Vec<PathBuf>,
    /// Include the built-in test signature.
    pub builtin: bool,
    /// Include vigil's built-in YARA rules (`policy/rules/builtin.yar`).
    pub builtin_rules: bool,
    /// YARA rule files or directories (every `*.yar`/`*.yara` below, sorted by path).
    pub rules: Vec<PathBuf>,
    /// What a rule file that does not compile does to the load.
    pub rules_on_error: RuleErrorPolicy,
    /// The model bundle: the one built in, a bundle directory, or none.
    pub model: ModelSource,
    /// A ClamAV database directory (freshclam's, e.g. `/var/lib/clamav`): its
    /// whole-file hash signatures (`.hdb`, `.hsb`, `.hdu`, `.hsu`, loose and in
    /// `.cvd`/`.cld` containers) are loaded into a compact index and re-read when
    /// the files change.
    pub clamav_db: Option<PathBuf>,
    /// Seconds between checks of `clamav_db` for files freshclam replaced,
    /// 1..=[`MAX_CLAMAV_POLL_S`].
    pub clamav_poll_s: u64,
}

impl Default for Content {
    fn default() -> Content {
        Content {
            hashes: Vec::new(),
            allow: vec![PathBuf::from(crate::allowlist::DEFAULT_ALLOW_DIR)],
            builtin: true,
            builtin_rules: true,
            rules: Vec::new(),
            rules_on_error: RuleErrorPolicy::default(),
            model: ModelSource::Builtin,
            clamav_db: None,
            clamav_poll_s: DEFAULT_CLAMAV_POLL_S,
        }
    }
}

/// Where the model bundle comes from (`content.model`): `"builtin"`, `"none"`,
/// or the absolute path of a bundle directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ModelSource {
    /// The bundle compiled into vigil.
    Builtin,
    /// No model stage.
    None,
    /// A bundle directory (`manifest.json` and the ONNX files it names).
    Dir(PathBuf),
}

impl TryFrom<String> for ModelSource {
    type Error = String;

    fn try_from(s: String) -> Result<ModelSource, String> {
        match s.as_str() {
            "builtin" => Ok(ModelSource::Builtin),
            "none" => Ok(ModelSource::None),
            p if Path::new(p).is_absolute() => Ok(ModelSource::Dir(PathBuf::from(p))),
            _ => Err(format!(
                "expected \"builtin\", \"none\" or an absolute bundle directory, found {s:?}"
            )),
        }
    }
}

/// What a YARA rule file that does not compile does to the load (`content.rules_on_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleErrorPolicy {
    /// The whole load fails (on reload the previous generation stays).
    #[default]
    Refuse,
    /// That file is left out with a warning; the other files are loaded.
    Skip,
}

impl RuleErrorPolicy {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleErrorPolicy::Refuse => "refuse",
            RuleErrorPolicy::Skip => "skip",
        }
    }
}

/// The `[scan]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scan {
    /// Files larger than this many bytes are allowed unscanned; > 0.
    pub max_file_size: u64,
    /// Worker count; 0 = one per CPU; at most [`MAX_WORKERS`].
    pub workers: usize,
    /// Bounded worker queue; 1..=[`MAX_QUEUE_CAPACITY`].
    pub queue_capacity: usize,
    /// Verdict cache entries; 0 disables the cache.
    pub cache_capacity: usize,
    /// Add evictable kernel ignore marks after a clean verdict.
    pub ignore_marks: bool,
    /// Scan executable content when it is closed after a write
    /// (`FAN_CLOSE_WRITE`), in the background, so its first exec or open is
    /// answered from the cache.
    pub scan_on_write: bool,
    /// A file whose SHA-256 equals its package's recorded digest in the trust
    /// store (`policy.trust_db`) is only looked up in the hash lists: the
    /// heuristics, rules and model are skipped for it.
    pub trust_fast_path: bool,
    /// Scan the code an interpreter is given on its command line (`sh -c`,
    /// `python3 -c`, `perl -e`, ...) once its exec took effect; a malicious
    /// verdict kills the process in enforce mode.
    pub inline_code: bool,
    /// Time one YARA scan may take; TOML key `rule_timeout_ms`, 1..=[`MAX_RULE_TIMEOUT_MS`].
    #[serde(rename = "rule_timeout_ms", deserialize_with = "millis")]
    pub rule_timeout: Duration,
}

impl Default for Scan {
    fn default() -> Scan {
        Scan {
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            workers: 0,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            ignore_marks: true,
            scan_on_write: true,
            trust_fast_path: true,
            inline_code: true,
            rule_timeout: Duration::from_millis(DEFAULT_RULE_TIMEOUT_MS),
        }
    }
}

/// The `[heuristics]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeuristicsConfig {
    /// Run the ELF and script heuristics ([`crate::heuristics::analyze`]).
    pub enabled: bool,
}

impl Default for HeuristicsConfig {
    fn default() -> HeuristicsConfig {
        HeuristicsConfig { enabled: true }
    }
}

/// The `[daemon]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Daemon {
    /// Control socket path.
    pub socket: PathBuf,
    /// Nice value of the threads that answer the kernel (the reader, the
    /// workers, the mark thread and the deadline keeper); read at start.
    pub nice: i32,
}

impl Default for Daemon {
    fn default() -> Daemon {
        Daemon {
            socket: PathBuf::from(DEFAULT_SOCKET),
            nice: DEFAULT_NICE,
        }
    }
}

/// The `[quarantine]` table: where quarantined files are kept and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quarantine {
    /// The store directory (created 0700, root); absolute.
    pub dir: PathBuf,
    /// Oldest items are deleted while the stored content exceeds this many bytes;
    /// 0 = no size limit.
    pub max_total_size: u64,
    /// Items older than this many days are deleted; 0 = kept until deleted.
    pub max_age_days: u64,
}

impl Default for Quarantine {
    fn default() -> Quarantine {
        Quarantine {
            dir: PathBuf::from(DEFAULT_QUARANTINE_DIR),
            max_total_size: DEFAULT_QUARANTINE_MAX_TOTAL_SIZE,
            max_age_days: DEFAULT_QUARANTINE_MAX_AGE_DAYS,
        }
    }
}

/// The `[log]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// Where JSON-lines events go.
    pub events: EventSink,
    /// A file event log is rotated (to `<file>.1`, `.2`, …) before it grows past
    /// this many bytes; 0 = never rotated (leave it to logrotate).
    pub events_max_size: u64,
    /// Rotated event log files kept (1..=[`MAX_EVENTS_KEEP`]).
    pub events_keep: u64,
    /// `tracing` filter directive; non-empty.
    pub level: String,
}

impl Default for Log {
    fn default() -> Log {
        Log {
            events: EventSink::default(),
            events_max_size: DEFAULT_EVENTS_MAX_SIZE,
            events_keep: DEFAULT_EVENTS_KEEP,
            level: DEFAULT_LOG_LEVEL.to_owned(),
        }
    }
}

/// Destination of the JSON-lines event log. TOML: `"stdout"`, `"none"` or an absolute path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(from = "String")]
pub enum EventSink {
    /// Standard output (the journal under systemd).
    #[default]
    Stdout,
    /// Append to this file.
    File(PathBuf),
    /// No event log.
    None,
}

impl From<String> for EventSink {
    fn from(text: String) -> EventSink {
        // A relative path is kept as written here and rejected by validation, so the
        // error can name the file and line.
        match text.as_str() {
            "stdout" => EventSink::Stdout,
            "none" => EventSink::None,
            _ => EventSink::File(PathBuf::from(text)),
        }
    }
}

/// The `[exclude]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Exclude {
    /// Glob patterns (`**` supported, `*` does not cross `/`) matched against file paths.
    pub paths: Vec<String>,
    /// Absolute executable paths whose file accesses are always allowed.
    pub processes: Vec<PathBuf>,
}

/// Default `policy.trust_db`: the package trust store.
pub const DEFAULT_TRUST_DB: &str = "/var/lib/vigil/trust.db";
/// Default `policy.dpkg_admin`: dpkg's database.
pub const DEFAULT_DPKG_ADMIN: &str = "/var/lib/dpkg";
/// Default `policy.upgrade_window_s`: how long a `vigil trust begin` (apt's
/// `DPkg::Pre-Invoke`) keeps replaced package files runnable when no `vigil trust
/// update` closes the window.
pub const DEFAULT_UPGRADE_WINDOW_S: u64 = 3600;
/// Largest accepted `policy.upgrade_window_s` (one day).
pub const MAX_UPGRADE_WINDOW_S: u64 = 86_400;
/// Default `policy.tmp_paths`: world-writable places the `server` profile
/// forbids execs from.
pub const DEFAULT_TMP_PATHS: [&str; 4] =
    ["/tmp/**", "/var/tmp/**", "/dev/shm/**", "/run/user/*/**"];
/// Default `policy.services`: programs that serve the network and must not
/// start a shell under the `server` profile.
pub const DEFAULT_SERVICES: [&str; 10] = [
    "/usr/sbin/nginx",
    "/usr/sbin/apache2",
    "/usr/sbin/httpd",
    "/usr/sbin/php-fpm*",
    "/usr/sbin/mysqld",
    "/usr/sbin/mariadbd",
    "/usr/lib/postgresql/*/bin/postgres",
    "/usr/bin/postgres",
    "/usr/sbin/named",
    "/usr/sbin/lighttpd",
];
/// Default `policy.shells`: what `/bin/sh` and friends resolve to on a
/// merged-/usr system (the kernel reports the final target: `/bin/sh` runs as
/// `/usr/bin/dash` on Debian).
pub const DEFAULT_SHELLS: [&str; 8] = [
    "/usr/bin/sh",
    "/usr/bin/bash",
    "/usr/bin/dash",
    "/usr/bin/zsh",
    "/usr/bin/ksh*",
    "/usr/bin/mksh",
    "/usr/bin/fish",
    "/usr/bin/busybox",
];
/// Default `policy.package_managers`: processes (and their descendants) that
/// may run freshly installed package files before the trust store knows them.
/// rpm's front ends run transactions (and so scriptlets) in their own process:
/// dnf5, microdnf, zypper and PackageKit are programs; dnf 4 and yum are Python
/// scripts (`yum` and `dnf` link to `dnf-3`), recognised by the script a root
/// Python process runs.
pub const DEFAULT_PACKAGE_MANAGERS: [&str; 11] = [
    "/usr/bin/dpkg",
    "/usr/bin/rpm",
    "/usr/bin/rpmkeys",
    "/usr/bin/dnf",
    "/usr/bin/dnf-3",
    "/usr/bin/dnf5",
    "/usr/bin/yum",
    "/usr/bin/microdnf",
    "/usr/bin/zypper",
    "/usr/libexec/packagekitd",
    "/usr/bin/rpm-ostree",
];

/// The `[policy]` table: exec rules, the profile they extend, and the package
/// trust store ([`crate::execpolicy`], [`crate::trust`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// The built-in rules appended after `rules`.
    pub profile: Profile,
    /// The administrator's rules, evaluated first (first match wins).
    pub rules: Vec<RuleConfig>,
    /// The trust store file (`vigil trust update` writes it); absolute.
    pub trust_db: PathBuf,
    /// dpkg's admin directory (`status`, `info/*.md5sums`) the store is built from.
    pub dpkg_admin: PathBuf,
    /// The root the paths in dpkg's lists are relative to (dpkg's `--instdir`),
    /// and rpm's `--root`.
    pub dpkg_root: PathBuf,
    /// rpm's database directory, inside `dpkg_root` (rpm's `--dbpath`); absent:
    /// `/usr/lib/sysimage/rpm` or `/var/lib/rpm`, whichever holds a database.
    pub rpm_dbpath: Option<PathBuf>,
    /// Seconds an open `vigil trust begin` window lasts at most; 1..=[`MAX_UPGRADE_WINDOW_S`].
    pub upgrade_window_s: u64,
    /// Path globs of world-writable places (the `server` profile's `tmp-exec` rule).
    pub tmp_paths: Vec<String>,
    /// Executable globs of network services (the `server` profile's `service-shell` rule).
    pub services: Vec<String>,
    /// Path globs of shells and interpreters services may not start.
    pub shells: Vec<String>,
    /// Absolute executables of package managers (see [`DEFAULT_PACKAGE_MANAGERS`]).
    pub package_managers: Vec<PathBuf>,
    /// The `server` and `lockdown` profiles set `vm.memfd_noexec = 2` and
    /// `user.max_user_namespaces = 0` at start and restore them on stop.
    pub sysctl_hardening: bool,
}

impl Default for PolicyConfig {
    fn default() -> PolicyConfig {
        let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        PolicyConfig {
            profile: Profile::default(),
            rules: Vec::new(),
            trust_db: PathBuf::from(DEFAULT_TRUST_DB),
            dpkg_admin: PathBuf::from(DEFAULT_DPKG_ADMIN),
            dpkg_root: PathBuf::from("/"),
            rpm_dbpath: None,
            upgrade_window_s: DEFAULT_UPGRADE_WINDOW_S,
            tmp_paths: strings(&DEFAULT_TMP_PATHS),
            services: strings(&DEFAULT_SERVICES),
            shells: strings(&DEFAULT_SHELLS),
            package_managers: DEFAULT_PACKAGE_MANAGERS.iter().map(PathBuf::from).collect(),
            sysctl_hardening: false,
        }
    }
}

/// A named set of built-in exec rules (`policy.profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// No exec rules: every exec is scanned and detections are blocked.
    #[default]
    Desktop,
    /// No execs from `tmp_paths`; `services` may not start `shells`; everything
    /// else is scanned.
    Server,
    /// The server rules, then: only files in the trust store (or allowed by an
    /// administrator's rule) may execute.
    Lockdown,
}

impl Profile {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Desktop => "desktop",
            Profile::Server => "server",
            Profile::Lockdown => "lockdown",
        }
    }
}

/// One `[[policy.rules]]` entry: every condition given must hold for the rule to
/// match; an empty rule matches every exec.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Shown in `--explain` and event lines; default `rule-<n>` (1-based).
    #[serde(default)]
    pub name: Option<String>,
    /// What a match does.
    pub action: RuleAction,
    /// Globs on the executed file's path.
    #[serde(default)]
    pub path: Vec<String>,
    /// Globs on the executable of the process doing the exec (its program
    /// before the exec: the parent of the new program).
    #[serde(default)]
    pub parent: Vec<String>,
    /// Effective uids of the executing process.
    #[serde(default)]
    pub uid: Vec<u32>,
    /// Effective gids of the executing process.
    #[serde(default)]
    pub gid: Vec<u32>,
    /// Owners (uids) of the executed file.
    #[serde(default)]
    pub file_uid: Vec<u32>,
    /// `true`: the file is owned by a non-root user or group/world writable;
    /// `false`: the opposite.
    #[serde(default)]
    pub non_root_writable: Option<bool>,
}

/// What a matching exec rule does (`action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleAction {
    /// Allowed by policy; still scanned, detections still denied.
    Allow,
    /// Denied without a scan (allowed and logged in audit mode).
    Deny,
    /// Allowed and scanned, and logged even when clean.
    Audit,
    /// Allowed only if the file is in the trust store with the same SHA-256
    /// (trusted files skip rules, heuristics and model; never the hash lists).
    TrustedOnly,
}

impl RuleAction {
    /// The TOML spelling, also used in logs and `--explain`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::Allow => "allow",
            RuleAction::Deny => "deny",
            RuleAction::Audit => "audit",
            RuleAction::TrustedOnly => "trusted-only",
        }
    }
}

impl Config {
    /// Loads `path`, then every `*.toml` in `<dir of path>/conf.d/` in lexical order,
    /// each merged over the previous (tables merged key by key, later values replace
    /// earlier ones, arrays replaced whole), then validates. A missing `conf.d` is fine;
    /// hidden files in it are skipped.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] if a file cannot be read; [`Error::Toml`], [`Error::UnknownKey`]
    /// or [`Error::WrongType`] naming the file (main or drop-in) and line that is wrong;
    /// [`Error::InvalidValue`] naming the key and the file and line that set it.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let mut merged = Layer::default();
        merged.merge(Layer::parse(&read_text(path)?, path)?);
        for drop_in in drop_ins(path)? {
            merged.merge(Layer::parse(&read_text(&drop_in)?, &drop_in)?);
        }
        merged.into_config(path)
    }

    /// Parses and validates one TOML document; `origin` is only used in error messages.
    ///
    /// # Errors
    ///
    /// As [`Config::load`], minus [`Error::Read`].
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config, Error> {
        Layer::parse(text, origin)?.into_config(origin)
    }
}

/// Reads a config file as UTF-8, naming the line of the first bad byte.
fn read_text(path: &Path) -> Result<String, Error> {
    let bytes = fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|error| Error::Toml {
        path: path.to_owned(),
        line: utf8_error_line(&error),
        message: "invalid TOML: the file is not valid UTF-8".to_owned(),
    })
}

/// Lists `<dir of path>/conf.d/*.toml`, regular non-hidden files, sorted by name.
fn drop_ins(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let dir = path.parent().unwrap_or(Path::new(".")).join(DROP_IN_DIR);
    let read_error = |source| Error::Read {
        path: dir.clone(),
        source,
    };
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(read_error(error)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name();
        let name = name.as_encoded_bytes();
        if name.starts_with(b".") || !name.ends_with(b".toml") {
            continue;
        }
        let file = entry.path();
        // Follow symlinks: a drop-in linked from elsewhere is still a drop-in.
        let metadata = fs::metadata(&file).map_err(|source| Error::Read {
            path: file.clone(),
            source,
        })?;
        if metadata.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads `deadline_ms` / `rule_timeout_ms` (whole milliseconds) as a [`Duration`].
fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn parse(text: &str) -> Result<Config, Error> {
        Config::from_toml(text, Path::new("/etc/vigil/vigil.toml"))
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vigil-policy-config-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn empty_file_gives_defaults() {
        for text in ["", "\n# only a comment\n", "[watch]\n[decision]\n"] {
            assert_eq!(parse(text).unwrap(), Config::default(), "{text:?}");
        }
        let config = Config::default();
        assert_eq!(config.decision.deadline, Duration::from_millis(250));
        assert_eq!(config.decision.mode, Mode::Enforce);
        assert_eq!(config.watch.scan_on_open, ScanOnOpen::Executable);
        assert_eq!(config.watch.filesystems.len(), 5);
        assert!(config.watch.filesystems.iter().all(|w| !w.required));
        assert_eq!(config.scan.max_file_size, 256 << 20);
        assert!(config.content.builtin);
        assert!(config.content.builtin_rules);
        assert_eq!(config.log.events, EventSink::Stdout);
        assert!(config.content.rules.is_empty());
        assert_eq!(config.content.allow, [PathBuf::from("/etc/vigil/allow.d")]);
        assert_eq!(config.content.rules_on_error, RuleErrorPolicy::Refuse);
        assert_eq!(config.scan.rule_timeout, Duration::from_secs(1));
        assert!(config.heuristics.enabled);
        assert!(config.cache.persistent);
        assert_eq!(config.cache.dir, PathBuf::from(DEFAULT_CACHE_DIR));
        assert_eq!(
            (
                config.decision.malicious_score,
                config.decision.suspicious_score
            ),
            (100, 50)
        );
        assert_eq!(config.decision.weights, Weights::default());
        assert_eq!(config.decision.on_malicious, VerdictAction::Deny);
        assert_eq!(config.decision.on_suspicious, VerdictAction::Allow);
    }

    #[test]
    fn enum_names_round_trip() {
        for mode in [Mode::Enforce, Mode::Audit] {
            let text = format!("decision.mode = \"{}\"", mode.as_str());
            assert_eq!(parse(&text).unwrap().decision.mode, mode);
        }
        for fail in [FailMode::Allow, FailMode::Deny] {
            let text = format!("decision.on_timeout = \"{}\"", fail.as_str());
            assert_eq!(parse(&text).unwrap().decision.on_timeout, fail);
        }
        for action in [
            VerdictAction::Deny,
            VerdictAction::Allow,
            VerdictAction::Quarantine,
        ] {
            let text = format!("decision.on_suspicious = \"{}\"", action.as_str());
            assert_eq!(parse(&text).unwrap().decision.on_suspicious, action);
        }
        for policy in [RuleErrorPolicy::Refuse, RuleErrorPolicy::Skip] {
            let text = format!("content.rules_on_error = \"{}\"", policy.as_str());
            assert_eq!(parse(&text).unwrap().content.rules_on_error, policy);
        }
    }

    #[test]
    fn valid_values_are_read() {
        let text = r#"
[watch]
mounts = ["/mnt/data"]
filesystems = ["/", "/srv"]
scan_on_open = "all"

[decision]
mode = "audit"
deadline_ms = 1000
on_timeout = "deny"
on_overflow = "deny"
malicious_score = 120
suspicious_score = 40
on_malicious = "allow"
on_suspicious = "deny"

[decision.weights]
hash = 2
rules = 0.5
heuristics = 0.0

[content]
hashes = ["/var/lib/vigil/content/hashes"]
allow = ["/etc/vigil/allow.d", "/srv/vendor.sfp"]
builtin = false
builtin_rules = false
rules = ["/var/lib/vigil/content/yara", "/etc/vigil/local.yar"]
rules_on_error = "skip"

[scan]
max_file_size = 1048576
workers = 4
queue_capacity = 16
cache_capacity = 0
ignore_marks = false
rule_timeout_ms = 250

[cache]
persistent = false
dir = "/srv/vigil/cache"
max_entries = 1000

[heuristics]
enabled = false

[daemon]
socket = "/run/v.sock"

[log]
events = "/var/log/vigil/events.json"
level = "debug,vigil=trace"

[exclude]
paths = ["/proc/**", "**/*.log"]
processes = ["/usr/bin/backup"]
"#;
        let config = parse(text).unwrap();
        assert_eq!(
            config.watch.filesystems,
            vec![
                WatchPath {
                    path: "/".into(),
                    required: true
                },
                WatchPath {
                    path: "/srv".into(),
                    required: true
                },
            ]
        );
        assert_eq!(config.watch.mounts[0].path, Path::new("/mnt/data"));
        assert_eq!(config.watch.scan_on_open, ScanOnOpen::All);
        assert_eq!(config.decision.mode, Mode::Audit);
        assert_eq!(config.decision.deadline, Duration::from_secs(1));
        assert_eq!(config.decision.on_timeout, FailMode::Deny);
        assert_eq!(config.decision.on_overflow, FailMode::Deny);
        assert!(!config.content.builtin);
        assert_eq!(config.content.allow.len(), 2);
        assert!(!config.content.builtin_rules);
        assert_eq!(config.content.rules.len(), 2);
        assert_eq!(config.content.rules_on_error, RuleErrorPolicy::Skip);
        assert_eq!(config.decision.malicious_score, 120);
        assert_eq!(config.decision.suspicious_score, 40);
        assert_eq!(config.decision.on_malicious, VerdictAction::Allow);
        assert_eq!(config.decision.on_suspicious, VerdictAction::Deny);
        assert_eq!(
            config.decision.weights,
            Weights {
                hash: 2.0,
                rules: 0.5,
                heuristics: 0.0,
                model: DEFAULT_MODEL_WEIGHT,
            }
        );
        assert_eq!(config.scan.rule_timeout, Duration::from_millis(250));
        assert!(!config.heuristics.enabled);
        assert_eq!(config.scan.workers, 4);
        assert_eq!(config.scan.cache_capacity, 0);
        assert_eq!(
            config.cache,
            CacheConfig {
                persistent: false,
                dir: PathBuf::from("/srv/vigil/cache"),
                max_entries: 1000,
            }
        );
        assert!(!config.scan.ignore_marks);
        assert_eq!(config.daemon.socket, Path::new("/run/v.sock"));
        assert_eq!(
            config.log.events,
            EventSink::File("/var/log/vigil/events.json".into())
        );
        assert_eq!(config.exclude.paths.len(), 2);
        assert_eq!(
            parse("log.events = \"none\"").unwrap().log.events,
            EventSink::None
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases = [
            // Unknown keys at each nesting level.
            (
                "[decision]\nmode = \"audit\"\nmoed = \"audit\"\n",
                "/etc/vigil/vigil.toml:3: unknown key `decision.moed` (expected one of mode, deadline_ms, on_timeout, on_timeout_exec, on_overflow, on_flood, flood_pending, malicious_score, suspicious_score, weights, on_malicious, on_suspicious, on_malicious_write, model_threshold, model_block_threshold)",
            ),
            (
                "\n\nwatc = 1\n",
                "/etc/vigil/vigil.toml:3: unknown key `watc` (expected one of watch, decision, content, scan, heuristics, daemon, quarantine, log, exclude, policy, guard, update, cache)",
            ),
            (
                "[scan.deep]\nx = 1\n",
                "/etc/vigil/vigil.toml:1: unknown key `scan.deep` (expected one of max_file_size, workers, queue_capacity, cache_capacity, ignore_marks, scan_on_write, trust_fast_path, inline_code, rule_timeout_ms)",
            ),
            (
                "[decision.mode]\nx = 1\n",
                "/etc/vigil/vigil.toml:1: `decision.mode`: expected a string, found a table",
            ),
            (
                "exclude = { paths = [], procs = [] }\n",
                "/etc/vigil/vigil.toml:1: unknown key `exclude.procs` (expected one of paths, processes)",
            ),
            // Wrong types.
            (
                "[decision]\n\ndeadline_ms = \"250\"\n",
                "/etc/vigil/vigil.toml:3: `decision.deadline_ms`: expected an integer, found a string",
            ),
            (
                "decision = 5\n",
                "/etc/vigil/vigil.toml:1: `decision`: expected a table, found an integer",
            ),
            (
                "[scan]\nignore_marks = \"yes\"\n",
                "/etc/vigil/vigil.toml:2: `scan.ignore_marks`: expected a boolean, found a string",
            ),
            (
                "[watch]\nfilesystems = \"/\"\n",
                "/etc/vigil/vigil.toml:2: `watch.filesystems`: expected an array of strings, found a string",
            ),
            (
                "[watch]\nfilesystems = [\n  \"/\",\n  7,\n]\n",
                "/etc/vigil/vigil.toml:4: `watch.filesystems[1]`: expected a string, found an integer",
            ),
            (
                "[[watch]]\n",
                "/etc/vigil/vigil.toml:1: `watch`: expected a table, found an array",
            ),
            (
                "[scan]\nworkers = 2.5\n",
                "/etc/vigil/vigil.toml:2: `scan.workers`: expected an integer, found a float",
            ),
            (
                "[decision.weights]\nrules = \"1\"\n",
                "/etc/vigil/vigil.toml:2: `decision.weights.rules`: expected a number, found a string",
            ),
            (
                "[decision.weights]\nrules = -1\n",
                "/etc/vigil/vigil.toml:2: `decision.weights.rules`: expected a non-negative number, found -1",
            ),
            (
                "[decision.weights]\nhash = 1.0\nyara = 1.0\n",
                "/etc/vigil/vigil.toml:3: unknown key `decision.weights.yara` (expected one of hash, rules, heuristics, model)",
            ),
            (
                "heuristics.enabled = 1\n",
                "/etc/vigil/vigil.toml:1: `heuristics.enabled`: expected a boolean, found an integer",
            ),
            (
                "[content]\nbuiltin_rules = \"yes\"\n",
                "/etc/vigil/vigil.toml:2: `content.builtin_rules`: expected a boolean, found a string",
            ),
            (
                "[scan]\nworkers = -1\n",
                "/etc/vigil/vigil.toml:2: `scan.workers`: expected a non-negative integer, found -1",
            ),
            // Bad enum values.
            (
                "[decision]\nmode = \"enforcing\"\n",
                "/etc/vigil/vigil.toml:2: `decision.mode`: expected one of \"enforce\", \"audit\", found \"enforcing\"",
            ),
            (
                "decision.on_malicious = \"delete\"\n",
                "/etc/vigil/vigil.toml:1: `decision.on_malicious`: expected one of \"deny\", \"allow\", \"quarantine\", found \"delete\"",
            ),
            (
                "content.rules_on_error = \"warn\"\n",
                "/etc/vigil/vigil.toml:1: `content.rules_on_error`: expected one of \"refuse\", \"skip\", found \"warn\"",
            ),
            (
                "watch.scan_on_open = \"exec\"\n",
                "/etc/vigil/vigil.toml:1: `watch.scan_on_open`: expected one of \"all\", \"executable\", \"none\", found \"exec\"",
            ),
            // Ranges.
            (
                "[decision]\ndeadline_ms = 0\n",
                "/etc/vigil/vigil.toml:2: `decision.deadline_ms`: must be between 1 and 60000, found 0",
            ),
            (
                "[decision]\ndeadline_ms = 60001\n",
                "/etc/vigil/vigil.toml:2: `decision.deadline_ms`: must be between 1 and 60000, found 60001",
            ),
            (
                "[decision]\nmalicious_score = 0\n",
                "/etc/vigil/vigil.toml:2: `decision.malicious_score`: must be at least 1 (0 would make every file malicious)",
            ),
            (
                "[decision]\nmalicious_score = 80\nsuspicious_score = 90\n",
                "/etc/vigil/vigil.toml:3: `decision.suspicious_score`: must be between 1 and decision.malicious_score (80), found 90",
            ),
            (
                "[decision.weights]\nheuristics = -0.5\n",
                "/etc/vigil/vigil.toml:2: `decision.weights.heuristics`: must be a number between 0 and 100, found -0.5",
            ),
            (
                "[decision.weights]\nhash = nan\n",
                "/etc/vigil/vigil.toml:2: `decision.weights.hash`: must be a number between 0 and 100, found NaN",
            ),
            (
                "[decision.weights]\nrules = 1e3\n",
                "/etc/vigil/vigil.toml:2: `decision.weights.rules`: must be a number between 0 and 100, found 1000",
            ),
            (
                "[decision]\nmodel_threshold = 0\n",
                "/etc/vigil/vigil.toml:2: `decision.model_threshold`: must be a probability above 0 and at most 1, found 0",
            ),
            (
                "[decision]\nmodel_block_threshold = 1.5\n",
                "/etc/vigil/vigil.toml:2: `decision.model_block_threshold`: must be a probability above 0 and at most 1, found 1.5",
            ),
            (
                "[decision]\nmodel_threshold = 0.9\nmodel_block_threshold = 0.8\n",
                "/etc/vigil/vigil.toml:3: `decision.model_block_threshold`: must be at least decision.model_threshold (0.9), found 0.8",
            ),
            (
                "scan.rule_timeout_ms = 0\n",
                "/etc/vigil/vigil.toml:1: `scan.rule_timeout_ms`: must be between 1 and 60000, found 0",
            ),
            (
                "scan.max_file_size = 0\n",
                "/etc/vigil/vigil.toml:1: `scan.max_file_size`: must be greater than 0",
            ),
            (
                "scan.workers = 257\n",
                "/etc/vigil/vigil.toml:1: `scan.workers`: must be at most 256 (0 = one per CPU), found 257",
            ),
            (
                "scan.queue_capacity = 0\n",
                "/etc/vigil/vigil.toml:1: `scan.queue_capacity`: must be between 1 and 1000000, found 0",
            ),
            (
                "[daemon]\nnice = -30\n",
                "/etc/vigil/vigil.toml:2: `daemon.nice`: must be between -20 and 19, found -30",
            ),
            (
                "[daemon]\nnice = \"high\"\n",
                "/etc/vigil/vigil.toml:2: `daemon.nice`: expected an integer, found a string",
            ),
            (
                "log.level = \"  \"\n",
                "/etc/vigil/vigil.toml:1: `log.level`: must not be empty",
            ),
            // Relative paths.
            (
                "[watch]\nfilesystems = [\"/\",\n \"srv\"]\n",
                "/etc/vigil/vigil.toml:3: `watch.filesystems`: path must be absolute, found \"srv\"",
            ),
            (
                "daemon.socket = \"vigil.sock\"\n",
                "/etc/vigil/vigil.toml:1: `daemon.socket`: path must be absolute, found \"vigil.sock\"",
            ),
            (
                "log.events = \"events.json\"\n",
                "/etc/vigil/vigil.toml:1: `log.events`: expected \"stdout\", \"none\" or an absolute path, found \"events.json\"",
            ),
            (
                "content.hashes = [\"hashes.txt\"]\n",
                "/etc/vigil/vigil.toml:1: `content.hashes`: path must be absolute, found \"hashes.txt\"",
            ),
            (
                "[content]\nallow = [\"allow.d\"]\n",
                "/etc/vigil/vigil.toml:2: `content.allow`: path must be absolute, found \"allow.d\"",
            ),
            (
                "content.rules = [\"/ok.yar\",\n\"rules/\"]\n",
                "/etc/vigil/vigil.toml:2: `content.rules`: path must be absolute, found \"rules/\"",
            ),
            (
                "exclude.processes = [\"rsync\"]\n",
                "/etc/vigil/vigil.toml:1: `exclude.processes`: path must be absolute, found \"rsync\"",
            ),
            (
                "[exclude]\npaths = [\"/ok/**\", \"/bad/[\"]\n",
                "/etc/vigil/vigil.toml:2: `exclude.paths`: invalid glob pattern `/bad/[`: unclosed character class; missing ']'",
            ),
        ];
        for (text, want) in cases {
            let got = parse(text).map(|_| ()).unwrap_err().to_string();
            assert_eq!(got, want, "input: {text:?}");
        }
    }

    #[test]
    fn policy_table_is_read_and_its_errors_named() {
        let text = r#"
[policy]
profile = "lockdown"
trust_db = "/srv/trust.db"

[[policy.rules]]
name = "build-tree"
path = ["/srv/build/**"]
uid = [1000, 1001]
action = "allow"

[[policy.rules]]
action = "deny"
parent = ["/usr/sbin/nginx"]
non_root_writable = true
"#;
        let config = parse(text).unwrap();
        assert_eq!(config.policy.profile, Profile::Lockdown);
        assert_eq!(config.policy.trust_db, Path::new("/srv/trust.db"));
        assert_eq!(config.policy.rules.len(), 2);
        assert_eq!(config.policy.rules[0].uid, vec![1000, 1001]);
        assert_eq!(config.policy.rules[0].action, RuleAction::Allow);
        assert_eq!(config.policy.rules[1].non_root_writable, Some(true));
        assert_eq!(config.policy.rules[1].name, None);
        assert_eq!(Config::default().policy.profile, Profile::Desktop);

        let cases = [
            (
                "[[policy.rules]]\npath = [\"/tmp/**\"]\n",
                "/etc/vigil/vigil.toml:1: `policy.rules[0]`: missing key `action`",
            ),
            (
                "[[policy.rules]]\naction = \"deny\"\n\n[[policy.rules]]\naction = \"block\"\n",
                "/etc/vigil/vigil.toml:5: `policy.rules[1].action`: expected one of \"allow\", \"deny\", \"audit\", \"trusted-only\", found \"block\"",
            ),
            (
                "[[policy.rules]]\naction = \"deny\"\nparnet = [\"/x\"]\n",
                "/etc/vigil/vigil.toml:3: unknown key `policy.rules[0].parnet` (expected one of name, action, path, parent, uid, gid, file_uid, non_root_writable)",
            ),
            (
                "[[policy.rules]]\naction = \"deny\"\nuid = [0, -1]\n",
                "/etc/vigil/vigil.toml:3: `policy.rules[0].uid[1]`: expected an integer between 0 and 4294967295, found -1",
            ),
            (
                "[[policy.rules]]\naction = \"deny\"\n[[policy.rules]]\naction = \"deny\"\npath = [\"/a/[\"]\n",
                "/etc/vigil/vigil.toml:3: `policy.rules`: rule 2: invalid glob pattern `/a/[`: unclosed character class; missing ']'",
            ),
            (
                "[[policy.rules]]\nname = \"x\"\naction = \"deny\"\n[[policy.rules]]\nname = \"x\"\naction = \"audit\"\n",
                "/etc/vigil/vigil.toml:4: `policy.rules`: rule 2: duplicate name \"x\"",
            ),
            (
                "policy.rules = 3\n",
                "/etc/vigil/vigil.toml:1: `policy.rules`: expected an array of tables, found an integer",
            ),
            (
                "policy.profile = \"paranoid\"\n",
                "/etc/vigil/vigil.toml:1: `policy.profile`: expected one of \"desktop\", \"server\", \"lockdown\", found \"paranoid\"",
            ),
            (
                "[policy]\ntrust_db = \"trust.db\"\n",
                "/etc/vigil/vigil.toml:2: `policy.trust_db`: path must be absolute, found \"trust.db\"",
            ),
            (
                "[policy]\ntmp_paths = [\"/tmp/**\", \"/x/{\"]\n",
                "/etc/vigil/vigil.toml:2: `policy.tmp_paths`: invalid glob pattern `/x/{`: unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)",
            ),
            (
                "policy.upgrade_window_s = 0\n",
                "/etc/vigil/vigil.toml:1: `policy.upgrade_window_s`: must be between 1 and 86400, found 0",
            ),
        ];
        for (text, want) in cases {
            let got = parse(text).map(|_| ()).unwrap_err().to_string();
            assert_eq!(got, want, "input: {text:?}");
        }
    }

    /// The configuration the packages install parses, and ships its update
    /// sources disabled.
    #[test]
    fn shipped_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/vigil.toml");
        let config = Config::load(&path).unwrap();
        assert!(!config.update.sources.is_empty());
        assert!(config.update.sources.iter().all(|s| !s.enabled));
        for source in &config.update.sources {
            assert!(
                source.url.starts_with("https://github.com/"),
                "{}",
                source.url
            );
        }
    }

    #[test]
    fn update_table_is_read_and_its_errors_named() {
        let key = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
        let text = format!(
            r#"
[content]
clamav_db = "/var/lib/clamav"

[update]
dir = "/srv/updates"
keep = 5

[[update.sources]]
name = "elastic-linux"
url = "https://github.com/elastic/protections-artifacts/archive/refs/heads/main.tar.gz"
format = "yara-archive"
verify = "none"
include = ["yara/rules/Linux_*"]
enabled = false

[[update.sources]]
name = "fleet"
url = "http://mirror.lan/vigil/fleet.tar.gz"
format = "bundle"
verify = "minisign:{key}"
"#
        );
        let config = parse(&text).unwrap();
        assert_eq!(
            config.content.clamav_db.as_deref(),
            Some(Path::new("/var/lib/clamav"))
        );
        assert_eq!(config.update.dir, Path::new("/srv/updates"));
        assert_eq!(config.update.keep, 5);
        let sources = &config.update.sources;
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].format, SourceFormat::YaraArchive);
        assert!(!sources[0].enabled && sources[1].enabled);
        assert_eq!(sources[0].verification(), Ok(Verify::None));
        assert_eq!(
            sources[1].verification(),
            Ok(Verify::Minisign(key.to_owned()))
        );
        assert_eq!(Config::default().update.dir, Path::new(DEFAULT_UPDATE_DIR));

        let source = |body: &str| format!("[[update.sources]]\n{body}\n");
        let cases = [
            (
                source(
                    "name = \"a\"\nurl = \"http://h/x.tar.gz\"\nformat = \"bundle\"\nverify = \"none\"",
                ),
                "/etc/vigil/vigil.toml:1: `update.sources`: source \"a\": plain http:// needs `verify` = \"minisign:…\" or \"sha256:…\": an unverified download must come over https://",
            ),
            (
                source(
                    "name = \"a\"\nurl = \"https://h/x\"\nformat = \"bundle\"\nverify = \"sha256:12\"",
                ),
                "/etc/vigil/vigil.toml:1: `update.sources`: source \"a\": `verify`: expected \"sha256:\" and 64 hex digits, found \"sha256:12\"",
            ),
            (
                source(
                    "name = \"../x\"\nurl = \"https://h/x\"\nformat = \"bundle\"\nverify = \"none\"",
                ),
                "/etc/vigil/vigil.toml:1: `update.sources`: source \"../x\": `name` must be letters, digits, `.`, `_` or `-` (it names a directory)",
            ),
            (
                source("name = \"a\"\nurl = \"ftp://h/x\"\nformat = \"bundle\"\nverify = \"none\""),
                "/etc/vigil/vigil.toml:1: `update.sources`: source \"a\": `url` must start with https:// or http://, found \"ftp://h/x\"",
            ),
            (
                source("name = \"a\"\nurl = \"https://h/x\"\nformat = \"zip\"\nverify = \"none\""),
                "/etc/vigil/vigil.toml:4: `update.sources[0].format`: expected one of \"yara-archive\", \"hash-list\", \"bundle\", found \"zip\"",
            ),
            (
                source("name = \"a\"\nurl = \"https://h/x\"\nformat = \"bundle\""),
                "/etc/vigil/vigil.toml:1: `update.sources[0]`: missing key `verify`",
            ),
            (
                format!(
                    "{}{}",
                    source(
                        "name = \"a\"\nurl = \"https://h/x\"\nformat = \"bundle\"\nverify = \"none\""
                    ),
                    source(
                        "name = \"a\"\nurl = \"https://h/y\"\nformat = \"bundle\"\nverify = \"none\""
                    )
                ),
                "/etc/vigil/vigil.toml:6: `update.sources`: source \"a\": duplicate name",
            ),
            (
                "update.dir = \"updates\"\n".to_owned(),
                "/etc/vigil/vigil.toml:1: `update.dir`: path must be absolute, found \"updates\"",
            ),
            (
                "update.timeout_s = 0\n".to_owned(),
                "/etc/vigil/vigil.toml:1: `update.timeout_s`: must be between 1 and 3600, found 0",
            ),
            (
                "content.clamav_db = \"clamav\"\n".to_owned(),
                "/etc/vigil/vigil.toml:1: `content.clamav_db`: path must be absolute, found \"clamav\"",
            ),
        ];
        for (text, want) in cases {
            let got = parse(&text).map(|_| ()).unwrap_err().to_string();
            assert_eq!(got, want, "input: {text:?}");
        }
    }

    #[test]
    fn syntax_error_names_line() {
        let error = parse("[scan]\nworkers = = 3\n").unwrap_err();
        assert!(matches!(error, Error::Toml { line: 2, .. }), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("/etc/vigil/vigil.toml:2: invalid TOML: "),
            "{error}"
        );
    }

    #[test]
    fn drop_ins_merge_in_order_and_name_their_file() {
        let dir = scratch("dropin");
        let main = dir.join("vigil.toml");
        fs::write(
            &main,
            "[decision]\nmode = \"audit\"\ndeadline_ms = 100\n[watch]\nfilesystems = [\"/\", \"/srv\"]\n",
        )
        .unwrap();
        // No conf.d yet: fine.
        let config = Config::load(&main).unwrap();
        assert_eq!(config.decision.deadline, Duration::from_millis(100));

        let conf_d = dir.join("conf.d");
        fs::create_dir(&conf_d).unwrap();
        fs::write(
            conf_d.join("10-deadline.toml"),
            "decision.deadline_ms = 500\n",
        )
        .unwrap();
        fs::write(
            conf_d.join("20-watch.toml"),
            "[watch]\nfilesystems = [\"/data\"]\n[decision]\ndeadline_ms = 700\n",
        )
        .unwrap();
        fs::write(conf_d.join("30-ignored.conf"), "garbage =").unwrap();
        fs::write(conf_d.join(".hidden.toml"), "garbage =").unwrap();
        let config = Config::load(&main).unwrap();
        // Later files win key by key; untouched keys survive; arrays are replaced whole.
        assert_eq!(config.decision.mode, Mode::Audit);
        assert_eq!(config.decision.deadline, Duration::from_millis(700));
        assert_eq!(config.watch.filesystems.len(), 1);
        assert_eq!(config.watch.filesystems[0].path, Path::new("/data"));

        // A drop-in with a bad key is named, even though the main file is fine.
        let bad = conf_d.join("40-bad.toml");
        fs::write(&bad, "\n[scan]\nworker = 3\n").unwrap();
        let error = Config::load(&main).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "{}:3: unknown key `scan.worker` (expected one of max_file_size, workers, queue_capacity, cache_capacity, ignore_marks, scan_on_write, trust_fast_path, inline_code, rule_timeout_ms)",
                bad.display()
            )
        );

        // A range error is reported against the file and line that set the value.
        fs::write(&bad, "# comment\ndecision.deadline_ms = 0\n").unwrap();
        let error = Config::load(&main).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "{}:2: `decision.deadline_ms`: must be between 1 and 60000, found 0",
                bad.display()
            )
        );

        // ... and overriding a bad value makes the result valid.
        fs::write(&bad, "decision.deadline_ms = 0\n").unwrap();
        fs::write(conf_d.join("50-fix.toml"), "decision.deadline_ms = 5\n").unwrap();
        let config = Config::load(&main).unwrap();
        assert_eq!(config.decision.deadline, Duration::from_millis(5));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreadable_files_are_named() {
        let dir = scratch("unreadable");
        let missing = dir.join("missing.toml");
        let error = Config::load(&missing).unwrap_err();
        assert!(matches!(&error, Error::Read { path, .. } if *path == missing));
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: cannot read: ", missing.display()))
        );

        let latin1 = dir.join("latin1.toml");
        fs::write(&latin1, b"[log]\nlevel = \"caf\xe9\"\n").unwrap();
        let error = Config::load(&latin1).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "{}:2: invalid TOML: the file is not valid UTF-8",
                latin1.display()
            )
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn new_mounts_and_sysctl_hardening_are_read_and_their_errors_named() {
        let defaults = Config::default();
        assert_eq!(defaults.watch.new_mounts, None);
        assert!(!defaults.policy.sysctl_hardening);
        let config = parse(
            "[watch]\nfilesystems = []\nnew_mounts = true\n[policy]\nprofile = \"server\"\nsysctl_hardening = true\n",
        )
        .unwrap();
        assert_eq!(config.watch.new_mounts, Some(true));
        assert!(config.watch.filesystems.is_empty());
        assert!(config.policy.sysctl_hardening);
        assert_eq!(
            parse("watch.new_mounts = false\n")
                .unwrap()
                .watch
                .new_mounts,
            Some(false)
        );
        let cases = [
            (
                "[watch]\nnew_mounts = \"yes\"\n",
                "/etc/vigil/vigil.toml:2: `watch.new_mounts`: expected a boolean, found a string",
            ),
            (
                "[policy]\nsysctl_hardening = 1\n",
                "/etc/vigil/vigil.toml:2: `policy.sysctl_hardening`: expected a boolean, found an integer",
            ),
        ];
        for (text, want) in cases {
            let got = parse(text).map(|_| ()).unwrap_err().to_string();
            assert_eq!(got, want, "input: {text:?}");
        }
    }
}
