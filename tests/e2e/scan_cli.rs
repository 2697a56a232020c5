//! `vigil scan`: exit codes (0 clean, 1 found, 2 error), `--json` lines,
//! recursion, hash list formats and errors naming file and line. No root and
//! no fanotify: plain temp dirs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::fixture::*;

const BAD: &[u8] = b"vigil e2e: the known-bad sample of the scan tests\n";

fn scan(config: &Path, args: &[&Path], json: bool) -> Output {
    scan_with(config, args, if json { &["--json"] } else { &[] })
}

/// `vigil scan` with extra `flags` (`--json`, `--explain`) under `timeout`.
fn scan_with(config: &Path, args: &[&Path], flags: &[&str]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", "60", VIGIL, "scan", "--config"])
        .arg(config)
        .args(flags);
    cmd.args(args)
        .stdin(Stdio::null())
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run vigil scan")
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

/// The JSON line of the file whose path ends with `name`.
fn line_for(lines: &[Value], name: &str, out: &Output) -> Value {
    lines
        .iter()
        .find(|v| jstr(v, "/path").ends_with(name))
        .unwrap_or_else(|| panic!("no line for {name}: {}", show(out)))
        .clone()
}

/// A temp dir with a config whose `content.hashes` is `lists`.
fn setup(tag: &str, lists: &[&Path]) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let cfg = config_in(&dir, lists);
    (dir, cfg)
}

/// Writes `<dir>/vigil.toml` with `content.hashes = lists`.
fn config_in(dir: &TempDir, lists: &[&Path]) -> PathBuf {
    let cfg = dir.join("vigil.toml");
    let items: Vec<String> = lists
        .iter()
        .map(|p| format!("{:?}", p.to_string_lossy()))
        .collect();
    write_file(
        &cfg,
        format!(
            "[content]\nhashes = [{}]\nbuiltin = true\n",
            items.join(", ")
        )
        .as_bytes(),
        0o644,
    );
    cfg
}

/// Writes `<dir>/vigil.toml` with `content.rules = ["<dir>/rules"]`.
fn rules_config(dir: &TempDir) -> PathBuf {
    let cfg = dir.join("vigil.toml");
    write_file(
        &cfg,
        format!(
            "[content]\nrules = [{:?}]\n",
            dir.join("rules").to_string_lossy()
        )
        .as_bytes(),
        0o644,
    );
    cfg
}

#[test]
fn scan_of_a_clean_tree_exits_0() {
    let (dir, cfg) = setup("scan-clean", &[]);
    write_file(&dir.join("tree/a.txt"), b"clean a\n", 0o644);
    write_file(&dir.join("tree/sub/b.txt"), b"clean b\n", 0o644);
    write_file(
        &dir.join("tree/sub/tool"),
        &marker_variant("scan-clean"),
        0o755,
    );
    let out = scan(&cfg, &[&dir.join("tree")], false);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

#[test]
fn scan_finds_a_listed_file_recursively_and_reports_json() {
    let dir = TempDir::new("scan-json");
    let list = dir.join("bad.sha256");
    write_hash_list(&list, &[&sha256_hex(BAD)]);
    let cfg = config_in(&dir, &[&list]);
    let tree = dir.join("tree");
    write_file(&tree.join("clean.txt"), b"clean\n", 0o644);
    write_file(&tree.join("deep/er/bad.bin"), BAD, 0o644);

    let out = scan(&cfg, &[&tree], false);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));

    let out = scan(&cfg, &[&tree], true);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "one line per file: {}", show(&out));
    let find = |name: &str| line_for(&lines, name, &out);
    let bad = find("/deep/er/bad.bin");
    assert_eq!(jstr(&bad, "/verdict"), "malicious", "{bad}");
    assert_eq!(jstr(&bad, "/sha256"), sha256_hex(BAD), "{bad}");
    assert_eq!(bad["size"].as_u64(), Some(BAD.len() as u64), "{bad}");
    assert!(bad["elapsed_us"].is_u64(), "elapsed_us: {bad}");
    let reasons = bad["reasons"].as_array().cloned().unwrap_or_default();
    let hash = reasons
        .iter()
        .find(|r| jstr(r, "/stage") == "hash")
        .unwrap_or_else(|| panic!("no hash reason: {bad}"));
    assert!(!jstr(hash, "/id").is_empty(), "reason id: {bad}");
    assert!(hash["score"].is_number(), "reason score: {bad}");
    assert!(hash.get("detail").is_some(), "reason detail: {bad}");

    let clean = find("/clean.txt");
    assert_eq!(jstr(&clean, "/verdict"), "clean", "{clean}");
    assert_eq!(
        clean["reasons"].as_array().map(Vec::len),
        Some(0),
        "{clean}"
    );
    assert_eq!(jstr(&clean, "/sha256"), sha256_hex(b"clean\n"), "{clean}");
    assert!(clean.get("error").is_none(), "{clean}");
}

