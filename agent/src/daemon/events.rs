//! The JSON-lines event log: one line per detection, deadline expiry, allowlist
//! hit, quarantine, restore, configuration and allowlist change.
//!
//! Owns the writer thread and its bounded queue. Workers hand over an owned
//! [`EventRecord`] *after* answering the kernel; when the queue is full the record is
//! dropped and counted, never waited for. Field names follow ECS (`event.action`,
//! `file.path`, `file.hash.sha256`, `process.pid`, …) so log shippers can take the
//! stream as is; they are a stable interface.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::SystemTime;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde_json::json;
use vigil_policy::{EventSink, HashEntry, Reason, Verdict};

use crate::daemon::priority::{self, Lane};
use crate::daemon::respond::AccessKind;
use crate::daemon::stats::Stats;

/// How many records may wait for the writer before new ones are dropped.
pub const EVENT_QUEUE: usize = 8192;

/// Why a record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventAction {
    /// A detection that was denied.
    Blocked,
    /// A detection that was allowed because the mode is audit (or the verdict only
    /// suspicious).
    Audited,
    /// The event was answered by its deadline; the record carries the late verdict.
    Deadline,
    /// The file's hash is on an allow list: no detection stage ran
    /// (`vigil.allowlist` names the entry).
    Allowlisted,
}

impl EventAction {
    /// Stable name (`event.action`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Blocked => "blocked",
            EventAction::Audited => "audited",
            EventAction::Deadline => "deadline",
            EventAction::Allowlisted => "allowlisted",
        }
    }
}

/// One line of the event log, owned so it can cross to the writer thread.
#[derive(Debug)]
pub struct EventRecord {
    /// When the decision was made.
    pub time: SystemTime,
    /// Why this record exists.
    pub action: EventAction,
    /// Exec or open.
    pub access: AccessKind,
    /// Whether the kernel was told to deny.
    pub denied: bool,
    /// The file's path, if it could be resolved.
    pub path: Option<PathBuf>,
    /// The file's size in bytes.
    pub size: u64,
    /// SHA-256 of the content, if read.
    pub sha256: Option<[u8; 32]>,
    /// The accessing process.
    pub pid: i32,
    /// The accessing process's executable, if it could be resolved.
    pub executable: Option<PathBuf>,
    /// The accessing process's (effective) uid, if it could be read.
    pub user_id: Option<u32>,
    /// The file's owner.
    pub file_uid: u32,
    /// The verdict.
    pub verdict: Verdict,
    /// The mode of the generation that decided.
    pub mode: &'static str,
    /// Every finding behind the verdict.
    pub reasons: Vec<Reason>,
    /// The content generation that decided.
    pub generation: u64,
    /// True when the verdict came after the deadline answered.
    pub late: bool,
    /// Time from the event's arrival to the verdict.
    pub duration_us: u64,
    /// Of that, the time it waited for a worker, when a worker took it.
    pub queued_us: Option<u64>,
    /// The exec rule that matched (`vigil.rule`: name, action, source, trust
    /// outcome), if any.
    pub rule: Option<serde_json::Value>,
    /// The allow entry the file matched (`vigil.allowlist`), if any.
    pub allowed: Option<HashEntry>,
}

