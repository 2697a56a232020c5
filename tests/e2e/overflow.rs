//! Overflow: when the worker queue is full, an event is answered at once with
//! `decision.on_overflow`, never by blocking the reader.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::fixture::*;

const STALL_MS: u64 = 3000;
const N: usize = 5;
/// Well before the first stalled scan ends.
const FAST: Duration = Duration::from_millis(2000);

/// One worker, a queue of one, every scan stalled: the 1st open is being
/// scanned, the 2nd waits in the queue, the 3rd.. overflow. Returns, per open,
/// how long it took and whether it was allowed.
type Outcome = (usize, Duration, std::io::Result<()>);

fn overflow_run(sb: &Sandbox, on_overflow: &str) -> (Vec<Outcome>, Daemon) {
    for i in 0..N {
        write_file(
            &sb.mnt(format!("q{i}.dat")),
            format!("queued {i}\n").as_bytes(),
            0o644,
        );
    }
    let mut cfg = sb.config();
    cfg.scan_on_open = "all".into();
    cfg.workers = 1;
    cfg.deadline_ms = 30_000;
    let mut text = cfg.to_toml();
    text = text.replace(
        "on_overflow = \"allow\"",
        &format!("on_overflow = \"{on_overflow}\""),
    );
    text = text.replace("[scan]\n", "[scan]\nqueue_capacity = 1\n");
    let d = sb.start_with_text(
        &cfg,
        &text,
        &[("VIGIL_TEST_STALL_MS", &STALL_MS.to_string())],
    );
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    for i in 0..N {
        let tx = tx.clone();
        let p = sb.mnt(format!("q{i}.dat"));
        thread::spawn(move || {
            let r = open_ro(&p).map(|_| ());
            let _ = tx.send((i, t0.elapsed(), r));
        });
        // Stagger, so the worker has taken the first before the second arrives.
        thread::sleep(Duration::from_millis(150));
    }
    drop(tx);
    let mut got = Vec::new();
    while let Ok(r) = rx.recv_timeout(Duration::from_secs(20)) {
        got.push(r);
    }
    got.sort_by_key(|(i, _, _)| *i);
    (got, d)
}

#[test]
fn full_queue_with_on_overflow_deny_denies_at_once() {
    require_root!();
    let sb = Sandbox::new("overflow-deny");
    let (got, d) = overflow_run(&sb, "deny");
    assert_eq!(
        got.len(),
        N,
        "not every open returned: {got:?}{}",
        d.context()
    );
    let fast_denied = got
        .iter()
        .filter(|(_, t, r)| *t < FAST && matches!(r, Err(e) if e.raw_os_error() == Some(EPERM)))
        .count();
    assert!(
        fast_denied >= 1,
        "no open was denied at once by on_overflow=deny: {got:?}{}",
        d.context()
    );
    let (_, _, first) = &got[0];
    assert!(
        first.is_ok(),
        "the first (scanned) open: {first:?}{}",
        d.context()
    );
}

#[test]
fn full_queue_with_on_overflow_allow_allows_at_once() {
    require_root!();
    let sb = Sandbox::new("overflow-allow");
    let (got, d) = overflow_run(&sb, "allow");
    assert_eq!(
        got.len(),
        N,
        "not every open returned: {got:?}{}",
        d.context()
    );
    assert!(
        got.iter().all(|(_, _, r)| r.is_ok()),
        "an open was denied: {got:?}{}",
        d.context()
    );
    let fast = got.iter().filter(|(_, t, _)| *t < FAST).count();
    assert!(
        fast >= 1,
        "no open was allowed at once by on_overflow=allow (all waited for the stalled worker): {got:?}{}",
        d.context()
    );
}
