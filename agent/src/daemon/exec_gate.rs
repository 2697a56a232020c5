//! The exec gate: gathers the facts the exec rules need and applies their answer
//! around the scan.
//!
//! Owns: the facts about the executing process the rules look at (read through
//! [`crate::procfs`]), the package-manager ancestry walk, the upgrade-window
//! marker check, and the `vigil.rule` object of an event line. Must not own: the
//! rules themselves (pure, in `vigil_policy::execpolicy`), the answer
//! (`vigil_policy::answer`), the scan or the cache (the worker in `worker.rs`).
//! The worker calls [`before_scan`] in its gate step: a `deny` rule is answered
//! without a scan. After the scan it calls [`after_scan`] for a `trusted-only`
//! rule, and the answer function weighs the outcome.
//!
//! For an exec permission event the pid is the process calling `execve`: its
//! `/proc/<pid>/exe` is still the old program (php-fpm about to become `/bin/sh`),
//! which is exactly the "parent" the rules match on. The process is blocked in
//! `execve` until the answer, so its `/proc` entry is there to read.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::sys::stat::FileStat;
use vigil_policy::execpolicy::trusted_only;
use vigil_policy::{
    Config, ExecFacts, ExecPolicy, RuleAction, RuleMatch, TrustFacts, TrustOutcome, TrustStore,
};

use crate::procfs::{credentials, parent_pid, program_of, python_script_of};

/// How many ancestors are checked for a package manager (dpkg → sh → postinst →
/// a helper is 3; deeper chains are not a package manager's).
pub const MAX_ANCESTRY: usize = 16;
/// Suffix of the upgrade-window marker next to `policy.trust_db`.
pub const PENDING_SUFFIX: &str = ".pending";

/// Facts about the executing process, read from `/proc/<pid>`.
#[derive(Debug, Default)]
pub struct ProcessFacts {
    /// Effective uid.
    pub uid: Option<u32>,
    /// Effective gid.
    pub gid: Option<u32>,
    /// Current program (`/proc/<pid>/exe`).
    pub exe: Option<PathBuf>,
}

impl ProcessFacts {
    /// Reads everything about `pid` (for the exec history, which a later
    /// `vigil policy test` may replay against any rules).
    pub fn gather_all(pid: i32) -> ProcessFacts {
        let (uid, gid) = credentials(pid);
        ProcessFacts {
            uid,
            gid,
            exe: program_of(pid),
        }
    }

    /// The rules' view of one exec of `path` (owner and mode from `st`).
    pub fn facts<'a>(&'a self, path: Option<&'a Path>, st: &FileStat) -> ExecFacts<'a> {
        ExecFacts {
            path,
            file_uid: st.st_uid,
            file_mode: st.st_mode,
            uid: self.uid,
            gid: self.gid,
            parent: self.exe.as_deref(),
        }
    }
}

/// True when `pid` or one of its first [`MAX_ANCESTRY`] ancestors runs one of
/// `policy.package_managers` (maintainer scripts run as dpkg's descendants,
/// rpm's scriptlets as rpm's, dnf's or zypper's), as its program or, for a
/// root Python process, as its script ([`python_script_of`]: dnf 4 and yum).
pub fn package_manager_ancestor(policy: &ExecPolicy, pid: i32) -> bool {
    let mut current = pid;
    for _ in 0..MAX_ANCESTRY {
        if current <= 1 {
            return false;
        }
        if program_of(current).is_some_and(|exe| {
            policy.is_package_manager(&exe)
                || python_script_of(current, &exe).is_some_and(|script| {
                    policy.is_package_manager(&script)
                        || std::fs::canonicalize(&script)
                            .is_ok_and(|real| policy.is_package_manager(&real))
                })
        }) {
            return true;
        }
        match parent_pid(current) {
            Some(parent) => current = parent,
            None => return false,
        }
    }
    false
}

/// The upgrade-window marker of `config` (`<policy.trust_db>.pending`).
pub fn pending_marker(config: &Config) -> PathBuf {
    pending_marker_for(&config.policy.trust_db)
}

/// The upgrade-window marker of the store at `store`.
pub fn pending_marker_for(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(PENDING_SUFFIX);
    PathBuf::from(name)
}

/// True while a `vigil trust begin` window is open: the marker exists, is
/// root-owned, and is younger than `policy.upgrade_window_s` (so a window a
/// crashed upgrade left open closes by itself).
pub fn window_open(config: &Config) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::symlink_metadata(pending_marker(config)) else {
        return false;
    };
    if !md.is_file() || md.uid() != 0 {
        return false;
    }
    let limit = Duration::from_secs(config.policy.upgrade_window_s);
    md.modified()
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age <= limit)
}

