//! Allowlists, end to end: `vigil allow` on a file a hash list denies lets its
//! next exec run with an event naming the allow entry, `--remove` denies it
//! again; `vigil quarantine restore --allow` brings a quarantined file back and
//! it runs; a malformed allow file is refused with its file and line while the
//! running lists stay; ClamAV `.sfp` and `.fp` lists (written here) are read; a
//! non-root `vigil allow` is refused; exec rules still deny an allowed file;
//! `vigil scan --explain` and `vigil check-config` report allowlist hits and
//! conflicts.
//!
//! Every allow directory is in the sandbox's host temp dir (`Config::allow`).

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use md5::{Digest as _, Md5};
use serde_json::Value;

use crate::fixture::*;

const EVENT_WAIT: Duration = Duration::from_secs(15);
/// An unprivileged user for the refusal checks.
const USER: (u32, u32) = (4242, 4343);

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// `vigil allow <args…> --config <cfg>` as `user` (root when `None`).
fn allow(d: &Daemon, user: Option<(u32, u32)>, args: &[&OsStr]) -> Output {
    let mut all: Vec<&OsStr> = vec![os("allow")];
    all.extend_from_slice(args);
    all.push(os("--config"));
    all.push(d.config_path().as_os_str());
    d.cli(user, &all)
}

/// `vigil <args…> --config <config>` without a daemon (scan, check-config).
fn vigil(config: &Path, args: &[&OsStr]) -> Output {
    Command::new("timeout")
        .args(["-k", "5", "60", VIGIL])
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run vigil")
}

/// Who `vigil allow` says made a change: root, or the login behind sudo (the
/// suite runs as `sudo scripts/test.sh`).
fn who() -> String {
    match std::env::var("SUDO_USER") {
        Ok(user) if !user.is_empty() && user != "root" => format!("{user} (sudo, as root)"),
        _ => "root".to_owned(),
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn allowlist_changed<'a>(events: &'a [Value], change: &str, sha: &str) -> Option<&'a Value> {
    events.iter().find(|v| {
        jstr(v, "/event/action") == "allowlist-changed"
            && jstr(v, "/vigil/allowlist/change") == change
            && jstr(v, "/file/hash/sha256") == sha
    })
}

