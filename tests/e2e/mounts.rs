//! New mounts: a filesystem mounted after the daemon started, in its own mount
//! namespace or in one created later (by root, or by an unprivileged user in a
//! user namespace), is marked as soon as the mount watcher sees it, and its mark
//! leaves the list when it is unmounted.
//!
//! Every daemon here runs in a pid and mount namespace of its own
//! ([`Sandbox::start_isolated`]) with no listed filesystem and
//! `watch.new_mounts = true`: it sees only the namespaces and mounts these tests
//! make in there, all of them tmpfs (checked in [`assert_marks_are_tmpfs`]).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixture::*;

/// Longest wait for a mark: the namespace scan runs every second.
const MARK_WAIT: Duration = Duration::from_secs(10);

/// The daemon's config: nothing listed, new mounts watched.
fn config(sb: &Sandbox, lists: &[PathBuf]) -> (Config, String) {
    let mut cfg = sb.config();
    cfg.filesystems = vec![];
    cfg.hashes = lists.to_vec();
    cfg.scan_on_open = "none".into();
    let text = cfg
        .to_toml()
        .replacen("mounts = []\n", "mounts = []\nnew_mounts = true\n", 1);
    (cfg, text)
}

/// Runs `args` inside the daemon's mount namespace (and pid namespace when
/// `pid_ns`), under a timeout.
fn in_daemon_ns(d: &Daemon, pid_ns: bool) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", "60", "nsenter"])
        .arg(format!("--mount=/proc/{}/ns/mnt", d.pid()));
    if pid_ns {
        cmd.arg(format!("--pid=/proc/{}/ns/pid", d.pid()));
    }
    cmd.arg("--").stdin(Stdio::null());
    cmd
}

/// The daemon's `vigil status` JSON.
fn status(d: &Daemon, cfg: &Config) -> Value {
    let out = d.cli(
        None,
        &[
            "status".as_ref(),
            "--socket".as_ref(),
            cfg.socket.as_os_str(),
        ],
    );
    assert!(out.status.success(), "status: {}", show(&out));
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

/// Every mark the daemon lists is on a tmpfs (the only type a test may mark).
fn assert_marks_are_tmpfs(d: &Daemon, cfg: &Config) {
    let st = status(d, cfg);
    for m in st["marks"].as_array().into_iter().flatten() {
        let path = Path::new(m["path"].as_str().unwrap_or(""));
        // As the daemon sees it: its root (and, for /proc paths, its own /proc).
        let shown = PathBuf::from(format!("/proc/{}/root", d.pid()))
            .join(path.strip_prefix("/").unwrap_or(path));
        assert!(
            nix::sys::statfs::statfs(&shown)
                .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC),
            "a mark on something else than a tmpfs: {m} in {st}{}",
            d.context()
        );
    }
}

/// Waits for the `mount-covered` line of the mount at `point`.
fn wait_covered(d: &Daemon, point: &Path) -> Value {
    let want = point.to_string_lossy().into_owned();
    d.wait_event("mount-covered", MARK_WAIT, |v| {
        jstr(v, "/event/action") == "mount-covered" && jstr(v, "/vigil/mount/point") == want
    })
}

/// A mount namespace made after the daemon started, inside its pid namespace:
/// a shell that mounts a tmpfs on `dir`, prints `ready`, and on one line of
/// stdin runs `$dir/bad` and prints its exit status. Killed on drop.
struct Holder {
    child: Child,
    host_pid: i32,
    out: BufReader<std::process::ChildStdout>,
}

impl Holder {
    /// `user`: run as nobody in a new user namespace (`unshare -Urm`); else root
    /// with `unshare -m`. `src` is copied to `$dir/bad` before `ready`.
    fn start(d: &Daemon, dir: &Path, src: &Path, user: bool) -> Holder {
        let script = "mount -t tmpfs -o size=16m,mode=0755 vigil-e2e-late \"$1\" && \
                      cp \"$2\" \"$1/bad\" && echo ready && read go && \
                      { \"$1/bad\"; echo \"rc=$?\"; } 2>&1; exec sleep 60";
        let mut cmd = in_daemon_ns(d, true);
        if user {
            cmd.args([
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
            ]);
            cmd.args(["unshare", "-Urm", "--"]);
        } else {
            cmd.args(["unshare", "--mount", "--propagation", "private", "--"]);
        }
        let mut child = cmd
            .args(["sh", "-c", script, "sh"])
            .arg(dir)
            .arg(src)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn namespace holder");
        let mut out = BufReader::new(child.stdout.take().expect("holder stdout"));
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        assert_eq!(line.trim(), "ready", "holder did not mount (user = {user})");
        // timeout → nsenter → (forked into the pid namespace) the shell.
        let mut pid = child_of(child.id() as i32);
        for _ in 0..6 {
            match pid {
                Some(p) if comm_of(p).as_deref() != Some("sh") => pid = child_of(p),
                _ => break,
            }
        }
        let host_pid = pid.expect("holder shell pid");
        Holder {
            child,
            host_pid,
            out,
        }
    }

