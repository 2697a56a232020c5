//! Signals under load: kill -9 mid-scan, SIGSTOP past the deadline, SIGTERM
//! during an exec storm, and a storm of SIGHUPs while the content changes.
//!
//! Not repeated here: kill -9 with one pending open (shutdown.rs), SIGTERM with
//! 100 pending opens (shutdown.rs), kill -9 at each quarantine step
//! (quarantine.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::*;

/// kill -9 while 24 opens and 8 execs are mid-scan (every scan stalled): every
/// opener is released by the kernel as the group fd closes, no file is touched,
/// and a new daemon on the same config (stale socket left behind) serves at once.
#[test]
fn kill_9_mid_scan_under_load_releases_everyone_and_a_restart_serves() {
    require_root!();
    let sb = Sandbox::new("torture-kill9");
    let list = sb.host("bad.sha256");
    let bad = sentinel(&sb, "sentinel.dat", &list);
    for i in 0..24 {
        write_file(
            &sb.mnt(format!("data/f{i:02}")),
            format!("data {i}\n").as_bytes(),
            0o644,
        );
    }
    for i in 0..8 {
        write_marker_binary(&sb.mnt(format!("bin/t{i}")), &format!("kill9-{i}"));
    }
    let snap = Snapshot::take(sb.mnt_root());
    let mut cfg = sb.config();
    cfg.hashes = vec![list];
    cfg.workers = 2;
    cfg.deadline_ms = 60_000;
    let mut d = sb.start_with_env(&cfg, &[("VIGIL_TEST_STALL_MS", "60000")]);

    // Liveness bound: the kill comes ~1 s after the spawns; released within MARGIN.
    let limit = Duration::from_secs(2) + MARGIN;
    let ops = Openers::new();
    for i in 0..24 {
        ops.open(
            format!("open f{i:02}"),
            limit,
            sb.mnt(format!("data/f{i:02}")),
        );
    }
    for i in 0..8 {
        ops.exec(format!("exec t{i}"), limit, sb.mnt(format!("bin/t{i}")));
    }
    thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        ops.finished(),
        0,
        "openers returned before the kill: nothing was mid-scan (stall hook?){}",
        d.context()
    );
    d.signal(Signal::SIGKILL);
    let ctx = || d.context();
    let results = ops.assert_all_answered(limit + Duration::from_secs(2), &ctx);
    let (allowed, denied, other) = tally(&results);
    assert_eq!(
        (allowed, denied, other.len()),
        (32, 0, 0),
        "after kill -9 the kernel allows every pending event: {other:?}{}",
        d.context()
    );
    let exited = d.wait_exit(Duration::from_secs(5)).is_some();
    assert!(exited, "daemon alive after SIGKILL");
    snap.assert_intact(&String::new);

    // A restart on the same config: the dead daemon's socket file is stale.
    let d2 = sb.start(&cfg);
    assert_sentinel_denied(&d2, &bad);
    assert_eq!(
        open_errno(&sb.mnt("data/f00")),
        Ok(()),
        "clean file after restart{}",
        d2.context()
    );
    let st = stats(&d2, &cfg.socket);
    assert!(counter(&st, "denied") >= 1, "{st}");
}

