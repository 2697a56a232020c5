//! The control socket for unprivileged users: read-only `status` and `stats`
//! work, `reload` does not, and `vigil alerts` (a `subscribe` connection) delivers
//! only alerts about the user's own files, while root gets every alert. `vigil
//! stats --json` reports per-stage latency percentiles of the scans just made.

use std::fs::{self, File};
use std::os::unix::fs::chown;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixture::*;

const WAIT: Duration = Duration::from_secs(15);
const ALICE: u32 = 4242;
const BOB: u32 = 4343;

/// A `vigil alerts --json` process, killed (by pid) on drop.
struct Listener {
    child: Child,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

impl Listener {
    fn start(sb: &Sandbox, tag: &str, socket: &Path, uid: Option<u32>) -> Listener {
        let out = sb.host(format!("alerts-{tag}.out"));
        let err = sb.host(format!("alerts-{tag}.err"));
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "2", "60"]);
        if let Some(uid) = uid {
            cmd.args([
                "setpriv",
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "--",
            ]);
        }
        let child = cmd
            .args([VIGIL, "alerts", "--json", "--socket"])
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(File::create(&out).expect("create out"))
            .stderr(File::create(&err).expect("create err"))
            .spawn()
            .expect("spawn vigil alerts");
        let l = Listener { child, out, err };
        let t0 = Instant::now();
        while !l.stderr().contains("subscribed") {
            assert!(
                t0.elapsed() < WAIT,
                "[{tag}] vigil alerts did not subscribe: {}",
                l.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
        l
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn alerts(&self) -> Vec<Value> {
        fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .alerts()
            .iter()
            .map(|a| {
                let p = jstr(a, "/file/path");
                p.rsplit('/').next().unwrap_or(p).to_owned()
            })
            .collect();
        names.sort();
        names
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn users_get_read_only_status_and_only_their_own_alerts() {
    require_root!();
    let sb = Sandbox::new("alerts");
    let mut hashes = Vec::new();
    for (name, owner) in [("alice-bad", ALICE), ("bob-bad", BOB)] {
        let path = sb.mnt(name);
        hashes.push(write_marker_binary(&path, name));
        chown(&path, Some(owner), Some(owner)).expect("chown");
    }
    let refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
    let list = sb.hash_list("bad.sha256", &refs);
    let mut cfg = sb.config();
    cfg.hashes = vec![list];
    let d = sb.start(&cfg);

    let alice = Listener::start(&sb, "alice", &cfg.socket, Some(ALICE));
    let root = Listener::start(&sb, "root", &cfg.socket, None);
    for name in ["alice-bad", "bob-bad"] {
        assert_denied(&run(&sb.mnt(name)), &format!("{name}{}", d.context()));
    }
    let t0 = Instant::now();
    while root.alerts().len() < 2 && t0.elapsed() < WAIT {
        thread::sleep(Duration::from_millis(50));
    }
    // Give alice's stream the same chance to (wrongly) receive bob's alert.
    thread::sleep(Duration::from_millis(300));
    let ctx = format!(
        "root: {:?}\nalice: {:?} {}{}",
        root.alerts(),
        alice.alerts(),
        alice.stderr(),
        d.context()
    );
    assert_eq!(root.names(), vec!["alice-bad", "bob-bad"], "{ctx}");
    assert_eq!(alice.names(), vec!["alice-bad"], "{ctx}");
    let a = &alice.alerts()[0];
    assert_eq!(jstr(a, "/event/action"), "blocked", "{ctx}");
    assert_eq!(jstr(a, "/file/uid"), ALICE.to_string(), "{ctx}");
    assert_eq!(jstr(a, "/user/id"), "0", "the exec ran as root: {ctx}");

    // Read-only requests work for a user; changes do not.
    let sock = cfg.socket.as_os_str();
    let user = Some((ALICE, ALICE));
    let out = d.cli(user, &["status".as_ref(), "--socket".as_ref(), sock]);
    assert!(out.status.success(), "status as a user: {out:?}");
    // The exposure lines say what this machine lets past the agent, by the
    // kernel's own settings, read now.
    let status: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    // Every line is reported, open or closed; an explicit watch.filesystems
    // leaves new mounts unwatched.
    let state = |id: &str| {
        status["exposure"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["id"] == id))
            .and_then(|e| e["state"].as_str())
            .unwrap_or("")
            .to_owned()
    };
    let memfd_open =
        std::fs::read_to_string("/proc/sys/vm/memfd_noexec").map_or(true, |v| v.trim() != "2");
    let want = if memfd_open { "open" } else { "closed" };
    assert_eq!(state("memfd-exec"), want, "{status}");
    assert_eq!(state("new-mounts"), "open", "{status}");
    let out = d.cli(user, &["reload".as_ref(), "--socket".as_ref(), sock]);
    assert_eq!(out.status.code(), Some(1), "reload as a user: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"));

    let out = d.cli(
        user,
        &[
            "stats".as_ref(),
            "--json".as_ref(),
            "--socket".as_ref(),
            sock,
        ],
    );
    assert!(out.status.success(), "stats as a user: {out:?}");
    let stats: Value = serde_json::from_slice(&out.stdout).expect("stats --json");
    let lat = |stage: &str, key: &str| {
        stats
            .pointer(&format!("/latency_us/{stage}/{key}"))
            .and_then(Value::as_u64)
    };
    // A hash hit is conclusive: the later stages do not run for these files.
    for stage in ["hash", "total"] {
        let count = lat(stage, "count").unwrap_or(0);
        assert!(count >= 2, "{stage} count {count}: {stats}");
        let (p50, p95, p99) = (
            lat(stage, "p50_us").unwrap_or(0),
            lat(stage, "p95_us").unwrap_or(0),
            lat(stage, "p99_us").unwrap_or(0),
        );
        assert!(p50 <= p95 && p95 <= p99, "{stage}: {stats}");
    }
    // The first exec of each file waited for a worker (later ones may be
    // denied by the reader from the cache, ahead of any queue).
    assert!(lat("queued_exec", "count").unwrap_or(0) >= 1, "{stats}");
    assert!(
        lat("queued_exec", "max_us") <= lat("total", "max_us"),
        "{stats}"
    );
    assert_eq!(lat("model", "count"), Some(0), "{stats}");
    assert_eq!(lat("model", "p50_us"), None, "{stats}");
    assert!(
        stats
            .pointer("/counters/events_exec")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            >= 2,
        "{stats}"
    );
    assert!(stats.pointer("/queue_depth").is_some(), "{stats}");
    let text = d.cli(user, &["stats".as_ref(), "--socket".as_ref(), sock]);
    let text = String::from_utf8_lossy(&text.stdout);
    for stage in [
        "hash",
        "rules",
        "heuristics",
        "model",
        "total",
        "queued_exec",
        "queued_open",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(stage)),
            "{stage} row: {text}"
        );
    }
}
