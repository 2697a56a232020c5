//! Floods: an exec storm of 64 spawners, an open flood far beyond the worker
//! queue, and a flood beyond the kernel's own fanotify queue (`FAN_Q_OVERFLOW`).
//!
//! Not repeated here: 500 execs from 8 threads (concurrency.rs), the overflow
//! action with five opens and a queue of one (overflow.rs).

use std::thread;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::*;

/// 64 threads spawn at once, each running 3 distinct cold binaries and one
/// listed binary: every clean exec runs, every listed one is denied (64 denials,
/// all counted), none waits past the deadline.
#[test]
fn an_exec_storm_of_64_spawners() {
    require_root!();
    const SPAWNERS: usize = 64;
    const EACH: usize = 3;
    let sb = Sandbox::new("torture-storm");
    let list = sb.host("bad.sha256");
    let bad = sb.mnt("bin/listed");
    let bad_sha = write_marker_binary(&bad, "storm-listed");
    write_hash_list(&list, &[&bad_sha]);
    for i in 0..SPAWNERS * EACH {
        write_marker_binary(
            &sb.mnt(format!("bin/{}/t{i:03}", i % 8)),
            &format!("storm-{i}"),
        );
    }
    let snap = Snapshot::take(sb.mnt_root());
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    cfg.hashes = vec![list];
    cfg.deadline_ms = 5000;
    let d = sb.start(&cfg);
    let limit = Duration::from_millis(cfg.deadline_ms) + MARGIN;

    let ops = Openers::new();
    ops.expect(SPAWNERS * (EACH + 1));
    let ops = std::sync::Arc::new(ops);
    let spawners: Vec<_> = (0..SPAWNERS)
        .map(|s| {
            let ops = std::sync::Arc::clone(&ops);
            let root = sb.mnt("bin");
            let bad = bad.clone();
            thread::spawn(move || {
                for k in 0..EACH {
                    let i = s * EACH + k;
                    let p = root.join(format!("{}/t{i:03}", i % 8));
                    let _ = ops.run(format!("t{i:03}"), limit, || exec_errno(&p));
                }
                let _ = ops.run(format!("listed by {s}"), limit, || exec_errno(&bad));
            })
        })
        .collect();
    let ctx = || d.context();
    // Each spawner runs 4 execs in turn, each answered within `limit`.
    let results = ops.assert_all_answered(limit * 4 + Duration::from_secs(5), &ctx);
    for s in spawners {
        let _ = s.join();
    }
    assert_eq!(results.len(), SPAWNERS * (EACH + 1));
    let (allowed, denied, other) = tally(&results);
    assert!(other.is_empty(), "execs failed: {other:?}{}", d.context());
    assert_eq!(
        (allowed, denied),
        (SPAWNERS * EACH, SPAWNERS),
        "{results:?}{}",
        d.context()
    );
    for (name, r) in &results {
        assert_eq!(name.starts_with("listed"), r.is_err(), "{name}: {r:?}");
    }
    let st = stats(&d, &cfg.socket);
    assert!(
        counter(&st, "events_exec") >= (SPAWNERS * (EACH + 1)) as u64,
        "{st}"
    );
    assert!(counter(&st, "denied") >= SPAWNERS as u64, "{st}");
    assert_sentinel_denied(&d, &bad);
    drop(d);
    snap.assert_intact(&String::new);
}

/// 200 opens at once against one stalled worker and a queue of 4, with
/// `on_overflow = "deny"`: the flood is answered at once by the overflow action,
/// every such answer is counted (`queue_full` equals the EPERMs seen), the queued
/// ones get real verdicts, nobody waits past the deadline.
#[test]
fn an_open_flood_beyond_the_worker_queue_is_answered_and_counted() {
    require_root!();
    const N: usize = 200;
    let sb = Sandbox::new("torture-flood");
    let list = sb.host("bad.sha256");
    let bad = sentinel(&sb, "sentinel.dat", &list);
    for i in 0..N {
        write_file(
            &sb.mnt(format!("flood/f{i:03}")),
            format!("flood {i}\n").as_bytes(),
            0o644,
        );
    }
    let snap = Snapshot::take(sb.mnt_root());
    let mut cfg = sb.config();
    cfg.hashes = vec![list];
    cfg.workers = 1;
    cfg.deadline_ms = 4000;
    let text = with_scan(&cfg, "queue_capacity = 4")
        .replace("on_overflow = \"allow\"", "on_overflow = \"deny\"");
    let d = sb.start_with_text(&cfg, &text, &[("VIGIL_TEST_STALL_MS", "200")]);
    let limit = Duration::from_millis(cfg.deadline_ms) + MARGIN;

    let ops = Openers::new();
    for i in 0..N {
        ops.open(format!("f{i:03}"), limit, sb.mnt(format!("flood/f{i:03}")));
    }
    let ctx = || d.context();
    let results = ops.assert_all_answered(limit + Duration::from_secs(5), &ctx);
    let (allowed, denied, other) = tally(&results);
    assert!(other.is_empty(), "{other:?}{}", d.context());
    assert!(
        denied > 0,
        "no open hit the full queue ({allowed} allowed){}",
        d.context()
    );
    assert!(allowed > 0, "no open was scanned{}", d.context());
    let st = stats(&d, &cfg.socket);
    assert_eq!(
        counter(&st, "queue_full"),
        denied as u64,
        "every overflow answer counted, and only those: {st}"
    );
    assert_eq!(counter(&st, "deadline_expired"), 0, "{st}");
    assert_sentinel_denied(&d, &bad);
    drop(d);
    snap.assert_intact(&String::new);
}