    /// Runs `$dir/bad` in the holder's namespace; returns what it printed.
    fn run_bad(&mut self) -> String {
        let stdin = self.child.stdin.as_mut().expect("holder stdin");
        writeln!(stdin, "go").expect("tell the holder to run");
        let mut text = String::new();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            let mut line = String::new();
            if self.out.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            text.push_str(&line);
            if line.starts_with("rc=") {
                break;
            }
        }
        text
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.host_pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tmpfs mounted in the daemon's own namespace after start is marked (the
/// `mount-covered` line), a listed binary copied there is denied, and after
/// `umount` the mark leaves the daemon's list (`mount-dropped`, status).
fn own_namespace(env: &[(&str, &str)], via: &str) {
    let sb = Sandbox::new("late-mount");
    let bad = sb.host("bad");
    let sha = write_marker_binary(&bad, "late-mount");
    let list = sb.hash_list("bad.sha256", &[&sha]);
    let (cfg, text) = config(&sb, &[list]);
    let d = sb.start_isolated(&cfg, &text, "", env);
    let dir = sb.host("late");
    std::fs::create_dir_all(&dir).expect("mkdir late");

    let out = in_daemon_ns(&d, false)
        .args([
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=16m,mode=0755",
            "vigil-e2e-late",
        ])
        .arg(&dir)
        .output()
        .expect("mount");
    assert!(out.status.success(), "mount: {}", show(&out));
    // The window itself is measured by tests/bench/mount-watch/run.sh.
    let ev = wait_covered(&d, &dir);
    assert_eq!(jstr(&ev, "/vigil/mount/via"), via, "{ev}");
    assert_eq!(jstr(&ev, "/vigil/mount/fstype"), "tmpfs", "{ev}");
    assert_marks_are_tmpfs(&d, &cfg);

    // Through /proc/<daemon>/root: the same superblock the daemon marked.
    let on_fs = PathBuf::from(format!("/proc/{}/root", d.pid()))
        .join(dir.strip_prefix("/").expect("absolute"))
        .join("bad");
    std::fs::copy(&bad, &on_fs).expect("copy bad onto the late tmpfs");
    assert_denied(&run(&on_fs), "listed binary on a tmpfs mounted after start");
    d.wait_event("blocked", MARK_WAIT, |v| {
        jstr(v, "/event/action") == "blocked"
    });

    let st = status(&d, &cfg);
    let listed =
        |st: &Value| {
            st["marks"].as_array().into_iter().flatten().any(|m| {
                m["source"] == "mount" && m["path"].as_str() == Some(&*dir.to_string_lossy())
            })
        };
    assert!(listed(&st), "late mount not in status: {st}");
    let exposure = st["exposure"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == "new-mounts").cloned())
        .unwrap_or_default();
    assert_eq!(exposure["state"], "closed", "{st}");

    // A reload keeps the run-time mark (the configuration still watches new
    // mounts), and the file is judged again under the new generation.
    let out = d.reload(&cfg.socket);
    assert!(out.status.success(), "reload: {}", show(&out));
    assert!(listed(&status(&d, &cfg)), "run-time mark lost on reload");
    assert_denied(&run(&on_fs), "listed binary on a late tmpfs, after reload");

    let out = in_daemon_ns(&d, false)
        .arg("umount")
        .arg(&dir)
        .output()
        .expect("umount");
    assert!(out.status.success(), "umount: {}", show(&out));
    let want = dir.to_string_lossy().into_owned();
    d.wait_event("mount-dropped", MARK_WAIT, |v| {
        jstr(v, "/event/action") == "mount-dropped" && jstr(v, "/file/path") == want
    });
    assert!(
        !listed(&status(&d, &cfg)),
        "unmounted filesystem still listed"
    );
}

