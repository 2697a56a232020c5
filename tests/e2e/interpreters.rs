//! Scripts that the kernel never execs (issue 16, item 1): `bash ./x` and `sh <
//! ./x` of a file without a `#!` line, `python3 ./x.py`, `. ./x`. Under the
//! default `scan_on_open = "executable"` such a file is data to everyone except
//! the interpreter that reads it: its opens by a program in `watch.interpreters`
//! are scanned as a script, whatever the first bytes; a `cat` of the same file
//! stays an unscanned data open.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::fixture::*;

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Runs `program args…` with a closed stdin and returns its output.
fn run_with(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

/// Asserts that an interpreter was refused its script: a failing status and
/// "Operation not permitted" (EPERM) on stderr, not the script's output.
#[track_caller]
fn assert_refused(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success()
            && stderr.contains("Operation not permitted")
            && !stdout.contains(MARKER),
        "{what}: expected EPERM, got {:?}, stdout {stdout:?}, stderr {stderr:?}",
        out.status
    );
}

/// Asserts that a script ran and printed [`MARKER`].
#[track_caller]
fn assert_printed(out: &Output, what: &str) {
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(MARKER),
        "{what}: {:?}, stdout {:?}, stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The test config with `scan_on_open = "executable"` (the shipped default) and
/// `extra` appended to its `[watch]` table.
fn executable_only(cfg: &Config, extra: &str) -> String {
    let text = cfg.to_toml();
    let from = "scan_on_open = \"executable\"\n";
    assert!(text.contains(from), "fixture TOML changed: {text}");
    text.replace(from, &format!("{from}{extra}"))
}

#[test]
fn listed_scripts_without_a_shebang_are_denied_to_every_interpreter_route() {
    require_root!();
    let sb = Sandbox::new("interp");
    let shell = sb.mnt("dropper");
    write_file(
        &shell,
        format!("echo {MARKER} listed-shell\n").as_bytes(),
        0o644,
    );
    let python = sb.mnt("dropper.py");
    write_file(
        &python,
        format!("print('{MARKER} listed-python')\n").as_bytes(),
        0o644,
    );
    let benign = sb.mnt("hello");
    write_file(&benign, format!("echo {MARKER}\n").as_bytes(), 0o644);
    let hashes = [
        sha256_file(&shell).expect("hash"),
        sha256_file(&python).expect("hash"),
    ];
    let list = sb.hash_list("scripts.sha256", &[&hashes[0], &hashes[1]]);
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    cfg.hashes = vec![list];
    let d = sb.start_with_text(&cfg, &executable_only(&cfg, ""), &[]);
    let s = shell.to_string_lossy().into_owned();
    let p = python.to_string_lossy().into_owned();

    assert_printed(
        &run_with("bash", &[&benign.to_string_lossy()]),
        &format!("`bash hello`, a clean script without #!{}", d.context()),
    );
    for (program, args, what) in [
        ("bash", vec![s.as_str()], "bash ./dropper"),
        ("sh", vec![s.as_str()], "sh ./dropper"),
        ("sh", vec!["-c", &format!("sh < {s}")], "sh < ./dropper"),
        ("bash", vec!["-c", &format!(". {s}")], ". ./dropper"),
        ("python3", vec![p.as_str()], "python3 ./dropper.py"),
    ] {
        assert_refused(
            &run_with(program, &args),
            &format!("`{what}`{}", d.context()),
        );
    }
    // A data open by a program that is not an interpreter is not scanned: copying
    // or reading a known-bad script still works. (After it, this root-owned file
    // has an ignore mark until it changes: see docs/failure-modes.md, Coverage.)
    let cat = run_with("cat", &[&s]);
    assert!(
        cat.status.success() && String::from_utf8_lossy(&cat.stdout).contains(MARKER),
        "`cat` of a listed script was refused: {cat:?}{}",
        d.context()
    );
    let ev = d.wait_event("blocked interpreter open", EVENT_WAIT, |v| {
        is_event(v, "blocked", "dropper.py")
    });
    let ctx = format!("event: {ev}{}", d.context());
    assert_eq!(jstr(&ev, "/event/type"), "open", "{ctx}");
    assert!(
        jstr(&ev, "/process/executable").contains("python3"),
        "the event does not name the interpreter: {ctx}"
    );
    let stats = crate::torture::stats(&d, &cfg.socket);
    assert!(
        crate::torture::counter(&stats, "interpreter_opens") >= 5,
        "interpreter opens not counted: {stats}{}",
        d.context()
    );
}

#[test]
fn a_reverse_shell_without_a_shebang_is_denied_by_the_script_heuristics() {
    require_root!();
    let sb = Sandbox::new("interp-heur");
    // Points at loopback port 9 (discard): harmless even if it ever ran.
    let bad = sb.mnt("revshell");
    write_file(
        &bad,
        format!("bash -i >& /dev/{}/127.0.0.1/9 0>&1\n", "tcp").as_bytes(),
        0o644,
    );
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    let d = sb.start_with_text(&cfg, &executable_only(&cfg, ""), &[]);

    assert_refused(
        &run_with("bash", &[&bad.to_string_lossy()]),
        &format!("`bash revshell`{}", d.context()),
    );
    let ev = d.wait_event("blocked by heuristics", EVENT_WAIT, |v| {
        is_event(v, "blocked", "revshell")
    });
    assert!(
        ev.to_string().contains("script.reverse_shell"),
        "heuristic id missing: {ev}{}",
        d.context()
    );
}

#[test]
fn an_empty_interpreter_list_turns_it_off() {
    require_root!();
    let sb = Sandbox::new("interp-off");
    let script = sb.mnt("dropper");
    write_file(&script, format!("echo {MARKER}\n").as_bytes(), 0o644);
    let list = sb.hash_list(
        "script.sha256",
        &[&sha256_file(&script).expect("hash script")],
    );
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    cfg.hashes = vec![list];
    let d = sb.start_with_text(&cfg, &executable_only(&cfg, "interpreters = []\n"), &[]);

    assert_printed(
        &run_with("bash", &[&script.to_string_lossy()]),
        &format!("`bash dropper` with watch.interpreters = []{}", d.context()),
    );
}

/// The dynamic loader run by hand (`ld.so ./bad`) opens the program as a
/// file, not an exec: the open of ELF content is scanned under the default
/// `scan_on_open = "executable"`, so a listed binary is refused this way too,
/// and a clean one runs.
#[test]
fn a_listed_binary_run_through_the_dynamic_loader_is_denied() {
    require_root!();
    let loader = "/lib64/ld-linux-x86-64.so.2";
    assert!(
        std::path::Path::new(loader).exists(),
        "{loader} is missing: this test runs on x86-64"
    );
    let sb = Sandbox::new("loader");
    let bad = sb.listed_binary("via-loader");
    let good = sb.mnt("clean-via-loader");
    write_marker_binary(&good, "clean-via-loader");
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    cfg.hashes = vec![bad.list.clone()];
    let d = sb.start_with_text(&cfg, &executable_only(&cfg, ""), &[]);
    assert_printed(
        &run_with(loader, &[&good.to_string_lossy()]),
        &format!("`ld.so ./clean`{}", d.context()),
    );
    assert_refused(
        &run_with(loader, &[&bad.path.to_string_lossy()]),
        &format!("`ld.so ./listed`{}", d.context()),
    );
}