#[test]
fn scan_of_a_missing_path_exits_2() {
    let (dir, cfg) = setup("scan-missing", &[]);
    let missing = dir.join("does/not/exist");
    let out = scan(&cfg, &[&missing], false);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let out = scan(&cfg, &[&missing], true);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    for v in json_lines(&out) {
        assert_eq!(jstr(&v, "/verdict"), "error", "{v}");
        assert!(!jstr(&v, "/error").is_empty(), "error string: {v}");
    }
}

#[test]
fn scan_with_a_malformed_hash_list_exits_2_naming_file_and_line() {
    let dir = TempDir::new("scan-badlist");
    let list = dir.join("broken.sha256");
    write_file(
        &list,
        format!("{}  fine\nnot-a-hash  broken line\n", sha256_hex(BAD)).as_bytes(),
        0o644,
    );
    let cfg = config_in(&dir, &[&list]);
    write_file(&dir.join("x.txt"), b"x\n", 0o644);
    let out = scan(&cfg, &[&dir.join("x.txt")], false);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let name = list.to_string_lossy();
    assert!(
        err.contains(&*name),
        "stderr does not name {name}: {}",
        show(&out)
    );
    assert!(
        err.contains(&format!("{name}:2")) || err.contains("line 2"),
        "stderr does not name line 2: {}",
        show(&out)
    );
}

