//! Reads of `/proc`: what the daemon learns about a process or an event's file.
//!
//! Owns every `/proc` read of the agent (an event fd's path, a process's
//! executable, credentials, parent and script), so each is written once and its
//! cost is in one place. Must not own: deciding anything with what it reads
//! (exclusions, exec rules). Every function is best effort: the process may have
//! exited, in which case it returns `None` and the caller logs what it has.

use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The path the event fd refers to, for logs and path exclusions. Best effort: the
/// file may have been unlinked (the kernel then appends " (deleted)").
pub fn fd_path(fd: BorrowedFd<'_>) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()
}

/// The effective uid of process `pid` (the owner of `/proc/<pid>`), if it still
/// exists.
pub fn uid_of(pid: i32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

/// The executable of process `pid`, if it still exists.
pub fn exe_of(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The program `pid` runs, by the name it was started as: a program replaced by
/// an upgrade since it started reads as `<path> (deleted)`, and a rule on nginx
/// must still match the nginx that ran before the upgrade (fapolicyd #41).
pub fn program_of(pid: i32) -> Option<PathBuf> {
    let exe = exe_of(pid)?;
    match exe.as_os_str().as_bytes().strip_suffix(b" (deleted)") {
        Some(stripped) => Some(PathBuf::from(std::ffi::OsStr::from_bytes(stripped))),
        None => Some(exe),
    }
}

/// Effective uid and gid from `/proc/<pid>/status` (`Uid:`/`Gid:` lines, second
/// field).
pub fn credentials(pid: i32) -> (Option<u32>, Option<u32>) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (None, None);
    };
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    (field("Uid:"), field("Gid:"))
}

/// The arguments of `pid` (`/proc/<pid>/cmdline`, lossy UTF-8), reading at most
/// `limit` bytes: a last argument cut by the limit is dropped, not returned
/// short.
pub fn args_of(pid: i32, limit: usize) -> Option<Vec<String>> {
    use std::io::Read as _;
    let mut raw = Vec::new();
    std::fs::File::open(format!("/proc/{pid}/cmdline"))
        .ok()?
        .take(limit as u64 + 1)
        .read_to_end(&mut raw)
        .ok()?;
    let whole = raw.len() <= limit;
    let mut parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    // A complete line ends with NUL, leaving an empty last piece; a cut one
    // leaves the partial argument there.
    parts.pop();
    if !whole {
        parts.pop();
    }
    Some(
        parts
            .into_iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// When `pid` started, in clock ticks after boot (`/proc/<pid>/stat` field 22):
/// with the pid, it names one process even after the pid is reused.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    // Fields after the name start at 3 (state); starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The parent pid from `/proc/<pid>/stat` (the field after the parenthesised
/// command name, which may itself contain spaces and parentheses).
pub fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The script a Python interpreter runs as `pid`, when that process is root's:
/// `/usr/bin/dnf` for dnf 4 (`#!/usr/bin/python3` makes the kernel run
/// `python3 /usr/bin/dnf ...`), whose transactions run rpm's scriptlets as its
/// own children. The first argument after the interpreter's options; `None`
/// for `-c`/`-m`, a process that is not root's (a user's process can rewrite
/// its own command line, root's can already do anything), or a program that
/// is not a Python. A relative script is taken from the process's cwd.
pub fn python_script_of(pid: i32, exe: &Path) -> Option<PathBuf> {
    let name = exe.file_name()?.as_bytes();
    if !name.windows(6).any(|w| w == b"python") {
        return None;
    }
    if credentials(pid).0 != Some(0) {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args = cmdline.split(|&b| b == 0).skip(1);
    let script = loop {
        let arg = args.next()?;
        match arg.strip_prefix(b"-") {
            // -c and -m take the rest of the line: no script.
            Some(flags) if flags.contains(&b'c') || flags.contains(&b'm') => return None,
            Some(_) => continue,
            None => break arg,
        }
    };
    if script.is_empty() {
        return None;
    }
    let script = Path::new(std::ffi::OsStr::from_bytes(script));
    if script.is_absolute() {
        Some(script.to_path_buf())
    } else {
        std::fs::read_link(format!("/proc/{pid}/cwd"))
            .ok()
            .map(|cwd| cwd.join(script))
    }
}

/// The pipe inode behind descriptor `fd` of process `pid` (`pipe:[1234]`), if it
/// is a pipe.
pub fn pipe_of(pid: i32, fd: u8) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    let text = link.as_os_str().as_bytes();
    let inode = text.strip_prefix(b"pipe:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(inode).ok()?.parse().ok()
}

/// Waits (at most `wait`, looking every 200 µs) until `pid` runs `program`
/// with its arguments in place: after an exec was allowed, its command line and
/// start are the new program's only once the kernel has finished the exec, and
/// the new executable shows a moment before the new arguments do (an empty
/// command line in between). False when the process is gone, or is not there
/// yet at the end.
pub fn runs_after_exec(pid: i32, program: &Path, wait: std::time::Duration) -> bool {
    let until = std::time::Instant::now() + wait;
    loop {
        match program_of(pid) {
            None => return false,
            Some(p) if p.as_path() == program && has_args(pid) => return true,
            Some(_) if std::time::Instant::now() >= until => return false,
            Some(_) => std::thread::sleep(std::time::Duration::from_micros(200)),
        }
    }
}

/// True when `/proc/<pid>/cmdline` is not empty.
fn has_args(pid: i32) -> bool {
    use std::io::Read as _;
    let mut first = [0u8; 1];
    std::fs::File::open(format!("/proc/{pid}/cmdline"))
        .and_then(|mut f| f.read(&mut first))
        .is_ok_and(|n| n > 0)
}

/// The command line of `pid` with its arguments joined by spaces (lossy UTF-8),
/// at most `limit` bytes of it.
pub fn cmdline_of(pid: i32, limit: usize) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let raw = &raw[..raw.len().min(limit)];
    let text: Vec<u8> = raw
        .strip_suffix(b"\0")
        .unwrap_or(raw)
        .iter()
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect();
    Some(String::from_utf8_lossy(&text).into_owned())
}