/// The kernel's own queue: vigil does not ask for `FAN_UNLIMITED_QUEUE`, so the
/// group holds at most `fs.fanotify.max_queued_events` (16384) unread events.
/// With the daemon stopped, that many openers plus 256 more: the kernel queues
/// one `FAN_Q_OVERFLOW` notice and **allows** the permission events it could
/// not queue, whatever `on_overflow` says (docs/failure-modes.md). After SIGCONT
/// the daemon reads the backlog, counts the overflow (`kernel_overflows`),
/// answers `vigil stats`, and answers every opener, most through the herd
/// writer (`herd_answers`; one by one they took minutes: every response wakes
/// every blocked opener). After kill -9 a restart serves.
#[test]
fn a_kernel_queue_overflow_is_counted_and_survived() {
    kernel_queue_overflow("torture-qoverflow", Target::Scanned);
}

/// The same backlog of opens that the reader answers itself (the openers'
/// program is in `exclude.processes`), which vigil never counts as waiting:
/// the reader's full reads tell the herd writer to take those answers too,
/// instead of the reader writing each one (its thread also serves the
/// control socket). (Opens of a device node would be answered there too, but
/// this kernel raises no permission event for them.)
#[test]
fn a_kernel_queue_overflow_answered_by_the_reader_is_drained_by_the_herd_writer() {
    kernel_queue_overflow("torture-qoverflow-excluded", Target::Excluded);
}

/// Who answers the backlog's opens of one group-writable file.
#[derive(Clone, Copy)]
enum Target {
    /// The workers: every open is scanned (a cache hit after the first).
    Scanned,
    /// The reader: the openers' program is excluded.
    Excluded,
}

