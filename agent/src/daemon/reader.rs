//! The reader: the only task that reads the fanotify group.
//!
//! Owns the group's `AsyncFd`. For each event it either answers at once (the
//! daemon's own pid, excluded processes; the kernel's overflow notice is counted) or
//! wraps it in a [`Pending`], arms its deadline and hands it to the pool. It never
//! scans, never logs per event, and never waits on a worker: a full queue is
//! answered with `decision.on_overflow` on the spot. Next owner of an event: a
//! worker in [`crate::daemon::pool`], or the deadline thread in [`crate::daemon::respond`].

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use nix::errno::Errno;
use nix::sys::fanotify::{Fanotify, FanotifyEvent, MaskFlags};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use vigil_policy::Action;

use crate::daemon::pool::{Context, PoolSender};
use crate::daemon::respond::{AccessKind, AnsweredBy, Deadlines, Pending};
use crate::daemon::stats::Stats;
use crate::procfs::exe_of;

/// Reads events and routes them. See the module doc.
pub struct Reader {
    afd: AsyncFd<Arc<Fanotify>>,
    ctx: Arc<Context>,
    pool: PoolSender,
    deadlines: Arc<Deadlines>,
    outstanding: Arc<AtomicU64>,
    own_pid: i32,
}

/// Why the reader stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The kernel speaks another fanotify metadata version than we were built for.
    #[error("fanotify metadata version {got} differs from the supported {want}")]
    Version {
        /// What the kernel sent.
        got: u8,
        /// What nix was built against.
        want: u8,
    },
    /// A read error that cannot be retried.
    #[error("reading fanotify events failed: {0}")]
    Io(#[from] io::Error),
}

impl Reader {
    /// A reader over the registered group.
    pub fn new(
        afd: AsyncFd<Arc<Fanotify>>,
        ctx: Arc<Context>,
        pool: PoolSender,
        deadlines: Arc<Deadlines>,
        outstanding: Arc<AtomicU64>,
    ) -> Reader {
        let own_pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        Reader {
            afd,
            ctx,
            pool,
            deadlines,
            outstanding,
            own_pid,
        }
    }

    /// Reads and routes events until `stop` turns true.
    ///
    /// # Errors
    /// A metadata version mismatch or an unrecoverable read error; the caller exits,
    /// which closes the group and makes the kernel allow anything still pending.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<(), ReadError> {
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return Ok(()),
                guard = self.afd.readable() => {
                    let mut guard = guard?;
                    match guard.try_io(|fan| read(fan.get_ref())) {
                        Ok(Ok(events)) => self.dispatch(events)?,
                        Ok(Err(e)) => handle_read_error(e)?,
                        Err(_would_block) => continue,
                    }
                }
            }
        }
    }

    /// Reads and routes whatever is queued right now, without waiting (shutdown,
    /// after the marks are gone).
    ///
    /// # Errors
    /// As [`Reader::run`].
    pub fn drain(&self) -> Result<(), ReadError> {
        loop {
            match read(self.afd.get_ref()) {
                Ok(events) => self.dispatch(events)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => handle_read_error(e)?,
            }
        }
    }

    fn dispatch(&self, events: Vec<FanotifyEvent>) -> Result<(), ReadError> {
        let generation = self.ctx.generation.load();
        let stats = &self.ctx.stats;
        for event in events {
            if !event.check_version() {
                return Err(ReadError::Version {
                    got: event.version(),
                    want: nix::sys::fanotify::FANOTIFY_METADATA_VERSION,
                });
            }
            let mask = event.mask();
            if mask.contains(MaskFlags::FAN_Q_OVERFLOW) {
                Stats::bump(&stats.kernel_overflows);
                crate::warn_limited!(
                    "fanotify queue overflowed; the kernel allowed the events it dropped"
                );
                continue;
            }
            let Some(access) = AccessKind::from_mask(mask) else {
                continue;
            };
            Stats::bump(match access {
                AccessKind::Exec => &stats.events_exec,
                AccessKind::Open => &stats.events_open,
            });
            if event.pid() == self.own_pid {
                Stats::bump(&stats.allowed_self);
                self.allow_now(&event);
                continue;
            }
            if !generation.exclusions.is_empty_processes()
                && exe_of(event.pid())
                    .is_some_and(|exe| generation.exclusions.process_excluded(Path::new(&exe)))
            {
                Stats::bump(&stats.allowed_excluded);
                self.allow_now(&event);
                continue;
            }
            let pending = Arc::new(Pending::new(event, access, Arc::clone(&self.outstanding)));
            self.deadlines.watch(
                &pending,
                pending.received + generation.config.decision.deadline,
            );
            if let Err(pending) = self.pool.submit(pending) {
                Stats::bump(&stats.queue_full);
                let action = Action::from_fail_mode(generation.config.decision.on_overflow);
                pending.answer(&self.ctx.group, action, AnsweredBy::Verdict, stats);
            }
        }
        Ok(())
    }

    fn allow_now(&self, event: &FanotifyEvent) {
        if let Some(fd) = event.fd()
            && let Err(errno) = self.ctx.group.respond(fd, Action::Allow)
            && errno != Errno::ENOENT
        {
            Stats::bump(&self.ctx.stats.response_errors);
        }
    }
}

fn read(fan: &Fanotify) -> io::Result<Vec<FanotifyEvent>> {
    loop {
        match fan.read_events() {
            Err(Errno::EINTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Transient read errors are logged and survived: on `EMFILE`/`ENFILE`/`ENOMEM` the
/// kernel could not open the event's file for us and has already denied that one
/// event, so the queue moves on. Anything else is fatal.
fn handle_read_error(e: io::Error) -> Result<(), ReadError> {
    match e.raw_os_error().map(Errno::from_raw) {
        Some(
            Errno::EMFILE
            | Errno::ENFILE
            | Errno::ENOMEM
            | Errno::EPERM
            | Errno::EACCES
            | Errno::ENOENT
            | Errno::EOVERFLOW
            | Errno::ETXTBSY,
        ) => {
            crate::warn_limited!(error = %e, "fanotify read failed for one event; the kernel denied it");
            Ok(())
        }
        _ => Err(ReadError::Io(e)),
    }
}