/// SIGSTOP for 5× the deadline. What really happens (docs/failure-modes.md, "Stopped
/// (SIGSTOP)"): the deadline is kept by the daemon's own threads, which are stopped
/// too, so openers stay blocked for as long as the daemon is stopped; SIGCONT
/// releases them within the deadline, and kill -9 of the stopped daemon releases
/// them at once (the kernel allows pending events when the group fd closes).
/// Under systemd, `WatchdogSec=` kills a daemon stopped longer than that.
#[test]
fn sigstop_past_the_deadline_blocks_until_sigcont_or_kill() {
    require_root!();
    const STOP: Duration = Duration::from_millis(1500);
    let sb = Sandbox::new("torture-sigstop");
    let list = sb.host("bad.sha256");
    let bad = sentinel(&sb, "sentinel.dat", &list);
    for i in 0..6 {
        write_file(
            &sb.mnt(format!("f{i}")),
            format!("stopped {i}\n").as_bytes(),
            0o644,
        );
    }
    write_marker_binary(&sb.mnt("tool"), "sigstop");
    let snap = Snapshot::take(sb.mnt_root());
    let mut cfg = sb.config();
    cfg.hashes = vec![list];
    cfg.deadline_ms = 300;
    let mut d = sb.start(&cfg);
    let deadline = Duration::from_millis(cfg.deadline_ms);

    // Phase 1: stopped, then continued.
    d.signal(Signal::SIGSTOP);
    let limit = STOP + deadline + MARGIN;
    let ops = Openers::new();
    for i in 0..3 {
        ops.open(format!("open f{i}"), limit, sb.mnt(format!("f{i}")));
    }
    ops.exec("exec tool", limit, sb.mnt("tool"));
    thread::sleep(STOP);
    let early = ops.finished();
    d.signal(Signal::SIGCONT);
    assert_eq!(
        early,
        0,
        "an opener returned while the daemon was stopped: the documented behaviour changed{}",
        d.context()
    );
    let ctx = || d.context();
    let results = ops.assert_all_answered(limit + Duration::from_secs(2), &ctx);
    // Read after SIGCONT, the events get their deadline from then: real verdicts.
    let (allowed, _, other) = tally(&results);
    assert_eq!(
        (allowed, other.len()),
        (4, 0),
        "after SIGCONT: {results:?}{}",
        d.context()
    );
    assert_sentinel_denied(&d, &bad);
    let st = stats(&d, &cfg.socket);
    assert!(counter(&st, "events_open") >= 4, "{st}");

    // Phase 2: stopped, then killed.
    d.signal(Signal::SIGSTOP);
    let ops = Openers::new();
    let limit = Duration::from_millis(800) + MARGIN;
    for i in 3..6 {
        ops.open(format!("open f{i}"), limit, sb.mnt(format!("f{i}")));
    }
    thread::sleep(Duration::from_millis(800));
    assert_eq!(
        ops.finished(),
        0,
        "an opener returned while stopped{}",
        d.context()
    );
    d.signal(Signal::SIGKILL);
    let results = ops.assert_all_answered(limit + Duration::from_secs(2), &ctx);
    let (allowed, _, other) = tally(&results);
    assert_eq!(
        (allowed, other.len()),
        (3, 0),
        "after kill -9 while stopped: {results:?}"
    );
    let exited = d.wait_exit(Duration::from_secs(5)).is_some();
    assert!(exited, "stopped daemon survived SIGKILL");
    snap.assert_intact(&String::new);
}

/// SIGTERM while 8 threads run execs in a loop (and every scan takes 100 ms):
/// every exec before, during and after the shutdown succeeds, none waits past the
/// deadline, the daemon exits 0.
#[test]
fn sigterm_during_an_exec_storm_answers_all_and_exits_0() {
    require_root!();
    const THREADS: usize = 8;
    let sb = Sandbox::new("torture-sigterm");
    for i in 0..THREADS * 4 {
        // Not write_file: see write_executable (ETXTBSY from other tests' forks).
        write_executable(
            &sb.mnt(format!("bin/t{i:02}")),
            &marker_variant(&format!("sigterm-{i}")),
        );
    }
    let snap = Snapshot::take(sb.mnt_root());
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    cfg.deadline_ms = 2000;
    cfg.workers = 2;
    let mut d = sb.start_with_env(&cfg, &[("VIGIL_TEST_STALL_MS", "100")]);
    let limit = Duration::from_millis(cfg.deadline_ms) + MARGIN;

    let ops = Arc::new(Openers::new());
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..THREADS)
        .map(|t| {
            let (ops, stop) = (Arc::clone(&ops), Arc::clone(&stop));
            let root = sb.mnt("bin");
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let p = root.join(format!("t{:02}", t * 4 + n % 4));
                    let _ = ops.run(format!("exec {t}/{n}"), limit, || exec_errno(&p));
                    n += 1;
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(1500));
    let before = ops.finished();
    let t_term = Instant::now();
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(limit + Duration::from_secs(5));
    // Keep spawning a little after the exit: execs with no daemon must work too.
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        let _ = l.join();
    }
    let ctx = || d.context();
    let results = ops.assert_all_answered(limit, &ctx);
    let (allowed, _, other) = tally(&results);
    assert!(
        other.is_empty() && allowed == results.len(),
        "execs failed around SIGTERM: {other:?}{}",
        d.context()
    );
    assert!(
        before >= THREADS,
        "only {before} execs before SIGTERM: no load{}",
        d.context()
    );
    let Some(status) = status else {
        panic!(
            "daemon still running {:?} after SIGTERM{}",
            t_term.elapsed(),
            d.context()
        );
    };
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM{}",
        d.context()
    );
    snap.assert_intact(&ctx);
}

