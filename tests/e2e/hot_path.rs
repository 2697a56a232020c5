//! The hot path: known-bad execs and opens are denied before the process can
//! run or read the file; clean files open and run; the content sniff decides
//! which opens are scanned under `scan_on_open = "executable"`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use crate::fixture::*;
use crate::torture::{counter, stats, wait_counter};

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Asserts the stable fields of a "blocked" event for `name` with `sha256`.
#[track_caller]
fn assert_blocked_event(d: &Daemon, name: &str, kind: &str, sha256: &str, size: usize) {
    let ev = d.wait_event(&format!("blocked {kind} of {name}"), EVENT_WAIT, |v| {
        is_event(v, "blocked", name)
    });
    let ctx = format!("event: {ev}{}", d.context());
    assert_eq!(jstr(&ev, "/event/type"), kind, "{ctx}");
    assert_eq!(jstr(&ev, "/event/outcome"), "denied", "{ctx}");
    assert_eq!(jstr(&ev, "/event/kind"), "alert", "{ctx}");
    assert_eq!(jstr(&ev, "/file/hash/sha256"), sha256, "{ctx}");
    assert_eq!(
        ev.pointer("/file/size").and_then(|v| v.as_u64()),
        Some(size as u64),
        "{ctx}"
    );
    assert_eq!(jstr(&ev, "/vigil/verdict"), "malicious", "{ctx}");
    assert_eq!(jstr(&ev, "/vigil/mode"), "enforce", "{ctx}");
    assert!(
        ev.pointer("/process/pid")
            .and_then(|v| v.as_u64())
            .is_some_and(|p| p > 0),
        "process.pid: {ctx}"
    );
    assert!(!jstr(&ev, "/@timestamp").is_empty(), "@timestamp: {ctx}");
    let reasons = ev
        .pointer("/vigil/reasons")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    assert!(
        reasons.iter().any(|r| jstr(r, "/stage") == "hash"),
        "no hash-stage reason: {ctx}"
    );
}

#[test]
fn exec_of_known_bad_binary_is_denied_and_file_untouched() {
    require_root!();
    let sb = Sandbox::new("exec-bad");
    let bad = sb.mnt("bad-exec");
    let bad_sha = write_marker_binary(&bad, "bad-exec");
    let bad_len = marker_variant("bad-exec").len();
    let good = sb.mnt("good-exec");
    write_marker_binary(&good, "good-exec");
    let list = sb.hash_list("bad.sha256", &[&bad_sha]);
    let mut cfg = sb.config();
    // Opens are not scanned: only the exec is, and the file can be re-read
    // below while the daemon runs.
    cfg.scan_on_open = "none".into();
    cfg.hashes = vec![list];
    let d = sb.start(&cfg);

    let res = run(&bad);
    assert_denied(&res, &format!("exec of the listed binary{}", d.context()));
    // Untouched: still there, same content, same mode.
    assert_eq!(sha256_file(&bad).expect("re-read bad-exec"), bad_sha);
    let mode = fs::metadata(&bad)
        .expect("stat bad-exec")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "mode of the denied binary changed");
    // A second attempt is denied too (cached verdict).
    assert_denied(&run(&bad), "second exec of the listed binary");
    // The daemon still runs clean programs.
    assert_ran(&run(&good), "exec of a clean binary");
    assert_blocked_event(&d, "bad-exec", "exec", &bad_sha, bad_len);
    assert!(
        !d.events()
            .iter()
            .any(|v| is_event(v, "blocked", "good-exec")),
        "clean binary reported as blocked{}",
        d.context()
    );
}

#[test]
fn open_of_known_bad_file_is_denied_when_scanning_all_opens() {
    require_root!();
    let sb = Sandbox::new("open-bad");
    let bad_data = b"vigil e2e known-bad data file\n".repeat(10);
    let bad_sha = sha256_hex(&bad_data);
    write_file(&sb.mnt("bad.dat"), &bad_data, 0o644);
    write_file(&sb.mnt("good.dat"), b"nothing to see here\n", 0o644);
    let list = sb.hash_list("bad.sha256", &[&bad_sha]);
    let mut cfg = sb.config();
    cfg.scan_on_open = "all".into();
    cfg.hashes = vec![list];
    let d = sb.start(&cfg);

    assert_denied(
        &open_ro(&sb.mnt("bad.dat")),
        &format!("open of the listed data file{}", d.context()),
    );
    let mut s = String::new();
    open_ro(&sb.mnt("good.dat"))
        .and_then(|mut f| f.read_to_string(&mut s))
        .expect("open and read of a clean file");
    assert_eq!(s, "nothing to see here\n");
    assert_blocked_event(&d, "bad.dat", "open", &bad_sha, bad_data.len());
}

