//! The control protocol: typed requests and replies between the command line
//! (and the notifier) and the daemon, one JSON line each way.
//!
//! Owns the wire format and its version ([`VERSION`], written in one place:
//! every line carries it as `v`), and the client side of a call. Must not own:
//! who may ask what (the daemon's control socket decides from `SO_PEERCRED`), or
//! what the daemon does with a request.
//!
//! ```text
//! → {"v":1,"cmd":"reload"}
//! ← {"v":1,"ok":true,"generation":2,"summary":"generation 2 mode=enforce …"}
//! ← {"v":1,"ok":false,"error":"/etc/vigil/vigil.toml:3: unknown key …"}
//! → {"v":1,"cmd":"quarantine-restore","id":"0123456789abcdef","force":true}
//! → {"v":1,"cmd":"subscribe"}
//! ← {"v":1,"ok":true,"subscribed":true,"uid":1000}
//! ← {"v":1,"alert":{…event line…}}
//! ```
//!
//! Unknown fields are ignored, so a newer client can talk to this daemon as
//! long as it only uses what the daemon knows.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::daemon::exec_history::ExecRecord;
use crate::daemon::exposure::Exposure;
use crate::quarantine::Record;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// How long a client waits for a reply (a reload loads all content).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// The daemon's state (anyone).
    Status,
    /// Counters, queue depth and latency percentiles (anyone).
    Stats,
    /// Re-read configuration and content (root).
    Reload,
    /// Quarantined items (anyone; a non-root caller sees its own files).
    QuarantineList,
    /// One quarantined item (as `QuarantineList`).
    QuarantineShow {
        /// The item id.
        id: String,
    },
    /// Put an item back (root).
    QuarantineRestore {
        /// The item id.
        id: String,
        /// Restore here instead: the path's bytes in hex (paths need not be UTF-8).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_hex: Option<String>,
        /// Restore a file that is still known-bad.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        force: bool,
        /// Replace an existing file at the target.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        overwrite: bool,
    },
    /// Delete an item for good (root).
    QuarantineDelete {
        /// The item id.
        id: String,
    },
    /// The recent execs at or after `since_ms` (root: they name every user's
    /// programs).
    ExecHistory {
        /// Milliseconds since the epoch.
        #[serde(default)]
        since_ms: u64,
    },
    /// Keep the connection open and stream the alerts the caller may see.
    Subscribe,
    /// Reload after `vigil allow` edited an allow list, and log the change
    /// (root).
    AllowlistChanged {
        /// What changed.
        allowlist: AllowChange,
    },
    /// The SHA-256 of a file by path, read by the daemon, whose own opens are
    /// never denied: `vigil allow PATH` of a file this process may not open
    /// (root).
    HashFile {
        /// The absolute path's bytes in hex.
        path_hex: String,
    },
}

/// One change `vigil allow` made to an allow list, for the event line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowChange {
    /// Added or removed.
    pub change: AllowChangeKind,
    /// The SHA-256, lower-case hex.
    pub sha256: String,
    /// The list entry (`file:line`) added, or removed from.
    pub entry: String,
    /// The comment written with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Who made the change (the login behind sudo when there is one).
    pub by: String,
}

/// What happened to an allow entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllowChangeKind {
    /// `vigil allow`, `vigil quarantine restore --allow`.
    Added,
    /// `vigil allow --remove`.
    Removed,
}

impl Request {
    /// The command's name on the wire, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Stats => "stats",
            Request::Reload => "reload",
            Request::QuarantineList => "quarantine-list",
            Request::QuarantineShow { .. } => "quarantine-show",
            Request::QuarantineRestore { .. } => "quarantine-restore",
            Request::QuarantineDelete { .. } => "quarantine-delete",
            Request::ExecHistory { .. } => "exec-history",
            Request::Subscribe => "subscribe",
            Request::AllowlistChanged { .. } => "allowlist-changed",
            Request::HashFile { .. } => "hash-file",
        }
    }
}

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLine {
    /// [`VERSION`].
    pub v: u32,
    /// The request.
    #[serde(flatten)]
    pub request: Request,
}