impl EventRecord {
    /// The record as one JSON value with stable ECS-style field names.
    pub fn to_json(&self) -> serde_json::Value {
        let timestamp = humantime::format_rfc3339_micros(self.time).to_string();
        let kind = match self.verdict {
            Verdict::Clean if !self.denied => "event",
            Verdict::Clean | Verdict::Suspicious | Verdict::Malicious => "alert",
        };
        let mut value = json!({
            "@timestamp": timestamp,
            "event": {
                "kind": kind,
                "category": "malware",
                "action": self.action.as_str(),
                "type": self.access.as_str(),
                "outcome": if self.denied { "denied" } else { "allowed" },
            },
            "file": {
                "path": self.path.as_ref().map(|p| p.to_string_lossy()),
                "size": self.size,
                "uid": self.file_uid.to_string(),
                "hash": { "sha256": self.sha256.map(hex::encode) },
            },
            "user": { "id": self.user_id.map(|u| u.to_string()) },
            "process": {
                "pid": self.pid,
                "executable": self.executable.as_ref().map(|p| p.to_string_lossy()),
            },
            "threat": {
                "indicator": { "name": self.reasons.first().map(|r| r.detail.as_str()) },
            },
            "vigil": {
                "verdict": self.verdict.as_str(),
                "mode": self.mode,
                "reasons": self.reasons,
                "generation": self.generation,
                "late": self.late,
                "duration_us": self.duration_us,
                "queued_us": self.queued_us,
            },
        });
        if let Some(rule) = &self.rule
            && let Some(vigil) = value.get_mut("vigil").and_then(|v| v.as_object_mut())
        {
            vigil.insert("rule".to_owned(), rule.clone());
        }
        if let Some(entry) = &self.allowed
            && let Some(vigil) = value.get_mut("vigil").and_then(|v| v.as_object_mut())
        {
            vigil.insert("allowlist".to_owned(), allow_entry_json(entry));
        }
        value
    }
}

/// `vigil.allowlist` of an event line: the entry's comment, file and line, and
/// `entry` (`file:line`) to find it by.
pub fn allow_entry_json(entry: &HashEntry) -> serde_json::Value {
    json!({
        "name": entry.name,
        "source": entry.source.to_string_lossy(),
        "line": entry.line,
        "entry": format!("{}:{}", entry.source.display(), entry.line),
        "kind": match entry.kind {
            vigil_policy::HashKind::Sha256 => "sha256",
            vigil_policy::HashKind::Md5 => "md5",
        },
    })
}

/// The event line of an allowlist change (`event.action = "allowlist-changed"`):
/// which hash, which entry, who, and whether the daemon took it (`outcome`,
/// `error` when the reload was rejected; `generation` is the one running after).
pub fn allowlist_changed_event(
    change: &crate::protocol::AllowChange,
    outcome: &str,
    error: Option<&str>,
    generation: Option<u64>,
) -> serde_json::Value {
    use crate::protocol::AllowChangeKind;
    let kind = match change.change {
        AllowChangeKind::Added => "creation",
        AllowChangeKind::Removed => "deletion",
    };
    json!({
        "@timestamp": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        "event": {
            "kind": "event",
            "category": ["configuration"],
            "type": [kind],
            "action": "allowlist-changed",
            "outcome": outcome,
        },
        "error": error.map(|m| json!({"message": m})),
        "file": {"hash": {"sha256": change.sha256}},
        "user": {"name": change.by},
        "vigil": {
            "allowlist": change,
            "generation": generation,
        },
    })
}

/// One queued line: a detection record (serialized on the writer thread) or a
/// ready-made value (quarantine, restore, configuration change).
#[derive(Debug)]
enum Line {
    Detection(Box<EventRecord>),
    Value(serde_json::Value),
}

impl Line {
    fn into_json(self) -> serde_json::Value {
        match self {
            Line::Detection(r) => r.to_json(),
            Line::Value(v) => v,
        }
    }
}

/// The sending side of the event log; cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    tx: Option<Sender<Line>>,
    stats: Arc<Stats>,
}

