//! The only `unsafe` of vigil: handing the fanotify group fd to tokio's reactor.
//!
//! Owns nothing; [`register`] returns the `AsyncFd` that the reader owns from then on.

use std::io;
use std::sync::Arc;

use nix::sys::fanotify::Fanotify;
use tokio::io::unix::AsyncFd;

/// Registers the (nonblocking) fanotify group with the current tokio reactor.
///
/// # Errors
/// The reactor's registration error (e.g. out of memory for epoll).
///
/// # Panics
/// Outside a tokio runtime, as `AsyncFd` does.
pub fn register(fan: Arc<Fanotify>) -> io::Result<AsyncFd<Arc<Fanotify>>> {
    // SAFETY: the fd belongs to the `Fanotify` inside the `Arc`, which the returned
    // `AsyncFd` owns a strong reference to; `Fanotify` never closes or replaces its fd
    // while alive, so the fd stays open and refers to the same group for the whole
    // lifetime of the `AsyncFd`, and `as_raw_fd` always returns that same number.
    unsafe { AsyncFd::register(fan) }.map_err(|e| e.into_parts().1)
}
