//! `curl … | sh` (issue 16, item 5): the script never touches a file, so the
//! agent recognises the pipeline instead: an exec of an interpreter reading a
//! pipe a network client writes to. `desktop` reports it (`event.action:
//! "piped-download"` with both ends), `server` denies the exec. The client and
//! the shell are copies of the system's curl and dash on the sandbox's tmpfs
//! (the only filesystem the test daemon watches); the "network" is an HTTP
//! server the test runs on 127.0.0.1.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use crate::fixture::*;

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Serves `body` to every request on a loopback port; returns the port. The
/// thread ends with the test process.
fn serve(body: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local addr").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = [0u8; 2048];
            let _ = stream.read(&mut request);
            // No length: the body ends when the connection closes, a moment
            // later, as a download from far away would. (A client that has
            // already exited when the shell's exec is checked is still
            // matched, but its command line can no longer be read.)
            let _ = write!(
                stream,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{body}"
            );
            let _ = stream.flush();
            thread::sleep(Duration::from_millis(300));
        }
    });
    port
}

/// Copies of curl and dash (as `sh`) on the tmpfs.
fn tools(sb: &Sandbox) -> (String, String) {
    let curl = sb.mnt("bin/curl");
    write_file(
        &curl,
        &std::fs::read("/usr/bin/curl").expect("read curl"),
        0o755,
    );
    let sh = sb.mnt("bin/sh");
    write_file(
        &sh,
        &std::fs::read("/usr/bin/dash").expect("read dash"),
        0o755,
    );
    (
        curl.to_string_lossy().into_owned(),
        sh.to_string_lossy().into_owned(),
    )
}

/// `bash -c "curl -s URL | sh"`.
fn pipeline(curl: &str, sh: &str, port: u16) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{curl} -s http://127.0.0.1:{port}/install.sh | {sh}"
        ))
        .stdin(Stdio::null())
        .output()
        .expect("run the pipeline")
}

fn config_with(sb: &Sandbox, policy: &str) -> (Config, String) {
    let mut cfg = sb.config();
    cfg.scan_on_open = "executable".into();
    let text = format!("{}\n[policy]\n{policy}", cfg.to_toml());
    (cfg, text)
}

#[test]
fn curl_piped_into_sh_is_reported_on_a_desktop_and_denied_on_a_server() {
    require_root!();
    if !std::path::Path::new("/usr/bin/curl").exists() {
        panic!("/usr/bin/curl is missing: scripts/test.sh installs it");
    }
    let port = serve(format!("echo {MARKER}\n"));

    // Desktop: the script runs, the pipeline is reported with both ends.
    let sb = Sandbox::new("pipes-desktop");
    let (curl, sh) = tools(&sb);
    let (cfg, text) = config_with(&sb, "profile = \"desktop\"\n");
    let d = sb.start_with_text(&cfg, &text, &[]);
    let out = pipeline(&curl, &sh, port);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(MARKER),
        "the piped script did not run on a desktop: {out:?}{}",
        d.context()
    );
    let ev = d.wait_event("piped-download", EVENT_WAIT, |v| {
        jstr(v, "/event/action") == "piped-download"
    });
    let ctx = format!("event {ev}{}", d.context());
    assert_eq!(jstr(&ev, "/event/outcome"), "allowed", "{ctx}");
    assert!(
        jstr(&ev, "/vigil/client/executable").ends_with("/bin/curl"),
        "{ctx}"
    );
    assert!(
        jstr(&ev, "/vigil/client/command_line").contains(&format!("127.0.0.1:{port}")),
        "{ctx}"
    );
    assert!(
        jstr(&ev, "/vigil/interpreter/executable").ends_with("/bin/sh"),
        "{ctx}"
    );
    drop(d);

    // Server: the same pipeline's shell is denied, nothing of the script runs.
    // (tmp_paths off: the sandbox lives under /tmp, which the profile's own
    // tmp-exec rule would deny first.)
    let sb = Sandbox::new("pipes-server");
    let (curl, sh) = tools(&sb);
    let (cfg, text) = config_with(
        &sb,
        "profile = \"server\"\ntmp_paths = [\"/nonexistent/**\"]\n",
    );
    let d = sb.start_with_text(&cfg, &text, &[]);
    let out = pipeline(&curl, &sh, port);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(MARKER),
        "the piped script ran under the server profile: {out:?}{}",
        d.context()
    );
    let ev = d.wait_event("piped-download", EVENT_WAIT, |v| {
        jstr(v, "/event/action") == "piped-download"
    });
    assert_eq!(jstr(&ev, "/event/outcome"), "denied", "{ev}{}", d.context());
    // A pipe from something that is not a network client is left alone.
    let plain = Command::new("bash")
        .arg("-c")
        .arg(format!("echo 'echo {MARKER}' | {sh}"))
        .stdin(Stdio::null())
        .output()
        .expect("run echo | sh");
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains(MARKER),
        "echo | sh was denied: {plain:?}{}",
        d.context()
    );
}
