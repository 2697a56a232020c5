//! `policy.sysctl_hardening`: the `server` and `lockdown` profiles close two ways
//! around vigil with kernel settings, and give them back on stop.
//!
//! Owns the two settings while the daemon runs — `vm.memfd_noexec = 2` (no exec
//! of memfds; per pid namespace) and `user.max_user_namespaces = 0` (no new user
//! namespaces; per user namespace), both as they apply to the daemon's own
//! namespaces — and a record of what they were before
//! (`<socket dir>/sysctl-hardening.json`, written before any setting changes).
//! Must not own: reporting them (`exposure.rs` reads the kernel, not this record).
//!
//! Restoring is careful in both directions. On stop, a setting is put back only
//! if it still holds the value vigil wrote (an administrator who changed it since
//! wins). After a crash, the next start finds the record: when it was written in
//! the same pid and user namespaces (a record from elsewhere names settings this
//! process cannot reach) and the setting still holds vigil's value, the previous
//! value is written back — unless hardening is still on, in which case the old
//! record's "previous" value is kept, so a crash loop never records 2 as the
//! value to return to. Anything else is left alone and logged.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vigil_policy::Config;
use vigil_policy::config::Profile;

use crate::daemon::events::EventLog;

/// One setting vigil may change.
#[derive(Debug, Clone, Copy)]
struct Knob {
    name: &'static str,
    path: &'static str,
    value: u64,
}

/// The settings, in the order they are applied.
const KNOBS: [Knob; 2] = [
    Knob {
        name: "vm.memfd_noexec",
        path: "/proc/sys/vm/memfd_noexec",
        value: 2,
    },
    Knob {
        name: "user.max_user_namespaces",
        path: "/proc/sys/user/max_user_namespaces",
        value: 0,
    },
];

/// The record's file name, in the directory of `daemon.socket`.
pub const RECORD: &str = "sysctl-hardening.json";

/// What the record holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    /// Inode of `/proc/self/ns/pid` when written.
    pid_ns: u64,
    /// Inode of `/proc/self/ns/user` when written.
    user_ns: u64,
    /// The settings changed.
    knobs: Vec<Changed>,
}

/// One setting vigil changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Changed {
    name: String,
    previous: u64,
    value: u64,
}

/// The settings this daemon changed; [`Hardening::restore`] gives them back.
#[derive(Debug)]
pub struct Hardening {
    record: PathBuf,
    changed: Vec<Changed>,
}

/// True when `config` asks for the settings: `policy.sysctl_hardening` with the
/// `server` or `lockdown` profile.
pub fn wanted(config: &Config) -> bool {
    config.policy.sysctl_hardening
        && match config.policy.profile {
            Profile::Desktop => false,
            Profile::Server | Profile::Lockdown => true,
        }
}

fn knob(name: &str) -> Option<Knob> {
    KNOBS.iter().copied().find(|k| k.name == name)
}

fn read(k: Knob) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(k.path)?;
    text.trim()
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{e}")))
}

fn write(k: Knob, value: u64) -> std::io::Result<()> {
    std::fs::write(k.path, format!("{value}\n"))?;
    // The kernel may clamp or refuse silently in a child namespace: check.
    let now = read(k)?;
    if now == value {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "wrote {value}, reads back {now}"
        )))
    }
}

fn namespaces() -> Option<(u64, u64)> {
    let ino = |p: &str| std::fs::metadata(p).ok().map(|m| m.ino());
    Some((ino("/proc/self/ns/pid")?, ino("/proc/self/ns/user")?))
}

fn event(name: &str, action: &str, previous: u64, value: u64, error: Option<&str>) -> Value {
    json!({
        "@timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        "event": {"kind": "event", "category": ["configuration"], "type": ["change"], "action": action,
                  "outcome": if error.is_some() { "failure" } else { "success" }},
        "error": error.map(|m| json!({"message": m})),
        "vigil": {"sysctl": {"name": name, "previous": previous, "value": value}},
    })
}

