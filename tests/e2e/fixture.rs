//! Test fixture: a private tmpfs, test files, a config and a daemon handle.
//!
//! State owned: a host temp dir per test ([`TempDir`]), a *holder* process that
//! keeps a tmpfs mounted in its own private mount namespace ([`Tmpfs`]), and the
//! `vigil daemon` processes started on it ([`Daemon`]). Everything is released on
//! drop: daemons are SIGKILLed by pid, the holder is killed (its namespace and the
//! tmpfs vanish with it), the temp dir is removed.
//!
//! Must not own: anything outside those. Daemons only ever mark a filesystem that
//! this fixture mounted itself ([`Sandbox::start`] refuses any path that is not on
//! the sandbox's own mount, or whose `statfs` type is not tmpfs or, for
//! [`Sandbox::with_ext4`], ext4), every daemon runs under `timeout -k 5 120`, and
//! every process is killed by its own pid, never by name.
//!
//! Why ext4 too: a tmpfs gets a random UUID at every mount, so the persistent
//! verdict cache never keys its files. [`Sandbox::with_ext4`] formats an image
//! file in the host temp dir and the holder mounts it through a loop device
//! inside its namespace: a real filesystem with a real UUID, which no other
//! process sees, gone (and its loop device detached) when the holder dies.
//!
//! Why a holder process: the test harness is multithreaded, so it cannot
//! `unshare(CLONE_NEWNS)` itself. The holder (`unshare --mount --propagation
//! private`) mounts the tmpfs on an empty host directory *inside its namespace*;
//! the host reaches it as `/proc/<holder>/root<dir>`. Opens, execs and the daemon's
//! config all use that path, and the daemon marks the filesystem behind it.
//!
//! This file is also compiled into `agent/benches/onaccess.rs` (`#[path]`), so
//! not every helper is used by both.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::statfs::{EXT4_SUPER_MAGIC, TMPFS_MAGIC, statfs};
use nix::unistd::Pid;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `vigil` binary under test (built by cargo for this test target).
pub const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// What the test program prints when it runs.
pub const MARKER: &str = "vigil-e2e-marker";

/// Hard limit on a daemon's life (`timeout -k 5 <this>`), seconds.
pub const DAEMON_TIMEOUT_S: u64 = 120;

/// How long to wait for `READY=1` from a daemon.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// `EPERM`: what a denied open or exec returns.
pub const EPERM: i32 = 1;

static UNIQUE: AtomicU64 = AtomicU64::new(0);

fn unique() -> u64 {
    UNIQUE.fetch_add(1, Ordering::Relaxed)
}

/// True when running as root (euid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Prints why `test` is skipped and returns true when not root.
///
/// Use as `if skip_unless_root("name") { return; }`.
/// Returns from the calling test, after printing `SKIPPED <test>: needs root`,
/// when not run as root. The test's name is taken from the enclosing function,
/// so it is never typed twice.
#[allow(unused_macros)] // the bench shares this file and has no tests
macro_rules! require_root {
    () => {{
        fn here() {}
        let name = std::any::type_name_of_val(&here);
        let name = name.strip_suffix("::here").unwrap_or(name);
        let name = name.rsplit("::").next().unwrap_or(name);
        if $crate::fixture::skip_unless_root(name) {
            return;
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use require_root;

pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    // Straight to fd 2: the test harness captures eprintln! of passing tests,
    // and a skip must be seen.
    let _ = writeln!(
        io::stderr().lock(),
        "SKIPPED {test}: needs root (fanotify permission events, mount namespaces); \
         run the suite with sudo scripts/test.sh"
    );
    true
}

// ---------------------------------------------------------------- temp dir

/// A fresh host directory, removed on drop. Never watched by a daemon.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/vigil-e2e-<tag>-<pid>-<n>` (mode 0755).
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "vigil-e2e-{tag}-{}-{}",
            std::process::id(),
            unique()
        ));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------- tmpfs

/// What a sandbox mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// A tmpfs.
    Tmpfs,
    /// An ext4 image on a loop device.
    Ext4,
}

