//! `vigil update`, `vigil bundle` and `content.clamav_db`, end to end.
//!
//! Every download comes from [`Mirror`], a small HTTP server this test binary
//! runs on 127.0.0.1 (never the internet). Sources served over plain HTTP are
//! verified by a minisign signature (keys made with `vigil bundle keygen`) or a
//! pinned SHA-256, as the configuration requires for `http://`. The cases that
//! need a running daemon (a switch that the daemon then enforces, ClamAV files
//! replaced under it) start it on the sandbox's tmpfs; the others only need the
//! command line and a temp dir.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::fixture::{
    Sandbox, TempDir, VIGIL, assert_denied, assert_ran, exec, sha256_hex, skip_unless_root,
    write_file, write_marker_binary,
};

// ---------------------------------------------------------------- mirror

/// One request the mirror answered.
#[derive(Debug, Clone)]
struct Served {
    path: String,
    status: u16,
    body_bytes: usize,
    if_none_match: Option<String>,
}

/// A static file server on loopback: paths to bytes, an `ETag` per body (its
/// SHA-256 prefix), `If-None-Match` answered with 304, a log of every request.
struct Mirror {
    port: u16,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    log: Arc<Mutex<Vec<Served>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Mirror {
    fn start() -> Mirror {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test mirror");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("mirror address").port();
        let files = Arc::new(Mutex::new(HashMap::new()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, l, s) = (Arc::clone(&files), Arc::clone(&log), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = serve(stream, &f, &l);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Mirror {
            port,
            files,
            log,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn put(&self, path: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(format!("/{path}"), bytes);
    }

    fn served(&self) -> Vec<Served> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request on `stream` and closes it.
fn serve(
    stream: TcpStream,
    files: &Mutex<HashMap<String, Vec<u8>>>,
    log: &Mutex<Vec<Served>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut if_none_match = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(value.trim().to_owned());
            }
        }
    }
    let body = files.lock().unwrap().get(&path).cloned();
    let mut out = stream;
    let (status, sent) = match body {
        None => {
            out.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            (404, 0)
        }
        Some(body) => {
            let etag = format!("\"{}\"", &sha256_hex(&body)[..16]);
            if if_none_match.as_deref() == Some(etag.as_str()) {
                write!(
                    out,
                    "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
                )?;
                (304, 0)
            } else {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: {etag}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                    body.len()
                )?;
                out.write_all(&body)?;
                (200, body.len())
            }
        }
    };
    out.flush()?;
    log.lock().unwrap().push(Served {
        path,
        status,
        body_bytes: sent,
        if_none_match,
    });
    Ok(())
}

// ---------------------------------------------------------------- helpers

/// Runs `vigil ARGS` (under a 120 s timeout).
fn vigil<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new("timeout")
        .args(["-k", "5", "120", VIGIL])
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("run vigil")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `vigil update --config CONFIG [extra]`.
fn update(config: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("update"),
        OsStr::new("--config"),
        config.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    vigil(&args)
}

/// A key pair from `vigil bundle keygen`: (secret key path, public key line).
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let prefix = dir.join(name);
    let out = vigil(&[
        OsStr::new("bundle"),
        OsStr::new("keygen"),
        prefix.as_os_str(),
    ]);
    assert!(out.status.success(), "keygen: {}", text(&out));
    let public = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("verify = \"minisign:"))
        .and_then(|l| l.strip_suffix('"'))
        .expect("public key line")
        .to_owned();
    (dir.join(format!("{name}.key")), public)
}

/// Packs `content` (relative path → bytes) with `vigil bundle pack`; returns
/// (bundle bytes, signature bytes).
fn pack(dir: &Path, key: &Path, version: &str, content: &[(&str, &[u8])]) -> (Vec<u8>, Vec<u8>) {
    let src = dir.join(format!("bundle-src-{version}"));
    let _ = fs::remove_dir_all(&src);
    for (name, bytes) in content {
        let path = src.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
    }
    let out_path = dir.join(format!("bundle-{version}.tar.gz"));
    let out = vigil(&[
        OsStr::new("bundle"),
        OsStr::new("pack"),
        src.as_os_str(),
        OsStr::new("--key"),
        key.as_os_str(),
        OsStr::new("--out"),
        out_path.as_os_str(),
        OsStr::new("--version"),
        OsStr::new(version),
    ]);
    assert!(out.status.success(), "pack: {}", text(&out));
    let sig = fs::read(format!("{}.minisig", out_path.display())).unwrap();
    (fs::read(&out_path).unwrap(), sig)
}