/// What the daemon answers. Each variant is told apart on the wire by its
/// fields, so the order below matters where one's fields include another's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    /// The request was refused or failed.
    Failed {
        /// Why, for a person.
        error: String,
    },
    /// A reload succeeded.
    Reloaded {
        /// The new generation.
        generation: u64,
        /// Its one-line summary.
        summary: String,
    },
    /// `status`.
    Status {
        /// The state (boxed: it is by far the largest reply).
        status: Box<Status>,
    },
    /// `stats`.
    Stats {
        /// The counters and latencies.
        stats: StatsReport,
    },
    /// `quarantine-list`.
    Items {
        /// The visible items.
        items: Vec<Record>,
    },
    /// `quarantine-restore`.
    Restored {
        /// Where the file is now.
        restored: String,
        /// Its record.
        item: Record,
    },
    /// `quarantine-show`.
    Item {
        /// The record.
        item: Record,
    },
    /// `hash-file`.
    Hashed {
        /// SHA-256, lower-case hex.
        sha256: String,
        /// Bytes read.
        size: u64,
    },
    /// `quarantine-delete`.
    Deleted {
        /// The item id.
        deleted: String,
    },
    /// `exec-history`.
    Records {
        /// Oldest first.
        records: Vec<ExecRecord>,
    },
    /// `subscribe`: alerts follow on this connection.
    Subscribed {
        /// Always true.
        subscribed: bool,
        /// The caller's uid (root sees every alert).
        uid: u32,
    },
}

impl Reply {
    /// A failure with `message`.
    pub fn failed(message: impl Into<String>) -> Reply {
        Reply::Failed {
            error: message.into(),
        }
    }

    /// The reply as one line (without the newline).
    pub fn to_line(&self) -> String {
        let line = ReplyLine {
            v: VERSION,
            ok: !matches!(self, Reply::Failed { .. }),
            reply: self.clone(),
        };
        serde_json::to_string(&line)
            .unwrap_or_else(|e| format!(r#"{{"v":{VERSION},"ok":false,"error":"{e}"}}"#))
    }
}

/// A reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyLine {
    /// [`VERSION`].
    pub v: u32,
    /// False for [`Reply::Failed`].
    pub ok: bool,
    /// The reply.
    #[serde(flatten)]
    pub reply: Reply,
}

/// One alert on a subscribed connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertLine {
    /// [`VERSION`].
    pub v: u32,
    /// The event line, as in the event log.
    pub alert: serde_json::Value,
}

/// The daemon's state (`vigil status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's pid.
    pub pid: u32,
    /// Seconds since start.
    pub uptime_s: u64,
    /// The current generation.
    pub generation: u64,
    /// `enforce` or `audit`.
    pub mode: String,
    /// `decision.on_timeout`.
    pub on_timeout: String,
    /// `decision.on_overflow`.
    pub on_overflow: String,
    /// `decision.deadline_ms`.
    pub deadline_ms: u64,
    /// Hash list entries loaded.
    pub hashes: usize,
    /// Allow list entries loaded.
    pub allowed: usize,
    /// The configuration file, if any.
    pub config: Option<String>,
    /// The fanotify marks in place.
    pub marks: Vec<MarkInfo>,
    /// Verdict cache entries.
    pub cache_entries: usize,
    /// Events not answered yet.
    pub pending: u64,
    /// Every counter, by its stable name.
    pub counters: BTreeMap<String, u64>,
    /// What can run on this machine now without vigil seeing it, and how to
    /// close it.
    pub exposure: Vec<Exposure>,
    /// The eBPF exec guard (absent from daemons that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardInfo>,
    /// Content updates (`vigil update`): each source's version, age, last
    /// check and last error; absent when no update was configured or run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updates: Option<vigil_update::status::UpdateStatus>,
    /// ClamAV database entries loaded (`content.clamav_db`).
    #[serde(default)]
    pub clamav_hashes: usize,
    /// The persistent verdict cache (absent from daemons that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_cache: Option<PersistentCacheInfo>,
}

