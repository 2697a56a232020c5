//! `vigil allow`: allow a file by its hash after a false alarm, list the allowed
//! hashes, remove one; and the allow half of `vigil quarantine restore --allow`.
//!
//! Owns the local allow list (`local.sha256` in the first directory of
//! `content.allow`, [`vigil_policy::allowlist::LOCAL_LIST`]): its line format
//! (`<sha256>  <comment> (added by WHO at WHEN)`), and every edit of it, made
//! under an exclusive `flock` and written whole to a temporary file that is
//! renamed over the list, so the daemon never reads half a list. Must not own the
//! lookup (the daemon loads every allow list into its generation and checks it
//! right after hashing: `scan.rs`) or the other lists of `content.allow` (the
//! administrator's, or ClamAV's `.fp`/`.sfp`: read, never edited here).
//!
//! After an edit the daemon is asked over the control socket to reload
//! (`allowlist-changed`); it writes the `allowlist-changed` event line. When no
//! daemon answers, the entry takes effect at its next start and this command
//! writes the event line to a `log.events` file itself.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use nix::fcntl::{Flock, FlockArg};
use serde_json::{Value, json};

use vigil_policy::allowlist::{ALLOW_EXTENSIONS, LOCAL_LIST};
use vigil_policy::{Allowlist, Config, EventSink, HashKind};

use crate::engine::generation::load_config;
use crate::protocol::{self, AllowChange, AllowChangeKind, Reply, Request};

/// `vigil allow` arguments.
#[derive(Debug, clap::Args)]
pub struct AllowArgs {
    /// Configuration file (`content.allow`, `daemon.socket`, `log.events`)
    /// [default: /etc/vigil/vigil.toml, or built-in defaults if absent].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Control socket [default: daemon.socket from the configuration].
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// The file to allow, or its SHA-256 (64 hex digits; write ./NAME for a file
    /// so named).
    #[arg(
        value_name = "PATH|SHA256",
        required_unless_present_any = ["list", "remove"],
        conflicts_with_all = ["list", "remove"]
    )]
    pub target: Option<OsString>,
    /// Why the file is allowed (written to the list with who and when).
    #[arg(long, conflicts_with_all = ["list", "remove"])]
    pub comment: Option<String>,
    /// List every allowed hash with its list entry (anyone may list).
    #[arg(long, conflicts_with = "remove")]
    pub list: bool,
    /// With --list: one JSON array.
    #[arg(long, requires = "list")]
    pub json: bool,
    /// Remove a hash from the local allow list.
    #[arg(long, value_name = "SHA256")]
    pub remove: Option<String>,
}

/// Runs `vigil allow`; returns the exit code (0 done, 1 refused or not done).
///
/// # Errors
/// Unreadable configuration or lists, a file that cannot be hashed, a list that
/// cannot be written.
pub fn run(args: AllowArgs) -> anyhow::Result<u8> {
    let (config, _) = load_config(args.config.as_deref())?;
    let socket = args.socket.unwrap_or_else(|| config.daemon.socket.clone());
    if args.list {
        return list(&config, args.json);
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("vigil allow: permission denied: only root may change the allowlist");
        return Ok(1);
    }
    if let Some(digest) = args.remove {
        return remove(&config, &socket, &digest);
    }
    let Some(target) = args.target else {
        bail!("vigil allow: give a PATH or SHA256, --list or --remove SHA256");
    };
    let (sha256, path) = match parse_sha256(&target.to_string_lossy()) {
        Some(digest) => (digest, None),
        None => {
            let path = absolute(Path::new(&target))?;
            (hash_target(&socket, &path)?, Some(path))
        }
    };
    let comment = match (args.comment, &path) {
        (Some(c), _) => Some(c),
        (None, Some(p)) => Some(p.display().to_string()),
        (None, None) => None,
    };
    let added = add(&config, &sha256, comment.as_deref())?;
    let shown = path.map_or_else(String::new, |p| format!(" ({})", p.display()));
    match added {
        Added::Already(entry) => {
            println!("already allowed: {}{shown}: {entry}", hex::encode(sha256));
            Ok(0)
        }
        Added::New(change) => {
            println!(
                "allowed: {}{shown} as {} ({})",
                change.sha256,
                change.entry,
                change.comment.as_deref().unwrap_or("no comment")
            );
            Ok(tell_daemon(&config, &socket, &change))
        }
    }
}

