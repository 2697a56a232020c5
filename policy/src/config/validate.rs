//! Semantic checks on the merged configuration: ranges, absolute paths, globs.
//!
//! Owns: the rules a well-typed value must still satisfy. Must not own: where the
//! value came from; `layer.rs` turns an [`Invalid`] into an error naming the file and
//! line that set the key. Runs on the merged result, so a drop-in can fix a value an
//! earlier file got wrong.

use std::path::Path;

use super::{Config, EventSink, MAX_DEADLINE_MS, MAX_QUEUE_CAPACITY, MAX_WORKERS, WatchPath};
use super::{
    MAX_CACHE_MAX_ENTRIES, MAX_EVENTS_KEEP, MAX_RULE_TIMEOUT_MS, MAX_UPGRADE_WINDOW_S, MAX_WEIGHT,
};
use super::{MAX_CLAMAV_POLL_S, MAX_UPDATE_KEEP, MAX_UPDATE_TIMEOUT_S, UpdateConfig, Verify};
use crate::{exclusions, interpreters};

/// A value that is well-typed but not acceptable.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Invalid {
    /// Full dotted key.
    pub(super) key: &'static str,
    /// Index into the key's array, when one item is at fault.
    pub(super) index: Option<usize>,
    /// What is wrong.
    pub(super) message: String,
}

fn invalid(key: &'static str, message: String) -> Invalid {
    Invalid {
        key,
        index: None,
        message,
    }
}

