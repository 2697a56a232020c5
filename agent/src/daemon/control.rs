//! The control socket: the daemon's side of [`crate::protocol`].
//!
//! Owns the listening socket and one task per connection. It decides *who* may ask
//! (peer credentials from `SO_PEERCRED`: root for changes, anyone for read-only
//! status) and forwards allowed requests to the daemon's main loop, which owns the
//! state and replies with a typed [`Reply`]; this module writes the wire format.
//! One request line, one reply line; `subscribe` (anyone) keeps the connection
//! open and streams one alert line per alert the caller may see (root: all;
//! others: files they own or accesses by their processes) until the client
//! closes it.
//!
//! Who may do what: `status`, `stats`, `quarantine-list` and `quarantine-show`
//! (anyone; a non-root caller sees only items whose file it owned); `reload`,
//! `quarantine-restore`, `quarantine-delete`, `exec-history`,
//! `allowlist-changed` and `hash-file` (root only).

use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::daemon::alerts::Alerts;
use crate::protocol::{AlertLine, AllowChange, Reply, Request, RequestLine, VERSION};

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;

/// What the main loop is asked to do (authorization already checked).
#[derive(Debug)]
pub enum Command {
    /// Re-read configuration and content.
    Reload,
    /// Report state and counters.
    Status,
    /// Report counters, queue depth and latency histograms.
    Stats,
    /// A quarantine store request.
    Quarantine(crate::quarantine::Request),
    /// The recent execs at or after `since_ms`.
    ExecHistory {
        /// Milliseconds since the epoch.
        since_ms: u64,
    },
    /// Reload after an allow list changed, and log the change.
    AllowlistChanged(AllowChange),
    /// Hash a file by path for `vigil allow PATH`.
    HashFile {
        /// The absolute path.
        path: std::path::PathBuf,
    },
}

/// A command with the channel for its reply.
pub struct Call {
    /// What is asked.
    pub command: Command,
    /// Where the reply goes.
    pub reply: oneshot::Sender<Reply>,
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
        Ok(_) => match parse(&line) {
            Ok(Request::Subscribe) => return subscribe(uid, reader, write, &alerts).await,
            Ok(request) => answer(request, uid, &calls).await,
            Err(error) => Reply::failed(error),
        },
        Err(e) => Reply::failed(format!("bad request: {e}")),
    };
    let _ = write_line(&mut write, reply.to_line()).await;
}

async fn write_line(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    mut line: String,
) -> std::io::Result<()> {
    line.push('\n');
    write.write_all(line.as_bytes()).await
}

