//! `vigil reload`, `status`, `stats` and `alerts`: asking the running daemon.
//!
//! Owns finding the control socket from the configuration, sending one typed
//! request ([`crate::protocol`]) and turning the reply into output and an exit
//! code (0 done, 1 refused by the daemon). Must not own: the wire format, or
//! anything the daemon decides.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::engine::generation::load_config;
use crate::protocol::{self, Reply, Request, StatsReport};

/// The control socket: `socket`, or `daemon.socket` of the configuration.
///
/// # Errors
/// When the configuration cannot be loaded.
pub fn socket_path(config: Option<PathBuf>, socket: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match socket {
        Some(s) => s,
        None => {
            load_config(config.as_deref())
                .context("finding the control socket")?
                .0
                .daemon
                .socket
        }
    })
}

/// Sends `request`; on success hands the reply to `on_ok` and returns 0, on a
/// refusal prints the daemon's reason and returns 1.
///
/// # Errors
/// When the daemon cannot be reached, or `on_ok` fails.
pub fn send(
    socket: &Path,
    request: Request,
    on_ok: impl FnOnce(Reply) -> anyhow::Result<()>,
) -> anyhow::Result<u8> {
    let name = request.name();
    match protocol::call(socket, request)? {
        Reply::Failed { error } => {
            eprintln!("vigil {}: rejected: {error}", name.replace('-', " "));
            Ok(1)
        }
        reply => on_ok(reply).map(|()| 0),
    }
}

/// `vigil reload`.
///
/// # Errors
/// As [`send`].
pub fn reload(socket: &Path) -> anyhow::Result<u8> {
    send(socket, Request::Reload, |reply| match reply {
        Reply::Reloaded { summary, .. } => {
            println!("reloaded: {summary}");
            Ok(())
        }
        other => unexpected("reload", &other),
    })
}

/// `vigil status` (indented JSON, or one line with `json`).
///
/// # Errors
/// As [`send`].
pub fn status(socket: &Path, json: bool) -> anyhow::Result<u8> {
    send(socket, Request::Status, |reply| match reply {
        Reply::Status { status } => {
            let text = if json {
                serde_json::to_string(&status)?
            } else {
                serde_json::to_string_pretty(&status)?
            };
            println!("{text}");
            Ok(())
        }
        other => unexpected("status", &other),
    })
}

/// `vigil stats` (a table, or one JSON line with `json`).
///
/// # Errors
/// As [`send`].
pub fn stats(socket: &Path, json: bool) -> anyhow::Result<u8> {
    send(socket, Request::Stats, |reply| match reply {
        Reply::Stats { stats } => {
            if json {
                println!("{}", serde_json::to_string(&stats)?);
            } else {
                print!("{}", render_stats(&stats));
            }
            Ok(())
        }
        other => unexpected("stats", &other),
    })
}

/// `vigil alerts`: prints alerts until the daemon closes the connection.
///
/// # Errors
/// When the daemon cannot be reached or refuses.
pub fn alerts(socket: &Path, json: bool) -> anyhow::Result<u8> {
    use std::io::Write as _;
    protocol::subscribe(
        socket,
        |uid| eprintln!("vigil alerts: subscribed as uid {uid}"),
        |alert| {
            let line = if json {
                alert.to_string()
            } else {
                crate::cmd::notifier::summary(alert).join(": ")
            };
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
        },
    )?;
    Ok(0)
}

/// A reply of the wrong kind (a daemon speaking another dialect of version 1).
///
/// # Errors
/// Always.
pub fn unexpected(command: &str, reply: &Reply) -> anyhow::Result<()> {
    anyhow::bail!("unexpected reply to {command}: {reply:?}")
}

/// `vigil stats` as text: the latency table, then queue and counters.
fn render_stats(stats: &StatsReport) -> String {
    let mut out = String::new();
    let n = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |x| x.to_string());
    let _ = writeln!(
        out,
        "{:<11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "stage (us)", "count", "mean", "p50", "p95", "p99", "max"
    );
    for stage in crate::daemon::latency::Timed::ALL {
        let h = stats.latency_us.get(stage.as_str());
        let _ = writeln!(
            out,
            "{:<11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            stage.as_str(),
            n(h.map(|h| h.count)),
            n(h.map(|h| h.mean_us)),
            n(h.and_then(|h| h.p50_us)),
            n(h.and_then(|h| h.p95_us)),
            n(h.and_then(|h| h.p99_us)),
            n(h.map(|h| h.max_us)),
        );
    }
    let _ = writeln!(
        out,
        "\nqueue {}/{}  pending {}  cache entries {}  uptime {} s",
        stats.queue_depth, stats.queue_capacity, stats.pending, stats.cache_entries, stats.uptime_s,
    );
    if let Some(p) = &stats.persistent_cache {
        let _ = writeln!(
            out,
            "persistent cache {}{}  entries {}/{}  size {} B  content {}  ({})",
            p.state,
            p.reason
                .as_ref()
                .map_or_else(String::new, |r| format!(" ({r})")),
            p.entries,
            p.max_entries,
            p.size_bytes,
            p.content_id,
            p.path,
        );
    }
    for (k, v) in &stats.counters {
        let _ = writeln!(out, "{k:<24} {v}");
    }
    out
}