/// What the rules say before the scan.
#[derive(Debug)]
pub enum Gate<'g> {
    /// No rule matched: scan as usual.
    Scan,
    /// A rule matched that lets the scan decide (`allow`, `audit`,
    /// `trusted-only`, the last completed by [`after_scan`]).
    Rule(RuleMatch<'g>),
    /// A `deny` rule matched: answer without scanning.
    Deny(RuleMatch<'g>),
}

/// Evaluates the exec rules for one exec.
pub fn before_scan<'g>(
    policy: &'g ExecPolicy,
    process: &ProcessFacts,
    path: Option<&Path>,
    st: &FileStat,
) -> Gate<'g> {
    match policy.evaluate(&process.facts(path, st)) {
        None => Gate::Scan,
        Some(m) => match m.action {
            RuleAction::Deny => Gate::Deny(m),
            RuleAction::Allow | RuleAction::Audit | RuleAction::TrustedOnly => Gate::Rule(m),
        },
    }
}

/// Completes a `trusted-only` rule once the content's SHA-256 is known.
/// `sha256` is `None` for files too large to hash (never trusted).
#[allow(clippy::too_many_arguments)]
pub fn after_scan(
    config: &Config,
    policy: &ExecPolicy,
    trust: Option<&TrustStore>,
    process: &ProcessFacts,
    path: Option<&Path>,
    st: &FileStat,
    sha256: Option<&[u8; 32]>,
    pid: i32,
) -> TrustOutcome {
    let entry = path.zip(trust).and_then(|(p, t)| t.lookup(p));
    let digest_matches = entry.zip(sha256).is_some_and(|(e, d)| &e.sha256 == d);
    let facts = process.facts(path, st);
    // The slow checks (a stat, a walk up /proc) only for a file that is not
    // trusted and that root alone can write: the only case they can change.
    let maybe_exception = !digest_matches && !facts.non_root_writable();
    let trust_facts = TrustFacts {
        digest_matches,
        path_known: entry.is_some(),
        window_open: maybe_exception && entry.is_some() && window_open(config),
        package_manager: maybe_exception && package_manager_ancestor(policy, pid),
    };
    trusted_only(&facts, &trust_facts)
}

/// The `vigil.rule` object of an event line.
pub fn rule_json(m: &RuleMatch<'_>, outcome: Option<TrustOutcome>) -> serde_json::Value {
    serde_json::json!({
        "name": m.name,
        "action": m.action.as_str(),
        "source": m.source.to_string(),
        "trust": outcome.map(TrustOutcome::as_str),
    })
}