/// A request line, or why it is refused.
fn parse(line: &str) -> Result<Request, String> {
    // The version first, so an old daemon tells a newer client what it speaks
    // rather than failing on a command it does not know.
    let v = serde_json::from_str::<serde_json::Value>(line.trim())
        .map_err(|e| format!("bad request: {e}"))?
        .get("v")
        .and_then(serde_json::Value::as_u64);
    if v != Some(u64::from(VERSION)) {
        return Err(format!(
            "unsupported protocol version {} (this daemon speaks {VERSION})",
            v.map_or_else(|| "none".to_owned(), |v| v.to_string())
        ));
    }
    serde_json::from_str::<RequestLine>(line.trim())
        .map(|l| l.request)
        .map_err(|e| format!("bad request: {e}"))
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
        let _ = write_line(&mut write, Reply::failed("no peer credentials").to_line()).await;
        return;
    };
    let scope = (uid != 0).then_some(uid);
    let mut rx = alerts.subscribe(scope);
    let hello = Reply::Subscribed {
        subscribed: true,
        uid,
    };
    if write_line(&mut write, hello.to_line()).await.is_err() {
        return;
    }
    let mut ignored = String::new();
    loop {
        tokio::select! {
            alert = rx.recv() => {
                let Some(alert) = alert else { return };
                let line = AlertLine { v: VERSION, alert: alert.line.clone() };
                let Ok(text) = serde_json::to_string(&line) else { continue };
                if write_line(&mut write, text).await.is_err() {
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

async fn answer(request: Request, uid: Option<u32>, calls: &mpsc::Sender<Call>) -> Reply {
    let command = match command(request, uid) {
        Ok(c) => c,
        Err(error) => return Reply::failed(error),
    };
    let (tx, rx) = oneshot::channel();
    if calls.send(Call { command, reply: tx }).await.is_err() {
        return Reply::failed("the daemon is shutting down");
    }
    rx.await
        .unwrap_or_else(|_| Reply::failed("the daemon dropped the request"))
}

/// Decides who may do what: changes need uid 0; a non-root caller's listings are
/// restricted to its own files. The error is the refusal's message.
fn command(request: Request, uid: Option<u32>) -> Result<Command, String> {
    use crate::quarantine::Request as Q;
    let root = uid == Some(0);
    let need_root = |what: &str| Err(format!("permission denied: only root may {what}"));
    // Unknown callers (no SO_PEERCRED) see nothing that is not theirs.
    let own = if root {
        None
    } else {
        Some(uid.unwrap_or(u32::MAX))
    };
    Ok(match request {
        Request::Reload if !root => return need_root("reload the daemon"),
        Request::Reload => Command::Reload,
        Request::Status => Command::Status,
        Request::Stats => Command::Stats,
        Request::QuarantineList => Command::Quarantine(Q::List { uid: own }),
        Request::QuarantineShow { id } => Command::Quarantine(Q::Show { id, uid: own }),
        Request::QuarantineRestore { .. } if !root => {
            return need_root("restore quarantined files");
        }
        Request::QuarantineRestore {
            id,
            to_hex,
            force,
            overwrite,
        } => {
            let to = match to_hex {
                None => None,
                Some(h) => Some(std::ffi::OsString::from_vec(
                    hex::decode(h).map_err(|e| format!("bad `to_hex`: {e}"))?,
                )),
            };
            Command::Quarantine(Q::Restore {
                id,
                to,
                force,
                overwrite,
            })
        }
        Request::QuarantineDelete { .. } if !root => {
            return need_root("delete quarantined files");
        }
        Request::QuarantineDelete { id } => Command::Quarantine(Q::Delete { id }),
        Request::ExecHistory { .. } if !root => return need_root("read the exec history"),
        Request::ExecHistory { since_ms } => Command::ExecHistory { since_ms },
        Request::AllowlistChanged { .. } if !root => return need_root("change the allowlist"),
        Request::AllowlistChanged { allowlist } => Command::AllowlistChanged(allowlist),
        Request::HashFile { .. } if !root => return need_root("hash files through the daemon"),
        Request::HashFile { path_hex } => {
            let path = std::path::PathBuf::from(std::ffi::OsString::from_vec(
                hex::decode(path_hex).map_err(|e| format!("bad `path_hex`: {e}"))?,
            ));
            if !path.is_absolute() {
                return Err("`path_hex` must be an absolute path".to_owned());
            }
            Command::HashFile { path }
        }
        // Answered by serve_one before it gets here.
        Request::Subscribe => return Err("subscribe opens its own connection".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AllowChangeKind;

    fn change() -> AllowChange {
        AllowChange {
            change: AllowChangeKind::Added,
            sha256: "ab".repeat(32),
            entry: "/etc/vigil/allow.d/local.sha256:3".to_owned(),
            comment: None,
            by: "root".to_owned(),
        }
    }

    #[test]
    fn allowlist_commands_are_for_root_only() {
        let hash = || Request::HashFile {
            path_hex: hex::encode("/srv/tool"),
        };
        let changed = || Request::AllowlistChanged {
            allowlist: change(),
        };
        for request in [hash(), changed()] {
            for uid in [Some(1000), None] {
                let refused = command(request.clone(), uid).expect_err("refused");
                assert!(refused.starts_with("permission denied"), "{refused}");
            }
        }
        assert!(matches!(
            command(changed(), Some(0)),
            Ok(Command::AllowlistChanged(c)) if c.entry.ends_with(":3")
        ));
        assert!(matches!(
            command(hash(), Some(0)),
            Ok(Command::HashFile { path }) if path == std::path::Path::new("/srv/tool")
        ));
        let relative = Request::HashFile {
            path_hex: hex::encode("tool"),
        };
        assert!(command(relative, Some(0)).is_err());
    }
}