/// `vigil quarantine restore ID --allow`: allow the item's hash (comment: the item
/// and its path), reload, then restore; a restore the daemon refuses takes back an
/// entry this call added. Returns the exit code.
///
/// # Errors
/// As [`run`]; an unreachable daemon.
pub fn restore_allowed(
    config_path: Option<&Path>,
    socket: &Path,
    restore: Request,
) -> anyhow::Result<u8> {
    let (config, _) = load_config(config_path)?;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("vigil quarantine restore: permission denied: only root may restore and allow");
        return Ok(1);
    }
    let Request::QuarantineRestore { id, .. } = &restore else {
        bail!("restore_allowed needs a quarantine-restore request");
    };
    let id = id.clone();
    let item = match protocol::call(socket, Request::QuarantineShow { id: id.clone() })? {
        Reply::Item { item } => item,
        Reply::Failed { error } => {
            eprintln!("vigil quarantine restore: rejected: {error}");
            return Ok(1);
        }
        other => bail!("unexpected reply to quarantine-show: {other:?}"),
    };
    let Some(sha256) = parse_sha256(&item.sha256) else {
        bail!("quarantine item {id} has no SHA-256 in its record");
    };
    let original = &item.path;
    let comment = format!("restored from quarantine item {id} ({original})");
    let added = match add(&config, &sha256, Some(&comment))? {
        Added::Already(entry) => {
            println!("already allowed: {}: {entry}", hex::encode(sha256));
            None
        }
        Added::New(change) => {
            println!("allowed: {} as {} ({comment})", change.sha256, change.entry);
            if tell_daemon(&config, socket, &change) != 0 {
                return Ok(1);
            }
            Some(change)
        }
    };
    match protocol::call(socket, restore)? {
        Reply::Restored { restored, .. } => {
            println!("restored: {restored}");
            return Ok(0);
        }
        Reply::Failed { error } => eprintln!("vigil quarantine restore: rejected: {error}"),
        other => eprintln!("vigil quarantine restore: unexpected reply: {other:?}"),
    }
    if let Some(change) = added {
        // One step: a file that stays in quarantine is not left allowed either.
        if let Removed::Done(undo) = remove_local(&config, &sha256)? {
            eprintln!(
                "vigil quarantine restore: allow entry {} taken back",
                change.entry
            );
            tell_daemon(&config, socket, &undo);
        }
    }
    Ok(1)
}

/// The file's SHA-256: read here, or, when the on-access daemon denies this
/// process the open (the file is on a block list or detected), by the daemon,
/// whose own opens are always allowed.
fn hash_target(socket: &Path, path: &Path) -> anyhow::Result<[u8; 32]> {
    match crate::engine::scan::hash_file(path) {
        Ok((digest, _)) => Ok(digest),
        Err(e) if e.raw_os_error() == Some(nix::libc::EPERM) => {
            let request = Request::HashFile {
                path_hex: hex::encode(path.as_os_str().as_bytes()),
            };
            let reply = protocol::call(socket, request).with_context(|| {
                format!(
                    "{}: open denied ({e}), and the daemon could not hash it",
                    path.display()
                )
            })?;
            match reply {
                Reply::Hashed { sha256, .. } => {
                    parse_sha256(&sha256).context("the daemon's hash-file reply is not a SHA-256")
                }
                Reply::Failed { error } => bail!(
                    "{}: open denied ({e}); the daemon could not hash it either: {error}",
                    path.display()
                ),
                other => bail!("unexpected reply to hash-file: {other:?}"),
            }
        }
        Err(e) => Err(e).with_context(|| path.display().to_string()),
    }
}

/// 64 hex digits (either case) as a digest.
fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    (text.len() == 64 && hex::decode_to_slice(text, &mut out).is_ok()).then_some(out)
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("resolving the path against the working directory")?
        .join(path))
}

