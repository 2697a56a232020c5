//! Reload: `vigil reload` (control socket) and SIGHUP build a new generation;
//! a broken config is rejected with file, line and key, and the old one keeps
//! running; the new content applies to files allowed before.

use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::fixture::*;

const A: &[u8] = b"sample A: listed in the first generation\n";
const B: &[u8] = b"sample B: listed in the second generation\n";
const C: &[u8] = b"sample C: listed after SIGHUP\n";

fn out_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A config that is valid TOML but has an unknown key; returns it and the
/// 1-based line of that key.
fn broken(cfg: &Config) -> (String, usize) {
    let mut text = cfg.to_toml();
    text.push_str("\n[exclude]\nnot_a_key = true\n");
    let line = text.lines().count();
    assert!(text.lines().last().unwrap_or("").starts_with("not_a_key"));
    (text, line)
}

fn first_number(s: &str) -> Option<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .find(|t| !t.is_empty())
        .and_then(|t| t.parse().ok())
}

#[test]
fn reload_rejects_a_broken_config_and_applies_a_valid_one() {
    require_root!();
    let sb = Sandbox::new("reload");
    write_file(&sb.mnt("a.dat"), A, 0o644);
    write_file(&sb.mnt("b.dat"), B, 0o644);
    let list_a = sb.host("a.sha256");
    let list_b = sb.host("b.sha256");
    write_hash_list(&list_a, &[&sha256_hex(A)]);
    write_hash_list(&list_b, &[&sha256_hex(B)]);
    let mut cfg = sb.config();
    cfg.scan_on_open = "all".into();
    cfg.hashes = vec![list_a];
    let mut d = sb.start(&cfg);
    assert_denied(
        &open_ro(&sb.mnt("a.dat")),
        &format!("A before reload{}", d.context()),
    );

    // Broken config: rejected, named by file and line; the old one keeps running.
    let (text, line) = broken(&cfg);
    write_file(d.config_path(), text.as_bytes(), 0o644);
    let out = d.reload(&cfg.socket);
    let msg = out_text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "vigil reload of a broken config: {msg}{}",
        d.context()
    );
    let cfg_path = d.config_path().to_string_lossy().into_owned();
    assert!(
        msg.contains(&cfg_path),
        "error does not name {cfg_path}: {msg}"
    );
    assert!(
        msg.contains(&format!(":{line}")) || msg.contains(&format!("line {line}")),
        "error does not name line {line}: {msg}"
    );
    assert!(
        msg.contains("not_a_key"),
        "error does not name the key: {msg}"
    );
    assert!(
        d.is_running(),
        "daemon died on a rejected reload{}",
        d.context()
    );
    assert_denied(&open_ro(&sb.mnt("a.dat")), "A after a rejected reload");

    // Valid config listing B only.
    let mut cfg2 = cfg.clone();
    cfg2.hashes = vec![list_b];
    write_file(d.config_path(), cfg2.to_toml().as_bytes(), 0o644);
    let out = d.reload(&cfg.socket);
    let msg = out_text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "vigil reload of a valid config: {msg}{}",
        d.context()
    );
    let generation = first_number(&String::from_utf8_lossy(&out.stdout));
    assert!(
        generation.is_some(),
        "vigil reload printed no generation: {msg}"
    );
    assert_denied(
        &open_ro(&sb.mnt("b.dat")),
        &format!("B after reload{}", d.context()),
    );
    let a = open_ro(&sb.mnt("a.dat"));
    assert!(
        a.is_ok(),
        "A (no longer listed) after reload: {a:?}{}",
        d.context()
    );
    let ev = d.wait_event("blocked open of b.dat", Duration::from_secs(10), |v| {
        is_event(v, "blocked", "b.dat")
    });
    assert_eq!(
        ev.pointer("/vigil/generation").and_then(|v| v.as_u64()),
        generation,
        "event generation vs the one vigil reload printed ({msg}): {ev}"
    );
}

