//! Scan on write (issue 18, item 1): executable content closed after a write is
//! scanned in the background, so its first exec is answered from the cache;
//! a known-bad file is reported when written (`event.action: "written"`) and,
//! with `decision.on_malicious_write = "quarantine"`, quarantined before anyone
//! runs it. A file changed again after that scan is scanned again at exec.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::fixture::*;
use crate::torture::{counter, stats, wait_counter};

const EVENT_WAIT: Duration = Duration::from_secs(15);

#[test]
fn a_written_binary_is_scanned_once_and_its_exec_answered_from_the_cache() {
    require_root!();
    let sb = Sandbox::new("written");
    // The listed content is made before the daemon starts, then written again
    // under another name after: a dropper's download, a build's output (0755).
    let seed = sb.listed_binary("seed");
    let bad_bytes = std::fs::read(&seed.path).expect("read seed");
    std::fs::remove_file(&seed.path).expect("remove seed");
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    cfg.hashes = vec![seed.list.clone()];
    let d = sb.start(&cfg);
    let before = stats(&d, &cfg.socket);

    let bad = sb.mnt("dropped-bad");
    write_file(&bad, &bad_bytes, 0o755);
    let good = sb.mnt("dropped-good");
    write_marker_binary(&good, "dropped-good");
    let ev = d.wait_event("written", EVENT_WAIT, |v| {
        is_event(v, "written", "dropped-bad")
    });
    let ctx = format!("event {ev}{}", d.context());
    assert_eq!(jstr(&ev, "/event/outcome"), "detected", "{ctx}");
    assert_eq!(jstr(&ev, "/vigil/verdict"), "malicious", "{ctx}");
    assert_eq!(jstr(&ev, "/file/hash/sha256"), seed.sha256, "{ctx}");
    let scanned = wait_counter(&d, &cfg, "written_scanned", 2, EVENT_WAIT);

    assert_ran(&run(&good), &format!("clean binary written{}", d.context()));
    assert_denied(&run(&bad), &format!("listed binary written{}", d.context()));
    let after = stats(&d, &cfg.socket);
    assert_eq!(
        counter(&after, "scans"),
        counter(&scanned, "scans"),
        "an exec scanned a file already scanned at write time: {after}{}",
        d.context()
    );
    assert!(
        counter(&after, "reader_cache_hits") + counter(&after, "cache_hits")
            >= counter(&before, "reader_cache_hits") + counter(&before, "cache_hits") + 2,
        "the execs were not cache hits: {after}{}",
        d.context()
    );
    // A download: written without an execute bit (still ELF content, so still
    // scanned), then `chmod +x`, which changes ctime and so misses the cache by
    // file version; the verdict on the same content is reused, only the hash runs.
    let downloaded = sb.mnt("downloaded");
    write_file(&downloaded, &bad_bytes, 0o644);
    wait_counter(&d, &cfg, "written_scanned", 3, EVENT_WAIT);
    std::fs::set_permissions(&downloaded, std::fs::Permissions::from_mode(0o755))
        .expect("chmod +x");
    let known_before = counter(&stats(&d, &cfg.socket), "scans_known_content");
    assert_denied(
        &run(&downloaded),
        &format!("listed download after chmod +x{}", d.context()),
    );
    let known_after = counter(&stats(&d, &cfg.socket), "scans_known_content");
    assert_eq!(
        known_after,
        known_before + 1,
        "the exec after chmod +x did not reuse the verdict on its content{}",
        d.context()
    );
    // Changed after its clean scan: its cached verdict no longer applies.
    write_file(&good, &bad_bytes, 0o755);
    assert_denied(
        &run(&good),
        &format!("a clean file rewritten with listed content{}", d.context()),
    );
}

#[test]
fn on_malicious_write_quarantine_moves_the_file_before_it_runs() {
    require_root!();
    let sb = Sandbox::new("written-q");
    let sample = sb.mnt("seed");
    let sha = write_marker_binary(&sample, "written-quarantine");
    let bytes = std::fs::read(&sample).expect("read seed");
    std::fs::remove_file(&sample).expect("remove seed");
    let mut cfg = sb.config();
    cfg.hashes = vec![sb.hash_list("bad.sha256", &[&sha])];
    // Execs only: this test reads nothing back.
    cfg.scan_on_open = "none".into();
    let text = cfg.to_toml();
    let from = "on_malicious = \"deny\"\n";
    assert!(text.contains(from), "fixture TOML changed: {text}");
    let text = text.replace(
        from,
        &format!("{from}on_malicious_write = \"quarantine\"\n"),
    );
    let d = sb.start_in_namespace_with_text(&cfg, &text);

    let dropped = sb.mnt("sub/dropper");
    write_file(&dropped, &bytes, 0o755);
    let ev = d.wait_event("written", EVENT_WAIT, |v| is_event(v, "written", "dropper"));
    assert_eq!(
        jstr(&ev, "/event/outcome"),
        "quarantined",
        "{ev}{}",
        d.context()
    );
    let q = d.wait_event("quarantined", EVENT_WAIT, |v| {
        is_event(v, "quarantined", "dropper") && jstr(v, "/event/outcome") == "success"
    });
    let ctx = format!("event {q}{}", d.context());
    assert!(
        !dropped.exists(),
        "the written file is still in place: {ctx}"
    );
    assert_eq!(jstr(&q, "/file/hash/sha256"), sha, "{ctx}");
}

/// No exec waits for a write-time scan: that scan runs behind every ordinary
/// process, so on a busy machine an exec waiting for it met its deadline and
/// ran unscanned by rules and model (`on_timeout` allows by default). The
/// write-time scan is held here for 10 s (a debug-build hook); the exec's
/// worker scans the file itself and the rule denies it.
#[test]
fn an_exec_does_not_wait_behind_a_stuck_write_time_scan() {
    require_root!();
    let sb = Sandbox::new("written-overtake");
    let rules = sb.host("rules");
    write_test_rule(&rules.join("e2e.yar"));
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    cfg.rules = vec![rules];
    cfg.deadline_ms = 2000;
    let d = sb.start_with_env(&cfg, &[("VIGIL_TEST_STALL_WRITTEN_MS", "10000")]);
    let bad = sb.mnt("dropped");
    // Detected by the rule only: a listed hash would be denied even by the
    // deadline, which hashes first.
    write_marker_binary(&bad, RULE_MARKER);
    // Its write-time scan has started, and is held.
    wait_counter(&d, &cfg, "written_scanned", 1, EVENT_WAIT);
    assert_denied(
        &run(&bad),
        &format!(
            "a rule-detected binary run during its write-time scan{}",
            d.context()
        ),
    );
    let st = stats(&d, &cfg.socket);
    let ctx = format!("{st}{}", d.context());
    assert_eq!(counter(&st, "written_overtaken"), 1, "{ctx}");
    assert_eq!(counter(&st, "deadline_expired"), 0, "{ctx}");
}