#[test]
fn open_of_known_bad_elf_is_denied_under_executable() {
    require_root!();
    let sb = Sandbox::new("open-elf");
    let bad = sb.listed_binary("bad-elf");
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    cfg.hashes = vec![bad.list];
    let d = sb.start(&cfg);

    assert_denied(
        &open_ro(&bad.path),
        &format!(
            "open of a listed ELF under scan_on_open=executable{}",
            d.context()
        ),
    );
    assert_blocked_event(
        &d,
        "bad-elf",
        "open",
        &bad.sha256,
        marker_variant("bad-elf").len(),
    );
}

#[test]
fn clean_files_open_and_run() {
    require_root!();
    let sb = Sandbox::new("clean");
    let bin = sb.mnt("bin/clean-tool");
    let bin_sha = write_marker_binary(&bin, "clean-tool");
    write_file(&sb.mnt("docs/readme.txt"), b"hello\n", 0o644);
    let list = sb.host("other.sha256");
    // Some unrelated hash, so the list is not empty.
    write_hash_list(&list, &[&sha256_hex(b"not any file here")]);
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    cfg.hashes = vec![list];
    let d = sb.start(&cfg);

    for i in 0..3 {
        assert_ran(
            &run(&bin),
            &format!("exec #{i} of a clean binary{}", d.context()),
        );
    }
    let mut data = Vec::new();
    open_ro(&bin)
        .and_then(|mut f| f.read_to_end(&mut data))
        .expect("open+read of a clean ELF");
    assert_eq!(sha256_hex(&data), bin_sha);
    let text = fs::read_to_string(sb.mnt("docs/readme.txt")).expect("read a clean text file");
    assert_eq!(text, "hello\n");
    assert_no_action(&d, "blocked", "clean files");
}

#[test]
fn listed_text_file_is_not_scanned_on_open_under_executable() {
    require_root!();
    // Documents the sniff: under "executable", only ELF and #! content is
    // scanned on open, so a listed plain-text file opens; a listed ELF and a
    // listed #! script on the same mount are denied (proof the daemon works).
    let sb = Sandbox::new("sniff");
    let text = b"just some listed text, not a program\n";
    let script = b"#!/bin/sh\necho vigil-e2e-script\n";
    // Mode 0644 for all three: the sniff goes by content, not by execute bits.
    write_file(&sb.mnt("notes.txt"), text, 0o644);
    write_file(&sb.mnt("tool.sh"), script, 0o644);
    let elf = marker_variant("listed-elf");
    write_file(&sb.mnt("listed-elf"), &elf, 0o644);
    let elf_sha = sha256_hex(&elf);
    let list = sb.hash_list(
        "listed.sha256",
        &[&sha256_hex(text), &sha256_hex(script), &elf_sha],
    );
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    cfg.hashes = vec![list];
    let d = sb.start(&cfg);

    let got = fs::read(sb.mnt("notes.txt"));
    assert_eq!(
        got.as_deref().ok(),
        Some(&text[..]),
        "listed text file should open unscanned under executable: {got:?}{}",
        d.context()
    );
    assert_denied(&open_ro(&sb.mnt("listed-elf")), "open of a listed ELF");
    assert_denied(&open_ro(&sb.mnt("tool.sh")), "open of a listed #! script");
    // `sh tool.sh` reaches the daemon as an open of tool.sh.
    let out = std::process::Command::new("sh")
        .arg(sb.mnt("tool.sh"))
        .output()
        .expect("run sh");
    assert!(
        !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("vigil-e2e-script"),
        "sh tool.sh ran a listed script: {out:?}"
    );
    assert!(
        !d.events()
            .iter()
            .any(|v| is_event(v, "blocked", "notes.txt")),
        "notes.txt was scanned{}",
        d.context()
    );
    // Judged malicious once (an exec is always scanned), the text file is
    // still a data file to a plain open: the cached verdict does not widen
    // what the policy scans.
    write_file(&sb.mnt("run-notes"), text, 0o755);
    assert_denied(&run(&sb.mnt("run-notes")), "exec of the listed text file");
    let got = fs::read(sb.mnt("run-notes"));
    assert_eq!(
        got.as_deref().ok(),
        Some(&text[..]),
        "a data open after the denied exec: {got:?}{}",
        d.context()
    );
}

