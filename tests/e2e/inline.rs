//! Code on an interpreter's command line (issue 16, item 5): `sh -c '…'` never
//! reaches a file, so it is scanned from the process's arguments once the exec
//! took effect. In enforce mode malicious code is stopped (the process and its
//! children killed); in audit mode it runs and is reported. The shell is a copy
//! of dash on the sandbox's tmpfs (the only filesystem the test daemon
//! watches); the code is "malicious" by a YARA rule on a canary string.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::fixture::*;
use crate::torture::{counter, stats};

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// A rule on `canary`; returns the daemon configuration using it and a copy of
/// dash as `sh` on the tmpfs.
fn setup(sb: &Sandbox, canary: &str, mode: &str) -> (Config, String) {
    let rule = sb.host("inline.yar");
    write_canary_rule(&rule, "e2e_inline", Some("Test.Inline"), canary);
    let sh = sb.mnt("bin/sh");
    write_file(
        &sh,
        &std::fs::read("/usr/bin/dash").expect("read dash"),
        0o755,
    );
    let mut cfg = sb.config();
    cfg.rules = vec![rule];
    cfg.mode = mode.into();
    (cfg, sh.to_string_lossy().into_owned())
}

/// `sh -c CODE` with a closed stdin.
fn sh_c(sh: &str, code: &str) -> Output {
    Command::new(sh)
        .args(["-c", code])
        .stdin(Stdio::null())
        .output()
        .expect("run sh -c")
}

/// Code that names the canary, waits, then leaves a file behind.
fn slow_code(canary: &str, out: &Path) -> String {
    format!(": {canary}; sleep 2; echo ran > {}", out.display())
}

#[test]
fn malicious_inline_code_is_killed_before_it_finishes() {
    require_root!();
    let sb = Sandbox::new("inline-enforce");
    // Assembled at run time so this source file never matches the rule.
    let canary = format!("vigil-{}-inline-canary", "e2e");
    let (cfg, sh) = setup(&sb, &canary, "enforce");
    let d = sb.start(&cfg);

    // Clean code runs as always.
    let out = sh_c(&sh, &format!("echo {MARKER}"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(MARKER),
        "clean inline code did not run: {out:?}{}",
        d.context()
    );

    let left = sb.mnt("left-behind");
    let out = sh_c(&sh, &slow_code(&canary, &left));
    let ev = d.wait_event("inline-code", EVENT_WAIT, |v| {
        jstr(v, "/event/action") == "inline-code"
    });
    let ctx = format!("event {ev}\nsh: {out:?}{}", d.context());
    assert_eq!(jstr(&ev, "/event/outcome"), "killed", "{ctx}");
    assert!(
        jstr(&ev, "/vigil/code").contains(&canary),
        "the code is not in the event: {ctx}"
    );
    assert!(ev.to_string().contains("Test.Inline"), "{ctx}");
    assert!(
        ev.pointer("/vigil/killed")
            .and_then(|k| k.as_array())
            .is_some_and(|k| !k.is_empty()),
        "{ctx}"
    );
    assert!(!out.status.success(), "the shell was not killed: {ctx}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !left.exists(),
        "the malicious code ran to its end (its child was not killed): {ctx}"
    );
    let st = stats(&d, &cfg.socket);
    // (The clean `echo` may have ended before its arguments were read.)
    assert!(counter(&st, "inline_scanned") >= 1, "{st}{ctx}");
    assert_eq!(counter(&st, "inline_killed"), 1, "{st}{ctx}");
}

#[test]
fn audit_mode_reports_inline_code_and_lets_it_run() {
    require_root!();
    let sb = Sandbox::new("inline-audit");
    let canary = format!("vigil-{}-inline-canary", "e2e");
    let (cfg, sh) = setup(&sb, &canary, "audit");
    let d = sb.start(&cfg);
    let left = sb.mnt("left-behind");
    let out = sh_c(&sh, &slow_code(&canary, &left));
    let ev = d.wait_event("inline-code", EVENT_WAIT, |v| {
        jstr(v, "/event/action") == "inline-code"
    });
    let ctx = format!("event {ev}\nsh: {out:?}{}", d.context());
    assert_eq!(jstr(&ev, "/event/outcome"), "allowed", "{ctx}");
    assert!(out.status.success(), "{ctx}");
    assert!(left.exists(), "audit mode stopped the code: {ctx}");
}
