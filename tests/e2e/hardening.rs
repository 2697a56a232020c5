//! `policy.sysctl_hardening`: the server profile sets `vm.memfd_noexec = 2` at
//! start (an exec from a memfd then fails), `vigil status` reports the
//! `memfd-exec` exposure closed, and a stop gives the previous value back.
//!
//! Never on the host's settings: the daemon runs in a pid namespace of its own
//! (`vm.memfd_noexec` is per pid namespace, so only that namespace is
//! hardened), and `user.max_user_namespaces` — per user namespace, and the
//! daemon must stay in the initial one for fanotify permission events — is made
//! read-only in the daemon's private mount namespace first, so its write is
//! refused there and the host value cannot change: the test checks the refusal
//! is reported and the host value is the same after.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::fixture::*;

/// A C program that copies `/bin/true` into a memfd and executes it through
/// `/proc/self/fd`; prints `memfd-exec-failed <errno>` when the kernel refuses.
fn memfd_exec_program(dir: &TempDir) -> std::path::PathBuf {
    let src = dir.join("memfd_exec.c");
    let out = dir.join("memfd_exec");
    std::fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void) {
    char buf[65536];
    int in = open("/bin/true", O_RDONLY);
    int fd = memfd_create("vigil-e2e", 0);
    if (in < 0 || fd < 0) { printf("memfd-exec-failed %d\n", errno); return 2; }
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) if (write(fd, buf, n) != n) return 3;
    fchmod(fd, 0755);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char *argv[] = {"true", NULL};
    execv(path, argv);
    printf("memfd-exec-failed %d\n", errno);
    return 1;
}
"#,
    )
    .expect("write memfd_exec.c");
    let res = Command::new("cc")
        .arg("-O2")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .output()
        .expect("run cc");
    assert!(res.status.success(), "cc: {}", show(&res));
    out
}

/// Runs `prog` in the pid namespace whose pid 1 is `init`; Ok(()) when the
/// memfd exec ran, Err(output) when it was refused.
fn memfd_exec_in(init: i32, prog: &std::path::Path) -> Result<(), String> {
    let out = Command::new("timeout")
        .args(["-k", "2", "20", "nsenter"])
        .arg(format!("--pid=/proc/{init}/ns/pid"))
        .arg("--")
        .arg(prog)
        .stdin(Stdio::null())
        .output()
        .expect("run memfd_exec");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && text.is_empty() {
        Ok(())
    } else {
        Err(format!("{text}{}", show(&out)))
    }
}

/// `vm.memfd_noexec` as the pid namespace of `init` sees it.
fn memfd_noexec_in(init: i32) -> String {
    let out = Command::new("timeout")
        .args(["-k", "2", "20", "nsenter"])
        .arg(format!("--pid=/proc/{init}/ns/pid"))
        .args(["--", "cat", "/proc/sys/vm/memfd_noexec"])
        .output()
        .expect("read memfd_noexec");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn exposure<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["exposure"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == id))
        .unwrap_or(&Value::Null)
}