#[test]
fn reload_applies_to_files_allowed_before() {
    require_root!();
    let sb = Sandbox::new("reload-warm");
    write_file(&sb.mnt("b.dat"), B, 0o644);
    let bin = sb.mnt("later-listed-tool");
    let bin_sha = write_marker_binary(&bin, "later-listed-tool");
    let empty = sb.hash_list("empty.sha256", &[]);
    let list_b = sb.hash_list("b.sha256", &[&sha256_hex(B), &bin_sha]);
    let mut cfg = sb.config();
    cfg.scan_on_open = "all".into();
    cfg.hashes = vec![empty];
    let d = sb.start(&cfg);

    // Allowed (and cached, perhaps ignore-marked) under the first generation.
    for _ in 0..2 {
        assert!(std::fs::read(sb.mnt("b.dat")).is_ok(), "B before reload");
        assert_ran(&run(&bin), "tool before reload");
    }
    let mut cfg2 = cfg.clone();
    cfg2.hashes = vec![list_b];
    write_file(d.config_path(), cfg2.to_toml().as_bytes(), 0o644);
    let out = d.reload(&cfg.socket);
    assert_eq!(
        out.status.code(),
        Some(0),
        "vigil reload: {}{}",
        out_text(&out),
        d.context()
    );
    assert_denied(
        &open_ro(&sb.mnt("b.dat")),
        &format!(
            "B, allowed before, after the reload that lists it{}",
            d.context()
        ),
    );
    assert_denied(
        &run(&bin),
        &format!(
            "exec of a tool allowed before, after the reload that lists it{}",
            d.context()
        ),
    );
}

/// Polls with fresh copies of `content` (new inodes: no cache or mark can
/// answer for them) until an open is denied, or `limit` passes.
fn denied_within(sb: &Sandbox, content: &[u8], limit: Duration) -> bool {
    let t0 = Instant::now();
    let mut i = 0;
    while t0.elapsed() < limit {
        let p = sb.mnt(format!("poll-{i}.dat"));
        write_file(&p, content, 0o644);
        if open_ro(&p).is_err() {
            return true;
        }
        i += 1;
        thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn sighup_reloads_and_keeps_the_old_config_on_error() {
    require_root!();
    let sb = Sandbox::new("sighup");
    let list_a = sb.host("a.sha256");
    let list_c = sb.host("c.sha256");
    write_hash_list(&list_a, &[&sha256_hex(A)]);
    write_hash_list(&list_c, &[&sha256_hex(C)]);
    write_file(&sb.mnt("c.dat"), C, 0o644);
    let mut cfg = sb.config();
    cfg.scan_on_open = "all".into();
    cfg.hashes = vec![list_a];
    let mut d = sb.start(&cfg);

    let mut cfg2 = cfg.clone();
    cfg2.hashes = vec![list_c];
    write_file(d.config_path(), cfg2.to_toml().as_bytes(), 0o644);
    d.signal(Signal::SIGHUP);
    assert!(
        denied_within(&sb, C, Duration::from_secs(10)),
        "C not denied within 10 s of SIGHUP with a config listing it{}",
        d.context()
    );
    assert_denied(&open_ro(&sb.mnt("c.dat")), "c.dat after SIGHUP");

    // A broken config on SIGHUP: logged, the daemon keeps the last good one.
    let (text, _line) = broken(&cfg2);
    write_file(d.config_path(), text.as_bytes(), 0o644);
    d.signal(Signal::SIGHUP);
    let t0 = Instant::now();
    while !d.stderr_text().contains("not_a_key") && t0.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        d.stderr_text().contains("not_a_key"),
        "the rejected SIGHUP reload was not logged{}",
        d.context()
    );
    assert!(
        d.is_running(),
        "daemon died on a broken SIGHUP reload{}",
        d.context()
    );
    let p = sb.mnt("after-bad-hup.dat");
    write_file(&p, C, 0o644);
    assert_denied(&open_ro(&p), "C after a rejected SIGHUP reload");
}

#[test]
fn reload_with_a_broken_rule_file_keeps_the_running_rules() {
    require_root!();
    let sb = Sandbox::new("reload-rules");
    let rules = sb.host("rules");
    write_test_rule(&rules.join("good.yar"));
    let marked = format!("{RULE_MARKER}\n");
    let mut cfg = sb.config();
    cfg.scan_on_open = "all".into();
    cfg.rules = vec![rules.clone()];
    let mut d = sb.start(&cfg);
    let p = sb.mnt("marked-1.txt");
    write_file(&p, marked.as_bytes(), 0o644);
    assert_denied(
        &open_ro(&p),
        &format!("rule match before reload{}", d.context()),
    );

    let broken = rules.join("broken.yar");
    write_file(
        &broken,
        b"rule Broken {\n  condition:\n    $undefined\n}\n",
        0o644,
    );
    let out = d.reload(&cfg.socket);
    let msg = out_text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "reload with a broken rule file: {msg}{}",
        d.context()
    );
    assert!(
        msg.contains(&*broken.to_string_lossy()),
        "error does not name {}: {msg}",
        broken.display()
    );
    assert!(
        d.is_running(),
        "daemon died on a rejected reload{}",
        d.context()
    );
    let p = sb.mnt("marked-2.txt");
    write_file(&p, marked.as_bytes(), 0o644);
    assert_denied(&open_ro(&p), "rule match after a rejected reload");
}

