//! Quarantine, end to end: a known-bad exec is denied and its file moved into the
//! store; `vigil quarantine` lists, refuses and performs restores (identical bytes,
//! mode, owner and mtime); a non-root user can neither restore nor reload and sees
//! only their own items; a symlink swapped into the path never makes the daemon
//! touch a file outside the watched tree; and a SIGKILL at every step of the move
//! leaves the file in place or in the store, never in neither.
//!
//! The daemon runs inside the tmpfs holder's mount namespace
//! ([`Sandbox::start_in_namespace`]) so the paths it reads from event fds name the
//! tmpfs there; `ns_path` gives those paths, `mnt` the same files from the host.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::thread;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::fixture::*;

const EVENT_WAIT: Duration = Duration::from_secs(15);
/// The owner given to the detected file (and the "user" of the non-root checks).
const OWNER: (u32, u32) = (4242, 4343);
/// Another unprivileged user.
const STRANGER: (u32, u32) = (5151, 5252);

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// `vigil quarantine <args> --socket S` as `user` (root when `None`).
fn q(d: &Daemon, cfg: &Config, user: Option<(u32, u32)>, args: &[&OsStr]) -> Output {
    let mut all: Vec<&OsStr> = vec![os("quarantine")];
    all.extend_from_slice(args);
    all.push(os("--socket"));
    all.push(cfg.socket.as_os_str());
    d.cli(user, &all)
}

fn list(d: &Daemon, cfg: &Config, user: Option<(u32, u32)>) -> Vec<Value> {
    let out = q(d, cfg, user, &[os("list"), os("--json")]);
    assert!(out.status.success(), "quarantine list: {}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("quarantine list --json: {e}: {}", text(&out)));
    v.as_array().cloned().unwrap_or_default()
}

/// Files in the store directory (names).
fn store_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn is_quarantine_event(v: &Value, outcome: &str, name: &str) -> bool {
    is_event(v, "quarantined", name) && jstr(v, "/event/outcome") == outcome
}

#[test]
fn known_bad_exec_is_quarantined_and_restored_identically() {
    require_root!();
    let sb = Sandbox::new("quarantine");
    let bad = sb.mnt("sub/bad-prog");
    let sha = write_marker_binary(&bad, "quarantine-me");
    fs::set_permissions(&bad, fs::Permissions::from_mode(0o750)).expect("chmod");
    nix::unistd::chown(
        &bad,
        Some(nix::unistd::Uid::from_raw(OWNER.0)),
        Some(nix::unistd::Gid::from_raw(OWNER.1)),
    )
    .expect("chown");
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    fs::File::options()
        .write(true)
        .open(&bad)
        .and_then(|f| f.set_modified(mtime))
        .expect("set mtime");
    let before = fs::metadata(&bad).expect("stat");
    let list_path = sb.hash_list("bad.sha256", &[&sha]);
    let mut cfg = sb.config();
    cfg.hashes = vec![list_path];
    cfg.on_malicious = "quarantine".into();
    // Execs only: the test reads known-bad files back, and those opens must pass.
    cfg.scan_on_open = "none".into();
    let d = sb.start_in_namespace(&cfg, &[]);

    assert_denied(&run(&bad), &format!("known-bad exec{}", d.context()));
    let ev = d.wait_event("quarantined", EVENT_WAIT, |v| {
        is_quarantine_event(v, "success", "bad-prog")
    });
    let ctx = format!("event {ev}{}", d.context());
    assert!(!bad.exists(), "the original is still there: {ctx}");
    assert_eq!(jstr(&ev, "/file/hash/sha256"), sha, "{ctx}");
    let id = jstr(&ev, "/vigil/quarantine/id").to_owned();

    // The store: 0700, an item's content transformed (not the ELF, not its hash).
    let store = &cfg.quarantine_dir;
    let mode = fs::metadata(store).expect("store").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "store mode {mode:o}");
    assert_eq!(
        store_files(store),
        vec![format!("{id}.bin"), format!("{id}.json")],
        "{ctx}"
    );
    let stored = fs::read(store.join(format!("{id}.bin"))).expect("read stored content");
    assert_eq!(stored.len() as u64, before.len());
    assert_ne!(&stored[..4], b"\x7fELF", "stored content is the plain ELF");
    assert_ne!(
        sha256_hex(&stored),
        sha,
        "stored content is not transformed"
    );
    let stored_mode = fs::metadata(store.join(format!("{id}.bin")))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(stored_mode & 0o7777, 0o600);

    // Listing: root sees it, its owner sees it, a stranger does not.
    let items = list(&d, &cfg, None);
    assert_eq!(items.len(), 1, "{items:?}");
    let item = &items[0];
    assert_eq!(jstr(item, "/id"), id);
    assert_eq!(jstr(item, "/sha256"), sha);
    assert_eq!(
        jstr(item, "/path_hex"),
        hex::encode(sb.ns_path("sub/bad-prog").as_os_str().as_encoded_bytes())
    );
    assert!(item.get("key").is_none(), "the key is shown: {item}");
    assert_eq!(list(&d, &cfg, Some(OWNER)).len(), 1, "owner's own item");
    assert!(
        list(&d, &cfg, Some(STRANGER)).is_empty(),
        "stranger sees it"
    );
    let out = q(&d, &cfg, Some(STRANGER), &[os("show"), os(&id)]);
    assert_eq!(out.status.code(), Some(1), "stranger show: {}", text(&out));

    // Non-root: no restore, no delete, no reload.
    for args in [
        vec![os("restore"), os(&id), os("--force")],
        vec![os("delete"), os(&id)],
    ] {
        let out = q(&d, &cfg, Some(OWNER), &args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} as owner: {}",
            text(&out)
        );
        assert!(text(&out).contains("permission denied"), "{}", text(&out));
    }
    let out = d.cli(
        Some(OWNER),
        &[os("reload"), os("--socket"), cfg.socket.as_os_str()],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "reload as non-root: {}",
        text(&out)
    );
    assert!(text(&out).contains("permission denied"), "{}", text(&out));

    // Still known-bad: refused without --force.
    let out = q(&d, &cfg, None, &[os("restore"), os(&id)]);
    assert_eq!(out.status.code(), Some(1), "restore: {}", text(&out));
    assert!(text(&out).contains("known-bad"), "{}", text(&out));
    assert!(!bad.exists());

    let out = q(&d, &cfg, None, &[os("restore"), os(&id), os("--force")]);
    assert!(
        out.status.success(),
        "restore --force: {}{}",
        text(&out),
        d.context()
    );
    let after = fs::metadata(&bad).expect("restored file");
    assert_eq!(
        sha256_file(&bad).expect("read restored"),
        sha,
        "bytes differ"
    );
    assert_eq!(after.mode(), before.mode(), "mode");
    assert_eq!((after.uid(), after.gid()), (OWNER.0, OWNER.1), "owner");
    assert_eq!(after.mtime(), before.mtime(), "mtime");
    assert_eq!(after.mtime_nsec(), before.mtime_nsec(), "mtime ns");
    assert!(store_files(store).is_empty(), "item left in the store");
    d.wait_event("restored", EVENT_WAIT, |v| {
        is_event(v, "restored", "bad-prog")
    });

    // A restore never replaces an existing file without --overwrite.
    assert_denied(&run(&bad), "restored known-bad exec");
    let ev = d.wait_event("quarantined again", EVENT_WAIT, |v| {
        is_quarantine_event(v, "success", "bad-prog") && jstr(v, "/vigil/quarantine/id") != id
    });
    let id2 = jstr(&ev, "/vigil/quarantine/id").to_owned();
    write_file(&bad, b"a new file at the same path\n", 0o644);
    let out = q(&d, &cfg, None, &[os("restore"), os(&id2), os("--force")]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "restore over a file: {}",
        text(&out)
    );
    assert_eq!(
        fs::read(&bad).expect("read"),
        b"a new file at the same path\n",
        "the existing file was replaced"
    );
    let elsewhere = sb.ns_path("sub/restored-copy");
    let out = q(
        &d,
        &cfg,
        None,
        &[
            os("restore"),
            os(&id2),
            os("--force"),
            os("--to"),
            elsewhere.as_os_str(),
        ],
    );
    assert!(out.status.success(), "restore --to: {}", text(&out));
    assert_eq!(
        sha256_file(&sb.mnt("sub/restored-copy")).expect("read"),
        sha
    );
}

