//! The persistent verdict cache (issue 18, item 2): a verdict reached by one
//! daemon answers the first exec after a restart without a scan; it is ignored
//! after a content change (another hash list) and after a file change (even
//! one that keeps size and mtime), and a truncated or garbage store does not
//! stop the daemon: it says so, moves the file aside and builds a new one.
//!
//! These sandboxes watch an ext4 image ([`Sandbox::with_ext4`]): a tmpfs has no
//! stable UUID, so the daemon never stores its files' verdicts.

use std::fs;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::fixture::*;
use crate::torture::{counter, stats, wait_counter};

const WAIT: Duration = Duration::from_secs(20);
/// Size of the ext4 image: mkfs and the mount stay quick.
const IMAGE_MB: u64 = 32;

/// SIGTERM, and the daemon is gone (its writer committed on the way out).
#[track_caller]
fn stop(mut d: Daemon) {
    d.signal(Signal::SIGTERM);
    assert!(
        d.wait_exit(WAIT).is_some(),
        "daemon did not stop{}",
        d.context()
    );
}

/// A config watching the sandbox's ext4 image: execs (and the opens they
/// raise) only, so each test's counters count its own programs.
fn config(sb: &Sandbox) -> Config {
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    cfg
}

/// Starts a daemon, runs `prog` once (it must run), waits until its verdict is
/// committed to the store, and stops the daemon.
fn judge_and_store(sb: &Sandbox, cfg: &Config, prog: &Path) {
    let d = sb.start(cfg);
    assert_ran(&run(prog), "first exec, first daemon");
    let s = wait_counter(&d, cfg, "persistent_writes", 1, WAIT);
    assert_eq!(
        counter(&s, "persistent_unkeyed"),
        0,
        "an ext4 file is keyed: {s}"
    );
    stop(d);
}

