//! A modified file is scanned again: neither the verdict cache nor an ignore
//! mark may keep allowing a file whose content became known-bad.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use crate::fixture::*;

#[test]
fn appended_file_is_rescanned_on_open() {
    require_root!();
    let sb = Sandbox::new("rescan-open");
    let prefix = b"harmless beginning of a download\n".repeat(64);
    let rest = b"...and the rest that makes it a listed sample\n".repeat(8);
    let target = [&prefix[..], &rest[..]].concat();
    let path = sb.mnt("download.bin");
    write_file(&path, &prefix, 0o644);
    let list = sb.hash_list("target.sha256", &[&sha256_hex(&target)]);
    let mut cfg = sb.config();
    cfg.scan_on_open = "all".into();
    cfg.hashes = vec![list];
    let d = sb.start(&cfg);

    // Clean prefix: opens, twice (the second one is warm: cache or ignore mark).
    for i in 0..2 {
        let got = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("open #{i} of the clean prefix: {e}{}", d.context()));
        assert_eq!(got, prefix);
    }
    // The clean verdict put a kernel ignore mark on the inode (scan.ignore_marks
    // defaults to true): the kernel no longer asks about this file...
    let ino = std::fs::metadata(&path).expect("stat").ino();
    let t0 = Instant::now();
    while ignored_mask(d.pid(), ino).unwrap_or(0) == 0 && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(
        ignored_mask(d.pid(), ino).unwrap_or(0),
        0,
        "no ignore mark on the clean file (inode {ino}); marks: {:?}{}",
        inode_marks(d.pid()),
        d.context()
    );
    // ...until it is modified: the kernel drops the ignore mask, the next open
    // reaches the daemon again and is rescanned.
    append_file(&path, &rest).expect("append (the write open is scanned as clean)");
    assert_eq!(file_len(&path), target.len() as u64);
    assert_denied(
        &open_ro(&path),
        &format!(
            "open after the content became the listed sample{}",
            d.context()
        ),
    );
    d.wait_event(
        "blocked open of download.bin",
        Duration::from_secs(10),
        |v| is_event(v, "blocked", "download.bin"),
    );
}

#[test]
fn appended_binary_is_rescanned_on_exec() {
    require_root!();
    let sb = Sandbox::new("rescan-exec");
    let clean = marker_variant("rescan-exec");
    let rest = b"\nvigil-e2e: trailing bytes that make this binary listed\n";
    let target = [&clean[..], &rest[..]].concat();
    let path = sb.mnt("updated-tool");
    write_file(&path, &clean, 0o755);
    let list = sb.hash_list("target.sha256", &[&sha256_hex(&target)]);
    let mut cfg = sb.config();
    cfg.scan_on_open = "none".into();
    cfg.hashes = vec![list];
    let d = sb.start(&cfg);

    for i in 0..2 {
        assert_ran(
            &run(&path),
            &format!("exec #{i} of the clean binary{}", d.context()),
        );
    }
    append_file(&path, rest).expect("append to the binary");
    assert_denied(
        &run(&path),
        &format!(
            "exec after the binary became the listed sample{}",
            d.context()
        ),
    );
}

/// The size of a file from its metadata (no open: the open would be scanned).
fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

/// The bypass an ignore mark would open: writes through a shared mmap raise no
/// modify event, so the kernel keeps a mark the daemon placed. A file that an
/// unprivileged user can modify therefore gets no mark, and the patched file is
/// scanned again on its next exec.
#[test]
fn mmap_patched_user_binary_is_rescanned_on_exec() {
    require_root!();
    let sb = Sandbox::new("rescan-mmap");
    let clean = marker_variant("mmap-clean");
    let bad = marker_variant("mmap-evil!");
    assert_eq!(clean.len(), bad.len(), "the patch must not change the size");
    let path = sb.mnt("user-tool");
    write_file(&path, &clean, 0o755);
    nix::unistd::chown(
        &path,
        Some(nix::unistd::Uid::from_raw(65534)),
        Some(nix::unistd::Gid::from_raw(65534)),
    )
    .expect("chown to nobody");
    let payload = sb.host("payload.bin");
    write_file(&payload, &bad, 0o644);
    let list = sb.hash_list("bad.sha256", &[&sha256_hex(&bad)]);
    let mut cfg = sb.config();
    cfg.hashes = vec![list];
    let d = sb.start(&cfg);

    for i in 0..2 {
        assert_ran(&run(&path), &format!("clean exec #{i}{}", d.context()));
    }
    let ino = std::fs::metadata(&path).expect("stat").ino();
    assert_eq!(
        ignored_mask(d.pid(), ino).unwrap_or(0),
        0,
        "a file its (non-root) owner can modify got a kernel ignore mark{}",
        d.context()
    );
    // Patch the binary in place through a shared mapping: no write(2), no truncate.
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import mmap, sys\n\
             f = open(sys.argv[1], 'r+b')\n\
             m = mmap.mmap(f.fileno(), 0)\n\
             m[:] = open(sys.argv[2], 'rb').read()\n\
             m.flush()\n",
        )
        .arg(&path)
        .arg(&payload)
        .output()
        .expect("run python3 (apt-get install python3)");
    assert!(
        out.status.success(),
        "mmap patch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_denied(
        &run(&path),
        &format!("exec of the mmap-patched binary{}", d.context()),
    );
    assert_denied(
        &std::fs::File::open(&path),
        &format!("open of the mmap-patched binary{}", d.context()),
    );
}
