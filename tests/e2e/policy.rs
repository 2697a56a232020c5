//! Exec rules, profiles and the package trust store, end to end.
//!
//! Every daemon here runs inside the sandbox's mount namespace
//! ([`Sandbox::start_in_namespace_with_text`]) so the paths it reads from event
//! fds and `/proc/<pid>/exe` are the namespace paths ([`Sandbox::ns_path`]) the
//! rules and the trust store name. The "tmp" places, the services and shells, and
//! the dpkg database are all inside the sandbox, pointed at by `[policy]` keys.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use md5::{Digest as _, Md5};
use serde_json::Value;

use crate::fixture::*;

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// A TOML array of strings.
fn list(items: &[&Path]) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|p| format!("{:?}", p.to_string_lossy()))
        .collect();
    format!("[{}]", items.join(", "))
}

/// The `[policy]` table of a test: `profile`, the sandbox's "tmp" directory, its
/// service and shell, and a trust store and dpkg database in the host temp dir.
fn policy_toml(sb: &Sandbox, profile: &str) -> String {
    format!(
        "\n[policy]\nprofile = {profile:?}\ntmp_paths = {tmp}\nservices = {services}\n\
         shells = {shells}\ntrust_db = {db:?}\ndpkg_admin = {admin:?}\ndpkg_root = {root:?}\n\
         package_managers = {pm}\n",
        tmp = list(&[&sb.ns_path("tmp/**")]),
        services = list(&[&sb.ns_path("sbin/php-fpm*")]),
        shells = list(&[&sb.ns_path("bin/sh")]),
        db = sb.host("trust.db").to_string_lossy(),
        admin = sb.host("dpkg").to_string_lossy(),
        root = sb.ns_path("").to_string_lossy(),
        pm = list(&[&sb.ns_path("usr/bin/dpkg")]),
    )
}

fn start(sb: &Sandbox, profile: &str) -> Daemon {
    let cfg = sb.config();
    let text = format!("{}{}", cfg.to_toml(), policy_toml(sb, profile));
    sb.start_in_namespace_with_text(&cfg, &text)
}

/// The `vigil.rule` object of an event line.
fn rule_of(ev: &Value) -> (&str, &str) {
    (jstr(ev, "/vigil/rule/name"), jstr(ev, "/vigil/rule/trust"))
}

/// Installs a copy of the system's dash at `path` (a "service" or a "shell").
fn install_dash(path: &Path) {
    let dash = fs::read("/usr/bin/dash").expect("read /usr/bin/dash");
    write_file(path, &dash, 0o755);
}

/// Runs `shell -c script`.
fn sh(shell: &Path, script: &str) -> std::io::Result<Output> {
    exec(shell, &["-c", script])
}

#[test]
fn server_profile_denies_tmp_execs_and_service_shells_desktop_does_not() {
    require_root!();
    let sb = Sandbox::new("profiles");
    let in_tmp = sb.mnt("tmp/dropped");
    write_marker_binary(&in_tmp, "dropped");
    let elsewhere = sb.mnt("opt/app");
    write_marker_binary(&elsewhere, "app");
    let service = sb.mnt("sbin/php-fpm8.2");
    install_dash(&service);
    let shell = sb.mnt("bin/sh");
    install_dash(&shell);
    let shell_cmd = format!("exec {} -c 'echo {MARKER}'", shell.display());

    {
        let d = start(&sb, "desktop");
        assert_ran(
            &run(&in_tmp),
            &format!("tmp exec under desktop{}", d.context()),
        );
        assert_ran(
            &sh(&service, &shell_cmd),
            &format!("service shell under desktop{}", d.context()),
        );
    }

    let d = start(&sb, "server");
    assert_denied(
        &run(&in_tmp),
        &format!("tmp exec under server{}", d.context()),
    );
    let ev = d.wait_event("tmp exec blocked", EVENT_WAIT, |v| {
        is_event(v, "blocked", "tmp/dropped")
    });
    assert_eq!(jstr(&ev, "/vigil/rule/name"), "server.tmp-exec", "{ev}");
    assert_eq!(jstr(&ev, "/vigil/rule/source"), "profile server", "{ev}");
    assert_eq!(jstr(&ev, "/event/type"), "exec", "{ev}");
    assert_ran(&run(&elsewhere), &format!("non-tmp exec{}", d.context()));

    // The service may not start the shell; the shell itself (started by the
    // test) and the service running another program are fine.
    let out = sh(&service, &shell_cmd).expect("run the service");
    assert!(
        !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains(MARKER),
        "service started a shell under server: {}{}",
        show(&out),
        d.context()
    );
    let ev = d.wait_event("service shell blocked", EVENT_WAIT, |v| {
        is_event(v, "blocked", "bin/sh")
    });
    assert_eq!(
        jstr(&ev, "/vigil/rule/name"),
        "server.service-shell",
        "{ev}"
    );
    assert!(
        jstr(&ev, "/process/executable").ends_with("sbin/php-fpm8.2"),
        "the process named is the service about to exec: {ev}"
    );
    assert_ran(
        &sh(&shell, &format!("echo {MARKER}")),
        "shell from the test",
    );
    assert_ran(
        &sh(&service, &format!("exec {}", elsewhere.display())),
        &format!("service running a non-shell{}", d.context()),
    );
}

