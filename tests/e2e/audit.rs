//! Audit mode: detections are allowed and logged as "audited" events.

use std::time::Duration;

use crate::fixture::*;

#[test]
fn audit_mode_allows_known_bad_exec_and_logs_it() {
    require_root!();
    let sb = Sandbox::new("audit");
    let bad = sb.mnt("audited-tool");
    let bad_sha = write_marker_binary(&bad, "audited-tool");
    let bad_data = b"audit mode: listed data\n";
    write_file(&sb.mnt("audited.dat"), bad_data, 0o644);
    let list = sb.hash_list("bad.sha256", &[&bad_sha, &sha256_hex(bad_data)]);
    let mut cfg = sb.config();
    cfg.mode = "audit".into();
    cfg.scan_on_open = "all".into();
    cfg.hashes = vec![list];
    let d = sb.start(&cfg);

    assert_ran(
        &run(&bad),
        &format!("audit mode: exec of a listed binary{}", d.context()),
    );
    let ev = d.wait_event("audited exec", Duration::from_secs(10), |v| {
        is_event(v, "audited", "audited-tool") && jstr(v, "/event/type") == "exec"
    });
    let ctx = format!("event: {ev}{}", d.context());
    assert_eq!(jstr(&ev, "/event/outcome"), "allowed", "{ctx}");
    assert_eq!(jstr(&ev, "/vigil/mode"), "audit", "{ctx}");
    assert_eq!(jstr(&ev, "/vigil/verdict"), "malicious", "{ctx}");
    assert_eq!(jstr(&ev, "/file/hash/sha256"), bad_sha, "{ctx}");

    let got = std::fs::read(sb.mnt("audited.dat")).expect("audit mode: open of listed data");
    assert_eq!(got, bad_data);
    d.wait_event("audited open", Duration::from_secs(10), |v| {
        is_event(v, "audited", "audited.dat") && jstr(v, "/event/type") == "open"
    });
    assert_no_action(&d, "blocked", "audit mode");
}