#[test]
fn a_symlink_race_cannot_move_files_outside_the_watched_tree() {
    require_root!();
    let sb = Sandbox::new("qrace");
    // Outside the watched tmpfs: files with the very same (known-bad) content.
    let outside = sb.host("outside");
    fs::create_dir_all(&outside).expect("mkdir outside");
    let data1 = marker_variant("race-dir");
    let data2 = marker_variant("race-leaf");
    write_file(&outside.join("bad1"), &data1, 0o755);
    write_file(&outside.join("bad2"), &data2, 0o755);
    write_file(&sb.mnt("a/bad1"), &data1, 0o755);
    write_file(&sb.mnt("b/bad2"), &data2, 0o755);
    let list_path = sb.hash_list("bad.sha256", &[&sha256_hex(&data1), &sha256_hex(&data2)]);
    let mut cfg = sb.config();
    cfg.hashes = vec![list_path];
    cfg.on_malicious = "quarantine".into();
    // Execs only: the test reads known-bad files back, and those opens must pass.
    cfg.scan_on_open = "none".into();
    // Every move waits 1.5 s after the deny: the window this test races in.
    let d = sb.start_in_namespace(&cfg, &[("VIGIL_TEST_QUARANTINE_DELAY_MS", "1500")]);

    assert_denied(&run(&sb.mnt("a/bad1")), &format!("bad1{}", d.context()));
    assert_denied(&run(&sb.mnt("b/bad2")), &format!("bad2{}", d.context()));
    // A directory of the path becomes a symlink to the outside directory...
    fs::rename(sb.mnt("a"), sb.mnt("a.moved")).expect("move a");
    symlink(&outside, sb.mnt("a")).expect("symlink a");
    // ...and the file itself becomes a symlink to an outside file.
    fs::rename(sb.mnt("b/bad2"), sb.mnt("b/bad2.moved")).expect("move bad2");
    symlink(outside.join("bad2"), sb.mnt("b/bad2")).expect("symlink bad2");

    for name in ["bad1", "bad2"] {
        d.wait_event(name, EVENT_WAIT, |v| {
            is_quarantine_event(v, "failure", name)
        });
    }
    let ctx = d.context();
    assert_eq!(
        fs::read(outside.join("bad1")).expect("outside bad1"),
        data1,
        "{ctx}"
    );
    assert_eq!(
        fs::read(outside.join("bad2")).expect("outside bad2"),
        data2,
        "{ctx}"
    );
    assert_eq!(
        fs::read(sb.mnt("a.moved/bad1")).expect("a.moved/bad1"),
        data1
    );
    assert_eq!(fs::read(sb.mnt("b/bad2.moved")).expect("bad2.moved"), data2);
    assert!(
        store_files(&cfg.quarantine_dir)
            .iter()
            .all(|n| !n.ends_with(".json")),
        "something was quarantined: {:?}{ctx}",
        store_files(&cfg.quarantine_dir)
    );
    assert!(
        d.events()
            .iter()
            .all(|v| !is_quarantine_event(v, "success", "bad1")
                && !is_quarantine_event(v, "success", "bad2")),
        "a quarantine succeeded{ctx}"
    );
}