/// `count` distinct files of binary data (not ELF, not #!, not text: no
/// interpreter question), mode 0644, under `data/` of the sandbox's mount.
fn data_files(sb: &Sandbox, count: u64) -> Vec<std::path::PathBuf> {
    (0..count)
        .map(|i| {
            let path = sb.mnt(format!("data/{i}.bin"));
            let data: Vec<u8> = (0..256u32).map(|b| (b as u8) ^ (i as u8)).collect();
            write_file(&path, &data, 0o644);
            path
        })
        .collect()
}

/// Issue 18 item 4: with few events waiting, the reader answers a data open
/// under "executable" itself (no worker hand-off), counts it, and its ignore
/// mark is still placed, so the next open raises no event at all. An ELF open
/// on the same mount still goes to a worker and is scanned: a listed one is
/// denied.
#[test]
fn data_opens_are_answered_by_the_reader_and_still_marked() {
    require_root!();
    const FILES: u64 = 12;
    let sb = Sandbox::new("reader-data");
    let names = data_files(&sb, FILES);
    let bad = sb.listed_binary("bad-elf");
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    cfg.hashes = vec![bad.list];
    let d = sb.start(&cfg);

    let before = stats(&d, &cfg.socket);
    // One at a time: never more than one event waits, so the reader answers.
    for path in &names {
        let got = std::fs::read(path);
        assert!(got.is_ok(), "open of a data file: {got:?}{}", d.context());
    }
    let added = counter(&before, "ignore_marks_added") + FILES;
    let after = wait_counter(
        &d,
        &cfg,
        "ignore_marks_added",
        added,
        Duration::from_secs(10),
    );
    let delta = |name: &str| counter(&after, name) - counter(&before, name);
    assert_eq!(delta("events_open"), FILES, "{after}");
    assert_eq!(delta("reader_allowed_not_executable"), FILES, "{after}");
    assert_eq!(delta("allowed_not_executable"), FILES, "{after}");
    assert_eq!(delta("scans"), 0, "a data file was scanned: {after}");
    for path in &names {
        let ino = std::fs::metadata(path).expect("stat").ino();
        assert_ne!(
            ignored_mask(d.pid(), ino).unwrap_or(0),
            0,
            "no ignore mark on {} (inode {ino}){}",
            path.display(),
            d.context()
        );
    }
    // Marked: the kernel no longer asks about these files.
    for path in &names {
        assert!(std::fs::read(path).is_ok(), "second open{}", d.context());
    }
    let again = stats(&d, &cfg.socket);
    assert_eq!(
        counter(&again, "events_open"),
        counter(&after, "events_open"),
        "a marked data file raised an event: {again}"
    );
    // An executable is not the reader's to allow: scanned, and denied.
    assert_denied(&open_ro(&bad.path), "open of a listed ELF under executable");
    let last = stats(&d, &cfg.socket);
    assert_eq!(
        counter(&last, "reader_allowed_not_executable"),
        counter(&after, "reader_allowed_not_executable"),
        "{last}"
    );
    assert!(counter(&last, "scans") > counter(&after, "scans"), "{last}");
    assert_blocked_event(
        &d,
        "bad-elf",
        "open",
        &bad.sha256,
        marker_variant("bad-elf").len(),
    );
}

