//! Startup refusals: the daemon needs root, and a broken config stops it
//! before it marks anything, with an error naming the file and line.

use std::process::{Command, Stdio};

use crate::fixture::*;

#[test]
fn daemon_refuses_to_run_as_non_root() {
    // Runs as root (dropping to nobody with setpriv) or as any other user.
    let dir = TempDir::new("nonroot");
    let cfg = dir.join("vigil.toml");
    write_file(
        &cfg,
        format!(
            "[watch]\nfilesystems = [{:?}]\n[daemon]\nsocket = {:?}\n",
            dir.path().to_string_lossy(),
            dir.join("vigil.sock").to_string_lossy()
        )
        .as_bytes(),
        0o644,
    );
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", "30"]);
    if is_root() {
        cmd.args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]);
    }
    let out = cmd
        .args([VIGIL, "daemon", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run vigil daemon as non-root");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("root"),
        "message does not mention root: {}",
        show(&out)
    );
}

#[test]
fn daemon_refuses_a_broken_config_naming_file_and_line() {
    require_root!();
    let sb = Sandbox::new("badcfg");
    let mut text = sb.config().to_toml();
    text.push_str("\n[exclude]\nnot_a_key = true\n");
    let line = text.lines().count();
    let cfg = sb.config_path();
    write_file(&cfg, text.as_bytes(), 0o644);
    let out = Command::new("timeout")
        .args(["-k", "5", "30", VIGIL, "daemon", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run vigil daemon");
    assert!(
        !out.status.success() && out.status.code() != Some(124),
        "daemon started with a broken config: {}",
        show(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let name = cfg.to_string_lossy();
    assert!(
        err.contains(&*name),
        "stderr does not name {name}: {}",
        show(&out)
    );
    assert!(
        err.contains(&format!(":{line}")) || err.contains(&format!("line {line}")),
        "stderr does not name line {line}: {}",
        show(&out)
    );
    assert!(
        err.contains("not_a_key"),
        "stderr does not name the key: {}",
        show(&out)
    );
}