#[test]
fn the_persistent_cache_survives_a_daemon_restart() {
    require_root!();
    let sb = Sandbox::with_ext4("persist-restart", IMAGE_MB);
    let prog = sb.mnt("pre-existing");
    write_marker_binary(&prog, "pre-existing");
    let cfg = config(&sb);
    judge_and_store(&sb, &cfg, &prog);

    let d = sb.start(&cfg);
    assert_ran(&run(&prog), "first exec after the restart");
    let s = wait_counter(&d, &cfg, "persistent_hits", 1, WAIT);
    let ctx = format!("{s}{}", d.context());
    assert_eq!(counter(&s, "scans"), 0, "answered without a scan: {ctx}");
    assert_eq!(counter(&s, "persistent_misses"), 0, "{ctx}");
    let out = d.cli(
        None,
        &[
            "status".as_ref(),
            "--socket".as_ref(),
            cfg.socket.as_os_str(),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let status: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(jstr(&status, "/persistent_cache/state"), "on", "{status}");
    assert!(
        status
            .pointer("/persistent_cache/entries")
            .and_then(Value::as_u64)
            .is_some_and(|n| n >= 1),
        "{status}"
    );
}

#[test]
fn the_persistent_cache_is_ignored_after_a_content_change() {
    require_root!();
    let sb = Sandbox::with_ext4("persist-content", IMAGE_MB);
    let prog = sb.mnt("later-listed");
    let sha256 = write_marker_binary(&prog, "later-listed");
    let cfg = config(&sb);
    judge_and_store(&sb, &cfg, &prog);

    // New content: a hash list naming the file. The stored clean verdict was
    // reached without it and must not answer.
    let mut listed = cfg.clone();
    listed.hashes = vec![sb.hash_list("new.sha256", &[&sha256])];
    let d = sb.start(&listed);
    assert_denied(&run(&prog), "exec under the new hash list");
    let s = wait_counter(&d, &listed, "scans", 1, WAIT);
    let ctx = format!("{s}{}", d.context());
    assert_eq!(counter(&s, "persistent_hits"), 0, "{ctx}");
    assert!(counter(&s, "persistent_stale") >= 1, "{ctx}");
}

#[test]
fn the_persistent_cache_is_ignored_after_a_file_change() {
    require_root!();
    let sb = Sandbox::with_ext4("persist-file", IMAGE_MB);
    // Two contents of the same size; the list names the second.
    let good = marker_variant("good-1");
    let bad = marker_variant("bad-22");
    assert_eq!(good.len(), bad.len());
    let prog = sb.mnt("rewritten");
    write_file(&prog, &good, 0o755);
    let mut cfg = config(&sb);
    cfg.hashes = vec![sb.hash_list("bad.sha256", &[&sha256_hex(&bad)])];
    judge_and_store(&sb, &cfg, &prog);

    // With no daemon running, the bytes change in place and the mtime is put
    // back (what an offline edit can forge); the ctime moves on regardless.
    let mtime = fs::metadata(&prog)
        .and_then(|m| m.modified())
        .expect("mtime");
    fs::write(&prog, &bad).expect("rewrite");
    fs::File::options()
        .write(true)
        .open(&prog)
        .and_then(|f| f.set_modified(mtime))
        .expect("restore mtime");

    let d = sb.start(&cfg);
    assert_denied(&run(&prog), "exec of the rewritten file");
    let s = wait_counter(&d, &cfg, "scans", 1, WAIT);
    let ctx = format!("{s}{}", d.context());
    assert_eq!(counter(&s, "persistent_hits"), 0, "{ctx}");
    assert!(counter(&s, "persistent_misses") >= 1, "{ctx}");
}

#[test]
fn a_corrupt_persistent_cache_is_moved_aside_and_rebuilt() {
    require_root!();
    let sb = Sandbox::with_ext4("persist-corrupt", IMAGE_MB);
    let cfg = config(&sb);
    let store = cfg.cache_dir.join("verdicts.redb");
    let aside = cfg.cache_dir.join("verdicts.redb.corrupt");
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 2] = [
        ("truncated", |p| {
            let len = fs::metadata(p).expect("store").len();
            fs::File::options()
                .write(true)
                .open(p)
                .and_then(|f| f.set_len(len / 3))
                .expect("truncate");
        }),
        ("garbage", |p| {
            let len = fs::metadata(p).expect("store").len().max(4096);
            let junk: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
            fs::write(p, junk).expect("garbage");
        }),
    ];
    for (what, damage) in damages {
        let prog = sb.mnt(what);
        write_marker_binary(&prog, what);
        judge_and_store(&sb, &cfg, &prog);
        let _ = fs::remove_file(&aside);
        damage(&store);

        let d = sb.start(&cfg);
        let ctx = d.context();
        let err = d.stderr_text();
        assert!(
            err.contains("persistent verdict cache is damaged")
                && err.contains(&store.display().to_string()),
            "{what}: no warning naming the store{ctx}"
        );
        assert!(
            aside.exists(),
            "{what}: the damaged store is kept aside{ctx}"
        );
        assert_ran(&run(&prog), &format!("{what}: exec after the rebuild"));
        let s = wait_counter(&d, &cfg, "persistent_writes", 1, WAIT);
        assert_eq!(counter(&s, "persistent_hits"), 0, "{what}: {s}{ctx}");
        stop(d);
    }
}

#[test]
fn files_on_a_tmpfs_are_never_stored() {
    require_root!();
    // A tmpfs's UUID is random per mount: a stored verdict could never be
    // found again, and a later tmpfs could reuse inode numbers.
    let sb = Sandbox::new("persist-tmpfs");
    let prog = sb.mnt("on-tmpfs");
    write_marker_binary(&prog, "on-tmpfs");
    let cfg = config(&sb);
    let d = sb.start(&cfg);
    assert_ran(&run(&prog), "exec on a tmpfs");
    wait_counter(&d, &cfg, "persistent_unkeyed", 1, WAIT);
    // Longer than the writer's batch window: anything offered is committed.
    std::thread::sleep(Duration::from_millis(1000));
    let s = stats(&d, &cfg.socket);
    let ctx = format!("{s}{}", d.context());
    assert_eq!(counter(&s, "persistent_writes"), 0, "{ctx}");
    assert_eq!(counter(&s, "persistent_misses"), 0, "{ctx}");
    assert_eq!(jstr(&s, "/persistent_cache/state"), "on", "{ctx}");
    assert_eq!(
        s.pointer("/persistent_cache/entries")
            .and_then(Value::as_u64),
        Some(0),
        "{ctx}"
    );
}