/// The list `vigil allow` edits: `local.sha256` in the first `content.allow`
/// entry that is a directory (or does not exist and is not named like a list
/// file: it is created as a directory).
///
/// # Errors
/// When `content.allow` names no such directory.
pub fn local_list(config: &Config) -> anyhow::Result<PathBuf> {
    let is_list_name = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ALLOW_EXTENSIONS.iter().any(|l| l.eq_ignore_ascii_case(e)))
    };
    config
        .content
        .allow
        .iter()
        .find(|p| match fs::metadata(p) {
            Ok(md) => md.is_dir(),
            Err(_) => !is_list_name(p),
        })
        .map(|dir| dir.join(LOCAL_LIST))
        .context("`content.allow` names no directory for `vigil allow` to keep local.sha256 in")
}

enum Added {
    /// Already on an allow list: that entry (`name (file:line)`).
    Already(String),
    /// Appended.
    New(AllowChange),
}

enum Removed {
    Done(AllowChange),
    NotLocal,
}

/// Appends `sha256` to the local list unless an allow list already has it.
fn add(config: &Config, sha256: &[u8; 32], comment: Option<&str>) -> anyhow::Result<Added> {
    if let Some(c) = comment
        && c.chars().any(char::is_control)
    {
        bail!("--comment: control characters (newlines, tabs) are not allowed");
    }
    let current = Allowlist::load(&config.content.allow)?;
    if let Some(entry) = current
        .entries()
        .iter()
        .find(|a| a.entry.kind == HashKind::Sha256 && a.digest == sha256.as_slice())
    {
        return Ok(Added::Already(vigil_policy::allowlist::entry_ref(
            entry.entry,
        )));
    }
    let list = local_list(config)?;
    let by = who();
    let when = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let hex = hex::encode(sha256);
    let line = entry_line(&hex, comment, &by, &when);
    let number = edit(&list, |text| {
        let mut out = text.to_owned();
        if out.is_empty() {
            out.push_str(LOCAL_HEADER);
        } else if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&line);
        out.push('\n');
        let number = out.lines().count();
        Ok((out, number))
    })?;
    Ok(Added::New(AllowChange {
        change: AllowChangeKind::Added,
        sha256: hex,
        entry: format!("{}:{number}", list.display()),
        comment: comment.map(str::to_owned),
        by,
    }))
}

/// The first lines of a new local list.
const LOCAL_HEADER: &str = "# vigil allow: files allowed by SHA-256 on this machine, one per line:\n\
# <sha256>  <comment> (added by WHO at WHEN). Edit with `vigil allow`.\n";

/// One line of the local list; the whole text after the hash is the entry's
/// name, as `vigil allow --list` and event lines show it.
fn entry_line(hex: &str, comment: Option<&str>, by: &str, when: &str) -> String {
    match comment {
        Some(c) if !c.trim().is_empty() => format!("{hex}  {} (added by {by} at {when})", c.trim()),
        _ => format!("{hex}  (added by {by} at {when})"),
    }
}

/// The login behind the command: `SUDO_USER` when run through sudo, else the
/// user name of the real uid (or the uid).
fn who() -> String {
    let uid = nix::unistd::getuid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| u.name);
    match std::env::var("SUDO_USER") {
        Ok(sudo) if !sudo.is_empty() && sudo != name => format!("{sudo} (sudo, as {name})"),
        _ => name,
    }
}

/// `vigil allow --remove SHA256`.
fn remove(config: &Config, socket: &Path, digest: &str) -> anyhow::Result<u8> {
    let Some(sha256) = parse_sha256(digest.trim()) else {
        bail!("--remove: expected a SHA-256 (64 hex digits), found {digest:?}");
    };
    match remove_local(config, &sha256)? {
        Removed::Done(change) => {
            println!("removed: {} from {}", change.sha256, change.entry);
            let code = tell_daemon(config, socket, &change);
            if let Some(other) = Allowlist::load(&config.content.allow)?
                .entries()
                .iter()
                .find(|a| a.digest == sha256.as_slice())
            {
                eprintln!(
                    "vigil allow: note: still allowed by {}, which vigil allow does not edit",
                    vigil_policy::allowlist::entry_ref(other.entry)
                );
            }
            Ok(code)
        }
        Removed::NotLocal => {
            let current = Allowlist::load(&config.content.allow)?;
            match current
                .entries()
                .iter()
                .find(|a| a.digest == sha256.as_slice())
            {
                Some(other) => eprintln!(
                    "vigil allow: {} is allowed by {}, which vigil allow does not edit: remove it there",
                    hex::encode(sha256),
                    vigil_policy::allowlist::entry_ref(other.entry)
                ),
                None => eprintln!(
                    "vigil allow: {} is not on the allowlist",
                    hex::encode(sha256)
                ),
            }
            Ok(1)
        }
    }
}

