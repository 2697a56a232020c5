//! Malformed content reaching a running daemon: one reload per kind of bad input
//! (hash lists, a YARA file that does not compile, a corrupt and a mismatched
//! model bundle, configs with wrong types, deep nesting or invalid UTF-8), each
//! while openers run. Every one is rejected with an error naming the file; the
//! running generation keeps answering.
//!
//! The parsers themselves are unit-tested and fuzzed in their crates
//! (policy, models; `fuzz/`); this is the daemon-level half: a bad input is a
//! refused reload, never a panic, a hang or a stall of the openers.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use super::*;

/// A copy of the built-in model bundle in `dir`, for corrupting.
fn bundle_copy(dir: &Path) {
    fs::create_dir_all(dir).expect("mkdir bundle");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/bundle");
    for e in fs::read_dir(&src).expect("read models/bundle").flatten() {
        fs::copy(e.path(), dir.join(e.file_name())).expect("copy bundle file");
    }
}

#[test]
fn every_kind_of_malformed_content_is_a_refused_reload_under_load() {
    require_root!();
    let sb = Sandbox::new("torture-inputs");
    let list = sb.host("bad.sha256");
    let bad = sentinel(&sb, "sentinel.dat", &list);
    write_file(&sb.mnt("clean.dat"), b"clean\n", 0o644);
    write_marker_binary(&sb.mnt("tool"), "inputs");
    let mut cfg = sb.config();
    cfg.hashes = vec![list.clone()];
    cfg.deadline_ms = 2000;
    let good = cfg.to_toml();
    let mut d = sb.start(&cfg);
    let limit = Duration::from_millis(cfg.deadline_ms) + MARGIN;

    // Each case: (what, the file the error must name, the config text to load).
    let mut cases: Vec<(&str, PathBuf, Vec<u8>)> = Vec::new();
    let with_lists = |extra: &Path| {
        let mut c = cfg.clone();
        c.hashes = vec![list.clone(), extra.to_path_buf()];
        c.to_toml().into_bytes()
    };
    let truncated = sb.host("truncated.sha256");
    write_file(&truncated, b"0123456789abcdef  cut short\n", 0o644);
    cases.push((
        "hash list with a truncated digest",
        truncated.clone(),
        with_lists(&truncated),
    ));
    let garbage = sb.host("garbage.hsb");
    let mut g = vec![0xffu8, 0xfe, 0x00, b'\n'];
    g.extend((0..4096u32).map(|i| (i * 7919 % 251) as u8));
    write_file(&garbage, &g, 0o644);
    cases.push((
        "binary garbage as .hsb",
        garbage.clone(),
        with_lists(&garbage),
    ));
    let huge = sb.host("huge.hsb");
    write_file(
        &huge,
        format!("{}:99999999999999999999999999:Huge.Size\n", "ab".repeat(32)).as_bytes(),
        0o644,
    );
    cases.push(("a size field beyond u64", huge.clone(), with_lists(&huge)));
    let hdb = sb.host("short.hdb");
    write_file(&hdb, format!("{}:68\n", "cd".repeat(16)).as_bytes(), 0o644);
    cases.push(("an .hdb line without a name", hdb.clone(), with_lists(&hdb)));
    let yara = sb.host("broken.yar");
    write_file(
        &yara,
        b"rule Broken { strings: $a = \"x\" condition: $b }\n",
        0o644,
    );
    let mut c = cfg.clone();
    c.rules = vec![yara.clone()];
    cases.push((
        "a YARA file that does not compile",
        yara.clone(),
        c.to_toml().into_bytes(),
    ));
    let corrupt = sb.host("bundle-corrupt");
    bundle_copy(&corrupt);
    let onnx = corrupt.join("elf-classifier.onnx");
    let mut bytes = fs::read(&onnx).expect("read onnx");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&onnx, bytes).expect("write onnx");
    let mut c = cfg.clone();
    c.model = corrupt.to_string_lossy().into_owned();
    cases.push((
        "a corrupt model bundle",
        corrupt.clone(),
        c.to_toml().into_bytes(),
    ));
    let mismatched = sb.host("bundle-mismatch");
    bundle_copy(&mismatched);
    let manifest = mismatched.join("manifest.json");
    let text = fs::read_to_string(&manifest).expect("read manifest");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    let width = json["feature_count"].as_u64().expect("feature_count");
    json["feature_count"] = serde_json::Value::from(width - 1);
    fs::write(&manifest, json.to_string()).expect("write manifest");
    let mut c = cfg.clone();
    c.model = mismatched.to_string_lossy().into_owned();
    cases.push((
        "a bundle for another feature width",
        mismatched.clone(),
        c.to_toml().into_bytes(),
    ));
    let config = d.config_path().to_path_buf();
    cases.push((
        "a config with a wrong type",
        config.clone(),
        good.replace("deadline_ms = 2000", "deadline_ms = \"2000\"")
            .into_bytes(),
    ));
    cases.push((
        "a config with deeply nested arrays",
        config.clone(),
        format!(
            "{good}\n[exclude]\npaths = {}{}\n",
            "[".repeat(5000),
            "]".repeat(5000)
        )
        .into_bytes(),
    ));
    cases.push(("a config that is not UTF-8", config.clone(), {
        let mut t = format!("{good}\n# ").into_bytes();
        t.extend_from_slice(b"\xff\xfe\n");
        t
    }));

    let ops = Arc::new(Openers::new());
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = ["clean.dat", "tool"]
        .iter()
        .map(|name| {
            let (ops, stop) = (Arc::clone(&ops), Arc::clone(&stop));
            let p = sb.mnt(name);
            let exec = *name == "tool";
            let name = name.to_string();
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let op = || if exec { exec_errno(&p) } else { open_errno(&p) };
                    let _ = ops.run(format!("{name}/{n}"), limit, op);
                    n += 1;
                }
            })
        })
        .collect();
    let mut failures = Vec::new();
    for (what, names, text) in &cases {
        write_file(&config, text, 0o644);
        let out = d.reload(&cfg.socket);
        let msg = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let named = names.to_string_lossy();
        if out.status.code() != Some(1) || !msg.contains(named.as_ref()) {
            failures.push(format!("{what}: {} naming {named}? {msg}", out.status));
        }
        if !d.is_running() {
            failures.push(format!("{what}: the daemon died"));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        let _ = l.join();
    }
    assert!(failures.is_empty(), "{failures:#?}{}", d.context());
    let ctx = || d.context();
    let results = ops.assert_all_answered(limit, &ctx);
    let (allowed, _, other) = tally(&results);
    assert!(
        other.is_empty() && allowed == results.len() && allowed > 0,
        "openers during the reloads: {other:?}{}",
        d.context()
    );
    assert_sentinel_denied(&d, &bad);
    let st = stats(&d, &cfg.socket);
    assert_eq!(counter(&st, "reloads_rejected"), cases.len() as u64, "{st}");
    assert_eq!(counter(&st, "reloads"), 0, "{st}");
}
