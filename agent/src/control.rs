//! The control socket: a small versioned JSON-lines protocol between the CLI and the
//! daemon.
//!
//! Owns the listening socket and one task per connection. It decides *who* may ask
//! (peer credentials from `SO_PEERCRED`: root for changes, anyone for read-only
//! status) and forwards allowed requests to the daemon's main loop, which owns the
//! state and replies. One request line, one reply line:
//!
//! ```text
//! → {"v":1,"cmd":"reload"}
//! ← {"v":1,"ok":true,"generation":2,"summary":"generation 2 mode=enforce …"}
//! ← {"v":1,"ok":false,"error":"/etc/vigil/vigil.toml:3: unknown key …"}
//! → {"v":1,"cmd":"quarantine-restore","id":"0123456789abcdef","force":true}
//! ```
//!
//! `subscribe` (anyone) keeps the connection open: after an `ok` line, the daemon
//! writes one `{"v":1,"alert":{…event line…}}` line per alert the caller may see
//! (root: all; others: files they own or accesses by their processes) until the
//! client closes it.
//!
//! Commands: `status`, `stats` and `quarantine-list`/`quarantine-show` (anyone; a non-root
//! caller sees only items whose file it owned), `reload`, `quarantine-restore` and
//! `quarantine-delete` and `exec-history` (root only; optional `since_ms`),
//! `allowlist-changed` (root: reload after `vigil allow` edited a list, and log the
//! change in `allowlist`) and `hash-file` (root: the SHA-256 of the file at
//! `path_hex`, read by the daemon, whose own opens are never denied). Optional request fields: `id`, `to_hex` (a
//! restore target path's bytes in hex: paths need not be UTF-8), `force`,
//! `overwrite`. Unknown fields are ignored, so newer clients can talk to this
//! daemon as long as they only use what it knows.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::alerts::Alerts;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long the CLI waits for a reply (a reload loads all content).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// A request line.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version.
    pub v: u32,
    /// The command (see the module doc).
    pub cmd: String,
    /// A quarantine item id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A restore target, the path's bytes in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_hex: Option<String>,
    /// Restore a still known-bad file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// Let a restore replace an existing file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overwrite: bool,
    /// `exec-history`: only records at or after this time (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// `hash-file`: the file's absolute path, its bytes in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    /// `allowlist-changed`: what `vigil allow` changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowlist: Option<AllowChange>,
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

/// What the main loop is asked to do.
#[derive(Debug)]
pub enum Command {
    /// Re-read configuration and content (root only).
    Reload,
    /// Report state and counters (anyone).
    Status,
    /// Report counters, queue depth and latency histograms (anyone).
    Stats,
    /// A quarantine store request (authorization already checked).
    Quarantine(crate::quarantine::Request),
    /// The recent execs at or after `since_ms` (root only: they name every
    /// user's programs).
    ExecHistory {
        /// Milliseconds since the epoch.
        since_ms: u64,
    },
    /// Reload after an allow list changed, and log the change (root only).
    AllowlistChanged(AllowChange),
    /// Hash a file by path for `vigil allow PATH` (root only).
    HashFile {
        /// The absolute path.
        path: std::path::PathBuf,
    },
}

/// A command with the channel for its reply.
pub struct Call {
    /// What is asked.
    pub command: Command,
    /// Where the JSON reply goes.
    pub reply: oneshot::Sender<Value>,
}

/// Errors setting up the socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another daemon answers on the socket.
    #[error("another vigil daemon is already listening on {0}")]
    InUse(String),
    /// Creating, binding or chmod-ing the socket failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds the control socket at `path` (creating its directory, replacing a stale