#[test]
fn audit_mode_logs_what_a_rule_would_deny() {
    require_root!();
    let sb = Sandbox::new("policy-audit");
    let in_tmp = sb.mnt("tmp/dropped");
    write_marker_binary(&in_tmp, "dropped-audit");
    let mut cfg = sb.config();
    cfg.mode = "audit".into();
    let text = format!("{}{}", cfg.to_toml(), policy_toml(&sb, "server"));
    let d = sb.start_in_namespace_with_text(&cfg, &text);
    assert_ran(
        &run(&in_tmp),
        &format!("tmp exec in audit mode{}", d.context()),
    );
    let ev = d.wait_event("audited rule", EVENT_WAIT, |v| {
        is_event(v, "audited", "tmp/dropped")
    });
    assert_eq!(jstr(&ev, "/vigil/rule/name"), "server.tmp-exec", "{ev}");
    assert_eq!(jstr(&ev, "/event/outcome"), "allowed", "{ev}");
}

/// A fake dpkg database: `status` with one package, `vigil-e2e-tools`, whose
/// md5sums list names `files` (paths relative to the root, with their content).
fn write_dpkg(sb: &Sandbox, version: &str, files: &[(&str, &[u8])]) {
    let admin = sb.host("dpkg");
    let mut list = String::new();
    for (rel, data) in files {
        list.push_str(&format!("{}  {rel}\n", hex::encode(Md5::digest(data))));
    }
    // dpkg replaces its lists by rename: a new inode, as the update expects.
    let tmp = admin.join("info/vigil-e2e-tools.md5sums.new");
    write_file(&tmp, list.as_bytes(), 0o644);
    fs::rename(&tmp, admin.join("info/vigil-e2e-tools.md5sums")).expect("rename md5sums");
    write_file(
        &admin.join("status"),
        format!(
            "Package: vigil-e2e-tools\nStatus: install ok installed\nArchitecture: all\n\
             Version: {version}\nDescription: test\n"
        )
        .as_bytes(),
        0o644,
    );
}

/// Runs one of the apt hook's commands (from `packaging/apt/80vigil-trust`) in the
/// sandbox's namespace, with this build's vigil and the test's config.
fn run_hook(sb: &Sandbox, hook: &str) -> Output {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/apt/80vigil-trust");
    let text = fs::read_to_string(&file).expect("read the apt hook");
    let line = text
        .lines()
        .find(|l| l.starts_with(hook))
        .unwrap_or_else(|| panic!("{hook} missing from {}", file.display()));
    let command = line
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("no quoted command in {line:?}"));
    let config = sb.config_path();
    let command = command.replace("/usr/bin/vigil", VIGIL).replace(
        " --if-exists",
        &format!(" --if-exists --config {}", config.display()),
    );
    assert!(
        command.contains("--config"),
        "hook command not understood: {command}"
    );
    sb.ns_command("sh")
        .args(["-c", command.as_str()])
        .output()
        .expect("run the hook command")
}

/// Replaces `path` as dpkg does: write `<path>.dpkg-new`, then rename over it.
fn dpkg_replace(path: &Path, data: &[u8]) {
    let mut new = path.as_os_str().to_owned();
    new.push(".dpkg-new");
    let new = PathBuf::from(new);
    write_file(&new, data, 0o755);
    fs::rename(&new, path).expect("rename .dpkg-new");
}

