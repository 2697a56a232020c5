//! Noticing that freshclam replaced a ClamAV database file.
//!
//! Owns: one thread that, every `content.clamav_poll_s` seconds, compares the
//! fingerprint of `content.clamav_db` (names, inodes, sizes, modification
//! times) with the one the running generation loaded, and on a difference
//! sends the daemon its own SIGHUP, so the ordinary reload path (off the hot
//! path, all-or-nothing, the old generation kept on error) re-reads it.
//! Must not own: loading, or deciding whether a reload is accepted.
//!
//! Why polling and not inotify: freshclam replaces files by rename, in bursts,
//! at most a few times a day; a poll every minute costs one `readdir` and a few
//! `stat`s, needs no extra fd or event loop, and sees a directory that was
//! itself replaced. A fingerprint that a reload already failed on is not
//! signalled again until it changes.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use vigil_policy::ClamDb;

use crate::daemon::priority::{self, Lane};
use crate::engine::generation::Generation;

/// Starts the watcher thread. It runs until the process exits.
pub fn start(generation: Arc<ArcSwap<Generation>>) {
    let spawned = std::thread::Builder::new()
        .name("vigil-clamav".to_owned())
        .spawn(move || {
            priority::lower(Lane::Background);
            watch(&generation)
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the ClamAV database watcher; run `vigil reload` after freshclam");
    }
}

fn watch(generation: &ArcSwap<Generation>) {
    let mut signalled: Option<vigil_policy::clamdb::Fingerprint> = None;
    loop {
        let current = generation.load_full();
        std::thread::sleep(Duration::from_secs(current.config.content.clamav_poll_s));
        let current = generation.load_full();
        let Some(dir) = current.config.content.clamav_db.as_deref() else {
            continue;
        };
        let Ok(now) = ClamDb::fingerprint_of(dir) else {
            continue;
        };
        if &now == current.clamav.fingerprint() || signalled.as_ref() == Some(&now) {
            continue;
        }
        tracing::info!(dir = %dir.display(), "ClamAV database changed; reloading");
        let hup =
            nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGHUP);
        if let Err(errno) = hup {
            tracing::warn!(%errno, "cannot signal the reload");
        }
        signalled = Some(now);
    }
}