/// socket) and serves it until the returned task is aborted.
///
/// # Errors
/// When another daemon answers there, or the socket cannot be created.
pub fn serve(
    path: &Path,
    calls: mpsc::Sender<Call>,
    alerts: Arc<Alerts>,
) -> Result<tokio::task::JoinHandle<()>, ControlError> {
    let io_err = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    if let Ok(md) = std::fs::symlink_metadata(path) {
        if md.file_type().is_socket() && StdUnixStream::connect(path).is_ok() {
            return Err(ControlError::InUse(path.display().to_string()));
        }
        if md.file_type().is_socket() {
            std::fs::remove_file(path).map_err(io_err)?;
        }
    }
    let listener = UnixListener::bind(path).map_err(io_err)?;
    // Anyone may connect; what they may do is decided per request from SO_PEERCRED.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(io_err)?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve_one(stream, calls.clone(), Arc::clone(&alerts)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

async fn serve_one(stream: UnixStream, calls: mpsc::Sender<Call>, alerts: Arc<Alerts>) {
    let uid = stream.peer_cred().map(|c| c.uid()).ok();
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = AsyncBufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    let reply = match reader.read_line(&mut line).await {
        Ok(_) if is_subscribe(&line) => return subscribe(uid, reader, write, &alerts).await,
        Ok(_) => answer(&line, uid, &calls).await,
        Err(e) => failure(&format!("bad request: {e}")),
    };
    let mut out = reply.to_string();
    out.push('\n');
    let _ = write.write_all(out.as_bytes()).await;
}

fn is_subscribe(line: &str) -> bool {
    serde_json::from_str::<Request>(line.trim())
        .is_ok_and(|r| r.v == PROTOCOL_VERSION && r.cmd == "subscribe")
}

/// Streams the alerts `uid` may see (all for root; a connection without
/// credentials gets none) until the client closes the connection.
async fn subscribe<R: tokio::io::AsyncRead + Unpin>(
    uid: Option<u32>,
    mut reader: AsyncBufReader<R>,
    mut write: tokio::net::unix::OwnedWriteHalf,
    alerts: &Alerts,
) {
    let Some(uid) = uid else {
        let mut out = failure("no peer credentials").to_string();
        out.push('\n');
        let _ = write.write_all(out.as_bytes()).await;
        return;
    };
    let scope = (uid != 0).then_some(uid);
    let mut rx = alerts.subscribe(scope);
    let hello = json!({"v": PROTOCOL_VERSION, "ok": true, "subscribed": true, "uid": uid});
    if write
        .write_all(format!("{hello}\n").as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let mut ignored = String::new();
    loop {
        tokio::select! {
            alert = rx.recv() => {
                let Some(alert) = alert else { return };
                let out = json!({"v": PROTOCOL_VERSION, "alert": alert.line});
                if write.write_all(format!("{out}\n").as_bytes()).await.is_err() {
                    return;
                }
            }
            // EOF ends the subscription; anything else the client sends is ignored.
            read = reader.read_line(&mut ignored) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return;
                }
                ignored.clear();
            }
        }
    }
}