fn kernel_queue_overflow(name: &str, kind: Target) {
    require_root!();
    let max: usize = std::fs::read_to_string("/proc/sys/fs/fanotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(16384);
    if max > 65536 {
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED {name}: fs.fanotify.max_queued_events = {max}, too many openers to start"
        );
        return;
    }
    let n = max + 256;
    // 16k blocked openers, and the kernel waking all of them on each answer,
    // load the whole machine: no other test's daemon runs meanwhile.
    let _alone = exclusive();
    let sb = Sandbox::new(name);
    let list = sb.host("bad.sha256");
    let bad = sentinel(&sb, "sentinel.dat", &list);
    // Group-writable: no kernel ignore mark may hide the later opens.
    let target = sb.mnt("target.dat");
    write_file(&target, b"opened many times at once\n", 0o666);
    let mut cfg = sb.config();
    cfg.hashes = vec![list];
    cfg.deadline_ms = 5000;
    cfg.events = "none".into();
    // A worker queue larger than the kernel's: the reader only reads and
    // enqueues, so it reaches the overflow notice at the end of the backlog at
    // once.
    let mut text = with_scan(&cfg, "queue_capacity = 32768");
    if let Target::Excluded = kind {
        let program = flood_program().to_str().expect("a UTF-8 temporary path");
        text.push_str(&format!(
            "\n[exclude]\nprocesses = [{}]\n",
            toml_str(program)
        ));
    }
    let mut d = sb.start_with_text(&cfg, &text, &[]);

    d.signal(Signal::SIGSTOP);
    // The flood's own 16 k opens on a loaded 2-vCPU machine took just over
    // 60 s once (CI-like run, load average in the thousands from the blocked
    // openers): the bound is about never hanging, not speed.
    let limit = Duration::from_secs(120);
    let ops = Openers::new();
    let done = Arc::new(AtomicUsize::new(0));
    let (p, dn) = (target.clone(), Arc::clone(&done));
    ops.spawn("flood", limit, move || flood(&p, n, &dn));
    // Every opener has either queued its event or been let through.
    let t0 = std::time::Instant::now();
    while done.load(Ordering::Relaxed) < n - max && t0.elapsed() < Duration::from_secs(30) {
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(500));
    let through = done.load(Ordering::Relaxed);
    d.signal(Signal::SIGCONT);
    assert_eq!(
        through,
        n - max,
        "opens returned while the daemon was stopped: expected exactly the {} beyond \
         the kernel queue of {max}{}",
        n - max,
        d.context()
    );
    // The daemon reads the whole backlog and counts the overflow notice at its
    // end; its control socket answers meanwhile.
    let t0 = std::time::Instant::now();
    let st = loop {
        let st = stats(&d, &cfg.socket);
        if counter(&st, "kernel_overflows") >= 1 || t0.elapsed() > Duration::from_secs(20) {
            break st;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        counter(&st, "kernel_overflows"),
        1,
        "FAN_Q_OVERFLOW not counted: {st}"
    );
    assert_eq!(
        counter(&st, "events_open"),
        max as u64,
        "the backlog was not all read: {st}"
    );
    // The daemon answers the backlog itself; the limit only keeps a hang from
    // blocking the suite (kill -9 would release everyone at once).
    let ctx = || d.context();
    let results = ops.assert_all_answered(limit, &ctx);
    assert_eq!(
        results.get("flood"),
        Some(&Ok(())),
        "not all {n} opens were allowed ({} returned){}",
        done.load(Ordering::Relaxed),
        d.context()
    );
    let st = stats(&d, &cfg.socket);
    assert!(
        counter(&st, "herd_answers") >= max as u64 / 2,
        "most of the backlog's answers should come from the herd writer: {st}"
    );
    d.signal(Signal::SIGKILL);
    let _ = d.wait_exit(Duration::from_secs(5));
    let d2 = sb.start(&cfg);
    assert_sentinel_denied(&d2, &bad);
    stats(&d2, &cfg.socket);
}

/// `n` threads (32 KiB stacks) each open `argv[1]` once; prints the number of
/// opens returned so far every 20 ms, then `errors <k>`. A C program: Rust
/// threads map a signal stack each (16 k of them exceed the default
/// `vm.max_map_count`), and 16 k python threads wake too slowly behind the GIL.
const FLOOD_C: &str = r#"
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static const char *path;
static atomic_long done, errors;
static void *one(void *arg) {
    (void)arg;
    int fd = open(path, O_RDONLY);
    if (fd < 0) atomic_fetch_add(&errors, 1); else close(fd);
    atomic_fetch_add(&done, 1);
    return NULL;
}
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    path = argv[1];
    long n = atol(argv[2]);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 32 * 1024);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (long i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, one, NULL) != 0) { perror("pthread_create"); return 3; }
    }
    for (;;) {
        long d = atomic_load(&done);
        printf("%ld\n", d);
        fflush(stdout);
        if (d == n) break;
        usleep(20000);
    }
    printf("errors %ld\n", atomic_load(&errors));
    return 0;
}
"#;

/// Compiles [`FLOOD_C`] once per test process.
fn flood_program() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vigil-e2e-flood-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir flood");
        let (src, out) = (dir.join("flood.c"), dir.join("flood"));
        std::fs::write(&src, FLOOD_C).expect("write flood.c");
        let res = std::process::Command::new("cc")
            .args(["-O2", "-pthread", "-o"])
            .arg(&out)
            .arg(&src)
            .output()
            .expect("run cc");
        assert!(res.status.success(), "cc flood.c: {}", show(&res));
        out
    })
}

/// Runs the flood program; keeps `done` current; `Ok` when all `n` opens were
/// allowed.
fn flood(path: &Path, n: usize, done: &AtomicUsize) -> OpResult {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new("timeout")
        .args(["-k", "2", "120"])
        .arg(flood_program())
        .arg(path)
        .arg(n.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|_| -10)?;
    let out = child.stdout.take().ok_or(-11)?;
    let mut errors = None;
    for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
        if let Some(e) = line.strip_prefix("errors ") {
            errors = e.parse::<usize>().ok();
        } else if let Ok(k) = line.parse() {
            done.store(k, Ordering::Relaxed);
        }
    }
    let _ = child.wait();
    match errors {
        Some(0) => Ok(()),
        Some(_) => Err(EPERM),
        None => Err(-12),
    }
}

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
