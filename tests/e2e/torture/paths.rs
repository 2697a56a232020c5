//! Hostile names: a file name that is not UTF-8 and a path longer than PATH_MAX
//! (4096 bytes, which `readlink` of the event fd cannot return). Both listed files
//! are denied, clean ones allowed, and the event log stays valid JSON.
//!
//! A path that long cannot be passed to `open(2)` at all, so the tree is built
//! and opened by python3 (in CI) with `dir_fd`-relative calls, one component at
//! a time.

use std::process::Command;
use std::time::Duration;

use super::*;

/// Creates `<root>/<25 dirs of 200 bytes>/` and in it the files given as
/// `name-hex=content-hex`, or opens them read-only and prints `name-hex errno`
/// per file (0 = allowed).
const TREE: &str = r#"
import os, sys
root, mode, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
for i in range(25):
    name = ("d%02d" % i) + "x" * 197
    if mode == "create":
        os.mkdir(name, dir_fd=fd)
    nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = nfd
for spec in specs:
    name_hex, _, data_hex = spec.partition("=")
    name = bytes.fromhex(name_hex)
    if mode == "create":
        f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=fd)
        os.write(f, bytes.fromhex(data_hex))
        os.close(f)
    else:
        try:
            os.close(os.open(name, os.O_RDONLY, dir_fd=fd))
            print(name_hex, 0)
        except OSError as e:
            print(name_hex, e.errno)
"#;

fn tree(root: &Path, mode: &str, specs: &[String]) -> std::process::Output {
    Command::new("timeout")
        .args(["-k", "2", "30", "python3", "-c", TREE])
        .arg(root)
        .arg(mode)
        .args(specs)
        .output()
        .expect("run python3")
}

#[test]
fn non_utf8_names_and_paths_beyond_path_max() {
    require_root!();
    let sb = Sandbox::new("torture-paths");
    let bad_data = b"listed, behind a hostile name\n".to_vec();
    let list = sb.hash_list("bad.sha256", &[&sha256_hex(&bad_data)]);
    // Not UTF-8: 0xff 0xfe, and a newline and a quote for the log's escaping.
    let bad_name = b"bad-\xff\xfe-\n\".bin".to_vec();
    let clean_name = b"clean-\xc3\x28.txt".to_vec();
    let specs = vec![
        format!("{}={}", hex::encode(&bad_name), hex::encode(&bad_data)),
        format!("{}={}", hex::encode(&clean_name), hex::encode(b"clean\n")),
    ];
    let out = tree(sb.mnt_root(), "create", &specs);
    assert!(out.status.success(), "building the tree: {}", show(&out));
    // The same two files at the top, with a short path.
    let top_bad = sb.mnt(std::ffi::OsStr::from_bytes(&bad_name));
    write_file(&top_bad, &bad_data, 0o644);
    write_file(
        &sb.mnt(std::ffi::OsStr::from_bytes(&clean_name)),
        b"clean\n",
        0o644,
    );
    let mut cfg = sb.config();
    cfg.hashes = vec![list];
    cfg.deadline_ms = 2000;
    let d = sb.start(&cfg);
    let limit = Duration::from_millis(cfg.deadline_ms) + MARGIN;

    let ops = Openers::new();
    let root = sb.mnt_root().to_path_buf();
    ops.spawn("deep", limit, move || {
        let out = tree(&root, "open", &specs);
        if !out.status.success() {
            return Err(-4);
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // "<bad-hex> 1" (EPERM) then "<clean-hex> 0".
        let codes: Vec<&str> = text.lines().filter_map(|l| l.split(' ').nth(1)).collect();
        if codes == ["1", "0"] { Ok(()) } else { Err(-5) }
    });
    ops.open("top bad", limit, top_bad.clone());
    ops.open(
        "top clean",
        limit,
        sb.mnt(std::ffi::OsStr::from_bytes(&clean_name)),
    );
    let ctx = || d.context();
    let results = ops.assert_all_answered(limit + Duration::from_secs(5), &ctx);
    assert_eq!(
        results.get("deep"),
        Some(&Ok(())),
        "deep path: bad denied, clean allowed{}",
        d.context()
    );
    assert_eq!(results.get("top bad"), Some(&Err(EPERM)), "{}", d.context());
    assert_eq!(results.get("top clean"), Some(&Ok(())), "{}", d.context());

    // Both denials logged, as valid JSON lines (non-JSON lines are none).
    let t0 = std::time::Instant::now();
    let blocked = loop {
        let n = d
            .events()
            .iter()
            .filter(|v| jstr(v, "/event/action") == "blocked")
            .count();
        if n >= 2 || t0.elapsed() > Duration::from_secs(10) {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(blocked, 2, "blocked events{}", d.context());
    // The deep one: `/proc/self/fd` cannot name it, so its path is null.
    let events = d.events();
    let deep: Vec<_> = events
        .iter()
        .filter(|v| jstr(v, "/event/action") == "blocked" && jstr(v, "/file/path").is_empty())
        .collect();
    assert_eq!(
        deep.len(),
        1,
        "one blocked event without a path: {events:?}"
    );
    assert_eq!(
        jstr(deep[0], "/file/hash/sha256"),
        sha256_hex(&bad_data),
        "{events:?}"
    );
    let stdout = d.stdout_text();
    for line in stdout.lines().filter(|l| l.contains("\"blocked\"")) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "an event line is not JSON: {line:?}"
        );
    }
    let st = stats(&d, &cfg.socket);
    assert_eq!(counter(&st, "denied"), 2, "{st}");
}

use std::os::unix::ffi::OsStrExt as _;