impl EventLog {
    /// Opens `log.events` (a file sink rotates by size, see [`Rotating`]) and starts
    /// the writer thread. `EventSink::None` starts nothing.
    ///
    /// # Errors
    /// When the log file cannot be opened for appending or the thread not spawned.
    pub fn start(
        log: &vigil_policy::config::Log,
        stats: Arc<Stats>,
    ) -> io::Result<(EventLog, Option<thread::JoinHandle<()>>)> {
        let out: Box<dyn Write + Send> = match &log.events {
            EventSink::None => return Ok((EventLog { tx: None, stats }, None)),
            EventSink::Stdout => Box::new(io::stdout()),
            EventSink::File(path) => Box::new(Rotating::open(
                path.clone(),
                log.events_max_size,
                log.events_keep,
            )?),
        };
        let (tx, rx) = crossbeam_channel::bounded(EVENT_QUEUE);
        let handle = thread::Builder::new()
            .name("vigil-events".into())
            .spawn(move || {
                priority::lower(Lane::Background);
                write_loop(&rx, BufWriter::new(out))
            })?;
        Ok((
            EventLog {
                tx: Some(tx),
                stats,
            },
            Some(handle),
        ))
    }

    /// Queues a record; drops and counts it when the writer is behind.
    pub fn emit(&self, record: EventRecord) {
        self.send(Line::Detection(Box::new(record)));
    }

    /// Queues a ready-made line (quarantine, restore, configuration change); drops
    /// and counts it when the writer is behind.
    pub fn emit_json(&self, value: serde_json::Value) {
        self.send(Line::Value(value));
    }

    fn send(&self, line: Line) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                Stats::bump(&self.stats.events_dropped);
            }
        }
    }
}

/// An append-only file rotated by size: at a flush that finds it at or past
/// `max_size` bytes, `<path>.N` becomes `<path>.N+1` (the oldest beyond `keep` is
/// removed), `<path>` becomes `<path>.1`, and a new `<path>` is started. The writer
/// flushes after whole lines only, so a line is never split across files; a file
/// may exceed `max_size` by the last batch.
pub struct Rotating {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    max_size: u64,
    keep: u64,
}

impl Rotating {
    /// Opens `path` for appending; `max_size` 0 never rotates.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(path: PathBuf, max_size: u64, keep: u64) -> io::Result<Rotating> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Rotating {
            path,
            file,
            size,
            max_size,
            keep: keep.max(1),
        })
    }

    fn numbered(&self, n: u64) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> io::Result<()> {
        let _ = std::fs::remove_file(self.numbered(self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(self.numbered(n), self.numbered(n + 1));
        }
        std::fs::rename(&self.path, self.numbered(1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for Rotating {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.max_size > 0 && self.size >= self.max_size {
            self.rotate()?;
        }
        Ok(())
    }
}

fn write_loop(rx: &Receiver<Line>, mut out: BufWriter<Box<dyn Write + Send>>) {
    while let Ok(record) = rx.recv() {
        let mut batch = Some(record);
        // Write what is queued, then flush once, so a burst costs one write(2).
        while let Some(rec) = batch.take().or_else(|| rx.try_recv().ok()) {
            if serde_json::to_writer(&mut out, &rec.into_json()).is_err()
                || out.write_all(b"\n").is_err()
            {
                crate::warn_limited!("event log write failed; record lost");
            }
        }
        if let Err(e) = out.flush() {
            crate::warn_limited!(error = %e, "event log flush failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_whole_lines_and_n_files() {
        let dir = std::env::temp_dir().join(format!("vigil-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.json");
        let mut out = BufWriter::new(Rotating::open(path.clone(), 100, 2).unwrap());
        for i in 0..30 {
            writeln!(out, "{{\"line\":{i},\"pad\":\"xxxxxxxxxxxxxxxxxx\"}}").unwrap();
            out.flush().unwrap();
        }
        drop(out);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["events.json", "events.json.1", "events.json.2"]);
        let mut lines = Vec::new();
        for name in ["events.json.2", "events.json.1", "events.json"] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            assert!(text.len() <= 100 + 40, "{name}: {}", text.len());
            for l in text.lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                lines.push(v["line"].as_u64().unwrap());
            }
        }
        // The newest lines, in order, none split.
        assert_eq!(lines, (30 - lines.len() as u64..30).collect::<Vec<_>>());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