#[test]
fn sysctl_hardening_closes_memfd_exec_in_its_namespace_and_restores_it() {
    require_root!();
    if !std::path::Path::new("/proc/sys/vm/memfd_noexec").exists() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED sysctl_hardening_closes_memfd_exec_in_its_namespace_and_restores_it: no vm.memfd_noexec (Linux < 6.3)"
        );
        return;
    }
    let host_userns =
        std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    let host_memfd = std::fs::read_to_string("/proc/sys/vm/memfd_noexec").unwrap_or_default();
    let sb = Sandbox::new("sysctl");
    let prog_dir = TempDir::new("memfd");
    let prog = memfd_exec_program(&prog_dir);
    let mut cfg = sb.config();
    cfg.filesystems = vec![];
    let mut text = cfg.to_toml();
    text.push_str("\n[policy]\nprofile = \"server\"\nsysctl_hardening = true\n");
    // Read-only in the daemon's mount namespace: its write of
    // user.max_user_namespaces (a host-wide setting from the initial user
    // namespace) fails; `set -e` stops before the daemon if this does not work.
    let prelude = "mount --bind /proc/sys/user /proc/sys/user\n\
                   mount -o remount,bind,ro /proc/sys/user\n\
                   ! sh -c 'echo 1 > /proc/sys/user/max_user_namespaces' 2>/dev/null";
    let d = sb.start_isolated(&cfg, &text, prelude, &[]);
    let init = d.ns_init().expect("pid 1 of the daemon's namespace");

    assert_eq!(memfd_noexec_in(init), "2", "{}", d.context());
    let refused = memfd_exec_in(init, &prog);
    assert!(refused.is_err(), "a memfd exec ran under memfd_noexec = 2");
    let why = refused.unwrap_err();
    assert!(why.contains("memfd-exec-failed"), "{why}");
    let out = d.cli(
        None,
        &[
            "status".as_ref(),
            "--socket".as_ref(),
            cfg.socket.as_os_str(),
        ],
    );
    let st: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(exposure(&st, "memfd-exec")["state"], "closed", "{st}");
    assert_eq!(exposure(&st, "user-namespaces")["state"], "open", "{st}");
    d.wait_event("user-namespaces refusal", Duration::from_secs(5), |v| {
        jstr(v, "/event/action") == "sysctl-hardening"
            && jstr(v, "/vigil/sysctl/name") == "user.max_user_namespaces"
            && jstr(v, "/event/outcome") == "failure"
    });
    // The host is untouched.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/vm/memfd_noexec").unwrap_or_default(),
        host_memfd
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default(),
        host_userns
    );

    d.signal(Signal::SIGTERM);
    // The daemon is gone; its namespace (kept by pid 1) has the old value back.
    let t0 = std::time::Instant::now();
    while comm_of(d.pid()).as_deref() == Some("vigil") && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(memfd_noexec_in(init), host_memfd.trim(), "{}", d.context());
    assert!(
        memfd_exec_in(init, &prog).is_ok(),
        "memfd exec still refused after stop"
    );
    assert!(
        !sb.host(RECORD).exists(),
        "the sysctl record stays after a clean stop"
    );
    assert!(
        d.stdout_text().contains("sysctl-restored"),
        "{}",
        d.context()
    );
}

/// A daemon killed while hardening is applied leaves its record; the next
/// daemon started in the same namespaces, with hardening now off, gives the
/// previous value back.
#[test]
fn after_a_crash_the_next_start_restores_the_setting() {
    require_root!();
    if !std::path::Path::new("/proc/sys/vm/memfd_noexec").exists() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED after_a_crash_the_next_start_restores_the_setting: no vm.memfd_noexec (Linux < 6.3)"
        );
        return;
    }
    let host_memfd = std::fs::read_to_string("/proc/sys/vm/memfd_noexec").unwrap_or_default();
    let sb = Sandbox::new("sysctl-crash");
    let mut cfg = sb.config();
    cfg.filesystems = vec![];
    let plain = cfg.to_toml();
    let hardened = format!("{plain}\n[policy]\nprofile = \"server\"\nsysctl_hardening = true\n");
    let prelude = "mount --bind /proc/sys/user /proc/sys/user\n\
                   mount -o remount,bind,ro /proc/sys/user\n\
                   ! sh -c 'echo 1 > /proc/sys/user/max_user_namespaces' 2>/dev/null";
    let first = sb.start_isolated(&cfg, &hardened, prelude, &[]);
    let init = first.ns_init().expect("pid 1 of the daemon's namespace");
    assert_eq!(memfd_noexec_in(init), "2", "{}", first.context());
    first.signal(Signal::SIGKILL);
    let t0 = std::time::Instant::now();
    while comm_of(first.pid()).as_deref() == Some("vigil") && t0.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        memfd_noexec_in(init),
        "2",
        "a killed daemon restores nothing"
    );
    assert!(
        sb.host(RECORD).exists(),
        "no record left by the killed daemon"
    );

    let second = sb.start_in_pid_namespace_of(init, &plain);
    assert_eq!(
        memfd_noexec_in(init),
        host_memfd.trim(),
        "{}",
        second.context()
    );
    assert!(
        !sb.host(RECORD).exists(),
        "the record stays{}",
        second.context()
    );
    second.wait_event("sysctl-restored", Duration::from_secs(5), |v| {
        jstr(v, "/event/action") == "sysctl-restored"
            && jstr(v, "/vigil/sysctl/name") == "vm.memfd_noexec"
    });
}

/// The record file (`sysctl-hardening.json` next to the socket).
const RECORD: &str = "sysctl-hardening.json";