/// Checks every semantic rule, in schema order; returns the first violation.
///
/// # Errors
///
/// The first [`Invalid`] value.
pub(super) fn check(config: &Config) -> Result<(), Invalid> {
    let watch_paths = [
        ("watch.mounts", &config.watch.mounts),
        ("watch.filesystems", &config.watch.filesystems),
    ];
    for (key, paths) in watch_paths {
        absolute_all(
            key,
            paths.iter().map(|WatchPath { path, .. }| path.as_path()),
        )?;
    }
    for (index, pattern) in config.watch.interpreters.iter().enumerate() {
        if let Err(message) = interpreters::compile(pattern) {
            return Err(Invalid {
                key: "watch.interpreters",
                index: Some(index),
                message: format!("invalid program name pattern `{pattern}`: {message}"),
            });
        }
    }

    let deadline = config.decision.deadline.as_millis();
    if !(1..=u128::from(MAX_DEADLINE_MS)).contains(&deadline) {
        return Err(invalid(
            "decision.deadline_ms",
            format!("must be between 1 and {MAX_DEADLINE_MS}, found {deadline}"),
        ));
    }

    let decision = &config.decision;
    if !(1..=MAX_QUEUE_CAPACITY).contains(&(decision.flood_pending as usize)) {
        return Err(invalid(
            "decision.flood_pending",
            format!(
                "must be between 1 and {MAX_QUEUE_CAPACITY}, found {}",
                decision.flood_pending
            ),
        ));
    }
    if decision.malicious_score == 0 {
        return Err(invalid(
            "decision.malicious_score",
            "must be at least 1 (0 would make every file malicious)".to_owned(),
        ));
    }
    if !(1..=decision.malicious_score).contains(&decision.suspicious_score) {
        return Err(invalid(
            "decision.suspicious_score",
            format!(
                "must be between 1 and decision.malicious_score ({}), found {}",
                decision.malicious_score, decision.suspicious_score
            ),
        ));
    }
    let weights = [
        ("decision.weights.hash", decision.weights.hash),
        ("decision.weights.rules", decision.weights.rules),
        ("decision.weights.heuristics", decision.weights.heuristics),
        ("decision.weights.model", decision.weights.model),
    ];
    for (key, weight) in weights {
        // `contains` is false for NaN.
        if !(0.0..=MAX_WEIGHT).contains(&weight) {
            return Err(invalid(
                key,
                format!("must be a number between 0 and {MAX_WEIGHT}, found {weight}"),
            ));
        }
    }

    for (key, threshold) in [
        ("decision.model_threshold", decision.model_threshold),
        (
            "decision.model_block_threshold",
            decision.model_block_threshold,
        ),
    ] {
        if let Some(t) = threshold
            && !(t > 0.0 && t <= 1.0)
        {
            return Err(invalid(
                key,
                format!("must be a probability above 0 and at most 1, found {t}"),
            ));
        }
    }
    if let (Some(detect), Some(block)) = (decision.model_threshold, decision.model_block_threshold)
        && block < detect
    {
        return Err(invalid(
            "decision.model_block_threshold",
            format!("must be at least decision.model_threshold ({detect}), found {block}"),
        ));
    }

    absolute_all(
        "content.hashes",
        config.content.hashes.iter().map(|path| path.as_path()),
    )?;
    absolute_all(
        "content.allow",
        config.content.allow.iter().map(|path| path.as_path()),
    )?;
    absolute_all(
        "content.rules",
        config.content.rules.iter().map(|path| path.as_path()),
    )?;
    absolute_all(
        "content.clamav_db",
        config.content.clamav_db.iter().map(|path| path.as_path()),
    )?;
    if !(1..=MAX_CLAMAV_POLL_S).contains(&config.content.clamav_poll_s) {
        return Err(invalid(
            "content.clamav_poll_s",
            format!(
                "must be between 1 and {MAX_CLAMAV_POLL_S}, found {}",
                config.content.clamav_poll_s
            ),
        ));
    }

    let scan = &config.scan;
    if scan.max_file_size == 0 {
        return Err(invalid(
            "scan.max_file_size",
            "must be greater than 0".to_owned(),
        ));
    }
    if scan.workers > MAX_WORKERS {
        return Err(invalid(
            "scan.workers",
            format!(
                "must be at most {MAX_WORKERS} (0 = one per CPU), found {}",
                scan.workers
            ),
        ));
    }
    if !(1..=MAX_QUEUE_CAPACITY).contains(&scan.queue_capacity) {
        return Err(invalid(
            "scan.queue_capacity",
            format!(
                "must be between 1 and {MAX_QUEUE_CAPACITY}, found {}",
                scan.queue_capacity
            ),
        ));
    }

    let rule_timeout = scan.rule_timeout.as_millis();
    if !(1..=u128::from(MAX_RULE_TIMEOUT_MS)).contains(&rule_timeout) {
        return Err(invalid(
            "scan.rule_timeout_ms",
            format!("must be between 1 and {MAX_RULE_TIMEOUT_MS}, found {rule_timeout}"),
        ));
    }

    absolute_all(
        "daemon.socket",
        [config.daemon.socket.as_path()].into_iter(),
    )?;
    if !(-20..=19).contains(&config.daemon.nice) {
        return Err(invalid(
            "daemon.nice",
            format!("must be between -20 and 19, found {}", config.daemon.nice),
        ));
    }
    absolute_all(
        "quarantine.dir",
        [config.quarantine.dir.as_path()].into_iter(),
    )?;

    match &config.log.events {
        EventSink::File(path) if !path.is_absolute() => {
            return Err(invalid(
                "log.events",
                format!("expected \"stdout\", \"none\" or an absolute path, found {path:?}"),
            ));
        }
        EventSink::File(_) | EventSink::Stdout | EventSink::None => {}
    }
    if !(1..=MAX_EVENTS_KEEP).contains(&config.log.events_keep) {
        return Err(invalid(
            "log.events_keep",
            format!(
                "must be between 1 and {MAX_EVENTS_KEEP}, found {}",
                config.log.events_keep
            ),
        ));
    }
    if config.log.level.trim().is_empty() {
        return Err(invalid("log.level", "must not be empty".to_owned()));
    }

    for (index, pattern) in config.exclude.paths.iter().enumerate() {
        if let Err(error) = exclusions::compile_glob(pattern) {
            return Err(Invalid {
                key: "exclude.paths",
                index: Some(index),
                message: format!("invalid glob pattern `{pattern}`: {}", error.kind()),
            });
        }
    }
    absolute_all(
        "exclude.processes",
        config.exclude.processes.iter().map(|path| path.as_path()),
    )?;
    check_policy(&config.policy)?;
    check_update(&config.update)?;
    absolute_all(
        "guard.cgroup",
        config.guard.cgroup.iter().map(|path| path.as_path()),
    )?;
    absolute_all(
        "guard.memfd_programs",
        config
            .guard
            .memfd_programs
            .iter()
            .map(|path| path.as_path()),
    )?;
    absolute_all("cache.dir", [config.cache.dir.as_path()].into_iter())?;
    if !(1..=MAX_CACHE_MAX_ENTRIES).contains(&config.cache.max_entries) {
        return Err(invalid(
            "cache.max_entries",
            format!(
                "must be between 1 and {MAX_CACHE_MAX_ENTRIES} (cache.persistent = false turns the store off), found {}",
                config.cache.max_entries
            ),
        ));
    }
    Ok(())
}