/// A `.tar.gz` written raw (names as given, `..` and links included).
fn tar_gz(members: &[(&str, &[u8], tar::EntryType)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes, kind) in members {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if *kind == tar::EntryType::Symlink {
            header.set_link_name("/etc/shadow").unwrap();
        }
        header.set_cksum();
        builder.append(&header, *bytes).unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

const FILE: tar::EntryType = tar::EntryType::Regular;

/// A rule that matches `marker`.
fn rule(name: &str, marker: &str) -> String {
    format!("rule {name} {{\n  strings:\n    $m = \"{marker}\"\n  condition:\n    $m\n}}\n")
}

/// The text of a `[[update.sources]]` entry.
fn source(name: &str, url: &str, format: &str, verify: &str, include: &[&str]) -> String {
    let include: Vec<String> = include.iter().map(|i| format!("{i:?}")).collect();
    format!(
        "\n[[update.sources]]\nname = {name:?}\nurl = {url:?}\nformat = {format:?}\nverify = {verify:?}\ninclude = [{}]\n",
        include.join(", ")
    )
}

/// A configuration for command-line runs (no daemon): content, the update
/// directory and socket in `dir`, then `sources`.
fn cli_config(dir: &Path, sources: &str) -> PathBuf {
    let text = format!(
        "[content]\nbuiltin = true\nmodel = \"none\"\nallow = [{allow:?}]\n\n[daemon]\nsocket = {sock:?}\n\n[update]\ndir = {updates:?}\nkeep = 2\ntimeout_s = 5\n{sources}",
        allow = dir.join("allow.d").display().to_string(),
        sock = dir.join("no-daemon.sock").display().to_string(),
        updates = dir.join("updates").display().to_string(),
    );
    let path = dir.join("vigil.toml");
    fs::write(&path, text).unwrap();
    path
}

fn current(dir: &Path) -> Option<PathBuf> {
    fs::read_link(dir.join("updates/current")).ok()
}

fn versions(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join("updates/versions"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

// ---------------------------------------------------------------- tests

/// A signed bundle is verified, switched in, and the running daemon then
/// denies a file that only the new content lists (by hash) and one that only
/// its new rule matches; `vigil status` reports the source's version.
#[test]
fn good_update_is_switched_in_and_enforced() {
    if skip_unless_root("update::good_update_is_switched_in_and_enforced") {
        return;
    }
    let sb = Sandbox::new("update-good");
    let mirror = Mirror::start();
    let (key, public) = keygen(&sb.host(""), "fleet");
    let listed = sb.mnt("listed");
    let listed_sha = write_marker_binary(&listed, "update-listed");
    let ruled = sb.mnt("ruled");
    let mut bytes = crate::fixture::marker_variant("update-ruled");
    bytes.extend_from_slice(b"update-rule-marker-19\n");
    write_file(&ruled, &bytes, 0o755);
    let list = format!("{listed_sha}  Fleet.Test.Listed\n");
    let yar = rule("FleetRule", "update-rule-marker-19");
    let (bundle, sig) = pack(
        &sb.host(""),
        &key,
        "2026.12.1",
        &[
            ("hashes/fleet.sha256", list.as_bytes()),
            ("rules/fleet.yar", yar.as_bytes()),
        ],
    );
    mirror.put("fleet.tar.gz", bundle);
    mirror.put("fleet.tar.gz.minisig", sig);

    let cfg = sb.config();
    let updates = sb.host("updates");
    let toml = format!(
        "{}\n[update]\ndir = {:?}\ntimeout_s = 10\n{}",
        cfg.to_toml(),
        updates.display().to_string(),
        source(
            "fleet",
            &mirror.url("fleet.tar.gz"),
            "bundle",
            &format!("minisign:{public}"),
            &[]
        )
    );
    let daemon = sb.start_with_text(&cfg, &toml, &[]);
    assert_ran(&exec(&listed, &[] as &[&str]), "listed before the update");
    assert_ran(&exec(&ruled, &[] as &[&str]), "ruled before the update");

    let started = Instant::now();
    let out = update(&sb.config_path(), &[]);
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("source \"fleet\": new version 2026.12.1"),
        "{stdout}"
    );
    assert!(stdout.contains("reloaded: generation 2"), "{stdout}");
    println!("vigil update end to end (loopback, signed bundle, reload): {elapsed:?}");

    assert_denied(&exec(&listed, &[] as &[&str]), "listed after the update");
    assert_denied(&exec(&ruled, &[] as &[&str]), "ruled after the update");

    let status = vigil(&[
        OsStr::new("status"),
        OsStr::new("--json"),
        OsStr::new("--socket"),
        cfg.socket.as_os_str(),
    ]);
    assert!(status.status.success(), "{}", text(&status));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let src = &status["updates"]["sources"][0];
    assert_eq!(src["name"], "fleet", "{status}");
    assert_eq!(src["version"], "2026.12.1", "{status}");
    assert_eq!(src["verify"], "minisign", "{status}");
    assert_eq!(src["unverified"], false, "{status}");
    assert!(src.get("last_error").is_none(), "{status}");

    // A daemon started afresh loads `current` too.
    drop(daemon);
    let daemon = sb.start_with_text(&cfg, &toml, &[]);
    assert_denied(&exec(&listed, &[] as &[&str]), "listed after a restart");
    assert_denied(&exec(&ruled, &[] as &[&str]), "ruled after a restart");
    drop(daemon);
}

/// A GitHub-style `.tar.gz` (one top-level directory) keeps only the rule
/// files the `include` glob names, verified by a pinned SHA-256; a `.hsb` hash
/// list source is kept under its own extension. The Windows rule left out does
/// not even compile, which proves it was never loaded.
#[test]
fn archive_filter_and_hash_list_sources() {
    let dir = TempDir::new("update-filter");
    let mirror = Mirror::start();
    let archive = tar_gz(&[
        (
            "protections-artifacts-main/yara/rules/Linux_Trojan_Test.yar",
            rule("LinuxTest", "linux-marker").as_bytes(),
            FILE,
        ),
        (
            "protections-artifacts-main/yara/rules/Windows_Trojan_Test.yar",
            b"rule broken {",
            FILE,
        ),
        ("protections-artifacts-main/README.md", b"readme", FILE),
    ]);
    let digest = sha256_hex(&archive);
    mirror.put("main.tar.gz", archive);
    let hsb = format!("{}:*:Test.Hsb:73\n", sha256_hex(b"some sample"));
    let hsb_digest = sha256_hex(hsb.as_bytes());
    mirror.put("eset.hsb", hsb.into_bytes());
    let sources = format!(
        "{}{}",
        source(
            "elastic",
            &mirror.url("main.tar.gz"),
            "yara-archive",
            &format!("sha256:{digest}"),
            &["yara/rules/Linux_*"]
        ),
        source(
            "eset",
            &mirror.url("eset.hsb"),
            "hash-list",
            &format!("sha256:{hsb_digest}"),
            &[]
        ),
    );
    let config = cli_config(dir.path(), &sources);
    let out = update(&config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cur = dir.join("updates/current");
    assert!(
        cur.join("elastic/rules/yara/rules/Linux_Trojan_Test.yar")
            .is_file()
    );
    assert!(
        !cur.join("elastic/rules/yara/rules/Windows_Trojan_Test.yar")
            .exists()
    );
    assert!(!cur.join("elastic/rules/README.md").exists());
    assert!(cur.join("eset/hashes/eset.hsb").is_file());

    let check = vigil(&[
        OsStr::new("check-config"),
        OsStr::new("--config"),
        config.as_os_str(),
    ]);
    assert!(check.status.success(), "{}", text(&check));
    let summary = String::from_utf8_lossy(&check.stdout);
    assert!(
        summary.contains("hashes=2 "),
        "builtin EICAR + the .hsb entry: {summary}"
    );
}

/// Each bad update leaves the running content in place, exits 2, and says what
/// is wrong and where.
#[test]
fn rejected_updates_leave_the_running_content() {
    let dir = TempDir::new("update-rejected");
    let mirror = Mirror::start();
    let (key, public) = keygen(dir.path(), "good");
    let (other_key, _) = keygen(dir.path(), "other");
    let verify = format!("minisign:{public}");
    let list = format!("{}  Known.Bad\n", sha256_hex(b"bad"));
    let (bundle, sig) = pack(
        dir.path(),
        &key,
        "1",
        &[("hashes/a.sha256", list.as_bytes())],
    );
    mirror.put("v1.tar.gz", bundle.clone());
    mirror.put("v1.tar.gz.minisig", sig.clone());
    let config = cli_config(
        dir.path(),
        &source("fleet", &mirror.url("v1.tar.gz"), "bundle", &verify, &[]),
    );
    let out = update(&config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let installed = current(dir.path()).expect("a current version");
    let kept = versions(dir.path());

    // Content for each bad case, served under its own name.
    let (_, other_sig) = pack(
        dir.path(),
        &other_key,
        "2",
        &[("hashes/a.sha256", list.as_bytes())],
    );
    mirror.put(
        "badsig.tar.gz",
        pack(
            dir.path(),
            &key,
            "2",
            &[("hashes/a.sha256", list.as_bytes())],
        )
        .0,
    );
    mirror.put("badsig.tar.gz.minisig", other_sig);
    // The same bundle under another URL: the installed URL would be answered 304.
    mirror.put("copy.tar.gz", bundle.clone());
    let truncated = bundle[..bundle.len() / 2].to_vec();
    let truncated_digest = sha256_hex(&truncated);
    mirror.put("truncated.tar.gz", truncated);
    let dotdot = tar_gz(&[
        ("rules/ok.yar", rule("Ok", "ok").as_bytes(), FILE),
        ("../../etc/evil.yar", b"x", FILE),
    ]);
    let dotdot_digest = sha256_hex(&dotdot);
    mirror.put("dotdot.tar.gz", dotdot);
    let link = tar_gz(&[
        ("rules/ok.yar", rule("Ok", "ok").as_bytes(), FILE),
        ("rules/link.yar", b"", tar::EntryType::Symlink),
    ]);
    let link_digest = sha256_hex(&link);
    mirror.put("link.tar.gz", link);
    let (broken, broken_sig) = pack(
        dir.path(),
        &key,
        "3",
        &[(
            "rules/broken.yar",
            b"rule broken { condition: nonsense_identifier }\n",
        )],
    );
    mirror.put("broken.tar.gz", broken);
    mirror.put("broken.tar.gz.minisig", broken_sig);
    let down = {
        // A port nothing listens on: bind, note it, close.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}/v1.tar.gz")
    };

    let cases: Vec<(&str, String, &str, String, Vec<&str>)> = vec![
        (
            "bad signature",
            mirror.url("badsig.tar.gz"),
            "bundle",
            verify.clone(),
            vec![
                "source \"fleet\"",
                "badsig.tar.gz",
                "verification failed",
                "different from public key",
            ],
        ),
        (
            "wrong digest",
            mirror.url("copy.tar.gz"),
            "bundle",
            format!("sha256:{}", "0".repeat(64)),
            vec![
                "source \"fleet\"",
                "copy.tar.gz",
                "verification failed: SHA-256 is",
            ],
        ),
        (
            "truncated archive",
            mirror.url("truncated.tar.gz"),
            "bundle",
            format!("sha256:{truncated_digest}"),
            vec!["truncated.tar.gz", "truncated"],
        ),
        (
            "archive with ../",
            mirror.url("dotdot.tar.gz"),
            "yara-archive",
            format!("sha256:{dotdot_digest}"),
            vec!["member \"../../etc/evil.yar\"", "contains `..`"],
        ),
        (
            "archive with a symlink",
            mirror.url("link.tar.gz"),
            "yara-archive",
            format!("sha256:{link_digest}"),
            vec!["member \"rules/link.yar\"", "links are not allowed"],
        ),
        (
            "rule that does not compile",
            mirror.url("broken.tar.gz"),
            "bundle",
            verify.clone(),
            vec![
                "the new content does not load",
                "broken.yar",
                "nonsense_identifier",
            ],
        ),
        (
            "server down",
            down,
            "bundle",
            verify.clone(),
            vec!["source \"fleet\"", "cannot connect"],
        ),
    ];
    for (label, url, format, verify, wants) in cases {
        let config = cli_config(dir.path(), &source("fleet", &url, format, &verify, &[]));
        let out = update(&config, &[]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{label}: {all}");
        for want in wants {
            assert!(all.contains(want), "{label}: expected {want:?} in\n{all}");
        }
        assert!(all.contains("running content unchanged"), "{label}: {all}");
        assert_eq!(
            current(dir.path()).as_ref(),
            Some(&installed),
            "{label}: current changed"
        );
        assert_eq!(versions(dir.path()), kept, "{label}: versions changed");
        let stale: Vec<_> = fs::read_dir(dir.join("updates/staging"))
            .unwrap()
            .flatten()
            .collect();
        assert!(stale.is_empty(), "{label}: staging left {stale:?}");
        // The error is recorded for --status.
        let status = update(&config, &["--status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let recorded = format!(
            "{}{}",
            status["sources"][0]["last_error"], status["last_error"]
        );
        assert!(
            recorded.contains("fleet") || recorded.contains("does not load"),
            "{label}: {status}"
        );
        assert_eq!(
            status["current"],
            installed.file_name().unwrap().to_str().unwrap(),
            "{label}"
        );
    }
}

/// Two versions, then `--rollback` restores the first; with nothing older,
/// `--rollback` exits 2.
#[test]
fn rollback_restores_the_previous_version() {
    let dir = TempDir::new("update-rollback");
    let mirror = Mirror::start();
    let (key, public) = keygen(dir.path(), "k");
    let verify = format!("minisign:{public}");
    let config = cli_config(
        dir.path(),
        &source("fleet", &mirror.url("b.tar.gz"), "bundle", &verify, &[]),
    );
    let mut seen = Vec::new();
    for version in ["1", "2"] {
        let list = format!("{}  V{version}\n", sha256_hex(version.as_bytes()));
        let (bundle, sig) = pack(
            dir.path(),
            &key,
            version,
            &[("hashes/l.sha256", list.as_bytes())],
        );
        mirror.put("b.tar.gz", bundle);
        mirror.put("b.tar.gz.minisig", sig);
        let out = update(&config, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        seen.push(current(dir.path()).unwrap());
        // Version names are per second: keep the two apart.
        thread::sleep(Duration::from_millis(1100));
    }
    assert_ne!(seen[0], seen[1]);
    let out = update(&config, &["--rollback"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(current(dir.path()).unwrap(), seen[0]);
    let list = fs::read_to_string(dir.join("updates/current/fleet/hashes/l.sha256")).unwrap();
    assert!(list.contains("V1"), "{list}");
    let out = update(&config, &["--rollback"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no previous version"), "{}", text(&out));
}

/// The second run sends `If-None-Match`, gets 304, downloads nothing and
/// exits 1; the current version stays.
#[test]
fn not_modified_downloads_nothing() {
    let dir = TempDir::new("update-304");
    let mirror = Mirror::start();
    let list = format!("{}  X\n", sha256_hex(b"x"));
    let digest = sha256_hex(list.as_bytes());
    mirror.put("list.sha256", list.into_bytes());
    let config = cli_config(
        dir.path(),
        &source(
            "plain",
            &mirror.url("list.sha256"),
            "hash-list",
            &format!("sha256:{digest}"),
            &[],
        ),
    );
    let out = update(&config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let installed = current(dir.path()).unwrap();
    let before = mirror.served().len();
    let out = update(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("source \"plain\": not modified"),
        "{}",
        text(&out)
    );
    let second: Vec<Served> = mirror.served()[before..].to_vec();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0].path, "/list.sha256", "{second:?}");
    assert_eq!(second[0].status, 304, "{second:?}");
    assert_eq!(second[0].body_bytes, 0, "{second:?}");
    assert!(second[0].if_none_match.is_some(), "{second:?}");
    assert_eq!(current(dir.path()).unwrap(), installed);
    assert_eq!(versions(dir.path()).len(), 1);
}

/// A plain `http://` source without a signature or digest is refused by the
/// configuration check, naming the file and line.
#[test]
fn unverified_plain_http_is_refused() {
    let dir = TempDir::new("update-unverified");
    let config = cli_config(
        dir.path(),
        &source("x", "http://127.0.0.1:9/x.tar.gz", "bundle", "none", &[]),
    );
    let out = update(&config, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("plain http:// needs `verify`"),
        "{}",
        text(&out)
    );
}

// ---------------------------------------------------------------- ClamAV

/// A ClamAV container as ClamAV writes it: a 512-byte header (with the body's
/// MD5 for a `.cvd`), then a gzipped tar (`.cvd`) or a plain tar (`.cld`).
fn clamav_container(version: u32, members: &[(&str, &[u8])], cvd: bool) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *bytes).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let body = if cvd { gzip(&tar) } else { tar };
    let md5 = if cvd {
        hex::encode(Md5::digest(&body))
    } else {
        "X".to_owned()
    };
    let header =
        format!("ClamAV-VDB:04 Dec 2026 23-00 +0000:{version}:1:90:{md5}:dsig:e2e:1796425200");
    let mut out = format!("{header:<512}").into_bytes();
    out.extend_from_slice(&body);
    out
}

/// `content.clamav_db`: an MD5 listed in main.cvd is denied; a daily.cld that
/// freshclam-style replaces (rename) under the running daemon is re-read and
/// its new entry denied; a corrupt .cvd makes `check-config` fail naming it.
#[test]
fn clamav_databases_are_read_and_reread() {
    if skip_unless_root("update::clamav_databases_are_read_and_reread") {
        return;
    }
    let sb = Sandbox::new("update-clamav");
    let db = sb.host("clamav");
    fs::create_dir_all(&db).unwrap();
    let first = sb.mnt("first");
    write_marker_binary(&first, "clamav-first");
    let first_bytes = fs::read(&first).unwrap();
    let second = sb.mnt("second");
    write_marker_binary(&second, "clamav-second");
    let second_bytes = fs::read(&second).unwrap();
    let hdb = format!(
        "{}:{}:Unix.Test.First-1\n",
        hex::encode(Md5::digest(&first_bytes)),
        first_bytes.len()
    );
    fs::write(
        db.join("main.cvd"),
        clamav_container(1, &[("main.hdb", hdb.as_bytes()), ("COPYING", b"x")], true),
    )
    .unwrap();
    fs::write(
        db.join("daily.cld"),
        clamav_container(10, &[("daily.hdb", b"# nothing yet\n")], false),
    )
    .unwrap();

    let cfg = sb.config();
    let toml = cfg.to_toml().replace(
        "[content]\n",
        &format!(
            "[content]\nclamav_db = {:?}\nclamav_poll_s = 1\n",
            db.display().to_string()
        ),
    );
    let daemon = sb.start_with_text(&cfg, &toml, &[]);
    assert_denied(&exec(&first, &[] as &[&str]), "listed in main.cvd");
    assert_ran(&exec(&second, &[] as &[&str]), "not listed yet");
    let event = daemon.wait_event("blocked first", Duration::from_secs(10), |v| {
        crate::fixture::is_event(v, "blocked", "first")
    });
    assert!(event.to_string().contains("Unix.Test.First-1"), "{event}");
    assert!(event.to_string().contains("main.cvd:main.hdb"), "{event}");

    // freshclam writes a new file and renames it over the old one.
    let sha = hex::encode(Sha256::digest(&second_bytes));
    let hsb = format!("{sha}:{}:Unix.Test.Second-1:73\n", second_bytes.len());
    let tmp = db.join("daily.cld.tmp");
    fs::write(
        &tmp,
        clamav_container(11, &[("daily.hsb", hsb.as_bytes())], false),
    )
    .unwrap();
    fs::rename(&tmp, db.join("daily.cld")).unwrap();
    let t0 = Instant::now();
    loop {
        match exec(&second, &[] as &[&str]) {
            Err(e) if e.raw_os_error() == Some(crate::fixture::EPERM) => break,
            _ if t0.elapsed() > Duration::from_secs(20) => {
                panic!("the replaced daily.cld was not re-read{}", daemon.context())
            }
            _ => thread::sleep(Duration::from_millis(200)),
        }
    }
    drop(daemon);

    // A damaged container is refused with its name.
    let mut bytes = fs::read(db.join("main.cvd")).unwrap();
    bytes.truncate(bytes.len() - 8);
    fs::write(db.join("main.cvd"), bytes).unwrap();
    let check = vigil(&[
        OsStr::new("check-config"),
        OsStr::new("--config"),
        sb.config_path().as_os_str(),
    ]);
    assert_eq!(check.status.code(), Some(2), "{}", text(&check));
    assert!(text(&check).contains("main.cvd"), "{}", text(&check));
}