/// Removes every line of the local list that allows `sha256`.
fn remove_local(config: &Config, sha256: &[u8; 32]) -> anyhow::Result<Removed> {
    let list = local_list(config)?;
    if !list.exists() {
        return Ok(Removed::NotLocal);
    }
    let hex = hex::encode(sha256);
    let first = edit(&list, |text| Ok(without(text, &hex)))?;
    Ok(match first {
        Some(line) => Removed::Done(AllowChange {
            change: AllowChangeKind::Removed,
            sha256: hex,
            entry: format!("{}:{line}", list.display()),
            comment: None,
            by: who(),
        }),
        None => Removed::NotLocal,
    })
}

/// `text` without the entry lines for `hex` (case-insensitive), and the 1-based
/// number of the first line removed.
fn without(text: &str, hex: &str) -> (String, Option<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut first = None;
    for (index, line) in text.lines().enumerate() {
        let token = line.split_whitespace().next().unwrap_or("");
        let token = token.strip_prefix('\\').unwrap_or(token);
        if token.eq_ignore_ascii_case(hex) {
            first.get_or_insert(index + 1);
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    (out, first)
}

/// Edits `list` under an exclusive lock: `change` maps the current text (empty
/// when absent) to the new one, which must still parse as an allow list; it is
/// written to a hidden temporary file, synced and renamed over the list.
fn edit<T>(
    list: &Path,
    change: impl FnOnce(&str) -> anyhow::Result<(String, T)>,
) -> anyhow::Result<T> {
    let dir = list
        .parent()
        .context("the local allow list has no directory")?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let name = list
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lock_path = dir.join(format!(".{name}.lock"));
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| lock_path.display().to_string())?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| anyhow::anyhow!("{}: flock: {errno}", lock_path.display()))?;
    let text = match fs::read_to_string(list) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| list.display().to_string()),
    };
    let (new, value) = change(&text)?;
    Allowlist::empty()
        .parse_into(&new, list)
        .context("the edited allow list would not load (nothing written)")?;
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(new.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, list)?;
        File::open(dir)?.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", list.display()));
    }
    Ok(value)
}

/// Asks the daemon to reload after `change`; returns the exit code: 0 when it
/// took the change or is not running (then the event line goes to the log file
/// here), 1 when it rejected the reload.
fn tell_daemon(config: &Config, socket: &Path, change: &AllowChange) -> u8 {
    let request = Request::AllowlistChanged {
        allowlist: change.clone(),
    };
    match protocol::call(socket, request) {
        Ok(Reply::Failed { error }) => {
            eprintln!(
                "vigil allow: the list is written, but the daemon rejected the reload and keeps its running lists: {error}"
            );
            1
        }
        Ok(reply) => {
            if let Reply::Reloaded { summary, .. } = reply {
                println!("reloaded: {summary}");
            }
            0
        }
        Err(e) => {
            eprintln!("vigil allow: {e:#}; the change takes effect when the daemon starts");
            log_without_daemon(config, change);
            0
        }
    }
}

/// With no daemon to write it, appends the `allowlist-changed` line to a
/// `log.events` file (one `write` of a whole line on an `O_APPEND` descriptor).
fn log_without_daemon(config: &Config, change: &AllowChange) {
    let EventSink::File(path) = &config.log.events else {
        return;
    };
    let mut line =
        crate::daemon::events::allowlist_changed_event(change, "success", None, None).to_string();
    line.push('\n');
    let written = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "vigil allow: could not log the change to {}: {e}",
            path.display()
        );
    }
}