/// The daemon's rules are compiled by a child running the daemon's own build
/// (`/proc/self/exe`), also at a reload after the binary's file was replaced:
/// the new rule applies and nothing was compiled in the daemon itself.
#[test]
fn reload_compiles_rules_in_a_child_of_the_running_build_after_an_upgrade() {
    require_root!();
    let sb = Sandbox::new("reload-rule-child");
    let rules = sb.host("rules");
    write_test_rule(&rules.join("good.yar"));
    let mut cfg = sb.config();
    cfg.scan_on_open = "all".into();
    cfg.rules = vec![rules.clone()];
    // Named vigil: the fixture finds the daemon by its command name.
    std::fs::create_dir_all(sb.host("bin")).unwrap();
    let copy = sb.host("bin/vigil");
    let d = sb.start_from_copy(&cfg, &copy);
    let compiled = "rules compiled by a child process";
    let failed = "compiling child process failed";
    let log = d.stderr_text();
    assert!(log.contains(compiled), "at start{}", d.context());
    assert!(!log.contains(failed), "at start{}", d.context());

    // An upgrade replaces the file (a new inode); the running daemon's
    // /proc/self/exe still names the old one.
    std::fs::remove_file(&copy).unwrap();
    write_file(&copy, b"#!/bin/sh\nexit 3\n", 0o755);
    let second = "vigil-e2e-rule-after-upgrade-41c9";
    write_file(
        &rules.join("second.yar"),
        format!("rule Second {{ strings: $m = \"{second}\" condition: $m }}\n").as_bytes(),
        0o644,
    );
    let out = d.reload(&cfg.socket);
    assert_eq!(
        out.status.code(),
        Some(0),
        "reload: {}{}",
        out_text(&out),
        d.context()
    );
    let log = d.stderr_text();
    assert_eq!(
        log.matches(compiled).count(),
        2,
        "after the reload{}",
        d.context()
    );
    assert!(!log.contains(failed), "after the reload{}", d.context());
    let p = sb.mnt("second.txt");
    write_file(&p, format!("{second}\n").as_bytes(), 0o644);
    assert_denied(&open_ro(&p), &format!("the reloaded rule{}", d.context()));
    let p = sb.mnt("first.txt");
    write_file(&p, format!("{RULE_MARKER}\n").as_bytes(), 0o644);
    assert_denied(&open_ro(&p), &format!("the first rule{}", d.context()));
}
