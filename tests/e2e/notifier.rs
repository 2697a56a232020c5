//! `vigil notifier` against a real notification server: Xvfb, a session D-Bus
//! (`dbus-daemon --session`) and dunst, all run for the test, the bus and dunst as
//! an unprivileged user, as a desktop session would. A detection of that user's
//! file shows up in `dunstctl history` with what was blocked and why; a burst is
//! cut to [`BURST`] notifications plus one summary; after a daemon restart the
//! notifier reconnects by itself.

use std::fs::{self, File};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::fixture::*;

/// The notifier's flood limit (agent/src/cmd/notifier.rs).
const BURST: usize = 3;
/// Its window.
const WINDOW: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(20);
/// The desktop user: `nobody`, because dbus-daemon refuses a uid without a
/// passwd entry.
const USER: u32 = 65534;

/// Processes of the fake desktop, killed by pid on drop (in reverse order).
struct Desktop {
    dir: PathBuf,
    display: String,
    children: Vec<Child>,
}

impl Desktop {
    fn bus(&self) -> String {
        format!("unix:path={}", self.dir.join("bus").display())
    }

    /// A command run as the desktop user with the session's environment.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={USER}"),
            &format!("--regid={USER}"),
            "--clear-groups",
            "--",
            program,
        ])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &self.dir)
        .env("XDG_RUNTIME_DIR", self.dir.join("run"))
        .env("XDG_CONFIG_HOME", self.dir.join("config"))
        .env("DISPLAY", &self.display)
        .env("DBUS_SESSION_BUS_ADDRESS", self.bus())
        .stdin(Stdio::null());
        cmd
    }

    fn spawn(&mut self, mut cmd: Command, log: &str) {
        let child = cmd
            .stdout(File::create(self.dir.join(format!("{log}.out"))).expect("log"))
            .stderr(File::create(self.dir.join(format!("{log}.err"))).expect("log"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {log}: {e} (CI installs xvfb dunst dbus)"));
        self.children.push(child);
    }

    fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    fn start(dir: &Path) -> Desktop {
        fs::create_dir_all(dir.join("run")).expect("mkdir");
        fs::create_dir_all(dir.join("config")).expect("mkdir");
        for p in [dir, &dir.join("run"), &dir.join("config")] {
            chown(p, Some(USER), Some(USER)).expect("chown desktop dir");
            fs::set_permissions(p, fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        // A display number nobody uses.
        let n = (100..400)
            .find(|n| !Path::new(&format!("/tmp/.X{n}-lock")).exists())
            .expect("a free X display");
        let mut d = Desktop {
            dir: dir.to_path_buf(),
            display: format!(":{n}"),
            children: Vec::new(),
        };
        let mut xvfb = Command::new("Xvfb");
        xvfb.args([
            &d.display,
            "-ac",
            "-nolisten",
            "tcp",
            "-screen",
            "0",
            "1024x768x24",
        ])
        .stdin(Stdio::null());
        d.spawn(xvfb, "xvfb");
        wait_for("Xvfb", || {
            Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        });
        let mut bus = d.command("dbus-daemon");
        bus.args(["--session", "--nofork", "--address", &d.bus()]);
        d.spawn(bus, "dbus");
        wait_for("dbus-daemon", || dir.join("bus").exists());
        let dunst = d.command("dunst");
        d.spawn(dunst, "dunst");
        wait_for("dunst on the session bus", || {
            d.dunstctl(&["is-paused"]).status.success()
        });
        d
    }

    fn dunstctl(&self, args: &[&str]) -> Output {
        let mut cmd = self.command("dunstctl");
        cmd.args(args);
        cmd.output().expect("run dunstctl")
    }

    /// (summary, body) of every notification dunst has shown, oldest first.
    /// Critical notifications stay on screen (out of the history) until closed,
    /// so close them first.
    fn shown(&self) -> Vec<(String, String)> {
        let _ = self.dunstctl(&["close-all"]);
        let out = self.dunstctl(&["history"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let mut items: Vec<(i64, String, String)> = v
            .pointer("/data/0")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|n| {
                        let s = |k: &str| jstr(n, &format!("/{k}/data")).to_owned();
                        let id = n.pointer("/id/data").and_then(Value::as_i64).unwrap_or(0);
                        (id, s("summary"), s("body"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        items.sort();
        items.into_iter().map(|(_, s, b)| (s, b)).collect()
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        while let Some(mut c) = self.children.pop() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[track_caller]
fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(
            t0.elapsed() < WAIT,
            "{what} did not come up within {WAIT:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn notifier_shows_alerts_on_a_real_notification_server() {
    require_root!();
    let sb = Sandbox::new("notifier");
    let names: Vec<String> = (0..8).map(|i| format!("bad-{i}")).collect();
    let mut hashes = Vec::new();
    for name in &names {
        let path = sb.mnt(name);
        hashes.push(write_marker_binary(&path, name));
        chown(&path, Some(USER), Some(USER)).expect("chown");
    }
    let refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
    let list = sb.hash_list("bad.sha256", &refs);
    let mut cfg = sb.config();
    cfg.hashes = vec![list];
    let mut d = sb.start(&cfg);

    let mut desktop = Desktop::start(&sb.host("desktop"));
    let mut notifier = desktop.command(VIGIL);
    notifier.arg("notifier").arg("--socket").arg(&cfg.socket);
    desktop.spawn(notifier, "notifier");
    let subscribed = |n: usize| {
        move |desk: &Desktop| {
            desk.log("notifier.err")
                .matches("subscribed to alerts")
                .count()
                >= n
        }
    };
    wait_for("the notifier's subscription", || subscribed(1)(&desktop));

    // One detection: one notification saying what was blocked and why.
    assert_denied(&run(&sb.mnt("bad-0")), &format!("bad-0{}", d.context()));
    wait_for("the first notification", || {
        desktop.shown().iter().any(|(s, _)| s == "Blocked: bad-0")
    });
    let shown = desktop.shown();
    let (_, body) = shown
        .iter()
        .find(|(s, _)| s == "Blocked: bad-0")
        .expect("shown");
    assert!(body.contains("/bad-0 was denied"), "body: {body}");
    assert!(body.contains("vigil-e2e-sample-0"), "threat name: {body}");

    // A burst in the same window: BURST in all, then one summary of the rest.
    for name in &names[1..6] {
        assert_denied(&run(&sb.mnt(name)), name);
    }
    wait_for("the burst summary", || {
        desktop
            .shown()
            .iter()
            .any(|(s, _)| s == "vigil: more detections")
    });
    let shown = desktop.shown();
    let blocked = shown
        .iter()
        .filter(|(s, _)| s.starts_with("Blocked:"))
        .count();
    assert_eq!(blocked, BURST, "{shown:?}");
    let (_, summary) = shown
        .iter()
        .find(|(s, _)| s == "vigil: more detections")
        .expect("summary");
    assert!(summary.starts_with("3 more alerts"), "{summary}");

    // The daemon restarts; the notifier reconnects and keeps showing alerts.
    d.signal(Signal::SIGTERM);
    assert!(d.wait_exit(WAIT).is_some(), "daemon did not stop");
    drop(d);
    let d = sb.start(&cfg);
    wait_for("the notifier's resubscription", || subscribed(2)(&desktop));
    thread::sleep(WINDOW / 10);
    assert_denied(&run(&sb.mnt("bad-6")), &format!("bad-6{}", d.context()));
    wait_for("a notification after the restart", || {
        desktop.shown().iter().any(|(s, _)| s == "Blocked: bad-6")
    });
    assert!(
        desktop.log("notifier.err").contains("reconnecting"),
        "{}",
        desktop.log("notifier.err")
    );
}