/// True when the path is one a store could hold (absolute, not a deleted file).
pub fn lookup_path(path: Option<&Path>) -> Option<&Path> {
    path.filter(|p| p.is_absolute() && !p.as_os_str().as_bytes().ends_with(b" (deleted)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::exe_of;

    #[test]
    fn own_process_facts() {
        let me = std::process::id() as i32;
        let (uid, gid) = credentials(me);
        assert_eq!(uid, Some(nix::unistd::geteuid().as_raw()));
        assert_eq!(gid, Some(nix::unistd::getegid().as_raw()));
        assert_eq!(parent_pid(me), Some(nix::unistd::getppid().as_raw()));
        assert_eq!(credentials(-1), (None, None));
    }

    #[test]
    fn package_manager_found_among_ancestors() {
        let me = std::process::id() as i32;
        let my_exe = exe_of(me).unwrap();
        let mut cfg = vigil_policy::PolicyConfig::default();
        let none = ExecPolicy::new(&cfg).unwrap();
        assert!(!package_manager_ancestor(&none, me));
        cfg.package_managers = vec![my_exe];
        let mine = ExecPolicy::new(&cfg).unwrap();
        assert!(package_manager_ancestor(&mine, me));
    }

    /// Waits until `file` holds a pid (written by a child being started).
    fn pid_from(file: &Path) -> i32 {
        for _ in 0..200 {
            if let Some(pid) = std::fs::read_to_string(file)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                return pid;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("no pid in {}", file.display());
    }

    #[test]
    fn rpm_scriptlet_has_a_package_manager_ancestor_by_default() {
        // A shell run by the real rpm (a macro's %(...), as a scriptlet is run):
        // recognised with the default policy.package_managers.
        if std::fs::canonicalize("/usr/bin/rpm").ok().as_deref() != Some(Path::new("/usr/bin/rpm"))
        {
            println!("SKIPPED: no /usr/bin/rpm");
            return;
        }
        let dir = std::env::temp_dir().join(format!("vigil-gate-rpm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("pid");
        let mut rpm = std::process::Command::new("/usr/bin/rpm")
            .arg("--eval")
            .arg(format!("%(echo $$ >{}; exec sleep 10)", pid_file.display()))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let scriptlet = pid_from(&pid_file);
        let policy = ExecPolicy::new(&vigil_policy::PolicyConfig::default()).unwrap();
        let found = package_manager_ancestor(&policy, scriptlet);
        let outside = package_manager_ancestor(&policy, std::process::id() as i32);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(scriptlet),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = rpm.wait();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(found, "rpm's child not recognised");
        assert!(!outside, "the test itself is no package manager's child");
    }

    #[test]
    fn python_package_manager_recognised_by_its_script() {
        // dnf 4 and yum are Python scripts: the kernel runs `python3 /usr/bin/dnf`,
        // and rpm's scriptlets are children of that Python process.
        let python = Path::new("/usr/bin/python3");
        if !python.exists() {
            println!("SKIPPED: no /usr/bin/python3");
            return;
        }
        let dir = std::env::temp_dir().join(format!("vigil-gate-dnf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("dnf");
        let pid_file = dir.join("pid");
        std::fs::write(
            &script,
            format!(
                "#!/usr/bin/python3 -s\nimport subprocess\n\
                 child = subprocess.Popen(['sleep', '10'])\n\
                 open({pid:?}, 'w').write(str(child.pid))\nchild.wait()\n",
                pid = pid_file.to_string_lossy()
            ),
        )
        .unwrap();
        let mut perms = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).unwrap();
        // Another test thread forking while the script was open for writing
        // makes the exec fail with ETXTBSY for a moment.
        let mut spawned = std::process::Command::new(&script).spawn();
        for _ in 0..50 {
            match &spawned {
                Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) => {
                    std::thread::sleep(Duration::from_millis(20));
                    spawned = std::process::Command::new(&script).spawn();
                }
                _ => break,
            }
        }
        let mut dnf = spawned.unwrap();
        let scriptlet = pid_from(&pid_file);
        let mut cfg = vigil_policy::PolicyConfig::default();
        let default = ExecPolicy::new(&cfg).unwrap();
        cfg.package_managers = vec![script.clone()];
        let listed = ExecPolicy::new(&cfg).unwrap();
        let interpreter = exe_of(dnf.id() as i32).unwrap();
        let seen_script = python_script_of(dnf.id() as i32, &interpreter);
        let found_listed = package_manager_ancestor(&listed, scriptlet);
        let found_default = package_manager_ancestor(&default, scriptlet);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(scriptlet),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = dnf.wait();
        std::fs::remove_dir_all(&dir).unwrap();
        let root = nix::unistd::geteuid().is_root();
        // Only a root interpreter's script counts.
        assert_eq!(seen_script.as_deref(), root.then_some(script.as_path()));
        assert_eq!(found_listed, root, "listed script");
        assert!(!found_default, "a script not in the list");
        // Not a Python, or no script.
        assert_eq!(
            python_script_of(std::process::id() as i32, Path::new("/usr/bin/dash")),
            None
        );
    }

    #[test]
    fn program_of_a_replaced_binary_is_its_old_name() {
        let dir = std::env::temp_dir().join(format!("vigil-gate-exe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("sleeper");
        std::fs::copy("/bin/sleep", &copy).unwrap();
        let mut child = std::process::Command::new(&copy).arg("5").spawn().unwrap();
        let pid = child.id() as i32;
        std::fs::remove_file(&copy).unwrap();
        let raw = exe_of(pid).unwrap();
        let program = program_of(pid);
        let _ = child.kill();
        let _ = child.wait();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(raw.to_string_lossy().ends_with(" (deleted)"), "{raw:?}");
        assert_eq!(program, Some(copy));
    }

    #[test]
    fn window_marker_age() {
        let dir = std::env::temp_dir().join(format!("vigil-gate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = Config::default();
        config.policy.trust_db = dir.join("trust.db");
        assert!(!window_open(&config));
        std::fs::write(pending_marker(&config), b"").unwrap();
        // Only root-owned markers count.
        assert_eq!(window_open(&config), nix::unistd::geteuid().is_root());
        let old = SystemTime::now() - Duration::from_secs(7200);
        let f = std::fs::File::options()
            .write(true)
            .open(pending_marker(&config))
            .unwrap();
        f.set_modified(old).unwrap();
        assert!(!window_open(&config), "a stale window is closed");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