#[test]
fn scan_reads_clamav_hsb_and_hdb_lists() {
    let dir = TempDir::new("scan-clamav");
    let by_sha = b"vigil e2e: listed in a ClamAV .hsb file\n";
    let by_md5 = b"vigil e2e: listed in a ClamAV .hdb file\n";
    write_file(&dir.join("tree/sha.bin"), by_sha, 0o644);
    write_file(&dir.join("tree/md5.bin"), by_md5, 0o644);
    write_file(&dir.join("tree/clean.bin"), b"clean\n", 0o644);
    let md5 = Command::new("md5sum")
        .arg(dir.join("tree/md5.bin"))
        .output()
        .expect("md5sum");
    let md5 = String::from_utf8_lossy(&md5.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned();
    assert_eq!(md5.len(), 32, "md5sum output");
    let hsb = dir.join("lists/test.hsb");
    let hdb = dir.join("lists/test.hdb");
    write_file(
        &hsb,
        format!("{}:{}:Vigil.Test.Hsb\n", sha256_hex(by_sha), by_sha.len()).as_bytes(),
        0o644,
    );
    write_file(
        &hdb,
        format!("{md5}:{}:Vigil.Test.Hdb\n", by_md5.len()).as_bytes(),
        0o644,
    );
    // A directory of lists works like the files in it.
    let cfg = config_in(&dir, &[&dir.join("lists")]);
    let out = scan(&cfg, &[&dir.join("tree")], true);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let lines = json_lines(&out);
    let verdict = |name: &str| jstr(&line_for(&lines, name, &out), "/verdict").to_owned();
    assert_eq!(verdict("/sha.bin"), "malicious", "{}", show(&out));
    assert_eq!(verdict("/md5.bin"), "malicious", "{}", show(&out));
    assert_eq!(verdict("/clean.bin"), "clean", "{}", show(&out));
}

/// The EICAR test file, assembled at run time (the repository holds no copy).
pub fn eicar() -> Vec<u8> {
    let parts: [&[u8]; 4] = [
        b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        b"EICAR-STANDARD-",
        b"ANTIVIRUS-TEST-",
        b"FILE!$H+H*",
    ];
    parts.concat()
}

#[test]
fn scan_detects_the_builtin_test_signature_unless_disabled() {
    let dir = TempDir::new("scan-eicar");
    let sample = dir.join("tree/eicar.com");
    write_file(&sample, &eicar(), 0o644);
    let cfg = config_in(&dir, &[]);
    let out = scan(&cfg, &[&sample], true);
    assert_eq!(out.status.code(), Some(1), "builtin = true: {}", show(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{}", show(&out));
    assert_eq!(jstr(&lines[0], "/verdict"), "malicious", "{}", show(&out));

    let off = dir.join("off.toml");
    write_file(&off, b"[content]\nbuiltin = false\n", 0o644);
    let out = scan(&off, &[&sample], false);
    assert_eq!(
        out.status.code(),
        Some(0),
        "builtin = false: {}",
        show(&out)
    );
}

/// Harmless bytes that carry the strings one built-in rule looks for (XHide's
/// usage text behind an ELF magic), assembled at run time.
fn builtin_rule_bait() -> Vec<u8> {
    let mut bytes = b"\x7fELF".to_vec();
    for text in [
        "XHide - Process Faker",
        "Fake name process",
        "Full path seek",
    ] {
        bytes.extend_from_slice(b"\0vigil-e2e\0");
        bytes.extend_from_slice(text.as_bytes());
    }
    bytes
}

#[test]
fn scan_denies_a_builtin_rule_match_unless_disabled() {
    let dir = TempDir::new("scan-builtin-rules");
    let sample = dir.join("tree/bait.bin");
    write_file(&sample, &builtin_rule_bait(), 0o644);
    let cfg = config_in(&dir, &[]);
    let out = scan_with(&cfg, &[&sample], &["--json", "--explain"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "builtin_rules = true: {}",
        show(&out)
    );
    let lines = json_lines(&out);
    assert_eq!(jstr(&lines[0], "/verdict"), "malicious", "{}", show(&out));
    let reasons = lines[0]["reasons"].as_array().cloned().unwrap_or_default();
    let rule = reasons
        .iter()
        .find(|r| jstr(r, "/stage") == "rules")
        .unwrap_or_else(|| panic!("no rules-stage reason: {}", show(&out)));
    assert_eq!(jstr(rule, "/id"), "builtin:Vigil_XHide_ProcessFaker");
    assert_eq!(
        jstr(rule, "/detail"),
        "Linux.Hacktool.XHide; rule Vigil_XHide_ProcessFaker (built-in)"
    );
    assert!(
        jstr(&lines[0], "/explain").contains("(built-in)"),
        "{}",
        show(&out)
    );

    let off = dir.join("off.toml");
    write_file(&off, b"[content]\nbuiltin_rules = false\n", 0o644);
    let out = scan_with(&off, &[&sample], &["--json", "--explain"]);
    let lines = json_lines(&out);
    let reasons = lines[0]["reasons"].as_array().cloned().unwrap_or_default();
    assert!(
        reasons.iter().all(|r| jstr(r, "/stage") != "rules"),
        "builtin_rules = false: {}",
        show(&out)
    );
}

#[test]
fn scan_matches_a_yara_rule() {
    let dir = TempDir::new("scan-yara");
    write_test_rule(&dir.join("rules/sub/e2e.yar"));
    let cfg = rules_config(&dir);
    let sample = dir.join("tree/ruled.txt");
    write_file(&sample, format!("x {RULE_MARKER} y\n").as_bytes(), 0o644);
    write_file(&dir.join("tree/plain.txt"), b"x y\n", 0o644);
    let out = scan(&cfg, &[&dir.join("tree")], true);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let lines = json_lines(&out);
    let ruled = lines
        .iter()
        .find(|v| jstr(v, "/path").ends_with("/ruled.txt"))
        .unwrap_or_else(|| panic!("no line for ruled.txt: {}", show(&out)));
    assert_eq!(jstr(ruled, "/verdict"), "malicious", "{ruled}");
    let reasons = ruled["reasons"].as_array().cloned().unwrap_or_default();
    assert!(
        reasons
            .iter()
            .any(|r| jstr(r, "/stage") == "rules" && jstr(r, "/id").ends_with("VigilE2E")),
        "no rules-stage reason naming VigilE2E: {ruled}"
    );
    let plain = lines
        .iter()
        .find(|v| jstr(v, "/path").ends_with("/plain.txt"))
        .unwrap_or_else(|| panic!("no line for plain.txt: {}", show(&out)));
    assert_eq!(jstr(plain, "/verdict"), "clean", "{plain}");
}

/// A large ELF (over the scanner's 256 KiB read chunk, so read in several
/// `pread`s) goes through every stage: the rules' and the model's findings
/// reach the verdict and the explanation.
#[test]
fn scan_explain_of_a_large_elf_reports_the_rules_and_the_model() {
    let dir = TempDir::new("scan-large-elf");
    write_test_rule(&dir.join("rules/e2e.yar"));
    let cfg = rules_config(&dir);
    let elf = std::fs::read("/bin/bash").expect("read /bin/bash");
    assert!(
        elf.len() > 256 * 1024,
        "/bin/bash is only {} bytes",
        elf.len()
    );
    let mut marked = elf.clone();
    marked.extend_from_slice(RULE_MARKER.as_bytes());
    write_file(&dir.join("tree/marked"), &marked, 0o755);
    write_file(&dir.join("tree/plain"), &elf, 0o755);
    let out = scan_with(&cfg, &[&dir.join("tree")], &["--json", "--explain"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let lines = json_lines(&out);
    let line = |name: &str| line_for(&lines, name, &out);
    let stages = |v: &Value| -> Vec<String> {
        v["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| jstr(r, "/stage").to_owned())
            .collect()
    };
    let marked = line("/marked");
    assert_eq!(jstr(&marked, "/verdict"), "malicious", "{marked}");
    let found = stages(&marked);
    assert!(
        found.iter().any(|s| s == "rules"),
        "no rules reason: {marked}"
    );
    assert!(
        found.iter().any(|s| s == "model"),
        "no model reason under --explain: {marked}"
    );
    let explain = jstr(&marked, "/explain");
    assert!(explain.contains("rules: 1 finding"), "{explain}");
    let plain = line("/plain");
    assert_eq!(jstr(&plain, "/verdict"), "clean", "{plain}");
    assert_eq!(stages(&plain), ["model"], "{plain}");
}

#[test]
fn scan_with_a_broken_rule_file_exits_2_naming_it() {
    let dir = TempDir::new("scan-badrule");
    let rule = dir.join("rules/broken.yar");
    write_file(
        &rule,
        b"rule Broken {\n  condition:\n    $undefined\n}\n",
        0o644,
    );
    let cfg = rules_config(&dir);
    write_file(&dir.join("x.txt"), b"x\n", 0o644);
    let out = scan(&cfg, &[&dir.join("x.txt")], false);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&*rule.to_string_lossy()),
        "stderr does not name {}: {}",
        rule.display(),
        show(&out)
    );
}

/// vigil's own executable is clean under its default content (built-in rules
/// and model), whatever strings it carries: it is recognised by its digest
/// (`engine::own_exe`). Before, 19 built-in rules matched the release binary,
/// and a default install would deny its own commands. The size cap is raised
/// so the (large, debug) test binary is really scanned, not skipped.
#[test]
fn vigil_does_not_detect_itself() {
    let dir = TempDir::new("scan-self");
    let cfg = dir.join("vigil.toml");
    write_file(
        &cfg,
        b"[content]\nhashes = []\n[scan]\nmax_file_size = 17179869184\n",
        0o644,
    );
    let out = scan_with(&cfg, &[Path::new(VIGIL)], &["--json", "--explain"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let lines = json_lines(&out);
    assert_eq!(jstr(&lines[0], "/verdict"), "clean", "{}", show(&out));
    assert!(
        lines[0]["sha256"].is_string(),
        "not scanned: {}",
        show(&out)
    );
    assert!(
        show(&out).contains("vigil's own executable"),
        "not recognised as itself: {}",
        show(&out)
    );
}

/// Runs `vigil scan` with the rules of `cfg` in a process that may not make
/// memory executable (`PR_SET_MDWE`, what systemd's `MemoryDenyWriteExecute=yes`
/// sets; inherited across `execve`): yara-x cannot build the rules' native code,
/// and the error says so instead of a bare panic.
#[test]
fn rules_that_cannot_become_native_code_are_a_named_error() {
    let dir = TempDir::new("scan-mdwe");
    write_file(
        &dir.join("rules/a.yar"),
        b"rule mdwe_probe { strings: $a = \"vigil mdwe probe\" condition: $a }\n",
        0o644,
    );
    let cfg = rules_config(&dir);
    write_file(&dir.join("x.txt"), b"nothing\n", 0o644);
    let mdwe = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit("PR_SET_MDWE refused: errno %d" % ctypes.get_errno())
os.execv(sys.argv[1], sys.argv[1:])
"#;
    let out = Command::new("timeout")
        .args([
            "-k", "5", "60", "python3", "-c", mdwe, VIGIL, "scan", "--config",
        ])
        .arg(&cfg)
        .arg(dir.join("x.txt"))
        .stdin(Stdio::null())
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run python3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("PR_SET_MDWE refused"), "{}", show(&out));
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        err.contains(
            "vigil: error: the YARA rules compiled, but their native code could not be built"
        ) && err.contains("MemoryDenyWriteExecute"),
        "{}",
        show(&out)
    );
    // The same rules without the restriction scan fine.
    let out = scan(&cfg, &[&dir.join("x.txt")], false);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}