/// A tmpfs (or an ext4 image) mounted in a private mount namespace kept alive by
/// a holder process.
pub struct Tmpfs {
    holder: Child,
    holder_pid: i32,
    path: PathBuf,
    kind: FsKind,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "256m") on `dir` (an empty host directory)
    /// inside a new private mount namespace, and returns its path as seen from
    /// the host: `/proc/<holder>/root<dir>`.
    ///
    /// # Panics
    /// If the holder cannot be started, does not report ready within 10 s, or the
    /// resulting path is not a tmpfs.
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        let script = format!(
            "mount -t tmpfs -o size={size},mode=0755 vigil-e2e \"$1\" && echo ready $$ && exec sleep 300"
        );
        Tmpfs::mount_with(dir, &script, FsKind::Tmpfs)
    }

    /// Formats `image` (a new file of `size_mb` MiB in a host directory) as ext4
    /// and mounts it on `dir` through a loop device inside a new private mount
    /// namespace (see [`Tmpfs::mount`]).
    ///
    /// # Panics
    /// As [`Tmpfs::mount`], or when `mkfs.ext4` (e2fsprogs) fails.
    pub fn mount_ext4(dir: &Path, image: &Path, size_mb: u64) -> Tmpfs {
        File::create(image)
            .and_then(|f| f.set_len(size_mb << 20))
            .unwrap_or_else(|e| panic!("create {}: {e}", image.display()));
        let out = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
            .arg(image)
            .stdin(Stdio::null())
            .output()
            .expect("run mkfs.ext4 (apt-get install e2fsprogs)");
        assert!(out.status.success(), "mkfs.ext4: {}", show(&out));
        let script = format!(
            "mount -o loop {} \"$1\" && chmod 0755 \"$1\" && echo ready $$ && exec sleep 300",
            toml_str(&image.to_string_lossy())
        );
        Tmpfs::mount_with(dir, &script, FsKind::Ext4)
    }

    fn mount_with(dir: &Path, script: &str, kind: FsKind) -> Tmpfs {
        assert!(dir.is_absolute(), "mount dir must be absolute");
        fs::create_dir_all(dir).expect("create mount dir");
        assert!(
            fs::read_dir(dir).expect("read mount dir").next().is_none(),
            "mount dir {} is not empty",
            dir.display()
        );
        let mut holder = Command::new("timeout")
            .args([
                "-k",
                "2",
                "300",
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
            ])
            .args(["sh", "-c", script, "sh"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tmpfs holder (timeout, unshare from util-linux)");
        let stdout = holder.stdout.take().expect("holder stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let pid: Option<i32> = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok());
        let Some(holder_pid) = pid else {
            let _ = holder.kill();
            let out = holder.wait_with_output();
            let err = out
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_default();
            panic!("tmpfs holder did not become ready (stdout {line:?}): {err}");
        };
        let mut path = std::ffi::OsString::from(format!("/proc/{holder_pid}/root"));
        path.push(dir.as_os_str());
        let tmpfs = Tmpfs {
            holder,
            holder_pid,
            path: PathBuf::from(path),
            kind,
        };
        assert_fs_kind(&tmpfs.path, kind);
        // And it is the holder's new mount, not the host directory itself.
        let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
        assert_ne!(
            dev(&tmpfs.path),
            dev(dir),
            "{} is not a new mount",
            tmpfs.path.display()
        );
        tmpfs
    }

    /// The tmpfs root as seen from the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path on the tmpfs.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // The holder's sleep, then timeout(1) that started it: both ours, by pid.
        let _ = kill(Pid::from_raw(self.holder_pid), Signal::SIGKILL);
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Panics unless `path` is on a tmpfs (the only filesystem type a test daemon
/// may ever mark, besides a sandbox's own ext4 image).
pub fn assert_tmpfs(path: &Path) {
    assert_fs_kind(path, FsKind::Tmpfs);
}

/// Panics unless `path` is on a filesystem of `kind`.
pub fn assert_fs_kind(path: &Path, kind: FsKind) {
    let st = statfs(path).unwrap_or_else(|e| panic!("statfs {}: {e}", path.display()));
    let want = match kind {
        FsKind::Tmpfs => TMPFS_MAGIC,
        FsKind::Ext4 => EXT4_SUPER_MAGIC,
    };
    assert!(
        st.filesystem_type() == want,
        "refusing to watch {}: not a {kind:?} (type {:?})",
        path.display(),
        st.filesystem_type()
    );
}

// ---------------------------------------------------------------- files

/// SHA-256 of bytes, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// SHA-256 of a file's content, lowercase hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Opens a file read-only (what a denied open looks like: `Err` with EPERM).
pub fn open_ro(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// Runs a program to completion with `args` (stdin null, output captured).
/// A denied exec is `Err` with raw os error EPERM.
pub fn exec<S: AsRef<OsStr>>(path: &Path, args: &[S]) -> io::Result<Output> {
    Command::new(path).args(args).stdin(Stdio::null()).output()
}

/// Runs a program with no arguments (see [`exec`]).
pub fn run(path: &Path) -> io::Result<Output> {
    exec::<&str>(path, &[])
}

/// Writes `data` to `path` with `mode`, creating parent directories.
pub fn write_file(path: &Path, data: &[u8], mode: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(data)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Appends `data` to an existing file.
pub fn append_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().append(true).open(path)?;
    f.write_all(data)
}

/// The bytes of a tiny dynamically linked C program that prints [`MARKER`] and
/// exits 0, compiled once per test process with `cc`.
///
/// # Panics
/// If `cc` is missing or fails (CI installs build-essential).
pub fn marker_program() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = TempDir::new("cc");
        let src = dir.join("marker.c");
        let out = dir.join("marker");
        fs::write(
            &src,
            format!("#include <stdio.h>\nint main(void) {{ puts(\"{MARKER}\"); return 0; }}\n"),
        )
        .expect("write marker.c");
        let res = Command::new("cc")
            .arg("-O2")
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .output()
            .expect("run cc (apt-get install build-essential)");
        assert!(
            res.status.success(),
            "cc failed: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        fs::read(&out).expect("read compiled marker program")
    })
}

/// A distinct copy of the marker program: its bytes plus `tag` appended (ELF
/// ignores trailing bytes), so every copy has its own SHA-256.
pub fn marker_variant(tag: &str) -> Vec<u8> {
    let mut v = marker_program().to_vec();
    v.extend_from_slice(b"\nvigil-e2e-variant:");
    v.extend_from_slice(tag.as_bytes());
    v.push(b'\n');
    v
}

/// Writes an executable distinct copy of the marker program to `path` and
/// returns its SHA-256.
pub fn write_marker_binary(path: &Path, tag: &str) -> String {
    let data = marker_variant(tag);
    write_file(path, &data, 0o755);
    sha256_hex(&data)
}

/// Writes an executable through a child process (`dd`), so this test process
/// never holds it open for writing (for tests that exec it from many threads
/// at once). Tests run on parallel threads: a child another thread forks
/// meanwhile inherits every open descriptor until its own exec, and when that
/// exec waits on another test's daemon (a stall, a stopped daemon) the file
/// stays open for writing in it, so every exec of the file fails with ETXTBSY
/// for seconds (seen in the SIGTERM exec storm).
pub fn write_executable(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    let mut child = Command::new("dd")
        .arg(format!("of={}", path.display()))
        .arg("status=none")
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn dd");
    child
        .stdin
        .take()
        .expect("dd stdin")
        .write_all(data)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let status = child.wait().expect("wait for dd");
    assert!(status.success(), "dd of={}: {status}", path.display());
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A known-bad file and the list that names it ([`Sandbox::listed_binary`]).
pub struct Listed {
    /// The file on the tmpfs.
    pub path: PathBuf,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// The hash list naming it (on the host).
    pub list: PathBuf,
}

/// Writes a YARA rule `name` (with `threat_name` when given, severity 100)
/// matching the string `canary`. Callers assemble the canary at run time so
/// their own source never matches it.
pub fn write_canary_rule(path: &Path, name: &str, threat_name: Option<&str>, canary: &str) {
    let threat = threat_name.map_or(String::new(), |t| format!("    threat_name = \"{t}\"\n"));
    write_file(
        path,
        format!(
            "rule {name} {{\n  meta:\n{threat}    severity = 100\n  strings:\n    \
             $c = \"{canary}\"\n  condition:\n    $c\n}}\n"
        )
        .as_bytes(),
        0o644,
    );
}

/// Writes a plain `<sha256>  <name>` hash list.
pub fn write_hash_list(path: &Path, hashes: &[&str]) {
    let mut s = String::new();
    for (i, h) in hashes.iter().enumerate() {
        s.push_str(&format!("{h}  vigil-e2e-sample-{i}\n"));
    }
    write_file(path, s.as_bytes(), 0o644);
}

/// Asserts that `res` is a permission denial (EPERM).
#[track_caller]
pub fn assert_denied<T>(res: &io::Result<T>, what: &str) {
    match res {
        Ok(_) => panic!("{what}: expected EPERM, but it was allowed"),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(EPERM),
            "{what}: expected EPERM, got {e} ({:?})",
            e.kind()
        ),
    }
}

/// Asserts that an exec succeeded and printed [`MARKER`].
#[track_caller]
pub fn assert_ran(res: &io::Result<Output>, what: &str) {
    match res {
        Ok(out) => {
            assert!(out.status.success(), "{what}: exit status {}", out.status);
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                MARKER,
                "{what}: unexpected output"
            );
        }
        Err(e) => panic!("{what}: exec failed: {e}"),
    }
}

/// Runs `f` on its own thread and returns its result, or `None` when it did not
/// finish within `limit` (the thread is then left running: it ends when the
/// daemon that blocks it is killed on drop).
pub fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

// ---------------------------------------------------------------- config

/// A daemon configuration; [`Config::to_toml`] writes every section the tests
/// set. `[exclude]` is never written, so a test can append it.
#[derive(Clone, Debug)]
pub struct Config {
    /// `watch.filesystems` (tmpfs paths only).
    pub filesystems: Vec<PathBuf>,
    /// `watch.scan_on_open`: "all" | "executable" | "none".
    pub scan_on_open: String,
    /// `decision.mode`: "enforce" | "audit".
    pub mode: String,
    /// `decision.deadline_ms`.
    pub deadline_ms: u64,
    /// `decision.on_timeout`: "allow" | "deny".
    pub on_timeout: String,
    /// `content.hashes`.
    pub hashes: Vec<PathBuf>,
    /// `content.allow` (a host directory by default, so the host's
    /// /etc/vigil/allow.d never leaks into a test).
    pub allow: Vec<PathBuf>,
    /// `content.builtin`.
    pub builtin: bool,
    /// `content.rules` (YARA rule files or directories).
    pub rules: Vec<PathBuf>,
    /// `content.model`: "none" by default here, so tests of other stages do not
    /// depend on the model's judgement of their test programs; the model tests
    /// set "builtin" or a bundle directory.
    pub model: String,
    /// `decision.model_threshold`, when set.
    pub model_threshold: Option<f64>,
    /// `decision.model_block_threshold`, when set.
    pub model_block_threshold: Option<f64>,
    /// `decision.weights.model`.
    pub model_weight: f64,
    /// `scan.workers` (0 = automatic).
    pub workers: u32,
    /// `daemon.socket`.
    pub socket: PathBuf,
    /// `log.events`: "stdout", "none" or an absolute path.
    pub events: String,
    /// `log.level`.
    pub level: String,
    /// `decision.on_malicious`: "deny" | "allow" | "quarantine".
    pub on_malicious: String,
    /// `quarantine.dir` (a host path, never on the watched tmpfs).
    pub quarantine_dir: PathBuf,
    /// The body of the `[guard]` table. Off by default: an exec guard is
    /// machine-wide unless scoped to a cgroup, and only the guard tests (which
    /// scope it to a cgroup of their own) turn it on.
    pub guard: String,
    /// `cache.persistent`.
    pub persistent: bool,
    /// `cache.dir` (a host path per sandbox, so no test touches
    /// /var/lib/vigil/cache or another test's store).
    pub cache_dir: PathBuf,
}

/// `s` as a TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_paths(paths: &[PathBuf]) -> String {
    let items: Vec<String> = paths
        .iter()
        .map(|p| toml_str(&p.to_string_lossy()))
        .collect();
    format!("[{}]", items.join(", "))
}

impl Config {
    /// The TOML text of this config.
    pub fn to_toml(&self) -> String {
        format!(
            "# written by the vigil e2e fixture\n\
             [watch]\n\
             filesystems = {fs}\n\
             mounts = []\n\
             scan_on_open = {soo}\n\
             \n\
             [decision]\n\
             mode = {mode}\n\
             deadline_ms = {deadline}\n\
             on_timeout = {ot}\n\
             on_overflow = \"allow\"\n\
             {threshold}\
             {block}\
             on_malicious = {om}\n\
             \n\
             [decision.weights]\n\
             model = {model_weight:?}\n\
             \n\
             [content]\n\
             hashes = {hashes}\n\
             allow = {allow}\n\
             builtin = {builtin}\n\
             rules = {rules}\n\
             model = {model}\n\
             \n\
             [scan]\n\
             workers = {workers}\n\
             \n\
             [daemon]\n\
             socket = {socket}\n\
             \n\
             [quarantine]\n\
             dir = {qdir}\n\
             \n\
             [guard]\n\
             {guard}\
             \n\
             [cache]\n\
             persistent = {persistent}\n\
             dir = {cache_dir}\n\
             \n\
             [log]\n\
             events = {events}\n\
             level = {level}\n",
            fs = toml_paths(&self.filesystems),
            soo = toml_str(&self.scan_on_open),
            mode = toml_str(&self.mode),
            deadline = self.deadline_ms,
            ot = toml_str(&self.on_timeout),
            hashes = toml_paths(&self.hashes),
            allow = toml_paths(&self.allow),
            builtin = self.builtin,
            rules = toml_paths(&self.rules),
            model = toml_str(&self.model),
            model_weight = self.model_weight,
            threshold = self
                .model_threshold
                .map(|t| format!("model_threshold = {t:e}\n"))
                .unwrap_or_default(),
            block = self
                .model_block_threshold
                .map(|t| format!("model_block_threshold = {t:e}\n"))
                .unwrap_or_default(),
            workers = self.workers,
            socket = toml_str(&self.socket.to_string_lossy()),
            events = toml_str(&self.events),
            level = toml_str(&self.level),
            om = toml_str(&self.on_malicious),
            qdir = toml_str(&self.quarantine_dir.to_string_lossy()),
            guard = self.guard,
            persistent = self.persistent,
            cache_dir = toml_str(&self.cache_dir.to_string_lossy()),
        )
    }
}

// ---------------------------------------------------------------- sandbox

/// One test's world: a host temp dir (configs, lists, logs, sockets) and a
/// private tmpfs (the only thing the daemon watches).
pub struct Sandbox {
    // Field order is drop order: the tmpfs goes before the temp dir holding its
    // mount point.
    fs: Tmpfs,
    dir: TempDir,
    name: String,
    _live: Live,
}

/// Sandboxes alive in this test process, and whether one test runs alone.
struct Occupancy {
    live: usize,
    exclusive: bool,
}

static OCCUPANCY: std::sync::Mutex<Occupancy> = std::sync::Mutex::new(Occupancy {
    live: 0,
    exclusive: false,
});
static OCCUPANCY_CHANGED: std::sync::Condvar = std::sync::Condvar::new();

thread_local! {
    /// Set on the thread holding an [`Exclusive`] guard: its own sandboxes do
    /// not wait for it.
    static HOLDS_EXCLUSIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn occupancy() -> std::sync::MutexGuard<'static, Occupancy> {
    OCCUPANCY.lock().unwrap_or_else(|p| p.into_inner())
}

/// One live sandbox, counted for [`exclusive`].
struct Live;

impl Live {
    fn enter() -> Live {
        let mut o = occupancy();
        if !HOLDS_EXCLUSIVE.with(|h| h.get()) {
            while o.exclusive {
                o = OCCUPANCY_CHANGED.wait(o).unwrap_or_else(|p| p.into_inner());
            }
        }
        o.live += 1;
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        occupancy().live -= 1;
        OCCUPANCY_CHANGED.notify_all();
    }
}

/// While held, no other test of this process has a sandbox: for a case that
/// loads the whole machine (16k blocked openers), so that it cannot push other
/// tests' daemons past their deadlines. Waits until no sandbox is alive, so a
/// test holding one sandbox while it makes another cannot deadlock with it.
pub struct Exclusive;

/// Takes the machine for this test (see [`Exclusive`]).
pub fn exclusive() -> Exclusive {
    let mut o = occupancy();
    while o.exclusive || o.live > 0 {
        o = OCCUPANCY_CHANGED.wait(o).unwrap_or_else(|p| p.into_inner());
    }
    o.exclusive = true;
    HOLDS_EXCLUSIVE.with(|h| h.set(true));
    Exclusive
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        occupancy().exclusive = false;
        HOLDS_EXCLUSIVE.with(|h| h.set(false));
        OCCUPANCY_CHANGED.notify_all();
    }
}