#[test]
fn kill_9_at_any_step_of_a_quarantine_loses_nothing() {
    require_root!();
    let sb = Sandbox::new("qcrash");
    let mut cfg = sb.config();
    cfg.on_malicious = "quarantine".into();
    // Execs only: the test reads known-bad files back, and those opens must pass.
    cfg.scan_on_open = "none".into();
    let list_path = sb.host("bad.sha256");
    let points = ["data", "stored", "unlinked"];
    let mut hashes = Vec::new();
    for p in points {
        hashes.push(write_marker_binary(&sb.mnt(format!("crash-{p}")), p));
    }
    let refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
    write_hash_list(&list_path, &refs);
    cfg.hashes = vec![list_path];

    for (point, sha) in points.iter().zip(&hashes) {
        let name = format!("crash-{point}");
        let file = sb.mnt(&name);
        let mut d = sb.start_in_namespace(&cfg, &[("VIGIL_TEST_QUARANTINE_CRASH", point)]);
        assert_denied(&run(&file), &format!("{name}{}", d.context()));
        let status = d.wait_exit(EVENT_WAIT);
        assert!(
            status.is_some(),
            "[{point}] the daemon did not die at the fault point{}",
            d.context()
        );
        drop(d);

        // A fresh daemon on the same store: a listing opens the store, which
        // removes what the interrupted move left; the file must be somewhere.
        let d = sb.start_in_namespace(&cfg, &[]);
        let items: Vec<Value> = list(&d, &cfg, None)
            .into_iter()
            .filter(|i| jstr(i, "/path").ends_with(&format!("/{name}")))
            .collect();
        let in_place = file.exists();
        assert!(
            in_place || !items.is_empty(),
            "[{point}] the file is neither in place nor in quarantine{}",
            d.context()
        );
        if in_place {
            assert_eq!(
                sha256_file(&file).expect("read"),
                *sha,
                "[{point}] original changed"
            );
        }
        match *point {
            "data" => assert!(in_place && items.is_empty(), "[{point}] {items:?}"),
            "stored" => assert!(in_place && items.len() == 1, "[{point}] {items:?}"),
            _ => assert!(!in_place && items.len() == 1, "[{point}] {items:?}"),
        }
        let stray: Vec<String> = store_files(&cfg.quarantine_dir)
            .into_iter()
            .filter(|n| {
                n.ends_with(".tmp")
                    || n.strip_suffix(".bin")
                        .is_some_and(|id| !cfg.quarantine_dir.join(format!("{id}.json")).exists())
            })
            .collect();
        assert!(
            stray.is_empty(),
            "[{point}] leftovers in the store: {stray:?}"
        );
        for item in &items {
            // Every stored copy restores to the original bytes.
            let id = jstr(item, "/id");
            let to: PathBuf = sb.ns_path(format!("{name}.restored"));
            let out = q(
                &d,
                &cfg,
                None,
                &[
                    os("restore"),
                    os(id),
                    os("--force"),
                    os("--to"),
                    to.as_os_str(),
                ],
            );
            assert!(out.status.success(), "[{point}] restore: {}", text(&out));
            assert_eq!(
                sha256_file(&sb.mnt(format!("{name}.restored"))).expect("read restored"),
                *sha,
                "[{point}] restored bytes differ"
            );
        }
        drop(d);
        thread::sleep(Duration::from_millis(50));
    }
}
