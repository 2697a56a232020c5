//! `daemon.nice`: the threads that answer the kernel or mark filesystems run at
//! it; the threads nobody waits on run behind ordinary processes (write-time
//! scans and the cache writer further behind). The herd writer, which writes
//! answers while many openers wait, is a real-time thread.

use std::collections::BTreeMap;

use crate::fixture::*;

/// Each thread's name and nice value (field 19 of its `stat`).
fn thread_nice(pid: i32) -> BTreeMap<String, Vec<i32>> {
    thread_stat_field(pid, 19)
}

/// Each thread's name and `stat` field `field` (1-based, as in proc(5)).
fn thread_stat_field(pid: i32, field: usize) -> BTreeMap<String, Vec<i32>> {
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the daemon's tasks");
    for task in tasks.flatten() {
        let dir = task.path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue; // a thread that just ended
        };
        let name = if task.file_name().to_str() == Some(&pid.to_string()) {
            "main".to_owned()
        } else {
            comm.trim().to_owned()
        };
        let after = &stat[stat.rfind(')').expect("stat has a name") + 1..];
        // `after` starts at field 3.
        let value = after
            .split_whitespace()
            .nth(field - 3)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("stat field {field}: {stat}"));
        out.entry(name).or_default().push(value);
    }
    out
}

#[test]
fn answering_threads_run_at_daemon_nice_and_background_threads_behind() {
    require_root!();
    let sb = Sandbox::new("priority");
    let mut cfg = sb.config();
    cfg.workers = 1; // the one worker that takes opens
    let text = cfg
        .to_toml()
        .replacen("[daemon]\n", "[daemon]\nnice = -7\n", 1);
    assert!(text.contains("nice = -7"), "{text}");
    let d = sb.start_with_text(&cfg, &text, &[]);
    // An open the policy scans (`scan_on_open = "all"`): the worker handles it
    // at the daemon's starting value.
    let file = sb.mnt("data.txt");
    write_file(&file, b"an open for the worker\n", 0o644);
    std::fs::read(&file).expect("read the file");
    let threads = thread_nice(d.pid());
    let expect = [
        ("main", -7), // the reader and the control socket
        ("vigil-exec", -7),
        ("vigil-worker-0", 0), // after an open
        ("vigil-deadline", -7),
        ("vigil-ruleclock", -7), // yara-x's timeout clock
        ("vigil-marks", -7),
        ("vigil-mounts", -7), // marks new filesystems: coverage waits on it
        ("vigil-events", 0),
        ("vigil-clamav", 0),
        ("vigil-written", 10),
        ("vigil-cache-wri", 10), // the persistent cache's writer (comm is cut at 15 bytes)
    ];
    for (name, nice) in expect {
        let found = threads
            .get(name)
            .unwrap_or_else(|| panic!("no thread {name}: {threads:?}{}", d.context()));
        assert!(
            found.iter().all(|n| *n == nice),
            "{name} runs at nice {found:?}, expected {nice}: {threads:?}"
        );
    }
}

/// The herd writer (`daemon::herd`) is `SCHED_FIFO` at priority 1: ordinary
/// threads, and so a herd of woken openers, cannot preempt it between writes.
/// Every other thread stays `SCHED_OTHER`.
#[test]
fn the_herd_writer_alone_runs_real_time() {
    require_root!();
    let sb = Sandbox::new("priority-herd");
    let cfg = sb.config();
    let d = sb.start(&cfg);
    let (policy, rt) = (
        thread_stat_field(d.pid(), 41),
        thread_stat_field(d.pid(), 40),
    );
    const SCHED_OTHER: i32 = 0;
    const SCHED_FIFO: i32 = 1;
    for (name, policies) in &policy {
        let want = if name == "vigil-herd" {
            SCHED_FIFO
        } else {
            SCHED_OTHER
        };
        assert!(
            policies.iter().all(|p| *p == want),
            "{name} runs with policy {policies:?}, expected {want}: {policy:?}{}",
            d.context()
        );
    }
    assert_eq!(
        rt.get("vigil-herd"),
        Some(&vec![1]),
        "the herd writer's real-time priority: {rt:?}"
    );
}