#[test]
fn lockdown_trusts_package_files_and_survives_an_upgrade_through_the_apt_hook() {
    require_root!();
    let sb = Sandbox::new("lockdown");
    let tool = sb.mnt("usr/bin/tool");
    let v1 = marker_variant("tool-1");
    write_file(&tool, &v1, 0o755);
    let pm = sb.mnt("usr/bin/dpkg");
    install_dash(&pm);
    let pm_bytes = fs::read(&pm).expect("read fake dpkg");
    let unknown = sb.mnt("usr/local/bin/unknown");
    write_marker_binary(&unknown, "unknown");
    write_dpkg(
        &sb,
        "1",
        &[
            ("usr/bin/tool", v1.as_slice()),
            ("usr/bin/dpkg", pm_bytes.as_slice()),
        ],
    );

    // Lockdown refuses to start without a store (it would deny every exec).
    let cfg = sb.config();
    let text = format!("{}{}", cfg.to_toml(), policy_toml(&sb, "lockdown"));
    write_file(&sb.config_path(), text.as_bytes(), 0o644);
    let check = std::process::Command::new(VIGIL)
        .args(["check-config", "--config"])
        .arg(sb.config_path())
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("vigil check-config");
    assert!(
        !check.status.success()
            && String::from_utf8_lossy(&check.stderr).contains("vigil trust update"),
        "lockdown without a store: {}",
        show(&check)
    );

    // The first build, as an administrator runs it.
    let out = sb
        .ns_command(VIGIL)
        .args(["trust", "update", "--json", "--no-reload", "--config"])
        .arg(sb.config_path())
        .output()
        .expect("vigil trust update");
    assert!(out.status.success(), "trust update: {}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["files"], 2, "{report}");
    assert_eq!(report["digest_mismatches"], 0, "{report}");

    let d = sb.start_in_namespace_with_text(&cfg, &text);
    assert_ran(&run(&tool), &format!("trusted tool{}", d.context()));
    assert_denied(&run(&unknown), &format!("unknown binary{}", d.context()));
    let ev = d.wait_event("unknown denied", EVENT_WAIT, |v| {
        is_event(v, "blocked", "usr/local/bin/unknown")
    });
    assert_eq!(rule_of(&ev), ("lockdown.trusted-only", "untrusted"), "{ev}");

    // The upgrade, through the hook path: Pre-Invoke, dpkg's unpack (.dpkg-new +
    // rename) and its database update, an exec of the new file by a process that
    // is not the package manager (systemd restarting a service), an exec by a
    // maintainer script (a descendant of dpkg) of a file not yet in the store,
    // then Post-Invoke.
    let out = run_hook(&sb, "DPkg::Pre-Invoke");
    assert!(out.status.success(), "pre-invoke: {}", show(&out));
    assert!(
        sb.host("trust.db.pending").exists(),
        "the window marker: {}",
        show(&out)
    );
    let v2 = marker_variant("tool-2");
    dpkg_replace(&tool, &v2);
    let helper = sb.mnt("usr/lib/tools/helper");
    write_marker_binary(&helper, "helper");
    write_dpkg(
        &sb,
        "2",
        &[
            ("usr/bin/tool", v2.as_slice()),
            ("usr/bin/dpkg", pm_bytes.as_slice()),
        ],
    );
    assert_ran(
        &run(&tool),
        &format!("replaced file during the upgrade{}", d.context()),
    );
    assert_ran(
        &sh(&pm, &format!("exec {}", helper.display())),
        &format!("maintainer-script exec of a new file{}", d.context()),
    );
    assert_denied(
        &run(&helper),
        &format!(
            "the new unlisted file outside the package manager{}",
            d.context()
        ),
    );
    let out = run_hook(&sb, "DPkg::Post-Invoke");
    assert!(out.status.success(), "post-invoke: {}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("daemon reloaded"),
        "post-invoke reloads the daemon: {}",
        show(&out)
    );
    assert!(!sb.host("trust.db.pending").exists(), "window closed");
    assert_ran(
        &run(&tool),
        &format!("upgraded tool, now trusted{}", d.context()),
    );

    let events = d.events();
    let upgrade: Vec<_> = events
        .iter()
        .filter(|v| jstr(v, "/file/path").ends_with("usr/bin/tool"))
        .collect();
    assert!(
        upgrade
            .iter()
            .all(|v| jstr(v, "/event/outcome") == "allowed"),
        "no denial of the package's file: {upgrade:?}"
    );
    assert!(
        upgrade.iter().any(|v| rule_of(v).1 == "upgrade-window"),
        "the window was what allowed it: {upgrade:?}"
    );
    assert!(
        events
            .iter()
            .any(|v| is_event(v, "audited", "usr/lib/tools/helper")
                && rule_of(v).1 == "package-manager"),
        "the maintainer-script exec is logged: {events:?}"
    );

    // After the upgrade, a modified package file is never trusted.
    dpkg_replace(&tool, &marker_variant("tool-tampered"));
    assert_denied(&run(&tool), &format!("tampered tool{}", d.context()));
    let out = sb
        .ns_command(VIGIL)
        .args(["trust", "check", "--config"])
        .arg(sb.config_path())
        .arg(sb.ns_path("usr/bin/tool"))
        .output()
        .expect("vigil trust check");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("MODIFIED (differs from what vigil-e2e-tools 2 installed)"),
        "{}",
        show(&out)
    );
}