impl Sandbox {
    /// A sandbox with a 256 MiB tmpfs.
    pub fn new(name: &str) -> Sandbox {
        Sandbox::with_size(name, "256m")
    }

    /// A sandbox with a tmpfs of `size` (tmpfs syntax: "256m", "2g").
    pub fn with_size(name: &str, size: &str) -> Sandbox {
        let live = Live::enter();
        let dir = TempDir::new(name);
        let fs = Tmpfs::mount(&dir.join("mnt"), size);
        Sandbox {
            fs,
            dir,
            name: name.to_owned(),
            _live: live,
        }
    }

    /// A sandbox whose watched filesystem is a fresh ext4 image of `size_mb`
    /// MiB (see [`Tmpfs::mount_ext4`]) instead of a tmpfs.
    pub fn with_ext4(name: &str, size_mb: u64) -> Sandbox {
        let live = Live::enter();
        let dir = TempDir::new(name);
        let fs = Tmpfs::mount_ext4(&dir.join("mnt"), &dir.join("disk.img"), size_mb);
        Sandbox {
            fs,
            dir,
            name: name.to_owned(),
            _live: live,
        }
    }

    /// Panics unless `path` is this sandbox's own mount (the only thing its
    /// daemons may watch).
    fn assert_watchable(&self, path: &Path) {
        assert!(
            path == self.fs.path(),
            "refusing to watch {}: not this sandbox's mount {}",
            path.display(),
            self.fs.path().display()
        );
        assert_fs_kind(path, self.fs.kind);
    }