/// `vigil allow --list`.
fn list(config: &Config, as_json: bool) -> anyhow::Result<u8> {
    let allow = Allowlist::load(&config.content.allow)?;
    let entries = allow.entries();
    if as_json {
        let items: Vec<Value> = entries
            .iter()
            .map(|a| {
                let mut v = crate::daemon::events::allow_entry_json(a.entry);
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("digest".into(), json!(hex::encode(a.digest)));
                    obj.insert("size".into(), json!(a.entry.size));
                }
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(0);
    }
    for a in &entries {
        println!(
            "{}  {}:{}  {}",
            hex::encode(a.digest),
            a.entry.source.display(),
            a.entry.line,
            a.entry.name
        );
    }
    eprintln!(
        "{} allowed hash{} in {} list{}",
        entries.len(),
        if entries.len() == 1 { "" } else { "es" },
        allow.sources().len(),
        if allow.sources().len() == 1 { "" } else { "s" }
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
    const B: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn entry_lines_parse_back_with_their_comment() {
        let line = entry_line(
            A,
            Some("  vendor tool "),
            "alice (sudo, as root)",
            "2026-12-04T17:00:00Z",
        );
        assert_eq!(
            line,
            format!("{A}  vendor tool (added by alice (sudo, as root) at 2026-12-04T17:00:00Z)")
        );
        let mut list = Allowlist::empty();
        list.parse_into(
            &format!("{LOCAL_HEADER}{line}\n"),
            Path::new("local.sha256"),
        )
        .unwrap();
        let digest = parse_sha256(A).unwrap();
        let entry = list.lookup(&digest, None, 1).unwrap();
        assert_eq!(entry.line, 3);
        assert!(
            entry.name.starts_with("vendor tool (added by alice"),
            "{}",
            entry.name
        );
        assert_eq!(
            entry_line(B, None, "root", "T"),
            format!("{B}  (added by root at T)")
        );
    }

    #[test]
    fn removal_drops_every_line_of_the_hash_only() {
        let text = format!(
            "# header\n{A}  one\n{B}  other\n\\{}  two\n",
            A.to_uppercase()
        );
        let (out, first) = without(&text, A);
        assert_eq!(first, Some(2));
        assert_eq!(out, format!("# header\n{B}  other\n"));
        let (same, none) = without(&out, A);
        assert_eq!((same.as_str(), none), (out.as_str(), None));
    }

    #[test]
    fn sha256_arguments() {
        assert!(parse_sha256(A).is_some());
        assert!(parse_sha256(&A.to_uppercase()).is_some());
        assert!(parse_sha256(&A[..63]).is_none());
        assert!(parse_sha256("./file").is_none());
    }

    #[test]
    fn edits_are_whole_and_checked() {
        let dir = std::env::temp_dir().join(format!("vigil-allow-edit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let list = dir.join("allow.d").join(LOCAL_LIST);
        let n = edit(&list, |t| Ok((format!("{t}{A}  x\n"), 1))).unwrap();
        assert_eq!(n, 1);
        assert_eq!(fs::read_to_string(&list).unwrap(), format!("{A}  x\n"));
        let err = edit(&list, |t| Ok((format!("{t}nonsense\n"), ()))).unwrap_err();
        assert!(format!("{err:#}").contains("local.sha256:2"), "{err:#}");
        assert_eq!(fs::read_to_string(&list).unwrap(), format!("{A}  x\n"));
        // Only the list and its (hidden) lock file: no temporary file left.
        let mut names: Vec<String> = fs::read_dir(list.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".local.sha256.lock", "local.sha256"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_local_list_is_in_the_first_directory() {
        let mut config = Config::default();
        config.content.allow = vec![
            "/nonexistent/vendor.sfp".into(),
            "/nonexistent/allow.d".into(),
        ];
        assert_eq!(
            local_list(&config).unwrap(),
            Path::new("/nonexistent/allow.d/local.sha256")
        );
        config.content.allow = vec!["/nonexistent/vendor.sfp".into()];
        assert!(local_list(&config).is_err());
    }
}