#[test]
fn lockdown_lets_a_python_package_managers_scriptlets_run() {
    // dnf 4 and yum are Python scripts: rpm's scriptlets run as children of
    // `python3 /usr/bin/dnf`. Here a root Python runs the sandbox's `dnf`
    // (listed in package_managers, itself in the store), which runs a helper the
    // store does not know: allowed as a package manager's descendant. The same
    // Python running the same code with -c is no package manager: denied.
    require_root!();
    if !Path::new("/usr/bin/python3").exists() {
        println!("SKIPPED lockdown_lets_a_python_package_managers_scriptlets_run: no python3");
        return;
    }
    let sb = Sandbox::new("lockdown-dnf");
    let code = "import subprocess, sys\nsys.exit(subprocess.run(sys.argv[1:]).returncode)\n";
    let dnf_text = format!("#!/usr/bin/python3 -s\n{code}");
    write_file(&sb.mnt("usr/bin/dnf"), dnf_text.as_bytes(), 0o755);
    let helper = sb.mnt("usr/lib/tools/helper");
    write_marker_binary(&helper, "helper");
    write_dpkg(&sb, "1", &[("usr/bin/dnf", dnf_text.as_bytes())]);
    let cfg = sb.config();
    let policy = policy_toml(&sb, "lockdown").replace(
        &list(&[&sb.ns_path("usr/bin/dpkg")]),
        &list(&[&sb.ns_path("usr/bin/dnf")]),
    );
    let text = format!("{}{policy}", cfg.to_toml());
    write_file(&sb.config_path(), text.as_bytes(), 0o644);
    let out = sb
        .ns_command(VIGIL)
        .args(["trust", "update", "--no-reload", "--config"])
        .arg(sb.config_path())
        .output()
        .expect("vigil trust update");
    assert!(out.status.success(), "trust update: {}", show(&out));
    let d = sb.start_in_namespace_with_text(&cfg, &text);

    let out = sb
        .ns_command(sb.ns_path("usr/bin/dnf"))
        .arg(sb.ns_path("usr/lib/tools/helper"))
        .output();
    assert_ran(
        &out,
        &format!("helper run by the dnf script{}", d.context()),
    );
    let ev = d.wait_event("helper audited", EVENT_WAIT, |v| {
        is_event(v, "audited", "usr/lib/tools/helper")
    });
    assert_eq!(
        rule_of(&ev),
        ("lockdown.trusted-only", "package-manager"),
        "{ev}"
    );

    let out = sb
        .ns_command("/usr/bin/python3")
        .args(["-c", code])
        .arg(sb.ns_path("usr/lib/tools/helper"))
        .output()
        .expect("run python3 -c");
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("PermissionError"),
        "python -c is no package manager: {}{}",
        show(&out),
        d.context()
    );
    d.wait_event("helper denied", EVENT_WAIT, |v| {
        is_event(v, "blocked", "usr/lib/tools/helper")
    });
}

