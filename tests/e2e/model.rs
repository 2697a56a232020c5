//! The model stage: the built-in bundle is the default and scores ELF files in
//! `vigil scan` and in the daemon; its verdict is driven by the thresholds
//! (`decision.model_threshold` detects, `decision.model_block_threshold`
//! denies on the model alone); a bad bundle is a clear error.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::fixture::*;

fn vigil(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", "120", VIGIL])
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn vigil");
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(data).expect("write stdin");
    }
    child.wait_with_output().expect("wait vigil")
}

/// The name of the built-in bundle's enabled classifier (the trainer picks the
/// model kind, so the tests read it from the committed manifest).
fn shipped_classifier() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/bundle/manifest.json");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read the bundle manifest"))
            .expect("manifest JSON");
    manifest["models"]
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["kind"] == "classifier" && m["enabled"] == true)
        .and_then(|m| m["name"].as_str())
        .expect("an enabled classifier")
        .to_string()
}

/// The built-in classifier's score for `file`, through `vigil features` and
/// `vigil model score` (tract), as the daemon computes it.
fn classifier_score(file: &Path) -> f64 {
    let rows = vigil(&["features", &file.to_string_lossy()], None);
    assert!(rows.status.success(), "vigil features: {}", show(&rows));
    let scored = vigil(&["model", "score", "-"], Some(&rows.stdout));
    assert!(
        scored.status.success(),
        "vigil model score: {}",
        show(&scored)
    );
    let text = String::from_utf8_lossy(&scored.stdout);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let name = shipped_classifier();
    let col = header
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("no {name} column: {text}"));
    let row: Vec<&str> = lines.next().expect("one row").split(',').collect();
    row[col].parse().expect("score")
}

#[test]
fn scan_runs_the_builtin_model_by_default() {
    let dir = TempDir::new("model-scan");
    let bin = dir.join("tool");
    write_marker_binary(&bin, "model-scan");
    // A config that does not mention the model: the built-in bundle is the default.
    let cfg = dir.join("vigil.toml");
    std::fs::write(&cfg, "[decision]\nmode = \"enforce\"\n").expect("write config");
    let out = vigil(
        &[
            "scan",
            "--explain",
            "--json",
            "--config",
            &cfg.to_string_lossy(),
            &bin.to_string_lossy(),
        ],
        None,
    );
    let line: Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .next()
            .expect("one JSON line"),
    )
    .unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(&out)));
    let reasons = line
        .pointer("/reasons")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    let model = reasons
        .iter()
        .find(|r| jstr(r, "/stage") == "model")
        .unwrap_or_else(|| panic!("no model finding under --explain: {}", show(&out)));
    let name = shipped_classifier();
    assert_eq!(
        jstr(model, "/id"),
        format!("model.{name}"),
        "{}",
        show(&out)
    );
    assert!(
        jstr(model, "/detail").starts_with("score "),
        "{}",
        show(&out)
    );

    let info = vigil(&["model", "info"], None);
    assert!(info.status.success(), "{}", show(&info));
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains(&name) && text.contains("classifier"),
        "{text}"
    );
}

#[test]
fn a_tampered_bundle_is_refused_with_its_name() {
    let dir = TempDir::new("model-bad");
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).expect("mkdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/bundle");
    for f in ["manifest.json", "elf-classifier.onnx", "elf-anomaly.onnx"] {
        std::fs::copy(src.join(f), bundle.join(f)).expect("copy bundle file");
    }
    let cfg = dir.join("vigil.toml");
    std::fs::write(
        &cfg,
        format!("[content]\nmodel = \"{}\"\n", bundle.display()),
    )
    .expect("write config");
    let ok = vigil(&["check-config", "--config", &cfg.to_string_lossy()], None);
    assert!(ok.status.success(), "{}", show(&ok));
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains(&shipped_classifier()),
        "{}",
        show(&ok)
    );

    let onnx = bundle.join("elf-classifier.onnx");
    let mut bytes = std::fs::read(&onnx).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&onnx, bytes).expect("write");
    let bad = vigil(&["check-config", "--config", &cfg.to_string_lossy()], None);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains(&bundle.display().to_string()) && err.contains("SHA-256"),
        "{}",
        show(&bad)
    );
}