    /// A path in the host temp dir (not watched).
    pub fn host(&self, name: impl AsRef<Path>) -> PathBuf {
        self.dir.join(name)
    }

    /// A path on the watched tmpfs.
    pub fn mnt(&self, name: impl AsRef<Path>) -> PathBuf {
        self.fs.join(name)
    }

    /// The tmpfs root.
    pub fn mnt_root(&self) -> &Path {
        self.fs.path()
    }

    /// Writes a plain hash list `name` in the host temp dir naming `hashes`.
    pub fn hash_list(&self, name: &str, hashes: &[&str]) -> PathBuf {
        let path = self.host(name);
        write_hash_list(&path, hashes);
        path
    }

    /// A marker binary `name` on the tmpfs (its variant tag is `name`) and a
    /// hash list `<name>.sha256` on the host naming it: the known-bad file most
    /// tests need.
    pub fn listed_binary(&self, name: &str) -> Listed {
        let path = self.mnt(name);
        let sha256 = write_marker_binary(&path, name);
        let list = self.hash_list(&format!("{name}.sha256"), &[&sha256]);
        Listed { path, sha256, list }
    }

    /// `n` clean programs of distinct content on the tmpfs, `<dir>/p<i>`
    /// (marker binaries tagged `<tag>-<i>`): programs no daemon has judged.
    pub fn clean_programs(&self, dir: &str, tag: &str, n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| {
                let path = self.mnt(format!("{dir}/p{i}"));
                write_marker_binary(&path, &format!("{tag}-{i}"));
                path
            })
            .collect()
    }

    /// The default config of a test: watches this sandbox's tmpfs only, scans
    /// every open, enforce mode, a private control socket, events on stdout.
    pub fn config(&self) -> Config {
        Config {
            filesystems: vec![self.fs.path().to_path_buf()],
            scan_on_open: "all".into(),
            mode: "enforce".into(),
            deadline_ms: 5000,
            on_timeout: "allow".into(),
            hashes: vec![],
            allow: vec![self.host("allow.d")],
            builtin: true,
            rules: vec![],
            model: "none".into(),
            model_threshold: None,
            model_block_threshold: None,
            model_weight: 1.0,
            workers: 0,
            socket: self.host("vigil.sock"),
            events: "stdout".into(),
            level: "info".into(),
            on_malicious: "deny".into(),
            quarantine_dir: self.host("quarantine"),
            guard: "uncovered = \"off\"\n".into(),
            persistent: true,
            cache_dir: self.host("cache"),
        }
    }

    /// A path on the tmpfs as the daemon sees it when started with
    /// [`Sandbox::start_in_namespace`] (and as event lines name it).
    pub fn ns_path(&self, name: impl AsRef<Path>) -> PathBuf {
        self.dir.join("mnt").join(name)
    }

    /// Like [`Sandbox::start_with_env`], but the daemon runs inside the holder's
    /// mount namespace (`nsenter --mount`), where the tmpfs is mounted at its
    /// plain path: paths the daemon reads from event fds then resolve there, as
    /// they do for a daemon and files sharing a namespace in production. Needed by
    /// anything that acts on a detected file's path (quarantine, restore).
    pub fn start_in_namespace(&self, cfg: &Config, env: &[(&str, &str)]) -> Daemon {
        for p in &cfg.filesystems {
            self.assert_watchable(p);
        }
        let config = self.config_path();
        write_file(&config, cfg.to_toml().as_bytes(), 0o644);
        let ns = format!("--mount=/proc/{}/ns/mnt", self.fs.holder_pid);
        Daemon::spawn_with(&self.dir, &self.name, &config, env, &["nsenter", &ns, "--"])
    }

    /// Like [`Sandbox::start_in_namespace`] with the config file's text given
    /// (`text` is `cfg.to_toml()` plus what the test adds).
    pub fn start_in_namespace_with_text(&self, cfg: &Config, text: &str) -> Daemon {
        for p in &cfg.filesystems {
            self.assert_watchable(p);
        }
        let config = self.config_path();
        write_file(&config, text.as_bytes(), 0o644);
        let ns = format!("--mount=/proc/{}/ns/mnt", self.fs.holder_pid);
        Daemon::spawn_with(&self.dir, &self.name, &config, &[], &["nsenter", &ns, "--"])
    }

    /// A command that runs `program` inside the holder's mount namespace (under a
    /// 60 s timeout), where [`Sandbox::ns_path`] names the tmpfs: for CLI commands
    /// that read files the daemon must later recognise by path.
    pub fn ns_command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "5", "60", "nsenter"])
            .arg(format!("--mount=/proc/{}/ns/mnt", self.fs.holder_pid))
            .arg("--")
            .arg(program)
            .stdin(Stdio::null())
            .env_remove("RUST_BACKTRACE");
        cmd
    }

    /// Starts a daemon in a pid and mount namespace of its own (`unshare --pid
    /// --fork --mount --mount-proc`), after `prelude` (shell, `set -e`) ran in
    /// there. Its `/proc` then lists only processes in that pid namespace, so the
    /// mount watcher sees only the mount namespaces a test creates there, and
    /// its mount namespace is a private copy, so only a test's mounts appear in
    /// it after start: a daemon with `new_mounts = true` and no listed
    /// filesystem marks nothing else. A shell is pid 1 of the namespace and
    /// outlives the daemon (for 60 s) so a test can look at the namespace after
    /// a stop; it is killed on drop.
    pub fn start_isolated(
        &self,
        cfg: &Config,
        text: &str,
        prelude: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        for p in &cfg.filesystems {
            assert_tmpfs(p);
        }
        let config = self.config_path();
        write_file(&config, text.as_bytes(), 0o644);
        let script = format!("set -e\n{prelude}\nset +e\n\"$@\"\necho exited\nexec sleep 60\n");
        let mut d = Daemon::spawn_with(
            &self.dir,
            &self.name,
            &config,
            env,
            &[
                "unshare",
                "--pid",
                "--fork",
                "--mount",
                "--propagation",
                "private",
                "--mount-proc",
                "--",
                "sh",
                "-c",
                &script,
                "sh",
            ],
        );
        d.ns_init = child_of(d.timeout.id() as i32).and_then(child_of);
        d
    }

    /// Starts another daemon in the pid and mount namespaces of `init` (pid 1
    /// of a namespace made by [`Sandbox::start_isolated`], whose daemon has
    /// exited or was killed).
    pub fn start_in_pid_namespace_of(&self, init: i32, text: &str) -> Daemon {
        let config = self.config_path();
        write_file(&config, text.as_bytes(), 0o644);
        let pid_ns = format!("--pid=/proc/{init}/ns/pid");
        let mnt_ns = format!("--mount=/proc/{init}/ns/mnt");
        Daemon::spawn_with(
            &self.dir,
            &self.name,
            &config,
            &[],
            &["nsenter", &pid_ns, &mnt_ns, "--"],
        )
    }

    /// Like [`Sandbox::start`], but the daemon runs from a copy of the binary at
    /// `copy` (a host path), which the test may then delete or replace, as a
    /// package upgrade does under a running daemon.
    pub fn start_from_copy(&self, cfg: &Config, copy: &Path) -> Daemon {
        for p in &cfg.filesystems {
            self.assert_watchable(p);
        }
        let config = self.write_config(cfg);
        let script = format!(
            "cp \"$0\" '{}' && exec '{}' \"$@\"",
            copy.display(),
            copy.display()
        );
        Daemon::spawn_with(&self.dir, &self.name, &config, &[], &["sh", "-c", &script])
    }

    /// The path the sandbox writes its config to.
    pub fn config_path(&self) -> PathBuf {
        self.host("vigil.toml")
    }

    /// Writes `cfg` to [`Sandbox::config_path`].
    pub fn write_config(&self, cfg: &Config) -> PathBuf {
        let path = self.config_path();
        write_file(&path, cfg.to_toml().as_bytes(), 0o644);
        path
    }

    /// Writes `cfg` and starts a daemon on it; waits for `READY=1`.
    pub fn start(&self, cfg: &Config) -> Daemon {
        self.start_with_env(cfg, &[])
    }

    /// Like [`Sandbox::start`] with extra environment variables for the daemon
    /// (e.g. `VIGIL_TEST_STALL_MS`).
    ///
    /// # Panics
    /// If a watched path is not a tmpfs, or the daemon exits or is not ready
    /// within [`READY_TIMEOUT`] (with its stderr in the message).
    pub fn start_with_env(&self, cfg: &Config, env: &[(&str, &str)]) -> Daemon {
        self.start_with_text(cfg, &cfg.to_toml(), env)
    }

    /// Like [`Sandbox::start_with_env`] with the config file's text given
    /// (`text` is `cfg.to_toml()` edited; `cfg.filesystems` must be the
    /// filesystems it watches).
    pub fn start_with_text(&self, cfg: &Config, text: &str, env: &[(&str, &str)]) -> Daemon {
        for p in &cfg.filesystems {
            self.assert_watchable(p);
        }
        let config = self.config_path();
        write_file(&config, text.as_bytes(), 0o644);
        Daemon::spawn(&self.dir, &self.name, &config, env)
    }
}