#[test]
fn trust_store_from_this_machines_dpkg_database() {
    // No daemon and no root needed: reads /var/lib/dpkg and /usr.
    let admin = Path::new("/var/lib/dpkg");
    let packages = ["coreutils", "dash"];
    if !packages
        .iter()
        .all(|p| admin.join(format!("info/{p}.md5sums")).is_file())
    {
        println!("SKIPPED trust_store_from_this_machines_dpkg_database: no dpkg database");
        return;
    }
    let dir = TempDir::new("trust-real");
    let config = dir.join("empty.toml");
    write_file(&config, b"", 0o644);
    let store = dir.join("trust.db");
    let mut cmd = std::process::Command::new(VIGIL);
    cmd.args(["trust", "update", "--json", "--no-reload", "--config"])
        .arg(&config)
        .arg("--store")
        .arg(&store);
    for p in packages {
        cmd.args(["--package", p]);
    }
    let out = cmd
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("vigil trust update");
    assert!(out.status.success(), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");

    // Every listed file is accounted for: stored, or left out with a reason.
    let listed: u64 = packages
        .iter()
        .map(|p| {
            fs::read_to_string(admin.join(format!("info/{p}.md5sums")))
                .expect("read md5sums")
                .lines()
                .filter(|l| !l.is_empty())
                .count() as u64
        })
        .sum();
    let n = |k: &str| report[k].as_u64().unwrap_or(0);
    assert_eq!(
        n("files") + n("digest_mismatches") + n("unreadable"),
        listed,
        "{report}"
    );
    assert!(n("files") > listed * 9 / 10, "most files stored: {report}");

    // Spot checks against sha256sum(1), under the names the kernel reports.
    let db = vigil_policy::TrustStore::load(&store).expect("load the store");
    for path in ["/bin/ls", "/usr/bin/cat", "/bin/dash"] {
        let resolved = fs::canonicalize(path).expect("resolve");
        let out = std::process::Command::new("sha256sum")
            .arg(&resolved)
            .output()
            .expect("sha256sum");
        let want = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        let entry = db
            .lookup(&resolved)
            .unwrap_or_else(|| panic!("{} not in the store", resolved.display()));
        assert_eq!(hex::encode(entry.sha256), want, "{}", resolved.display());
    }
    let out = std::process::Command::new(VIGIL)
        .args(["trust", "check", "--config"])
        .arg(&config)
        .arg("--store")
        .arg(&store)
        .args(["/bin/ls", "/usr/bin/dash"])
        .output()
        .expect("vigil trust check");
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/usr/bin/ls: trusted (coreutils "),
        "{}",
        show(&out)
    );
}

/// The spec of the rpm test packages: a script, a data file, a symlink and a
/// `%ghost` log, all named after the package.
const RPM_SPEC: &str = "Name: %{pkgname}\nVersion: 1.0\nRelease: 1\nSummary: vigil e2e\n\
    License: MIT\nBuildArch: noarch\n%description\nvigil e2e test package\n\
    %install\nmkdir -p %{buildroot}/usr/bin %{buildroot}/usr/share/%{name}\n\
    printf '#!/bin/sh\\necho %{name}\\n' >%{buildroot}/usr/bin/%{name}\n\
    chmod 0755 %{buildroot}/usr/bin/%{name}\n\
    ln -s %{name} %{buildroot}/usr/bin/%{name}-link\n\
    echo %{name} >%{buildroot}/usr/share/%{name}/data\n\
    %files\n/usr/bin/%{name}\n/usr/bin/%{name}-link\n/usr/share/%{name}\n\
    %ghost /var/log/%{name}.log\n";

/// Builds the test package `name` with rpmbuild under `dir`, its file digests
/// in rpm's algorithm `algo` (8 SHA-256, 1 MD5); returns the .rpm.
fn build_rpm(dir: &Path, name: &str, algo: u32) -> PathBuf {
    let spec = dir.join("test.spec");
    write_file(&spec, RPM_SPEC.as_bytes(), 0o644);
    let out = std::process::Command::new("rpmbuild")
        .arg("-bb")
        .arg("--quiet")
        .args(["--define", &format!("pkgname {name}")])
        .args([
            "--define",
            &format!("_topdir {}", dir.join("build").display()),
        ])
        .args([
            "--define",
            &format!("_rpmdir {}", dir.join("rpms").display()),
        ])
        .args(["--define", &format!("_binary_filedigest_algorithm {algo}")])
        .args(["--define", "_build_id_links none"])
        .args(["--define", "debug_package %{nil}"])
        .args(["--define", "__os_install_post %{nil}"])
        .arg(&spec)
        .output()
        .expect("run rpmbuild");
    assert!(out.status.success(), "rpmbuild: {}", show(&out));
    dir.join(format!("rpms/noarch/{name}-1.0-1.noarch.rpm"))
}

/// Runs `rpm --root ROOT --dbpath /var/lib/rpm ARGS`.
fn rpm_in(root: &Path, args: &[&str]) -> Output {
    let out = std::process::Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", "/var/lib/rpm"])
        .args(args)
        .output()
        .expect("run rpm");
    assert!(out.status.success(), "rpm {args:?}: {}", show(&out));
    out
}

/// `vigil trust SUBCOMMAND` on the rpm test root (no dpkg database), JSON out.
fn trust_in(dir: &Path, args: &[&str], path_env: Option<&str>) -> Output {
    let mut cmd = std::process::Command::new(VIGIL);
    cmd.arg("trust")
        .args(args)
        .arg("--config")
        .arg(dir.join("empty.toml"))
        .arg("--store")
        .arg(dir.join("trust.db"))
        .env_remove("RUST_BACKTRACE");
    if args[0] == "update" {
        cmd.args(["--json", "--no-reload", "--dpkg-admin"])
            .arg(dir.join("no-dpkg"))
            .arg("--root")
            .arg(dir.join("root"));
    }
    if let Some(path) = path_env {
        cmd.env("PATH", path);
    }
    cmd.output().expect("run vigil trust")
}

#[test]
fn trust_store_from_an_rpm_database() {
    // Real packages from rpmbuild, installed by rpm into a private root and
    // database; no daemon. rpm needs root to install (it chroots).
    require_root!();
    for tool in ["rpm", "rpmbuild"] {
        let found = std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "{tool} missing (apt-get install rpm)");
    }
    let dir = TempDir::new("trust-rpm");
    write_file(&dir.join("empty.toml"), b"", 0o644);
    let sha = build_rpm(dir.path(), "vigil-e2e-sha", 8);
    let md5 = build_rpm(dir.path(), "vigil-e2e-md5", 1);
    let root = dir.join("root");
    fs::create_dir_all(&root).expect("mkdir root");
    rpm_in(&root, &["--initdb"]);
    let (sha_s, md5_s) = (sha.to_string_lossy(), md5.to_string_lossy());
    rpm_in(&root, &["-i", "--nodeps", "--noscripts", &sha_s, &md5_s]);
    let algos = rpm_in(&root, &["-qa", "--qf", "%{NAME} %{FILEDIGESTALGO}\n"]);
    let algos = String::from_utf8_lossy(&algos.stdout).to_string();
    assert!(
        algos.contains("vigil-e2e-sha 8") && algos.contains("vigil-e2e-md5 (none)"),
        "one SHA-256 and one MD5 package: {algos}"
    );

    let report = |out: &Output| -> Value {
        assert!(out.status.success(), "trust update: {}", show(out));
        serde_json::from_slice(&out.stdout).expect("JSON report")
    };
    let first = report(&trust_in(dir.path(), &["update"], None));
    let rpm = &first["managers"]["rpm"];
    // Per package: the script and the data file; the symlink is not content,
    // the ghost is not installed.
    assert_eq!(
        (&rpm["packages"], &rpm["files"], &rpm["files_skipped"]),
        (&Value::from(2), &Value::from(4), &Value::from(2)),
        "{first}"
    );
    assert_eq!(rpm["digest_mismatches"], 0, "{first}");
    assert!(first["managers"].get("dpkg").is_none(), "{first}");

    // Stored under the kernel's names, with sha256sum(1)'s digest.
    let store = vigil_policy::TrustStore::load(&dir.join("trust.db")).expect("load the store");
    let real_root = fs::canonicalize(&root).expect("resolve root");
    for rel in [
        "usr/bin/vigil-e2e-sha",
        "usr/bin/vigil-e2e-md5",
        "usr/share/vigil-e2e-md5/data",
    ] {
        let path = real_root.join(rel);
        let want = sha256_file(&path).expect("hash");
        let entry = store
            .lookup(&path)
            .unwrap_or_else(|| panic!("{} not in the store", path.display()));
        assert_eq!(hex::encode(entry.sha256), want, "{}", path.display());
    }
    assert!(
        store
            .lookup(&real_root.join("usr/bin/vigil-e2e-sha-link"))
            .is_none()
    );
    let status = trust_in(dir.path(), &["status"], None);
    assert!(status.status.success(), "{}", show(&status));
    let status: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["managers"]["rpm"]["files"], 4, "{status}");

    // Nothing changed: both reused.
    let again = report(&trust_in(dir.path(), &["update"], None));
    assert_eq!(
        (&again["packages_reused"], &again["files_hashed"]),
        (&Value::from(2), &Value::from(0)),
        "{again}"
    );

    // A modified file: `check` says so, and a full rebuild leaves it out
    // (its MD5 no longer matches rpm's).
    let tool = real_root.join("usr/bin/vigil-e2e-md5");
    write_file(&tool, b"#!/bin/sh\necho tampered\n", 0o755);
    let tool_s = tool.to_string_lossy();
    let check = trust_in(dir.path(), &["check", &tool_s], None);
    assert_eq!(check.status.code(), Some(1), "{}", show(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout)
            .contains("MODIFIED (differs from what vigil-e2e-md5 1.0-1.noarch installed)"),
        "{}",
        show(&check)
    );
    let full = report(&trust_in(dir.path(), &["update", "--full"], None));
    assert_eq!(full["managers"]["rpm"]["digest_mismatches"], 1, "{full}");
    let check = trust_in(dir.path(), &["check", &tool_s], None);
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("unknown (not in the trust store)"),
        "{}",
        show(&check)
    );

    // A package erased: gone from the store at the next update; the other kept.
    rpm_in(&root, &["-e", "--noscripts", "vigil-e2e-sha"]);
    let erased = report(&trust_in(dir.path(), &["update"], None));
    assert_eq!(
        (&erased["packages"], &erased["packages_reused"]),
        (&Value::from(1), &Value::from(1)),
        "{erased}"
    );
    let store = vigil_policy::TrustStore::load(&dir.join("trust.db")).expect("load the store");
    assert!(
        store
            .lookup(&real_root.join("usr/bin/vigil-e2e-sha"))
            .is_none()
    );

    // No `rpm` program: a warning, and the rpm packages stay as they were.
    let empty_path = dir.join("no-bin");
    fs::create_dir_all(&empty_path).expect("mkdir");
    let out = trust_in(dir.path(), &["update"], Some(&empty_path.to_string_lossy()));
    let kept = report(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no `rpm` program"),
        "{}",
        show(&out)
    );
    assert_eq!(kept["packages"], 1, "{kept}");
    assert_eq!(kept["files"], 1, "the md5 package's data file: {kept}");

    // A configured database directory that holds none is an error.
    let out = trust_in(dir.path(), &["update", "--rpm-dbpath", "/nowhere"], None);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no rpm database"),
        "{}",
        show(&out)
    );
}

