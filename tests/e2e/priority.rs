//! `daemon.nice`: the threads that answer the kernel or mark filesystems run at
//! it; the threads nobody waits on run behind ordinary processes (write-time
//! scans and the cache writer further behind).

use std::collections::BTreeMap;

use crate::fixture::*;

/// Each thread's name and nice value (field 19 of its `stat`).
fn thread_nice(pid: i32) -> BTreeMap<String, Vec<i32>> {
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
        let nice = after
            .split_whitespace()
            .nth(16)
            .and_then(|n| n.parse().ok())
            .expect("stat field 19");
        out.entry(name).or_default().push(nice);
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