// ---------------------------------------------------------------- daemon

/// A running `vigil daemon` (under `timeout -k 5 120`), killed on drop.
pub struct Daemon {
    timeout: Child,
    pid: i32,
    /// Pid 1 of the daemon's own pid namespace ([`Sandbox::start_isolated`]).
    ns_init: Option<i32>,
    stdout: PathBuf,
    stderr: PathBuf,
    config: PathBuf,
    exited: Option<ExitStatus>,
}

impl Daemon {
    fn spawn(dir: &TempDir, name: &str, config: &Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_with(dir, name, config, env, &[])
    }

    /// Spawns `timeout … <wrapper…> vigil daemon`; `wrapper` must exec (not fork)
    /// the daemon, so the daemon stays the child of timeout(1).
    fn spawn_with(
        dir: &TempDir,
        name: &str,
        config: &Path,
        env: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Daemon {
        let n = unique();
        let notify_path = dir.join(format!("notify-{n}.sock"));
        let _ = fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("bind NOTIFY_SOCKET");
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set notify timeout");
        let stdout = dir.join(format!("daemon-{n}.stdout"));
        let stderr = dir.join(format!("daemon-{n}.stderr"));
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "5", &DAEMON_TIMEOUT_S.to_string()])
            .args(wrapper)
            .args([VIGIL, "daemon", "--config"])
            .arg(config)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create daemon stdout"))
            .stderr(File::create(&stderr).expect("create daemon stderr"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let timeout = cmd.spawn().expect("spawn timeout(1) + vigil daemon");
        let mut d = Daemon {
            timeout,
            pid: 0,
            ns_init: None,
            stdout,
            stderr,
            config: config.to_path_buf(),
            exited: None,
        };
        let t0 = Instant::now();
        let mut buf = [0u8; 4096];
        let mut ready = false;
        while t0.elapsed() < READY_TIMEOUT {
            if let Ok(n) = notify.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]);
                if msg.lines().any(|l| l == "READY=1") {
                    ready = true;
                    break;
                }
                continue;
            }
            if let Ok(Some(st)) = d.timeout.try_wait() {
                d.exited = Some(st);
                panic!(
                    "[{name}] daemon exited before READY=1 ({st}); stderr:\n{}",
                    d.stderr_text()
                );
            }
        }
        let _ = fs::remove_file(&notify_path);
        if !ready {
            panic!(
                "[{name}] daemon not ready after {:?}; stderr:\n{}",
                READY_TIMEOUT,
                d.stderr_text()
            );
        }
        // Through wrappers that fork (unshare --fork, a shell), down to vigil.
        let mut pid = child_of(d.timeout.id() as i32);
        for _ in 0..4 {
            match pid {
                Some(p) if comm_of(p).as_deref() != Some("vigil") => pid = child_of(p),
                _ => break,
            }
        }
        d.pid = pid
            .unwrap_or_else(|| panic!("[{name}] cannot find the daemon process under timeout(1)"));
        d
    }

    /// Pid 1 of the daemon's own pid namespace, when started with
    /// [`Sandbox::start_isolated`].
    pub fn ns_init(&self) -> Option<i32> {
        self.ns_init
    }

    /// The daemon's pid (the child of `timeout`).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The config file the daemon was started with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Sends `sig` to the daemon (by pid).
    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid), sig).unwrap_or_else(|e| panic!("kill {sig}: {e}"));
    }

    /// Waits up to `limit` for the daemon to exit; returns its status (as passed
    /// through by timeout(1)), or `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.exited {
                return Some(st);
            }
            if let Ok(Some(st)) = self.timeout.try_wait() {
                self.exited = Some(st);
                return Some(st);
            }
            if t0.elapsed() > limit {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the daemon process exists.
    pub fn is_running(&mut self) -> bool {
        self.exited.is_none() && matches!(self.timeout.try_wait(), Ok(None))
    }

    /// The daemon's stderr (tracing logs) so far.
    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The daemon's stdout so far.
    pub fn stdout_text(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The JSON event lines written on stdout so far (non-JSON lines skipped).
    pub fn events(&self) -> Vec<Value> {
        self.stdout_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// Waits up to `limit` for an event line matching `pred`.
    ///
    /// # Panics
    /// On timeout, with the events seen and the daemon's stderr.
    #[track_caller]
    pub fn wait_event(&self, what: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        loop {
            if let Some(v) = self.events().into_iter().find(|v| pred(v)) {
                return v;
            }
            if t0.elapsed() > limit {
                panic!(
                    "no event line matching {what} within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout_text(),
                    tail(&self.stderr_text(), 60)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// A context string for assertion messages: the daemon's stderr tail.
    pub fn context(&self) -> String {
        format!(
            "\n--- daemon stdout:\n{}\n--- daemon stderr (tail):\n{}",
            tail(&self.stdout_text(), 20),
            tail(&self.stderr_text(), 60)
        )
    }

    /// Runs `vigil <args…>` (under a 60 s timeout; prefix `setpriv …` style
    /// wrappers with `as_user`) and returns its output.
    pub fn cli(&self, as_user: Option<(u32, u32)>, args: &[&OsStr]) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "5", "60"]);
        if let Some((uid, gid)) = as_user {
            cmd.args([
                "setpriv",
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                "--",
            ]);
        }
        cmd.arg(VIGIL)
            .args(args)
            .stdin(Stdio::null())
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("run vigil")
    }

    /// Runs `vigil reload --socket <daemon.socket>` and returns its output.
    pub fn reload(&self, socket: &Path) -> Output {
        Command::new("timeout")
            .args(["-k", "5", "60", VIGIL, "reload", "--socket"])
            .arg(socket)
            .stdin(Stdio::null())
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("run vigil reload")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(init) = self.ns_init {
            // Pid 1 of the daemon's pid namespace: every process in it goes too.
            let _ = kill(Pid::from_raw(init), Signal::SIGKILL);
        }
        if self.exited.is_none() {
            if self.pid > 0 {
                let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
            } else if let Ok(timeout) = i32::try_from(self.timeout.id()) {
                // The daemon was not found (a start that failed its checks):
                // timeout(1) passes SIGTERM on to it; a SIGKILL below would
                // only orphan it, fanotify group and all.
                let _ = kill(Pid::from_raw(timeout), Signal::SIGTERM);
            }
            // timeout(1) exits once it has reaped the daemon, whose socket and
            // fanotify groups are closed by then: a daemon started next on the
            // same socket cannot find this one still listening.
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = self.timeout.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(5));
            }
            let _ = self.timeout.kill();
            let _ = self.timeout.wait();
        }
    }
}

/// The last `n` lines of `s`.
/// A finished command's status, stdout and stderr, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status {}\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The command name of process `pid` (`/proc/<pid>/comm`).
pub fn comm_of(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The single child process of `parent` (found in `/proc/<pid>/stat`).
pub fn child_of(parent: i32) -> Option<i32> {
    let children = fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"));
    if let Ok(s) = children {
        if let Some(pid) = s.split_whitespace().next().and_then(|p| p.parse().ok()) {
            return Some(pid);
        }
    }
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, split after the last ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let ppid: Option<i32> = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

/// A JSON string field by pointer (`"/event/action"`), or "".
pub fn jstr<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Asserts that the daemon wrote no event with `action` (e.g. "blocked").
#[track_caller]
pub fn assert_no_action(d: &Daemon, action: &str, what: &str) {
    assert!(
        d.events()
            .iter()
            .all(|v| jstr(v, "/event/action") != action),
        "{what}: a {action:?} event was written{}",
        d.context()
    );
}

/// True when `v` is an event with `action` about a file named `name`.
pub fn is_event(v: &Value, action: &str, name: &str) -> bool {
    jstr(v, "/event/action") == action && jstr(v, "/file/path").ends_with(&format!("/{name}"))
}

/// The daemon's fanotify inode marks, as the kernel lists them in
/// `/proc/<pid>/fdinfo` (`fanotify ino:<hex> sdev:… mflags:… mask:… ignored_mask:…`).
pub fn inode_marks(pid: i32) -> Vec<String> {
    let mut marks = Vec::new();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return marks;
    };
    for fd in fds.flatten() {
        let Ok(text) = fs::read_to_string(fd.path()) else {
            continue;
        };
        marks.extend(
            text.lines()
                .filter(|l| l.starts_with("fanotify ino:"))
                .map(str::to_owned),
        );
    }
    marks
}

/// The `ignored_mask` of the daemon's inode mark on inode `ino`, if it has one.
pub fn ignored_mask(pid: i32, ino: u64) -> Option<u64> {
    let want = format!("fanotify ino:{ino:x} ");
    inode_marks(pid)
        .iter()
        .find(|l| l.starts_with(&want))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("ignored_mask:"))
                .and_then(|m| u64::from_str_radix(m, 16).ok())
        })
}

/// A string that only the test rule of [`write_test_rule`] matches.
pub const RULE_MARKER: &str = "vigil-e2e-yara-marker-7d2f1c";

/// Writes a YARA rule `VigilE2E` (no severity: a match is malicious) that matches
/// [`RULE_MARKER`].
pub fn write_test_rule(path: &Path) {
    write_file(
        path,
        format!(
            "rule VigilE2E {{\n  meta:\n    description = \"vigil e2e test rule\"\n  \
             strings:\n    $m = \"{RULE_MARKER}\"\n  condition:\n    $m\n}}\n"
        )
        .as_bytes(),
        0o644,
    );
}
