//! Concurrency: many execs of distinct (cold) binaries at once all succeed.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::fixture::*;

#[test]
fn five_hundred_concurrent_execs_of_distinct_binaries_succeed() {
    require_root!();
    const N: usize = 500;
    const THREADS: usize = 8;
    let sb = Sandbox::new("conc");
    let paths: Vec<_> = (0..N)
        .map(|i| {
            let p = sb.mnt(format!("bins/{}/tool-{i:03}", i % 10));
            write_marker_binary(&p, &format!("conc-{i}"));
            p
        })
        .collect();
    // One listed binary among them proves the daemon is scanning these execs.
    let bad = sb.mnt("bins/listed-tool");
    let bad_sha = write_marker_binary(&bad, "conc-listed");
    let list = sb.hash_list("bad.sha256", &[&bad_sha]);
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    cfg.hashes = vec![list];
    let d = sb.start(&cfg);

    let paths = Arc::new(paths);
    let t0 = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let paths = Arc::clone(&paths);
            thread::spawn(move || {
                let mut failures = Vec::new();
                for i in (t..N).step_by(THREADS) {
                    match run(&paths[i]) {
                        Ok(out)
                            if out.status.success()
                                && String::from_utf8_lossy(&out.stdout).trim() == MARKER => {}
                        Ok(out) => failures.push(format!("tool-{i:03}: {out:?}")),
                        Err(e) => failures.push(format!("tool-{i:03}: {e}")),
                    }
                }
                failures
            })
        })
        .collect();
    let finished = within(Duration::from_secs(90), move || {
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| vec!["thread panicked".into()]))
            .collect::<Vec<_>>()
    });
    let Some(failures) = finished else {
        panic!("{N} execs not done within 90 s{}", d.context());
    };
    assert!(
        failures.is_empty(),
        "{} of {N} execs failed (in {:?}): {:?}{}",
        failures.len(),
        t0.elapsed(),
        &failures[..failures.len().min(10)],
        d.context()
    );
    assert_denied(&run(&bad), "the listed binary after the burst");
}