/// 100 SIGHUPs, 10 ms apart, while four threads open and run files and the hash
/// list is swapped (atomically, by rename) before each one: every opener is
/// answered in time, no reload is rejected, and after a last synchronous reload
/// exactly the final list applies (no stale verdict survives the swaps, in the
/// user-space cache or in kernel ignore marks).
#[test]
fn a_storm_of_100_sighups_with_content_swaps_under_load() {
    require_root!();
    let sb = Sandbox::new("torture-hup");
    let x = b"torture sample X\n".as_slice();
    let y = b"torture sample Y\n".as_slice();
    write_file(&sb.mnt("x.dat"), x, 0o644);
    write_file(&sb.mnt("y.dat"), y, 0o644);
    write_file(&sb.mnt("clean.dat"), b"never listed\n", 0o644);
    write_marker_binary(&sb.mnt("tool"), "hup");
    let snap = Snapshot::take(sb.mnt_root());
    let list = sb.host("content.sha256");
    let (list_x, list_y) = (sb.host("x.list"), sb.host("y.list"));
    write_hash_list(&list_x, &[&sha256_hex(x)]);
    write_hash_list(&list_y, &[&sha256_hex(y)]);
    let swap_to = |from: &Path| {
        let tmp = sb.host("content.tmp");
        std::fs::copy(from, &tmp).expect("copy list");
        std::fs::rename(&tmp, &list).expect("rename list");
    };
    swap_to(&list_x);
    let mut cfg = sb.config();
    cfg.hashes = vec![list.clone()];
    cfg.deadline_ms = 2000;
    let d = sb.start(&cfg);
    let limit = Duration::from_millis(cfg.deadline_ms) + MARGIN;

    let ops = Arc::new(Openers::new());
    let stop = Arc::new(AtomicBool::new(false));
    let names = ["x.dat", "y.dat", "clean.dat", "tool"];
    let loops: Vec<_> = names
        .iter()
        .map(|name| {
            let (ops, stop) = (Arc::clone(&ops), Arc::clone(&stop));
            let p = sb.mnt(name);
            let exec = *name == "tool";
            let name = name.to_string();
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let op = || if exec { exec_errno(&p) } else { open_errno(&p) };
                    let _ = ops.run(format!("{name}/{n}"), limit, op);
                    n += 1;
                }
            })
        })
        .collect();
    for i in 0..100 {
        swap_to(if i % 2 == 0 { &list_y } else { &list_x });
        d.signal(Signal::SIGHUP);
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        let _ = l.join();
    }
    let ctx = || d.context();
    let results = ops.assert_all_answered(limit, &ctx);
    let (_, _, other) = tally(&results);
    assert!(
        other.is_empty(),
        "openers failed other than by a denial: {other:?}"
    );
    for (name, r) in &results {
        if name.starts_with("clean.dat/") || name.starts_with("tool/") {
            assert_eq!(r, &Ok(()), "{name} during the storm{}", d.context());
        }
    }

    // The last word: list Y, synchronously.
    swap_to(&list_y);
    let out = d.reload(&cfg.socket);
    assert!(out.status.success(), "final reload: {}", show(&out));
    assert_eq!(
        open_errno(&sb.mnt("x.dat")),
        Ok(()),
        "X after the storm{}",
        d.context()
    );
    assert_eq!(
        open_errno(&sb.mnt("y.dat")),
        Err(EPERM),
        "Y after the storm{}",
        d.context()
    );
    let st = stats(&d, &cfg.socket);
    assert!(
        counter(&st, "reloads") >= 2,
        "SIGHUPs coalesce, but some must reload: {st}"
    );
    assert_eq!(counter(&st, "reloads_rejected"), 0, "{st}");
    let denied = results.values().filter(|r| **r == Err(EPERM)).count();
    assert!(
        denied >= 1,
        "no open denied during the storm: was the content applied?{}",
        d.context()
    );
    drop(d);
    snap.assert_intact(&String::new);
}