async fn answer(line: &str, uid: Option<u32>, calls: &mpsc::Sender<Call>) -> Value {
    let request: Request = match serde_json::from_str(line.trim()) {
        Ok(r) => r,
        Err(e) => return failure(&format!("bad request: {e}")),
    };
    if request.v != PROTOCOL_VERSION {
        return failure(&format!(
            "unsupported protocol version {} (this daemon speaks {PROTOCOL_VERSION})",
            request.v
        ));
    }
    let command = match command(request, uid) {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    let (tx, rx) = oneshot::channel();
    if calls.send(Call { command, reply: tx }).await.is_err() {
        return failure("the daemon is shutting down");
    }
    rx.await
        .unwrap_or_else(|_| failure("the daemon dropped the request"))
}

/// Parses a request into a command, deciding who may do what: changes need uid 0;
/// a non-root caller's listings are restricted to its own files.
fn command(request: Request, uid: Option<u32>) -> Result<Command, Value> {
    use crate::quarantine::Request as Q;
    let root = uid == Some(0);
    let need_root = |what: &str| failure(&format!("permission denied: only root may {what}"));
    let id = |r: &Request| {
        r.id.clone()
            .ok_or_else(|| failure(&format!("`{}` needs an `id`", r.cmd)))
    };
    // Unknown callers (no SO_PEERCRED) see nothing that is not theirs.
    let own = if root {
        None
    } else {
        Some(uid.unwrap_or(u32::MAX))
    };
    Ok(match request.cmd.as_str() {
        "reload" if !root => return Err(need_root("reload the daemon")),
        "reload" => Command::Reload,
        "status" => Command::Status,
        "stats" => Command::Stats,
        "quarantine-list" => Command::Quarantine(Q::List { uid: own }),
        "quarantine-show" => Command::Quarantine(Q::Show {
            id: id(&request)?,
            uid: own,
        }),
        "quarantine-restore" if !root => return Err(need_root("restore quarantined files")),
        "quarantine-restore" => {
            let to = match &request.to_hex {
                None => None,
                Some(h) => Some(std::ffi::OsString::from_vec(
                    hex::decode(h).map_err(|e| failure(&format!("bad `to_hex`: {e}")))?,
                )),
            };
            Command::Quarantine(Q::Restore {
                id: id(&request)?,
                to,
                force: request.force,
                overwrite: request.overwrite,
            })
        }
        "quarantine-delete" if !root => return Err(need_root("delete quarantined files")),
        "quarantine-delete" => Command::Quarantine(Q::Delete { id: id(&request)? }),
        "allowlist-changed" if !root => return Err(need_root("change the allowlist")),
        "allowlist-changed" => Command::AllowlistChanged(
            request
                .allowlist
                .ok_or_else(|| failure("`allowlist-changed` needs an `allowlist`"))?,
        ),
        "hash-file" if !root => return Err(need_root("hash files through the daemon")),
        "hash-file" => {
            let hex_path = request
                .path_hex
                .as_deref()
                .ok_or_else(|| failure("`hash-file` needs a `path_hex`"))?;
            let path = std::path::PathBuf::from(std::ffi::OsString::from_vec(
                hex::decode(hex_path).map_err(|e| failure(&format!("bad `path_hex`: {e}")))?,
            ));
            if !path.is_absolute() {
                return Err(failure("`path_hex` must be an absolute path"));
            }
            Command::HashFile { path }
        }
        "exec-history" if !root => return Err(need_root("read the exec history")),
        "exec-history" => Command::ExecHistory {
            since_ms: request.since_ms.unwrap_or(0),
        },
        other => {
            return Err(failure(&format!(
                "unknown command `{other}` (expected status, stats, reload, quarantine-list, \
                 quarantine-show, quarantine-restore, quarantine-delete, exec-history, \
                 allowlist-changed or hash-file)"
            )));
        }
    })
}

/// A failure reply.
pub fn failure(message: &str) -> Value {
    json!({ "v": PROTOCOL_VERSION, "ok": false, "error": message })
}

/// Client side: sends one command to the daemon at `socket` and returns its reply.
///
/// # Errors
/// When the daemon cannot be reached or replies with something unparsable.
pub fn call(socket: &Path, cmd: &str) -> anyhow::Result<Value> {
    call_with(
        socket,
        &Request {
            v: PROTOCOL_VERSION,
            cmd: cmd.to_string(),
            ..Request::default()
        },
    )
}

/// Client side: sends `request` to the daemon at `socket` and returns its reply.
///
/// # Errors
/// When the daemon cannot be reached or replies with something unparsable.
pub fn call_with(socket: &Path, request: &Request) -> anyhow::Result<Value> {
    use anyhow::Context as _;
    let mut stream = StdUnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the vigil daemon at {} (is it running?)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    let mut req = serde_json::to_string(request)?;
    req.push('\n');
    stream.write_all(req.as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .context("reading the daemon's reply")?;
    serde_json::from_str(line.trim())
        .with_context(|| format!("unparsable reply from the daemon: {line:?}"))
}

/// Client side of `subscribe`: connects to `socket` and calls `on_alert` with each
/// alert's event line until the daemon closes the connection (returns `Ok`) or
/// `on_alert` returns false.
///
/// # Errors
/// When the daemon cannot be reached, refuses, or sends something unparsable.
pub fn subscribe_with(
    socket: &Path,
    mut on_subscribed: impl FnMut(&Value),
    mut on_alert: impl FnMut(&Value) -> bool,
) -> anyhow::Result<()> {
    use anyhow::{Context as _, bail};
    let mut stream = StdUnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the vigil daemon at {} (is it running?)",
            socket.display()
        )
    })?;
    let mut req = serde_json::to_string(&Request {
        v: PROTOCOL_VERSION,
        cmd: "subscribe".to_owned(),
        ..Request::default()
    })?;
    req.push('\n');
    stream.write_all(req.as_bytes())?;
    let mut lines = BufReader::new(stream).lines();
    let first = lines
        .next()
        .context("the daemon closed the connection")?
        .context("reading the daemon's reply")?;
    let hello: Value = serde_json::from_str(&first)
        .with_context(|| format!("unparsable reply from the daemon: {first:?}"))?;
    if hello.get("ok").and_then(Value::as_bool) != Some(true) {
        let error = hello.get("error").and_then(Value::as_str).unwrap_or("?");
        bail!("the daemon refused the subscription: {error}");
    }
    on_subscribed(&hello);
    for line in lines {
        let line = line.context("reading alerts")?;
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("unparsable alert from the daemon: {line:?}"))?;
        if let Some(alert) = v.get("alert")
            && !on_alert(alert)
        {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cmd: &str) -> Request {
        Request {
            v: PROTOCOL_VERSION,
            cmd: cmd.to_owned(),
            path_hex: Some(hex::encode("/srv/tool")),
            allowlist: Some(AllowChange {
                change: AllowChangeKind::Added,
                sha256: "ab".repeat(32),
                entry: "/etc/vigil/allow.d/local.sha256:3".to_owned(),
                comment: None,
                by: "root".to_owned(),
            }),
            ..Request::default()
        }
    }

    #[test]
    fn allowlist_commands_are_for_root_only() {
        for cmd in ["allowlist-changed", "hash-file"] {
            for uid in [Some(1000), None] {
                let refused = command(request(cmd), uid).expect_err(cmd);
                assert!(
                    refused["error"]
                        .as_str()
                        .is_some_and(|e| e.starts_with("permission denied")),
                    "{cmd} as {uid:?}: {refused}"
                );
            }
        }
        assert!(matches!(
            command(request("allowlist-changed"), Some(0)),
            Ok(Command::AllowlistChanged(c)) if c.entry.ends_with(":3")
        ));
        assert!(matches!(
            command(request("hash-file"), Some(0)),
            Ok(Command::HashFile { path }) if path == std::path::Path::new("/srv/tool")
        ));
        let relative = Request {
            path_hex: Some(hex::encode("tool")),
            ..request("hash-file")
        };
        assert!(command(relative, Some(0)).is_err());
    }
}
