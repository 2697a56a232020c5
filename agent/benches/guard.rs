//! The exec guard's cost: exec latency with vigil and with vigil plus its eBPF
//! exec guard, against no agent, in one run.
//!
//! Run as root: `sudo cargo bench -p vigil --bench guard`. Not root: prints why
//! and exits 0.
//!
//! The guard is machine-wide unless scoped, so the bench creates a cgroup v2
//! directory of its own, moves itself in (its children inherit it), scopes the
//! guard to it (`guard.cgroup`), and moves itself back before removing it.
//! Phases alternate (no agent, vigil, vigil + guard, vigil, vigil + guard) so a
//! drift in machine load shows as a difference between the repeats. Each phase
//! times `N_EXEC` spawn+wait of a binary on the watched tmpfs (a covered
//! superblock: the guard's fast path, one map lookup and the cgroup check)
//! and of `/bin/true` on the root filesystem (mounted at start: "known").
//! Each vigil + guard phase first checks the guard is active and refuses a
//! memfd exec in its cgroup, so a guard that is not running cannot produce a
//! flattering number.

#[path = "../../tests/e2e/fixture.rs"]
mod fixture;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fixture::{Config, Sandbox, write_file};
use nix::sys::signal::Signal;

/// Execs per binary per phase.
const N_EXEC: usize = 1000;

const PHASES: [(&str, Option<bool>); 5] = [
    ("no agent", None),
    ("vigil", Some(false)),
    ("vigil+guard", Some(true)),
    ("vigil (2)", Some(false)),
    ("vigil+guard (2)", Some(true)),
];

fn main() {
    if !fixture::is_root() {
        println!(
            "guard bench skipped: it needs root (fanotify, BPF, cgroups); run: \
             sudo cargo bench -p vigil --bench guard"
        );
        return;
    }
    let sb = Sandbox::new("bench-guard");
    let bin = sb.mnt("true");
    write_file(
        &bin,
        &std::fs::read("/bin/true").expect("read /bin/true"),
        0o755,
    );
    let memfd_py = sb.host("memfd.py");
    write_file(
        &memfd_py,
        b"import os\nfd = os.memfd_create('bench', 0)\nos.write(fd, open('/bin/true', 'rb').read())\nos.execv('/proc/self/fd/%d' % fd, ['x'])\n",
        0o644,
    );
    let cgroup = Cgroup::enter();
    let mut rows: Vec<(&str, Vec<u64>, Vec<u64>)> = Vec::new();
    for (label, guard) in PHASES {
        let daemon = guard.map(|on| {
            let mut cfg: Config = sb.config();
            cfg.scan_on_open = "executable".into();
            cfg.events = sb
                .host(format!("events-{label}.jsonl"))
                .to_string_lossy()
                .into_owned();
            if on {
                cfg.guard = format!(
                    "uncovered = \"deny\"\nmemfd_programs = []\ncgroup = \"{}\"\n",
                    cgroup.path.display()
                );
            }
            let d = sb.start(&cfg);
            if on {
                let probe = Command::new("python3")
                    .arg(&memfd_py)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("run python3");
                assert!(
                    !probe.success(),
                    "{label}: the guard did not refuse a memfd exec (inactive?){}",
                    d.context()
                );
            }
            d
        });
        let tmpfs = time_execs(&bin);
        let rootfs = time_execs(Path::new("/bin/true"));
        if let Some(mut d) = daemon {
            d.signal(Signal::SIGTERM);
            assert!(
                d.wait_exit(Duration::from_secs(15)).is_some(),
                "daemon did not stop"
            );
        }
        eprintln!("guard bench: phase {label} done");
        rows.push((label, tmpfs, rootfs));
    }
    drop(cgroup);
    println!(
        "\nexec latency, spawn+wait, {N_EXEC} execs per binary; median / p99 in µs; x = ratio to no agent"
    );
    println!(
        "{:<16} | {:>8} {:>8} {:>6} | {:>8} {:>8} {:>6}",
        "phase", "tmpfs", "p99", "x", "rootfs", "p99", "x"
    );
    let base_t = pct(&rows[0].1, 0.5);
    let base_r = pct(&rows[0].2, 0.5);
    for (label, t, r) in &rows {
        println!(
            "{label:<16} | {:>8.1} {:>8.1} {:>6.3} | {:>8.1} {:>8.1} {:>6.3}",
            pct(t, 0.5),
            pct(t, 0.99),
            pct(t, 0.5) / base_t,
            pct(r, 0.5),
            pct(r, 0.99),
            pct(r, 0.5) / base_r
        );
    }
}

fn time_execs(p: &Path) -> Vec<u64> {
    let run = || {
        Command::new(p)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let _ = run();
    (0..N_EXEC)
        .map(|_| {
            let t = Instant::now();
            let ok = run();
            assert!(ok, "exec of {} failed", p.display());
            t.elapsed().as_nanos() as u64
        })
        .collect()
}

fn pct(ns: &[u64], p: f64) -> f64 {
    let mut v = ns.to_vec();
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1000.0
}

/// This process inside a cgroup v2 directory of its own, for as long as it
/// lives; moved back to where it was on drop.
struct Cgroup {
    path: PathBuf,
    home: PathBuf,
}

impl Cgroup {
    fn enter() -> Cgroup {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let root = mountinfo
            .lines()
            .find_map(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                let sep = f.iter().position(|x| *x == "-")?;
                (f.get(sep + 1) == Some(&"cgroup2")).then(|| PathBuf::from(f[4]))
            })
            .expect("no cgroup2 mount");
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
        let rel = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or("/")
            .trim_start_matches('/')
            .to_owned();
        let home = root.join(rel);
        let path = root.join(format!("vigil-bench-guard-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create bench cgroup");
        std::fs::write(path.join("cgroup.procs"), std::process::id().to_string())
            .expect("move into the bench cgroup");
        Cgroup { path, home }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(
            self.home.join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let _ = std::fs::remove_dir(&self.path);
    }
}
