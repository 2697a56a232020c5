//! The response deadline: a stuck stage (`VIGIL_TEST_STALL_MS`, debug builds)
//! never holds an event past `deadline_ms`; the answer is `on_timeout`, and the
//! late verdict is logged when the scan finishes.

use std::time::{Duration, Instant};

use crate::fixture::*;

const STALL_MS: &str = "5000";
/// Well before the stall ends (liveness, not performance: deadline is 200 ms).
const ANSWER_LIMIT: Duration = Duration::from_millis(3000);

fn start(sb: &Sandbox, on_timeout: &str) -> Daemon {
    let mut cfg = sb.config();
    cfg.scan_on_open = "all".into();
    cfg.deadline_ms = 200;
    cfg.on_timeout = on_timeout.into();
    sb.start_with_env(&cfg, &[("VIGIL_TEST_STALL_MS", STALL_MS)])
}

#[test]
fn stuck_stage_with_on_timeout_deny_denies_by_the_deadline() {
    require_root!();
    let sb = Sandbox::new("deadline-deny");
    let path = sb.mnt("slow-deny.dat");
    write_file(&path, b"a file whose scan gets stuck\n", 0o644);
    let d = start(&sb, "deny");

    let t0 = Instant::now();
    let p = path.clone();
    let res = within(Duration::from_secs(30), move || open_ro(&p).map(|_| ()));
    let took = t0.elapsed();
    let Some(res) = res else {
        panic!(
            "open not answered within 30 s (deadline 200 ms){}",
            d.context()
        );
    };
    assert_denied(
        &res,
        &format!("on_timeout=deny after {took:?}{}", d.context()),
    );
    assert!(
        took < ANSWER_LIMIT,
        "denied only after {took:?} (deadline 200 ms, stall {STALL_MS} ms): answered by the scan, not the deadline{}",
        d.context()
    );
    let ev = d.wait_event("deadline event", Duration::from_secs(15), |v| {
        is_event(v, "deadline", "slow-deny.dat")
    });
    let ctx = format!("event: {ev}{}", d.context());
    assert_eq!(
        ev.pointer("/vigil/late").and_then(|v| v.as_bool()),
        Some(true),
        "{ctx}"
    );
    assert_eq!(jstr(&ev, "/event/outcome"), "denied", "{ctx}");
    assert_eq!(jstr(&ev, "/vigil/verdict"), "clean", "{ctx}");
}

#[test]
fn stuck_stage_with_on_timeout_allow_allows_and_logs_late_verdict() {
    require_root!();
    let sb = Sandbox::new("deadline-allow");
    let path = sb.mnt("slow-allow.dat");
    let data = b"another file whose scan gets stuck\n";
    write_file(&path, data, 0o644);
    let d = start(&sb, "allow");

    let t0 = Instant::now();
    let p = path.clone();
    let res = within(Duration::from_secs(30), move || std::fs::read(&p));
    let took = t0.elapsed();
    let Some(res) = res else {
        panic!(
            "open not answered within 30 s (deadline 200 ms){}",
            d.context()
        );
    };
    assert_eq!(
        res.as_deref().ok(),
        Some(&data[..]),
        "on_timeout=allow: {res:?}{}",
        d.context()
    );
    assert!(
        took < ANSWER_LIMIT,
        "allowed only after {took:?} (deadline 200 ms, stall {STALL_MS} ms){}",
        d.context()
    );
    let ev = d.wait_event("deadline event", Duration::from_secs(15), |v| {
        is_event(v, "deadline", "slow-allow.dat")
    });
    let ctx = format!("event: {ev}{}", d.context());
    assert_eq!(
        ev.pointer("/vigil/late").and_then(|v| v.as_bool()),
        Some(true),
        "{ctx}"
    );
    assert_eq!(jstr(&ev, "/event/outcome"), "allowed", "{ctx}");
    assert_eq!(jstr(&ev, "/vigil/verdict"), "clean", "{ctx}");
    assert_eq!(jstr(&ev, "/file/hash/sha256"), sha256_hex(data), "{ctx}");
}