#[test]
fn daemon_denies_an_exec_when_the_model_score_reaches_the_threshold() {
    require_root!();
    let sb = Sandbox::new("model-exec");
    let bin = sb.mnt("tool");
    let sha = write_marker_binary(&bin, "model-exec");
    let score = classifier_score(&bin);
    assert!(score > 0.0 && score < 1.0, "score {score}");

    // Threshold just above the score: allowed, no finding.
    let mut cfg = sb.config();
    cfg.scan_on_open = "none".into();
    cfg.model = "builtin".into();
    cfg.model_threshold = Some(((score + 1.0) / 2.0).min(1.0));
    {
        let d = sb.start(&cfg);
        assert_ran(
            &run(&bin),
            &format!("exec below the model threshold{}", d.context()),
        );
        assert_no_action(&d, "blocked", "score below the threshold");
    }

    // Detected (threshold at half the score) but under the block threshold:
    // suspicious, logged and allowed.
    let sb = Sandbox::new("model-exec-flag");
    let bin = sb.mnt("tool");
    assert_eq!(write_marker_binary(&bin, "model-exec"), sha);
    let mut cfg = sb.config();
    cfg.scan_on_open = "none".into();
    cfg.model = "builtin".into();
    cfg.model_threshold = Some(score / 2.0);
    cfg.model_block_threshold = Some(((score + 1.0) / 2.0).min(1.0));
    {
        let d = sb.start(&cfg);
        assert_ran(
            &run(&bin),
            &format!("exec below the block threshold{}", d.context()),
        );
        let ev = d.wait_event("audited exec", Duration::from_secs(10), |v| {
            is_event(v, "audited", "tool")
        });
        assert_eq!(jstr(&ev, "/vigil/verdict"), "suspicious", "{ev}");
        assert_no_action(&d, "blocked", "score below the block threshold");
    }

    // Block threshold at half the score (default weight 1): the model alone
    // denies.
    let sb = Sandbox::new("model-exec-deny");
    let bin = sb.mnt("tool");
    assert_eq!(write_marker_binary(&bin, "model-exec"), sha);
    let mut cfg = sb.config();
    cfg.scan_on_open = "none".into();
    cfg.model = "builtin".into();
    cfg.model_threshold = Some(score / 2.0);
    cfg.model_block_threshold = Some(score / 2.0);
    let d = sb.start(&cfg);
    assert_denied(
        &run(&bin),
        &format!("exec above the model threshold{}", d.context()),
    );
    let ev = d.wait_event("blocked exec", Duration::from_secs(10), |v| {
        is_event(v, "blocked", "tool")
    });
    let reasons = ev
        .pointer("/vigil/reasons")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    assert!(
        reasons.iter().any(|r| jstr(r, "/stage") == "model"
            && jstr(r, "/id") == format!("model.{}", shipped_classifier())),
        "no model reason in {ev}{}",
        d.context()
    );
}