/// Issue 18 item 4: during a burst (a read of the group returns several
/// events: several openers at once) a data file's ignore mark waits for its
/// second open, since most files of a burst are opened once; opened alone
/// later, it is marked and raises no more events.
#[test]
fn data_files_opened_in_a_burst_are_marked_at_their_second_open() {
    require_root!();
    const FILES: u64 = 8;
    let sb = Sandbox::new("burst-data");
    let names = data_files(&sb, FILES);
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    let d = sb.start(&cfg);
    let before = stats(&d, &cfg.socket);

    // The daemon stopped, the openers' events queue in the kernel; let go,
    // its first read returns them together: a burst.
    d.signal(nix::sys::signal::Signal::SIGSTOP);
    let openers: Vec<_> = names
        .iter()
        .cloned()
        .map(|path| std::thread::spawn(move || fs::read(path).map(|_| ())))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    d.signal(nix::sys::signal::Signal::SIGCONT);
    for opener in openers {
        let got = opener.join().expect("opener thread");
        assert!(got.is_ok(), "open in a burst: {got:?}{}", d.context());
    }
    let burst = wait_counter(
        &d,
        &cfg,
        "allowed_not_executable",
        counter(&before, "allowed_not_executable") + FILES,
        EVENT_WAIT,
    );
    let delta = |from: &serde_json::Value, to: &serde_json::Value, name: &str| {
        counter(to, name) - counter(from, name)
    };
    assert_eq!(delta(&before, &burst, "events_open"), FILES, "{burst}");
    assert_eq!(
        delta(&before, &burst, "ignore_marks_deferred"),
        FILES,
        "{burst}"
    );
    // Nothing was queued for the mark thread: give it time to prove it.
    std::thread::sleep(Duration::from_millis(100));
    let settled = stats(&d, &cfg.socket);
    assert_eq!(
        delta(&before, &settled, "ignore_marks_added"),
        0,
        "{settled}"
    );
    for path in &names {
        let ino = fs::metadata(path).expect("stat").ino();
        assert_eq!(
            ignored_mask(d.pid(), ino).unwrap_or(0),
            0,
            "{} (inode {ino}) marked at its first open in a burst{}",
            path.display(),
            d.context()
        );
    }

    // The burst over, one at a time: each file's second open marks it.
    std::thread::sleep(Duration::from_millis(100));
    for path in &names {
        let got = fs::read(path);
        assert!(got.is_ok(), "second open: {got:?}{}", d.context());
    }
    let marked = wait_counter(
        &d,
        &cfg,
        "ignore_marks_added",
        counter(&before, "ignore_marks_added") + FILES,
        EVENT_WAIT,
    );
    assert_eq!(
        delta(&burst, &marked, "ignore_marks_deferred"),
        0,
        "{marked}"
    );
    for path in &names {
        assert!(fs::read(path).is_ok(), "third open{}", d.context());
    }
    let last = stats(&d, &cfg.socket);
    assert_eq!(
        delta(&before, &last, "events_open"),
        2 * FILES,
        "a marked data file raised an event: {last}"
    );
    assert_eq!(delta(&before, &last, "scans"), 0, "{last}");
}

#[test]
fn a_marked_file_leaves_the_verdict_cache_unless_its_mark_misses_execs() {
    require_root!();
    // Every open scanned: each data file's verdict is cached, then dropped
    // once its ignore mark (which covers all the file can raise) lands. A
    // network client's copy gets a mark for opens only (its execs are
    // watched for pipelines), so its verdict must stay for the exec.
    const FILES: u64 = 10;
    let sb = Sandbox::new("forget-marked");
    let names = data_files(&sb, FILES);
    let client = sb.mnt("bin/curl");
    write_marker_binary(&client, "forget-curl");
    let mut cfg = sb.config();
    cfg.scan_on_open = "all".into();
    let d = sb.start(&cfg);

    let before = stats(&d, &cfg.socket);
    for path in names.iter().chain([&client]) {
        let got = std::fs::read(path);
        assert!(
            got.is_ok(),
            "open of {}: {got:?}{}",
            path.display(),
            d.context()
        );
    }
    let after = wait_counter(
        &d,
        &cfg,
        "cache_forgotten_marked",
        counter(&before, "cache_forgotten_marked") + FILES,
        Duration::from_secs(10),
    );
    let delta = |name: &str| counter(&after, name) - counter(&before, name);
    assert_eq!(delta("scans"), FILES + 1, "{after}");
    let marked = wait_counter(
        &d,
        &cfg,
        "ignore_marks_added",
        counter(&before, "ignore_marks_added") + FILES + 1,
        Duration::from_secs(10),
    );
    assert_eq!(
        counter(&marked, "cache_forgotten_marked"),
        counter(&before, "cache_forgotten_marked") + FILES,
        "only the data files' verdicts go: {marked}"
    );
    let entries = |v: &serde_json::Value| v.pointer("/cache_entries").and_then(|e| e.as_u64());
    assert_eq!(
        entries(&marked),
        entries(&before).map(|n| n + 1),
        "the client's verdict stays, the data files' go: {marked}"
    );
    // Still answered by the kernel: no event, no scan.
    for path in &names {
        assert!(std::fs::read(path).is_ok(), "second open{}", d.context());
    }
    let again = stats(&d, &cfg.socket);
    assert_eq!(
        counter(&again, "events_open"),
        counter(&marked, "events_open"),
        "{again}"
    );
    assert_eq!(
        counter(&again, "scans"),
        counter(&marked, "scans"),
        "{again}"
    );
}