/// The persistent verdict cache in `vigil status` and `vigil stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentCacheInfo {
    /// `on`, `off` (`cache.persistent = false`) or `unavailable`.
    pub state: String,
    /// Why it is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The store file.
    pub path: String,
    /// Verdicts stored (after the last commit).
    pub entries: u64,
    /// `cache.max_entries`.
    pub max_entries: u64,
    /// The store file's size, bytes.
    pub size_bytes: u64,
    /// The first 8 bytes of the current content id, hex: stored verdicts are
    /// used only under the content id they were reached with.
    pub content_id: String,
}

/// The exec guard's state in `vigil status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardInfo {
    /// `active`, `off` (configured off), `unavailable` (no BPF LSM) or `failed`.
    pub state: String,
    /// Why it is not active, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The program in use: `lsm` (a refused exec fails with EPERM) or
    /// `tracepoint` (the kernel will not run BPF LSM programs: a refused exec is
    /// killed with SIGKILL before the new program runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// `guard.uncovered` in force (`deny`, `audit`, `off`).
    pub uncovered: String,
    /// `guard.network` in force.
    pub network: String,
    /// `guard.cgroup`, when the guard is scoped to one cgroup subtree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Superblocks the guard treats as covered (marked, or mounted at start).
    pub covered: usize,
    /// The program's counters (`guard_uncovered`, `guard_denied`, …).
    pub counters: BTreeMap<String, u64>,
}

/// One fanotify mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkInfo {
    /// `filesystem` or `mount`.
    pub kind: String,
    /// The path it was placed through.
    pub path: String,
    /// `config` (watch.* at start or reload) or `mount` (found at run time).
    #[serde(default)]
    pub source: String,
}

/// Counters, queue and latencies (`vigil stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    /// Seconds since start.
    pub uptime_s: u64,
    /// Events waiting for a worker.
    pub queue_depth: usize,
    /// The queue's capacity.
    pub queue_capacity: usize,
    /// Events not answered yet.
    pub pending: u64,
    /// Verdict cache entries.
    pub cache_entries: usize,
    /// Every counter, by its stable name.
    pub counters: BTreeMap<String, u64>,
    /// Latency per timed stage (`hash`, `rules`, `heuristics`, `model`, `total`,
    /// `queued_exec`, `queued_open`).
    pub latency_us: BTreeMap<String, LatencySummary>,
    /// The persistent verdict cache (absent from daemons that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_cache: Option<PersistentCacheInfo>,
}

/// One stage's latency histogram, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Observations.
    pub count: u64,
    /// Mean, µs.
    pub mean_us: u64,
    /// Median, µs (bucket upper bound); `None` before the first observation.
    pub p50_us: Option<u64>,
    /// 95th percentile, µs.
    pub p95_us: Option<u64>,
    /// 99th percentile, µs.
    pub p99_us: Option<u64>,
    /// Largest, µs.
    pub max_us: u64,
}

fn connect(socket: &Path) -> anyhow::Result<UnixStream> {
    UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the vigil daemon at {} (is it running?)",
            socket.display()
        )
    })
}

fn send(stream: &mut UnixStream, request: Request) -> anyhow::Result<()> {
    let mut line = serde_json::to_string(&RequestLine {
        v: VERSION,
        request,
    })?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    Ok(())
}

fn parse_reply(line: &str) -> anyhow::Result<Reply> {
    let reply: ReplyLine = serde_json::from_str(line.trim())
        .with_context(|| format!("unparsable reply from the daemon: {line:?}"))?;
    Ok(reply.reply)
}