/// `vigil model attack` on benign programs standing in for samples (no malware
/// in fixtures), under thresholds low enough that the model "detects" them.
fn attack(dir: &TempDir, tar: &Path, detect: f64, rows: Option<&Path>) -> Output {
    let cfg = dir.join(format!("attack-{detect}.toml"));
    std::fs::write(
        &cfg,
        format!("[decision]\nmodel_threshold = {detect}\nmodel_block_threshold = {detect}\n"),
    )
    .expect("write config");
    let mut args = vec![
        "model".to_owned(),
        "attack".to_owned(),
        "--config".to_owned(),
        cfg.to_string_lossy().into_owned(),
        "--tar".to_owned(),
        tar.to_string_lossy().into_owned(),
        "--donor".to_owned(),
        "/usr/bin/ssh".to_owned(),
        "--donor".to_owned(),
        "/bin/sh".to_owned(),
        "--queries".to_owned(),
        "30".to_owned(),
    ];
    if let Some(r) = rows {
        args.extend(["--emit-rows".to_owned(), r.to_string_lossy().into_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = vigil(&args, None);
    assert!(out.status.success(), "{}", show(&out));
    out
}

/// The CSV rows of an attack, by column name, `seconds` left out (timing).
fn attack_rows(out: &Output) -> Vec<std::collections::BTreeMap<String, String>> {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .filter(|(h, _)| **h != "seconds")
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn attack_searches_within_its_budget_reproducibly_and_emits_evasive_rows() {
    if !Path::new("/usr/bin/ssh").exists() {
        eprintln!("skipped: no /usr/bin/ssh to borrow from");
        return;
    }
    let dir = TempDir::new("model-attack");
    let tar = dir.join("samples.tar");
    // Programs the model scores at its floor (no step moves them) and files
    // of every Debian system it scores just above it (the loader, libaudit,
    // libc, zlib, dpkg: steps move some of those, which ones depends on the
    // bundle), so some score moves whatever bundle is shipped.
    let names: Vec<&str> = [
        "usr/bin/true",
        "usr/bin/ls",
        "usr/bin/cat",
        "usr/bin/env",
        "usr/bin/id",
        "usr/bin/sleep",
        "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "usr/lib/x86_64-linux-gnu/libaudit.so.1",
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        "usr/lib/x86_64-linux-gnu/libz.so.1",
        "usr/bin/dpkg",
    ]
    .into_iter()
    .filter(|p| Path::new("/").join(p).exists())
    .collect();
    let status = Command::new("tar")
        .arg("chf")
        .arg(&tar)
        .args(["-C", "/"])
        .args(&names)
        .status()
        .expect("run tar");
    assert!(status.success(), "tar cf");

    // Everything "detected": each search spends queries trying to go lower.
    let first = attack(&dir, &tar, 1e-9, None);
    let rows = attack_rows(&first);
    assert_eq!(rows.len(), names.len(), "{}", show(&first));
    assert_eq!(
        rows,
        attack_rows(&attack(&dir, &tar, 1e-9, None)),
        "same seed, same result"
    );
    let score = |r: &std::collections::BTreeMap<String, String>, k: &str| -> f64 {
        r[k].parse().unwrap_or_else(|_| panic!("{k}: {r:?}"))
    };
    for r in &rows {
        let queries: u32 = r["queries"].parse().expect("queries");
        assert!((1..=30).contains(&queries), "{r:?}");
        assert!(score(r, "final_score") <= score(r, "start_score"), "{r:?}");
        assert_ne!(r["evaded_detect"], "yes", "nothing gets below 1e-9: {r:?}");
        assert_eq!(
            r["sequence"].is_empty(),
            score(r, "final_score") == score(r, "start_score"),
            "{r:?}"
        );
    }
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains(&format!("attacked {} ELF samples", names.len())),
        "{stderr}"
    );

    // A detection threshold between one sample's start and final scores: the
    // same search (same seed) now crosses it, says so, and emits that variant.
    let moved = rows
        .iter()
        .find(|r| score(r, "final_score") < score(r, "start_score"))
        .unwrap_or_else(|| panic!("no score moved in 30 queries: {}", show(&first)));
    let t = (score(moved, "final_score") + score(moved, "start_score")) / 2.0;
    let emitted = dir.join("rows.csv");
    let second = attack(&dir, &tar, t, Some(&emitted));
    let again = attack_rows(&second);
    let crossed = again
        .iter()
        .find(|r| r["sha256"] == moved["sha256"])
        .expect("the sample again");
    assert_eq!(crossed["evaded_detect"], "yes", "{}", show(&second));
    assert!(score(crossed, "final_score") < t);
    let text = std::fs::read_to_string(&emitted).expect("rows written");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(
        &header[..7],
        [
            "sha256", "name", "schema", "parsed", "label", "mutation", "origin"
        ]
    );
    let evasive: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(
        evasive.len(),
        again.iter().filter(|r| r["evaded_detect"] == "yes").count()
    );
    let row = evasive
        .iter()
        .find(|r| r[6] == moved["sha256"])
        .expect("a row for the crossed sample");
    assert_eq!(
        (row.len(), row[4], row[5]),
        (header.len(), "1", crossed["sequence"].as_str())
    );
}