/// The `[policy]` table: globs compile, paths are absolute, rule names unique.
fn check_policy(policy: &super::PolicyConfig) -> Result<(), Invalid> {
    for (index, rule) in policy.rules.iter().enumerate() {
        let at = |message: String| Invalid {
            key: "policy.rules",
            index: Some(index),
            message,
        };
        for pattern in rule.path.iter().chain(&rule.parent) {
            if let Err(error) = exclusions::compile_glob(pattern) {
                return Err(at(format!(
                    "rule {}: invalid glob pattern `{pattern}`: {}",
                    index + 1,
                    error.kind()
                )));
            }
        }
        if let Some(name) = &rule.name {
            if name.trim().is_empty() {
                return Err(at(format!("rule {}: `name` must not be empty", index + 1)));
            }
            if policy.rules[..index]
                .iter()
                .any(|r| r.name.as_deref() == Some(name))
            {
                return Err(at(format!("rule {}: duplicate name {name:?}", index + 1)));
            }
        }
    }
    let globs = [
        ("policy.tmp_paths", &policy.tmp_paths),
        ("policy.services", &policy.services),
        ("policy.shells", &policy.shells),
    ];
    for (key, patterns) in globs {
        for (index, pattern) in patterns.iter().enumerate() {
            if let Err(error) = exclusions::compile_glob(pattern) {
                return Err(Invalid {
                    key,
                    index: Some(index),
                    message: format!("invalid glob pattern `{pattern}`: {}", error.kind()),
                });
            }
        }
    }
    absolute_all("policy.trust_db", [policy.trust_db.as_path()].into_iter())?;
    absolute_all(
        "policy.dpkg_admin",
        [policy.dpkg_admin.as_path()].into_iter(),
    )?;
    absolute_all("policy.dpkg_root", [policy.dpkg_root.as_path()].into_iter())?;
    absolute_all(
        "policy.rpm_dbpath",
        policy.rpm_dbpath.iter().map(|p| p.as_path()),
    )?;
    absolute_all(
        "policy.package_managers",
        policy.package_managers.iter().map(|path| path.as_path()),
    )?;
    if !(1..=MAX_UPGRADE_WINDOW_S).contains(&policy.upgrade_window_s) {
        return Err(invalid(
            "policy.upgrade_window_s",
            format!(
                "must be between 1 and {MAX_UPGRADE_WINDOW_S}, found {}",
                policy.upgrade_window_s
            ),
        ));
    }
    Ok(())
}

/// The `[update]` table: limits in range, each source well-formed and unique,
/// plain HTTP only where a signature or digest protects the download.
fn check_update(update: &UpdateConfig) -> Result<(), Invalid> {
    absolute_all("update.dir", [update.dir.as_path()].into_iter())?;
    if update.keep > MAX_UPDATE_KEEP {
        return Err(invalid(
            "update.keep",
            format!("must be at most {MAX_UPDATE_KEEP}, found {}", update.keep),
        ));
    }
    if !(1..=MAX_UPDATE_TIMEOUT_S).contains(&update.timeout_s) {
        return Err(invalid(
            "update.timeout_s",
            format!(
                "must be between 1 and {MAX_UPDATE_TIMEOUT_S}, found {}",
                update.timeout_s
            ),
        ));
    }
    let limits = [
        ("update.max_download_size", update.max_download_size),
        ("update.max_unpacked_size", update.max_unpacked_size),
        ("update.max_files", update.max_files),
    ];
    for (key, value) in limits {
        if value == 0 {
            return Err(invalid(key, "must be greater than 0".to_owned()));
        }
    }
    for (index, source) in update.sources.iter().enumerate() {
        let at = |message: String| Invalid {
            key: "update.sources",
            index: Some(index),
            message: format!("source {:?}: {message}", source.name),
        };
        let name_ok = !source.name.is_empty()
            && source.name != "."
            && source.name != ".."
            && source
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !name_ok {
            return Err(at(
                "`name` must be letters, digits, `.`, `_` or `-` (it names a directory)".to_owned(),
            ));
        }
        if update.sources[..index]
            .iter()
            .any(|other| other.name == source.name)
        {
            return Err(at("duplicate name".to_owned()));
        }
        let verify = source
            .verification()
            .map_err(|m| at(format!("`verify`: {m}")))?;
        let (scheme, rest) = source.url.split_once("://").unwrap_or(("", ""));
        if rest.is_empty() || rest.starts_with('/') {
            return Err(at(format!(
                "`url` must be https://host/path (or http:// with a signature or digest), found {:?}",
                source.url
            )));
        }
        match (scheme, &verify) {
            ("https", _) | ("http", Verify::Minisign(_) | Verify::Sha256(_)) => {}
            ("http", Verify::None) => {
                return Err(at(
                    "plain http:// needs `verify` = \"minisign:…\" or \"sha256:…\": an unverified download must come over https://"
                        .to_owned(),
                ));
            }
            _ => {
                return Err(at(format!(
                    "`url` must start with https:// or http://, found {:?}",
                    source.url
                )));
            }
        }
        for pattern in &source.include {
            if let Err(error) = exclusions::compile_glob(pattern) {
                return Err(at(format!(
                    "`include`: invalid glob pattern `{pattern}`: {}",
                    error.kind()
                )));
            }
        }
    }
    Ok(())
}