/// An explicit list (here: none) without `new_mounts` means exactly those
/// filesystems: a late tmpfs stays unwatched (its listed binary runs) until a
/// reload turns `new_mounts` on, which marks it.
#[test]
fn explicit_list_leaves_late_mounts_until_new_mounts_is_set() {
    require_root!();
    let sb = Sandbox::new("late-explicit");
    let bad = sb.host("bad");
    let sha = write_marker_binary(&bad, "late-explicit");
    let list = sb.hash_list("bad.sha256", &[&sha]);
    let (cfg, with_new_mounts) = config(&sb, &[list]);
    let without = cfg.to_toml();
    let d = sb.start_isolated(&cfg, &without, "", &[]);
    let dir = sb.host("late");
    std::fs::create_dir_all(&dir).expect("mkdir late");
    let out = in_daemon_ns(&d, false)
        .args([
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=16m,mode=0755",
            "vigil-e2e-late",
        ])
        .arg(&dir)
        .output()
        .expect("mount");
    assert!(out.status.success(), "mount: {}", show(&out));
    let on_fs = PathBuf::from(format!("/proc/{}/root", d.pid()))
        .join(dir.strip_prefix("/").expect("absolute"))
        .join("bad");
    std::fs::copy(&bad, &on_fs).expect("copy bad onto the late tmpfs");
    assert_ran(&run(&on_fs), "listed binary on an unwatched late tmpfs");
    let st = status(&d, &cfg);
    assert!(st["marks"].as_array().is_some_and(Vec::is_empty), "{st}");
    let new_mounts = st["exposure"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == "new-mounts").cloned())
        .unwrap_or_default();
    assert_eq!(new_mounts["state"], "open", "{st}");

    write_file(d.config_path(), with_new_mounts.as_bytes(), 0o644);
    let out = d.reload(&cfg.socket);
    assert!(out.status.success(), "reload: {}", show(&out));
    let ev = wait_covered(&d, &dir);
    assert_eq!(jstr(&ev, "/vigil/mount/via"), "reload", "{ev}");
    assert_marks_are_tmpfs(&d, &cfg);
    assert_denied(&run(&on_fs), "listed binary after new_mounts was turned on");
}

#[test]
fn late_mount_in_own_namespace_is_marked_and_dropped_on_umount() {
    require_root!();
    own_namespace(&[], "fanotify-mntns");
}

#[test]
fn late_mount_is_marked_by_the_mountinfo_poll_too() {
    require_root!();
    own_namespace(&[("VIGIL_TEST_MOUNT_POLL", "1")], "mountinfo-poll");
}

/// A mount namespace created after start (root `unshare -m`, then nobody with
/// `unshare -Urm`): the namespace scan finds it, its tmpfs is marked, and the
/// listed binary run from it inside that namespace is denied.
fn new_namespace(user: bool) {
    let sb = Sandbox::new(if user { "late-userns" } else { "late-ns" });
    let bad = sb.host("bad");
    let sha = write_marker_binary(&bad, if user { "late-userns" } else { "late-ns" });
    let list = sb.hash_list("bad.sha256", &[&sha]);
    let (cfg, text) = config(&sb, &[list]);
    let d = sb.start_isolated(&cfg, &text, "", &[]);
    let dir = sb.host("late");
    std::fs::create_dir_all(&dir).expect("mkdir late");

    let mut holder = Holder::start(&d, &dir, &bad, user);
    let ev = wait_covered(&d, &dir);
    assert_eq!(jstr(&ev, "/vigil/mount/via"), "namespace-scan", "{ev}");
    assert_marks_are_tmpfs(&d, &cfg);
    let out = holder.run_bad();
    assert!(
        out.contains("rc=126") && out.contains("Operation not permitted"),
        "the listed binary ran in the new namespace (user = {user}): {out}{}",
        d.context()
    );
    let blocked = d.wait_event("blocked", MARK_WAIT, |v| {
        jstr(v, "/event/action") == "blocked"
    });
    let uid = if user { "65534" } else { "0" };
    assert_eq!(jstr(&blocked, "/user/id"), uid, "{blocked}");
}

#[test]
fn tmpfs_in_a_mount_namespace_made_after_start_is_marked() {
    require_root!();
    new_namespace(false);
}

#[test]
fn unprivileged_user_namespace_tmpfs_is_marked() {
    require_root!();
    // nobody must be allowed to create a user namespace here.
    let probe = Command::new("timeout")
        .args([
            "-k",
            "2",
            "20",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "unshare",
            "-Urm",
            "true",
        ])
        .output()
        .expect("probe unshare -Urm");
    if !probe.status.success() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED unprivileged_user_namespace_tmpfs_is_marked: this machine refuses user namespaces to nobody ({})",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        return;
    }
    new_namespace(true);
}
