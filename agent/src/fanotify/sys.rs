//! The only `unsafe` of vigil: handing the fanotify group fd to tokio's reactor,
//! asking the kernel for the UUID of the filesystem behind an event fd,
//! setting the scheduling priority of the threads that answer the kernel, and
//! handing the allocator's free memory back to the kernel after a load.
//!
//! Owns nothing; [`register`] returns the `AsyncFd` that the reader owns from then on;
//! [`filesystem_uuid`] answers for the persistent verdict cache, which names a
//! filesystem by its UUID because the device number of the same filesystem can
//! differ from one boot to the next.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
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

/// `struct fsuuid2` of `<linux/fs.h>`.
#[repr(C)]
struct FsUuid2 {
    len: u8,
    uuid: [u8; 16],
}

/// `FS_IOC_GETFSUUID` = `_IOR(0x15, 0, struct fsuuid2)` (Linux 6.5): direction
/// read (2) in bits 30-31, size 17 in bits 16-29, type 0x15 in bits 8-15, number 0.
const FS_IOC_GETFSUUID: libc::c_ulong = (2 << 30) | (17 << 16) | (0x15 << 8);

/// The UUID of the filesystem `fd` is on, as its superblock records it
/// (`FS_IOC_GETFSUUID`, Linux 6.5 and later; the same UUID `blkid` shows for
/// ext4 and XFS). `None` when the filesystem keeps none (`ENOTTY`), the kernel is
/// older, or it is shorter than 16 bytes.
pub fn filesystem_uuid(fd: BorrowedFd<'_>) -> Option<[u8; 16]> {
    let mut out = FsUuid2 {
        len: 0,
        uuid: [0; 16],
    };
    // SAFETY: `fd` is a valid open descriptor for the duration of the call (it is
    // borrowed); the request is `_IOR` with the size of `FsUuid2`, which is
    // `#[repr(C)]` and laid out exactly as the kernel's `struct fsuuid2`, so the
    // kernel writes at most `size_of::<FsUuid2>()` bytes into `out`, which lives on
    // this stack frame until the call returns.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_GETFSUUID, &raw mut out) };
    (rc == 0 && usize::from(out.len) == out.uuid.len()).then_some(out.uuid)
}

/// Sets the nice value of the calling thread (Linux keeps one per thread, and a
/// new thread starts with its creator's). Lowering it below the current value
/// needs `CAP_SYS_NICE` (or `RLIMIT_NICE`); raising it never does.
///
/// # Errors
/// `EACCES`/`EPERM` when lowering is not permitted.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    // SAFETY: plain integer arguments, no memory is passed; with `PRIO_PROCESS`
    // and `who = 0` the call changes the calling thread only.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the calling thread a `SCHED_FIFO` thread of real-time `priority`
/// (Linux keeps the policy per thread). Needs `CAP_SYS_NICE` or an
/// `RLIMIT_RTPRIO` of at least `priority`, and no seccomp filter refusing it.
///
/// # Errors
/// `EPERM` when not permitted; `EINVAL` for a priority outside 1..=99.
pub fn set_thread_fifo(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid `sched_param` on this stack frame for the
    // whole call, which only reads it; `pid = 0` is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &raw const param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Returns the free memory glibc's allocator holds to the kernel
/// (`malloc_trim(0)`: every whole free page, not only the top of the heap).
/// Loading leaves such memory behind (the exec guard's BTF parse alone is
/// about 25 MiB, freed at once), which stays in the daemon's resident size
/// until a later allocation reuses it. Takes the allocator's locks for as long
/// as it walks the heap (about a millisecond), so not for the hot path.
/// Returns whether any memory was released; a no-op outside glibc.
pub fn release_free_heap() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: no arguments but a size to keep free; glibc walks its own
        // free lists under its own locks and releases only free pages, so no
        // live allocation is touched.
        unsafe { libc::malloc_trim(0) != 0 }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_number_matches_the_kernel_header() {
        assert_eq!(std::mem::size_of::<FsUuid2>(), 17);
        assert_eq!(FS_IOC_GETFSUUID, 0x8011_1500);
    }

    #[cfg(target_env = "gnu")]
    #[test]
    fn freed_heap_pages_go_back_to_the_kernel() {
        // 32 MiB in blocks below the mmap threshold, so they come from the
        // heap; the last block stays, so the free pages are not at the top
        // of the heap, where free() alone would trim them.
        let mut blocks: Vec<Vec<u8>> = (0..1024).map(|_| vec![1u8; 32 * 1024]).collect();
        let kept = blocks.pop();
        drop(blocks);
        assert!(release_free_heap(), "malloc_trim released nothing");
        drop(kept);
    }
}