#[test]
fn exec_of_clean_binary_is_scanned_once() {
    require_root!();
    // exec raises FAN_OPEN_EXEC_PERM then FAN_OPEN_PERM for the same file: the
    // second must hit the verdict cache. Every scan stalls STALL; a double scan
    // would take 2 x STALL. A liveness bound, not a performance assertion.
    const STALL_MS: u64 = 1500;
    let sb = Sandbox::new("once");
    let bin = sb.mnt("once-tool");
    write_marker_binary(&bin, "once-tool");
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    cfg.deadline_ms = 30_000;
    let d = sb.start_with_env(&cfg, &[("VIGIL_TEST_STALL_MS", &STALL_MS.to_string())]);

    let t0 = Instant::now();
    assert_ran(&run(&bin), "first exec");
    let first = t0.elapsed();
    assert!(
        first >= Duration::from_millis(STALL_MS - 100),
        "first exec took {first:?}: was it scanned at all? (VIGIL_TEST_STALL_MS={STALL_MS}){}",
        d.context()
    );
    assert!(
        first < Duration::from_millis(2 * STALL_MS - 200),
        "first exec took {first:?}: scanned twice (exec + open)?{}",
        d.context()
    );
    let t1 = Instant::now();
    assert_ran(&run(&bin), "second exec");
    let second = t1.elapsed();
    assert!(
        second < Duration::from_millis(STALL_MS - 200),
        "second exec of an unchanged file took {second:?}: rescanned?{}",
        d.context()
    );
}

#[test]
fn open_matching_a_yara_rule_is_denied() {
    require_root!();
    let sb = Sandbox::new("yara");
    let rules = sb.host("rules");
    write_test_rule(&rules.join("e2e.yar"));
    let data = format!("some text\n{RULE_MARKER}\nmore text\n");
    write_file(&sb.mnt("ruled.txt"), data.as_bytes(), 0o644);
    write_file(&sb.mnt("plain.txt"), b"some text, no marker\n", 0o644);
    let mut cfg = sb.config();
    cfg.scan_on_open = "all".into();
    cfg.rules = vec![rules];
    let d = sb.start(&cfg);

    assert_denied(
        &open_ro(&sb.mnt("ruled.txt")),
        &format!("open of a file matching a YARA rule{}", d.context()),
    );
    assert!(
        fs::read(sb.mnt("plain.txt")).is_ok(),
        "a file without the marker{}",
        d.context()
    );
    let ev = d.wait_event("blocked open of ruled.txt", EVENT_WAIT, |v| {
        is_event(v, "blocked", "ruled.txt")
    });
    let reasons = ev
        .pointer("/vigil/reasons")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    assert!(
        reasons
            .iter()
            .any(|r| jstr(r, "/stage") == "rules" && jstr(r, "/id").ends_with("VigilE2E")),
        "no rules-stage reason naming VigilE2E: {ev}"
    );
}

/// The kernel checks an allowed exec twice: the exec, then an open of the same
/// file. The worker that judges a clean, root-owned program marks the file's
/// opens before it answers the exec, so the second check raises no event (one
/// round trip less per first exec, and none left to wait for a busy worker).
/// Without ignore marks each exec still raises its open: the control.
#[test]
fn a_clean_exec_raises_no_open_event_after_it() {
    require_root!();
    const PROGRAMS: u64 = 6;
    for marks in [true, false] {
        let tag = format!("exec-open-{}", if marks { "marked" } else { "unmarked" });
        let sb = Sandbox::new(&tag);
        let programs = sb.clean_programs("bin", &tag, PROGRAMS as usize);
        let mut cfg = sb.config();
        cfg.scan_on_open = "executable".into();
        let text =
            cfg.to_toml()
                .replacen("[scan]\n", &format!("[scan]\nignore_marks = {marks}\n"), 1);
        let d = sb.start_with_text(&cfg, &text, &[]);

        let before = stats(&d, &cfg.socket);
        for path in &programs {
            assert_ran(
                &run(path),
                &format!("first exec of {}{}", path.display(), d.context()),
            );
        }
        let after = stats(&d, &cfg.socket);
        let delta = |name: &str| counter(&after, name) - counter(&before, name);
        assert_eq!(delta("events_exec"), PROGRAMS, "{after}");
        assert_eq!(delta("scans"), PROGRAMS, "{after}");
        let (opens, early) = if marks { (0, PROGRAMS) } else { (PROGRAMS, 0) };
        assert_eq!(
            delta("events_open"),
            opens,
            "ignore_marks = {marks}: the execs' open checks{}",
            d.context()
        );
        assert_eq!(delta("ignore_marks_before_answer"), early, "{after}");
    }
}