/// Requires every path to be absolute: the daemon's working directory is `/`, and a
/// relative path in a config file would silently mean something else.
fn absolute_all<'a>(
    key: &'static str,
    paths: impl Iterator<Item = &'a Path>,
) -> Result<(), Invalid> {
    for (index, path) in paths.enumerate() {
        if !path.is_absolute() {
            return Err(Invalid {
                key,
                index: Some(index),
                message: format!("path must be absolute, found {path:?}"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(check(&Config::default()), Ok(()));
    }

    #[test]
    fn each_rule_names_its_key() {
        type Edit = fn(&mut Config);
        let cases: [(Edit, &str, Option<usize>); 25] = [
            (
                |c| c.decision.malicious_score = 0,
                "decision.malicious_score",
                None,
            ),
            (
                |c| c.decision.suspicious_score = 0,
                "decision.suspicious_score",
                None,
            ),
            (
                |c| c.decision.suspicious_score = 101,
                "decision.suspicious_score",
                None,
            ),
            (
                |c| c.decision.weights.hash = -0.5,
                "decision.weights.hash",
                None,
            ),
            (
                |c| c.decision.weights.rules = f64::NAN,
                "decision.weights.rules",
                None,
            ),
            (
                |c| c.decision.weights.heuristics = f64::INFINITY,
                "decision.weights.heuristics",
                None,
            ),
            (
                |c| c.content.rules = vec!["/ok.yar".into(), "rules".into()],
                "content.rules",
                Some(1),
            ),
            (
                |c| c.scan.rule_timeout = Duration::ZERO,
                "scan.rule_timeout_ms",
                None,
            ),
            (
                |c| c.decision.deadline = Duration::ZERO,
                "decision.deadline_ms",
                None,
            ),
            (
                |c| c.decision.deadline = Duration::from_secs(61),
                "decision.deadline_ms",
                None,
            ),
            (|c| c.scan.max_file_size = 0, "scan.max_file_size", None),
            (|c| c.scan.workers = 1000, "scan.workers", None),
            (|c| c.scan.queue_capacity = 0, "scan.queue_capacity", None),
            (|c| c.daemon.nice = -21, "daemon.nice", None),
            (|c| c.daemon.nice = 20, "daemon.nice", None),
            (
                |c| c.watch.mounts = vec![WatchPath::from(std::path::PathBuf::from("x"))],
                "watch.mounts",
                Some(0),
            ),
            (
                |c| c.watch.interpreters = vec!["sh".into(), "/bin/bash".into()],
                "watch.interpreters",
                Some(1),
            ),
            (|c| c.log.level = String::new(), "log.level", None),
            (|c| c.log.events_keep = 0, "log.events_keep", None),
            (
                |c| c.quarantine.dir = "quarantine".into(),
                "quarantine.dir",
                Some(0),
            ),
            (
                |c| c.exclude.paths = vec!["/a".into(), "{".into()],
                "exclude.paths",
                Some(1),
            ),
            (
                |c| c.exclude.processes = vec!["/bin/ok".into(), "bin/x".into()],
                "exclude.processes",
                Some(1),
            ),
            (|c| c.cache.dir = "cache".into(), "cache.dir", Some(0)),
            (|c| c.cache.max_entries = 0, "cache.max_entries", None),
            (
                |c| c.cache.max_entries = super::MAX_CACHE_MAX_ENTRIES + 1,
                "cache.max_entries",
                None,
            ),
        ];
        for (edit, key, index) in cases {
            let mut config = Config::default();
            edit(&mut config);
            let error = check(&config).unwrap_err();
            assert_eq!((error.key, error.index), (key, index), "{}", error.message);
        }
    }

    #[test]
    fn edges_are_accepted() {
        type Edit = fn(&mut Config);
        let cases: [Edit; 10] = [
            |c| c.decision.suspicious_score = c.decision.malicious_score,
            |c| c.decision.suspicious_score = 1,
            |c| c.decision.weights.hash = 0.0,
            |c| c.decision.weights.rules = MAX_WEIGHT,
            |c| c.scan.rule_timeout = Duration::from_millis(MAX_RULE_TIMEOUT_MS),
            |c| c.decision.deadline = Duration::from_millis(1),
            |c| c.decision.deadline = Duration::from_millis(MAX_DEADLINE_MS),
            |c| c.scan.workers = MAX_WORKERS,
            |c| c.scan.queue_capacity = MAX_QUEUE_CAPACITY,
            |c| c.scan.cache_capacity = 0,
        ];
        for edit in cases {
            let mut config = Config::default();
            edit(&mut config);
            assert_eq!(check(&config), Ok(()));
        }
    }
}