impl Hardening {
    /// Settles a record left by a daemon that did not stop cleanly, then, when
    /// `config` asks for it, applies the settings. A setting the kernel refuses
    /// is logged (warning and a `sysctl-hardening` event line with
    /// `event.outcome = failure`) and left as it is: the daemon still starts,
    /// and `vigil status` keeps reporting that exposure as open.
    pub fn start(config: &Config, events: &EventLog) -> Hardening {
        let dir = config
            .daemon
            .socket
            .parent()
            .unwrap_or(Path::new("/run/vigil"));
        let record = dir.join(RECORD);
        let want = wanted(config);
        if config.policy.sysctl_hardening && !want {
            tracing::warn!(
                profile = config.policy.profile.as_str(),
                "policy.sysctl_hardening applies to the server and lockdown profiles only; ignored"
            );
        }
        let mut changed = recover(&record, want, events);
        if want {
            for k in KNOBS {
                if changed.iter().any(|c| c.name == k.name) {
                    continue;
                }
                let previous = match read(k) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(sysctl = k.name, error = %e, "cannot read; not hardened");
                        events.emit_json(event(
                            k.name,
                            "sysctl-hardening",
                            0,
                            k.value,
                            Some(&e.to_string()),
                        ));
                        continue;
                    }
                };
                if previous == k.value {
                    continue;
                }
                // The record first: a crash between the two leaves a record
                // whose value the setting does not hold, which is left alone.
                let mut planned = changed.clone();
                planned.push(Changed {
                    name: k.name.to_owned(),
                    previous,
                    value: k.value,
                });
                if let Err(e) = save(&record, &planned) {
                    tracing::warn!(path = %record.display(), error = %e, "cannot write the sysctl record; not hardened");
                    break;
                }
                match write(k, k.value) {
                    Ok(()) => {
                        tracing::info!(sysctl = k.name, previous, value = k.value, "hardened");
                        events.emit_json(event(
                            k.name,
                            "sysctl-hardening",
                            previous,
                            k.value,
                            None,
                        ));
                        changed = planned;
                    }
                    Err(e) => {
                        tracing::warn!(sysctl = k.name, error = %e, "the kernel refused; this exposure stays open");
                        events.emit_json(event(
                            k.name,
                            "sysctl-hardening",
                            previous,
                            k.value,
                            Some(&e.to_string()),
                        ));
                    }
                }
            }
        }
        if changed.is_empty() {
            let _ = std::fs::remove_file(&record);
        } else if let Err(e) = save(&record, &changed) {
            tracing::warn!(path = %record.display(), error = %e, "cannot write the sysctl record");
        }
        Hardening { record, changed }
    }

    /// Gives back every setting this daemon changed that still holds its value,
    /// and removes the record.
    pub fn restore(self, events: &EventLog) {
        for c in &self.changed {
            give_back(c, events);
        }
        let _ = std::fs::remove_file(&self.record);
    }
}

/// Puts `c.previous` back if the setting still holds `c.value`.
fn give_back(c: &Changed, events: &EventLog) {
    let Some(k) = knob(&c.name) else { return };
    match read(k) {
        Ok(now) if now == c.value => match write(k, c.previous) {
            Ok(()) => {
                tracing::info!(sysctl = k.name, value = c.previous, "restored");
                events.emit_json(event(k.name, "sysctl-restored", c.value, c.previous, None));
            }
            Err(e) => {
                tracing::warn!(sysctl = k.name, error = %e, "could not restore");
                events.emit_json(event(
                    k.name,
                    "sysctl-restored",
                    c.value,
                    c.previous,
                    Some(&e.to_string()),
                ));
            }
        },
        Ok(now) => {
            tracing::warn!(
                sysctl = k.name,
                now,
                "changed by someone else since vigil set it; left as is"
            );
        }
        Err(e) => tracing::warn!(sysctl = k.name, error = %e, "cannot read; not restored"),
    }
}

/// Settles a record left behind: returns the changes still in force that this
/// daemon takes over (only when hardening is still wanted), after giving back
/// the others.
fn recover(path: &Path, want: bool, events: &EventLog) -> Vec<Changed> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the sysctl record");
            return Vec::new();
        }
    };
    let record: Record = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable sysctl record; ignored");
            return Vec::new();
        }
    };
    if namespaces() != Some((record.pid_ns, record.user_ns)) {
        tracing::warn!(path = %path.display(), "sysctl record from other namespaces; its settings are not reachable from here, left alone");
        return Vec::new();
    }
    let mut kept = Vec::new();
    for c in record.knobs {
        let Some(k) = knob(&c.name) else { continue };
        let holds = read(k).is_ok_and(|now| now == c.value);
        if !holds {
            tracing::warn!(sysctl = k.name, "changed since the last run; left as is");
        } else if want {
            kept.push(c);
        } else {
            tracing::info!(
                sysctl = k.name,
                "giving back a setting left by a daemon that did not stop"
            );
            give_back(&c, events);
        }
    }
    kept
}

fn save(path: &Path, knobs: &[Changed]) -> std::io::Result<()> {
    let (pid_ns, user_ns) =
        namespaces().ok_or_else(|| std::io::Error::other("cannot read /proc/self/ns"))?;
    let record = Record {
        pid_ns,
        user_ns,
        knobs: knobs.to_vec(),
    };
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string(&record).map_err(std::io::Error::other)?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_and_lockdown_with_the_key() {
        let mut config = Config::default();
        for (profile, key, want) in [
            (Profile::Desktop, true, false),
            (Profile::Server, true, true),
            (Profile::Lockdown, true, true),
            (Profile::Server, false, false),
            (Profile::Lockdown, false, false),
        ] {
            config.policy.profile = profile;
            config.policy.sysctl_hardening = key;
            assert_eq!(wanted(&config), want, "{profile:?} {key}");
        }
    }

    #[test]
    fn record_round_trips_and_a_foreign_one_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("vigil-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(RECORD);
        let changed = vec![Changed {
            name: "vm.memfd_noexec".into(),
            previous: 0,
            value: 2,
        }];
        save(&path, &changed).unwrap();
        let back: Record = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back.knobs, changed);
        assert_eq!(Some((back.pid_ns, back.user_ns)), namespaces());
        // Another namespace's record: nothing is touched, nothing taken over.
        let foreign = Record {
            pid_ns: 1,
            user_ns: 2,
            knobs: changed,
        };
        std::fs::write(&path, serde_json::to_string(&foreign).unwrap()).unwrap();
        let (events, _) = EventLog::start(
            &vigil_policy::config::Log {
                events: vigil_policy::config::EventSink::None,
                ..Default::default()
            },
            std::sync::Arc::new(crate::daemon::stats::Stats::default()),
        )
        .unwrap();
        assert!(recover(&path, true, &events).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