/// Sends one request to the daemon at `socket` and returns its reply
/// ([`Reply::Failed`] when the daemon refused it).
///
/// # Errors
/// When the daemon cannot be reached or replies with something unparsable.
pub fn call(socket: &Path, request: Request) -> anyhow::Result<Reply> {
    let mut stream = connect(socket)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    send(&mut stream, request)?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .context("reading the daemon's reply")?;
    parse_reply(&line)
}

/// Subscribes to alerts: calls `on_subscribed` with the caller's uid, then
/// `on_alert` with each alert's event line until the daemon closes the
/// connection (returns `Ok`) or `on_alert` returns false.
///
/// # Errors
/// When the daemon cannot be reached, refuses, or sends something unparsable.
pub fn subscribe(
    socket: &Path,
    on_subscribed: impl FnOnce(u32),
    mut on_alert: impl FnMut(&serde_json::Value) -> bool,
) -> anyhow::Result<()> {
    let mut stream = connect(socket)?;
    send(&mut stream, Request::Subscribe)?;
    let mut lines = BufReader::new(stream).lines();
    let first = lines
        .next()
        .context("the daemon closed the connection")?
        .context("reading the daemon's reply")?;
    match parse_reply(&first)? {
        Reply::Subscribed { uid, .. } => on_subscribed(uid),
        Reply::Failed { error } => bail!("the daemon refused the subscription: {error}"),
        other => bail!("unexpected reply to subscribe: {other:?}"),
    }
    for line in lines {
        let line = line.context("reading alerts")?;
        let alert: AlertLine = serde_json::from_str(&line)
            .with_context(|| format!("unparsable alert from the daemon: {line:?}"))?;
        if !on_alert(&alert.alert) {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_keep_their_wire_form() {
        let cases = [
            (Request::Reload, r#"{"v":1,"cmd":"reload"}"#),
            (
                Request::QuarantineShow { id: "ab".into() },
                r#"{"v":1,"cmd":"quarantine-show","id":"ab"}"#,
            ),
            (
                Request::QuarantineRestore {
                    id: "ab".into(),
                    to_hex: None,
                    force: true,
                    overwrite: false,
                },
                r#"{"v":1,"cmd":"quarantine-restore","id":"ab","force":true}"#,
            ),
            (
                Request::ExecHistory { since_ms: 5 },
                r#"{"v":1,"cmd":"exec-history","since_ms":5}"#,
            ),
        ];
        for (request, wire) in cases {
            let line = RequestLine {
                v: VERSION,
                request,
            };
            assert_eq!(serde_json::to_string(&line).unwrap(), wire);
            let back: RequestLine = serde_json::from_str(wire).unwrap();
            assert_eq!(back, line);
        }
        // Unknown fields are ignored; defaults fill the rest.
        let back: RequestLine =
            serde_json::from_str(r#"{"v":1,"cmd":"exec-history","future":true}"#).unwrap();
        assert_eq!(back.request, Request::ExecHistory { since_ms: 0 });
        assert!(serde_json::from_str::<RequestLine>(r#"{"v":1,"cmd":"format-disk"}"#).is_err());
        assert!(serde_json::from_str::<RequestLine>(r#"{"v":1,"cmd":"quarantine-show"}"#).is_err());
    }

    #[test]
    fn replies_round_trip_and_are_told_apart() {
        let replies = [
            Reply::failed("no"),
            Reply::Reloaded {
                generation: 2,
                summary: "s".into(),
            },
            Reply::Deleted {
                deleted: "ab".into(),
            },
            Reply::Records { records: vec![] },
            Reply::Items { items: vec![] },
            Reply::Subscribed {
                subscribed: true,
                uid: 7,
            },
        ];
        for reply in replies {
            let line = reply.to_line();
            let back = parse_reply(&line).unwrap();
            assert_eq!(back, reply, "{line}");
            assert_eq!(
                line.contains(r#""ok":false"#),
                matches!(reply, Reply::Failed { .. })
            );
            assert!(line.starts_with(r#"{"v":1,"#), "{line}");
        }
    }
}