#[test]
fn allow_lets_a_hash_listed_exec_run_and_remove_denies_it_again() {
    require_root!();
    let sb = Sandbox::new("allow-flip");
    let tool = sb.mnt("vendor-tool");
    let sha = write_marker_binary(&tool, "allow-flip");
    let blocked = sb.host("blocked.sha256");
    write_hash_list(&blocked, &[&sha]);
    let mut cfg = sb.config();
    cfg.hashes = vec![blocked.clone()];
    // Opens are scanned too: the CLI's own read of the file is denied, so
    // `vigil allow PATH` must get the hash from the daemon.
    cfg.scan_on_open = "all".into();
    let d = sb.start(&cfg);
    assert_denied(&run(&tool), &format!("hash-listed exec{}", d.context()));

    // Not root: refused, nothing written, still denied.
    let out = allow(&d, Some(USER), &[tool.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "non-root allow: {}", show(&out));
    assert!(show(&out).contains("permission denied"), "{}", show(&out));
    let out = allow(&d, Some(USER), &[os("--remove"), os(&sha)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "non-root remove: {}",
        show(&out)
    );
    assert!(
        !sb.host("allow.d").exists(),
        "a refused allow wrote something"
    );
    assert_denied(&run(&tool), "exec after a refused allow");

    let out = allow(
        &d,
        None,
        &[tool.as_os_str(), os("--comment"), os("vendor tool 2.1")],
    );
    assert!(
        out.status.success(),
        "vigil allow: {}{}",
        show(&out),
        d.context()
    );
    let local = sb.host("allow.d/local.sha256");
    let entry = format!("{}:3", local.display());
    assert!(
        stdout(&out).contains(&format!("allowed: {sha}")) && stdout(&out).contains(&entry),
        "{}",
        show(&out)
    );
    assert!(stdout(&out).contains("reloaded:"), "{}", show(&out));
    let text = fs::read_to_string(&local).expect("local.sha256");
    let line = text.lines().nth(2).unwrap_or("");
    assert!(
        line.starts_with(&format!("{sha}  vendor tool 2.1 (added by {} at ", who())),
        "{text}"
    );

    // The administrator's word wins: the next exec runs, the event names the entry.
    assert_ran(&run(&tool), &format!("allowed exec{}", d.context()));
    let ev = d.wait_event("allowlisted", EVENT_WAIT, |v| {
        is_event(v, "allowlisted", "vendor-tool")
    });
    assert_eq!(jstr(&ev, "/vigil/allowlist/entry"), entry, "{ev}");
    assert!(
        jstr(&ev, "/vigil/allowlist/name")
            .starts_with(&format!("vendor tool 2.1 (added by {}", who())),
        "{ev}"
    );
    assert_eq!(jstr(&ev, "/event/outcome"), "allowed", "{ev}");
    assert_eq!(jstr(&ev, "/file/hash/sha256"), sha, "{ev}");
    let events = d.events();
    let added = allowlist_changed(&events, "added", &sha)
        .unwrap_or_else(|| panic!("no allowlist-changed event{}", d.context()));
    assert_eq!(jstr(added, "/event/outcome"), "success", "{added}");
    assert_eq!(jstr(added, "/vigil/allowlist/entry"), entry, "{added}");
    assert_eq!(jstr(added, "/user/name"), who(), "{added}");
    // Blocked and allowed: a warning at load naming both entries.
    let warning = format!(
        "is both blocked (vigil-e2e-sample-0 ({}:1)) and allowed (vendor tool 2.1",
        blocked.display()
    );
    assert!(d.stderr_text().contains(&warning), "{}", d.context());

    // Listed (anyone may list), and counted by check-config with the conflict.
    let out = allow(&d, Some(USER), &[os("--list")]);
    assert!(out.status.success(), "--list: {}", show(&out));
    assert!(
        stdout(&out).contains(&format!("{sha}  {entry}  vendor tool 2.1")),
        "{}",
        show(&out)
    );
    let out = vigil(d.config_path(), &[os("check-config")]);
    assert!(out.status.success(), "check-config: {}", show(&out));
    assert!(
        stdout(&out).contains("allowlist: 1 entries in 1 files, 1 also on a block list"),
        "{}",
        show(&out)
    );
    assert!(stdout(&out).contains(&warning), "{}", show(&out));

    // Allowing it again changes nothing.
    let out = allow(&d, None, &[os(&sha)]);
    assert!(out.status.success(), "allow again: {}", show(&out));
    assert!(stdout(&out).contains("already allowed"), "{}", show(&out));

    // Removed: denied again (the reload dropped the cached verdict and the
    // kernel ignore mark).
    let out = allow(&d, None, &[os("--remove"), os(&sha)]);
    assert!(
        out.status.success(),
        "--remove: {}{}",
        show(&out),
        d.context()
    );
    assert!(
        stdout(&out).contains(&format!("removed: {sha} from {entry}")),
        "{}",
        show(&out)
    );
    assert!(!fs::read_to_string(&local).expect("local").contains(&sha));
    assert_denied(&run(&tool), &format!("exec after --remove{}", d.context()));
    let ev = d.wait_event("allowlist-changed removed", EVENT_WAIT, |v| {
        jstr(v, "/event/action") == "allowlist-changed"
            && jstr(v, "/vigil/allowlist/change") == "removed"
    });
    assert_eq!(jstr(&ev, "/file/hash/sha256"), sha, "{ev}");
    let out = allow(&d, None, &[os("--remove"), os(&sha)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "second --remove: {}",
        show(&out)
    );
    assert!(
        show(&out).contains("not on the allowlist"),
        "{}",
        show(&out)
    );
}

#[test]
fn malformed_allow_file_is_refused_and_the_running_lists_stay() {
    require_root!();
    let sb = Sandbox::new("allow-bad");
    let (a, b) = (sb.mnt("a-tool"), sb.mnt("b-tool"));
    let sha_a = write_marker_binary(&a, "allow-bad-a");
    let sha_b = write_marker_binary(&b, "allow-bad-b");
    let blocked = sb.host("blocked.sha256");
    write_hash_list(&blocked, &[&sha_a, &sha_b]);
    let allow_dir = sb.host("allow.d");
    write_file(
        &allow_dir.join("site.sha256"),
        format!("# site list\n{sha_a}  a-tool\n").as_bytes(),
        0o644,
    );
    let mut cfg = sb.config();
    cfg.hashes = vec![blocked];
    let d = sb.start(&cfg);
    assert_ran(&run(&a), &format!("allowed a{}", d.context()));
    assert_denied(&run(&b), "b");

    // b added in a file with a bad line 3: the reload is refused naming it.
    let bad = allow_dir.join("more.sha256");
    write_file(
        &bad,
        format!("{sha_b}  b-tool\n\n{}  cut short\n", &sha_b[..60]).as_bytes(),
        0o644,
    );
    let out = d.reload(&cfg.socket);
    assert_eq!(out.status.code(), Some(1), "reload: {}", show(&out));
    let want = format!(
        "{}:3: expected 64 hex digits for a SHA-256, found 60 characters",
        bad.display()
    );
    assert!(show(&out).contains(&want), "{}", show(&out));
    // The running lists stay: a still runs, b is still denied.
    assert_ran(
        &run(&a),
        &format!("a after the rejected reload{}", d.context()),
    );
    assert_denied(&run(&b), "b after the rejected reload");
    let out = vigil(d.config_path(), &[os("check-config")]);
    assert_eq!(out.status.code(), Some(2), "check-config: {}", show(&out));
    assert!(show(&out).contains(&want), "{}", show(&out));
    // `vigil allow` will not add to lists that do not load.
    let out = allow(&d, None, &[os(&sha_b)]);
    assert!(
        !out.status.success(),
        "allow with a bad list: {}",
        show(&out)
    );
    assert!(show(&out).contains(&want), "{}", show(&out));
}

#[test]
fn clamav_sfp_and_fp_lists_are_read() {
    require_root!();
    let sb = Sandbox::new("allow-clamav");
    let (sfp_tool, fp_tool, sized) = (sb.mnt("sfp-tool"), sb.mnt("fp-tool"), sb.mnt("sized"));
    let sha_sfp = write_marker_binary(&sfp_tool, "allow-sfp");
    let sha_fp = write_marker_binary(&fp_tool, "allow-fp");
    let sha_sized = write_marker_binary(&sized, "allow-sized");
    let blocked = sb.host("blocked.sha256");
    write_hash_list(&blocked, &[&sha_sfp, &sha_fp, &sha_sized]);
    let len = |p: &Path| fs::metadata(p).expect("stat").len();
    let md5 = hex::encode(Md5::digest(fs::read(&fp_tool).expect("read")));
    let allow_dir = sb.host("allow.d");
    // ClamAV's formats: HASH:SIZE:NAME[:FLEVEL]; `sized` is listed with a wrong
    // size, so it stays denied.
    write_file(
        &allow_dir.join("daily.sfp"),
        format!(
            "{sha_sfp}:{}:Vendor.Sfp.Entry:73\n{sha_sized}:{}:Wrong.Size\n",
            len(&sfp_tool),
            len(&sized) + 1
        )
        .as_bytes(),
        0o644,
    );
    write_file(
        &allow_dir.join("daily.fp"),
        format!("{md5}:*:Vendor.Fp.Entry\n").as_bytes(),
        0o644,
    );
    let mut cfg = sb.config();
    cfg.hashes = vec![blocked];
    let d = sb.start(&cfg);
    assert_ran(&run(&sfp_tool), &format!(".sfp entry{}", d.context()));
    assert_ran(&run(&fp_tool), &format!(".fp entry{}", d.context()));
    assert_denied(&run(&sized), "an .sfp entry of another size");
    for (name, list, entry) in [
        ("sfp-tool", "daily.sfp", "Vendor.Sfp.Entry"),
        ("fp-tool", "daily.fp", "Vendor.Fp.Entry"),
    ] {
        let ev = d.wait_event(name, EVENT_WAIT, |v| is_event(v, "allowlisted", name));
        assert_eq!(jstr(&ev, "/vigil/allowlist/name"), entry, "{ev}");
        assert_eq!(
            jstr(&ev, "/vigil/allowlist/entry"),
            format!("{}:1", allow_dir.join(list).display()),
            "{ev}"
        );
    }
}

#[test]
fn restore_allow_brings_back_a_quarantined_file_that_then_runs() {
    require_root!();
    let sb = Sandbox::new("allow-restore");
    let bad = sb.mnt("sub/false-alarm");
    let sha = write_marker_binary(&bad, "allow-restore");
    let blocked = sb.host("blocked.sha256");
    write_hash_list(&blocked, &[&sha]);
    let mut cfg = sb.config();
    cfg.hashes = vec![blocked];
    cfg.on_malicious = "quarantine".into();
    cfg.scan_on_open = "none".into();
    let d = sb.start_in_namespace(&cfg, &[]);
    assert_denied(&run(&bad), &format!("known-bad exec{}", d.context()));
    let ev = d.wait_event("quarantined", EVENT_WAIT, |v| {
        is_event(v, "quarantined", "false-alarm") && jstr(v, "/event/outcome") == "success"
    });
    let id = jstr(&ev, "/vigil/quarantine/id").to_owned();
    assert!(!bad.exists());

    let restore = |user: Option<(u32, u32)>| {
        d.cli(
            user,
            &[
                os("quarantine"),
                os("restore"),
                os(&id),
                os("--allow"),
                os("--config"),
                d.config_path().as_os_str(),
            ],
        )
    };
    let out = restore(Some(USER));
    assert_eq!(
        out.status.code(),
        Some(1),
        "non-root restore --allow: {}",
        show(&out)
    );
    assert!(!bad.exists());

    let out = restore(None);
    assert!(
        out.status.success(),
        "restore --allow: {}{}",
        show(&out),
        d.context()
    );
    assert!(
        stdout(&out).contains(&format!("allowed: {sha}")),
        "{}",
        show(&out)
    );
    assert!(stdout(&out).contains("restored: "), "{}", show(&out));
    assert_eq!(sha256_file(&bad).expect("restored file"), sha);
    assert_ran(&run(&bad), &format!("restored and allowed{}", d.context()));
    let ev = d.wait_event("allowlisted", EVENT_WAIT, |v| {
        is_event(v, "allowlisted", "false-alarm")
    });
    assert!(
        jstr(&ev, "/vigil/allowlist/name")
            .starts_with(&format!("restored from quarantine item {id} (")),
        "{ev}"
    );
    let events = d.events();
    assert!(
        allowlist_changed(&events, "added", &sha).is_some(),
        "{}",
        d.context()
    );
    assert!(
        events
            .iter()
            .any(|v| is_event(v, "restored", "false-alarm")),
        "{}",
        d.context()
    );
}

#[test]
fn exec_rules_still_deny_an_allowed_file() {
    require_root!();
    let sb = Sandbox::new("allow-rules");
    let tool = sb.mnt("tools/allowed-tool");
    let sha = write_marker_binary(&tool, "allow-rules");
    write_file(
        &sb.host("allow.d/local.sha256"),
        format!("{sha}  allowed tool\n").as_bytes(),
        0o644,
    );
    let cfg = sb.config();
    let text = format!(
        "{}\n[[policy.rules]]\nname = \"no-tools\"\npath = [{:?}]\naction = \"deny\"\n",
        cfg.to_toml(),
        sb.ns_path("tools/**").to_string_lossy()
    );
    let d = sb.start_in_namespace_with_text(&cfg, &text);
    assert_denied(
        &run(&tool),
        &format!("allowed file under a deny rule{}", d.context()),
    );
    let ev = d.wait_event("blocked by rule", EVENT_WAIT, |v| {
        is_event(v, "blocked", "allowed-tool")
    });
    assert_eq!(jstr(&ev, "/vigil/rule/name"), "no-tools", "{ev}");
}

/// No daemon: the on-demand scanner and check-config read the same lists.
#[test]
fn scan_explain_and_check_config_show_allowlist_hits() {
    let dir = TempDir::new("allow-explain");
    let file = dir.join("tool.bin");
    let data = b"an in-house tool the hash list names by mistake\n";
    write_file(&file, data, 0o644);
    let sha = sha256_hex(data);
    let blocked = dir.join("blocked.sha256");
    write_hash_list(&blocked, &[&sha]);
    let local = dir.join("allow.d/local.sha256");
    write_file(&local, format!("{sha}  in-house tool\n").as_bytes(), 0o644);
    let config = dir.join("vigil.toml");
    let toml = format!(
        "[content]\nhashes = [{:?}]\nallow = [{:?}]\nmodel = \"none\"\n",
        blocked.to_string_lossy(),
        dir.join("allow.d").to_string_lossy()
    );
    write_file(&config, toml.as_bytes(), 0o644);

    let out = vigil(&config, &[os("scan"), os("--explain"), file.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "scan --explain: {}", show(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{}: OK (allowlisted)", file.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "allowlist: in-house tool ({}:1) -- every detection stage skipped",
            local.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "allowlist: overrides the block list entry vigil-e2e-sample-0 ({}:1)",
            blocked.display()
        )),
        "{text}"
    );
    let out = vigil(&config, &[os("scan"), os("--json"), file.as_os_str()]);
    let v: Value = serde_json::from_str(stdout(&out).trim()).expect("scan --json");
    assert_eq!(jstr(&v, "/verdict"), "clean", "{v}");
    assert_eq!(
        jstr(&v, "/allowlist/entry"),
        format!("{}:1", local.display()),
        "{v}"
    );

    let out = vigil(&config, &[os("check-config")]);
    assert!(out.status.success(), "check-config: {}", show(&out));
    let text = stdout(&out);
    assert!(
        text.contains("allowlist: 1 entries in 1 files, 1 also on a block list"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "warning: sha256 {sha} is both blocked (vigil-e2e-sample-0 ({}:1)) and allowed (in-house tool ({}:1)); the allowlist wins",
            blocked.display(),
            local.display()
        )),
        "{text}"
    );

    // Without the allow entry the same file is a detection.
    fs::remove_file(&local).expect("rm");
    let out = vigil(&config, &[os("scan"), file.as_os_str()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "scan without the entry: {}",
        show(&out)
    );
}