#[test]
fn dry_run_replays_the_daemons_execs_and_a_recording() {
    require_root!();
    let sb = Sandbox::new("dry-run");
    let in_tmp = sb.mnt("tmp/dropped");
    write_marker_binary(&in_tmp, "dropped-dry");
    let app = sb.mnt("opt/app");
    write_marker_binary(&app, "app-dry");
    let service = sb.mnt("sbin/php-fpm");
    install_dash(&service);
    let shell = sb.mnt("bin/sh");
    install_dash(&shell);

    // A desktop daemon allows all of it and remembers the execs.
    let d = start(&sb, "desktop");
    assert_ran(&run(&in_tmp), "tmp exec under desktop");
    assert_ran(&run(&app), "app under desktop");
    assert_ran(
        &sh(
            &service,
            &format!("exec {} -c 'echo {MARKER}'", shell.display()),
        ),
        &format!("service shell under desktop{}", d.context()),
    );

    let config = sb.config_path();
    let policy_test = |args: &[&str]| {
        use std::ffi::OsStr;
        let mut all: Vec<&OsStr> = vec![OsStr::new("policy"), OsStr::new("test")];
        all.extend(args.iter().map(|a| OsStr::new(*a)));
        all.extend([OsStr::new("--config"), config.as_os_str()]);
        d.cli(None, &all)
    };
    let out = policy_test(&["--profile", "server", "--since", "10m"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let tmp_line = format!("would DENY: {}", sb.ns_path("tmp/dropped").display());
    assert!(text.contains(&tmp_line), "{}", show(&out));
    assert!(text.contains("rule server.tmp-exec"), "{}", show(&out));
    let shell_line = format!(
        "would DENY: {} [run by {}",
        sb.ns_path("bin/sh").display(),
        sb.ns_path("sbin/php-fpm").display()
    );
    assert!(text.contains(&shell_line), "{}", show(&out));
    assert!(!text.contains("opt/app"), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 would be denied"),
        "{}",
        show(&out)
    );

    // The same execs recorded to a file and replayed without the daemon.
    let out = policy_test(&["--dump"]);
    assert!(out.status.success(), "{}", show(&out));
    let recording = sb.host("execs.jsonl");
    write_file(&recording, &out.stdout, 0o644);
    let recording = recording.to_string_lossy().into_owned();
    let out = policy_test(&["--events", &recording, "--profile", "server"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&shell_line),
        "{}",
        show(&out)
    );
    let out = policy_test(&["--events", &recording, "--profile", "desktop"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0 would be denied"),
        "{}",
        show(&out)
    );
}

/// `scan.trust_fast_path` (issue 18, item 3): a package file whose content is
/// what the package recorded skips the heuristics, rules and model, never the
/// hash lists; turned off, the rules see it again.
#[test]
fn package_files_skip_the_rules_but_never_the_hash_lists() {
    require_root!();
    let sb = Sandbox::new("trust-fast");
    // The canary is assembled at run time so this source file never matches.
    let canary = format!("vigil-{}-trust-canary", "e2e");
    let rule = sb.host("canary.yar");
    write_canary_rule(&rule, "e2e_trust_canary", None, &canary);
    let tool = sb.mnt("usr/bin/tool");
    let tool_bytes = marker_variant(&canary);
    write_file(&tool, &tool_bytes, 0o755);
    let listed = sb.mnt("usr/bin/listed");
    let listed_bytes = marker_variant("listed-in-a-package");
    write_file(&listed, &listed_bytes, 0o755);
    write_dpkg(
        &sb,
        "1",
        &[
            ("usr/bin/tool", tool_bytes.as_slice()),
            ("usr/bin/listed", listed_bytes.as_slice()),
        ],
    );
    let mut cfg = sb.config();
    cfg.rules = vec![rule];
    cfg.hashes = vec![sb.hash_list("pkg.sha256", &[&sha256_hex(&listed_bytes)])];
    let text = format!("{}{}", cfg.to_toml(), policy_toml(&sb, "desktop"));
    write_file(&sb.config_path(), text.as_bytes(), 0o644);
    let out = sb
        .ns_command(VIGIL)
        .args(["trust", "update", "--json", "--no-reload", "--config"])
        .arg(sb.config_path())
        .output()
        .expect("vigil trust update");
    assert!(out.status.success(), "trust update: {}", show(&out));

    let d = sb.start_in_namespace_with_text(&cfg, &text);
    assert_ran(
        &run(&tool),
        &format!("a package file as packaged, matching a rule{}", d.context()),
    );
    assert_denied(
        &run(&listed),
        &format!("a package file on a hash list{}", d.context()),
    );
    let stats = crate::torture::stats(&d, &cfg.socket);
    assert!(
        crate::torture::counter(&stats, "scans_trusted") >= 2,
        "{stats}{}",
        d.context()
    );
    drop(d);

    let from = "[scan]\n";
    assert!(text.contains(from), "fixture TOML changed: {text}");
    let text = text.replacen(from, "[scan]\ntrust_fast_path = false\n", 1);
    let d = sb.start_in_namespace_with_text(&cfg, &text);
    assert_denied(
        &run(&tool),
        &format!("the same file with trust_fast_path = false{}", d.context()),
    );
}
