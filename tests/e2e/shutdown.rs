//! Shutdown: SIGTERM answers every pending event and exits 0; a killed daemon
//! never leaves an opener hanging (the kernel allows pending events when the
//! fanotify fd closes).

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::fixture::*;

#[test]
fn kill_9_with_a_pending_open_releases_the_opener() {
    require_root!();
    let sb = Sandbox::new("kill9");
    let path = sb.mnt("pending.dat");
    write_file(&path, b"an open that the daemon never answers\n", 0o644);
    let mut cfg = sb.config();
    cfg.scan_on_open = "all".into();
    cfg.deadline_ms = 60_000;
    let mut d = sb.start_with_env(&cfg, &[("VIGIL_TEST_STALL_MS", "60000")]);

    let (tx, rx) = mpsc::channel();
    let p = path.clone();
    thread::spawn(move || {
        let _ = tx.send(open_ro(&p).map(|_| ()));
    });
    thread::sleep(Duration::from_millis(1000));
    assert!(
        rx.try_recv().is_err(),
        "the open returned before the kill: is VIGIL_TEST_STALL_MS honoured (debug build)?{}",
        d.context()
    );
    d.signal(Signal::SIGKILL);
    let res = rx.recv_timeout(Duration::from_secs(5));
    let status = d.wait_exit(Duration::from_secs(5));
    match res {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("open after kill -9 of the daemon failed: {e}"),
        Err(_) => panic!(
            "open still pending 5 s after kill -9 of the daemon{}",
            d.context()
        ),
    }
    assert!(status.is_some(), "daemon still running after SIGKILL");
}

#[test]
fn sigterm_answers_every_pending_open_and_exits_0() {
    require_root!();
    const N: usize = 100;
    let sb = Sandbox::new("sigterm");
    for i in 0..N {
        write_file(
            &sb.mnt(format!("inflight/f{i:03}")),
            format!("in-flight file {i}\n").as_bytes(),
            0o644,
        );
    }
    let mut cfg = sb.config();
    cfg.scan_on_open = "all".into();
    cfg.deadline_ms = 10_000;
    // Few workers and a 300 ms stall per scan: ~15 s to scan them all, so most
    // opens are still pending when SIGTERM arrives.
    cfg.workers = 2;
    let mut d = sb.start_with_env(&cfg, &[("VIGIL_TEST_STALL_MS", "300")]);

    let (tx, rx) = mpsc::channel();
    for i in 0..N {
        let tx = tx.clone();
        let p = sb.mnt(format!("inflight/f{i:03}"));
        thread::spawn(move || {
            let r = open_ro(&p).map(|_| ());
            let _ = tx.send((i, r));
        });
    }
    drop(tx);
    thread::sleep(Duration::from_millis(1000));
    let mut done: Vec<(usize, std::io::Result<()>)> = rx.try_iter().collect();
    assert!(
        done.len() < N,
        "all {N} opens finished within 1 s: nothing in flight to test (stall hook?){}",
        d.context()
    );
    let before = done.len();
    let t_term = Instant::now();
    d.signal(Signal::SIGTERM);
    // The daemon answers what is pending with real verdicts (scan or deadline),
    // waiting at most the deadline plus a grace of 2 s: bound it with slack.
    let limit = Duration::from_millis(cfg.deadline_ms) + Duration::from_secs(5);
    while done.len() < N {
        let left = limit.saturating_sub(t_term.elapsed());
        match rx.recv_timeout(left) {
            Ok(r) => done.push(r),
            Err(_) => break,
        }
    }
    assert_eq!(
        done.len(),
        N,
        "{} of {N} opens still pending {limit:?} after SIGTERM ({before} had finished before it){}",
        N - done.len(),
        d.context()
    );
    let failed: Vec<String> = done
        .iter()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("f{i:03}: {e}")))
        .collect();
    assert!(
        failed.is_empty(),
        "clean files denied during shutdown: {failed:?}{}",
        d.context()
    );
    let status = d.wait_exit(limit.saturating_sub(t_term.elapsed()) + Duration::from_secs(5));
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
        "daemon exit status after SIGTERM: {status}{}",
        d.context()
    );
}
