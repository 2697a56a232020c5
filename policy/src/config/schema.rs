//! The config schema as data: which keys exist where and what TOML type each takes.
//!
//! Owns: the [`ROOT`] key table and the per-file walk that checks a parsed document
//! against it, producing errors that name the full dotted key and the line.
//! Must not own: defaults or ranges (in `config.rs` and `validate.rs`).
//!
//! Why a table next to the serde derive: serde's own errors carry neither the key
//! path nor TOML-level type names ("expected u64"), and users need both. The serde
//! derive (with `deny_unknown_fields`) still runs after this walk as a backstop, and
//! a unit test proves this table and the derive agree on every key and enum value.

use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::Error;

/// What a key accepts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// A sub-table with these keys.
    Table(&'static [Field]),
    /// `true` / `false`.
    Bool,
    /// A non-negative integer.
    Count,
    /// An integer, negative or not.
    Integer,
    /// A non-negative number: a float, or an integer (read as a float).
    Number,
    /// A string.
    Text,
    /// An array of strings.
    TextList,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// An array of non-negative integers.
    CountList,
    /// An array of tables, each with these keys; the keys in `required` must be
    /// present in each.
    TableList(&'static [Field], &'static [&'static str]),
}

/// One key of a table.
#[derive(Debug, Clone, Copy)]
pub(super) struct Field {
    /// The key as written in TOML.
    pub(super) key: &'static str,
    /// What it accepts.
    pub(super) kind: Kind,
}

const fn field(key: &'static str, kind: Kind) -> Field {
    Field { key, kind }
}

/// Values of `decision.on_timeout` / `decision.on_overflow`.
const FAIL_MODES: &[&str] = &["allow", "deny"];
/// Values of `decision.on_malicious` / `decision.on_suspicious`.
const VERDICT_ACTIONS: &[&str] = &["deny", "allow", "quarantine"];
/// Values of `guard.uncovered` / `guard.network`.
const GUARD_MODES: &[&str] = &["deny", "audit", "off"];

/// The whole schema, in the order the keys are documented.
pub(super) const ROOT: &[Field] = &[
    field(
        "watch",
        Kind::Table(&[
            field("mounts", Kind::TextList),
            field("filesystems", Kind::TextList),
            field("scan_on_open", Kind::OneOf(&["all", "executable", "none"])),
            field("new_mounts", Kind::Bool),
            field("interpreters", Kind::TextList),
        ]),
    ),
    field(
        "decision",
        Kind::Table(&[
            field("mode", Kind::OneOf(&["enforce", "audit"])),
            field("deadline_ms", Kind::Count),
            field("on_timeout", Kind::OneOf(FAIL_MODES)),
            field("on_timeout_exec", Kind::OneOf(FAIL_MODES)),
            field("on_overflow", Kind::OneOf(FAIL_MODES)),
            field("on_flood", Kind::OneOf(FAIL_MODES)),
            field("flood_pending", Kind::Count),
            field("malicious_score", Kind::Count),
            field("suspicious_score", Kind::Count),
            field(
                "weights",
                Kind::Table(&[
                    field("hash", Kind::Number),
                    field("rules", Kind::Number),
                    field("heuristics", Kind::Number),
                    field("model", Kind::Number),
                ]),
            ),
            field("on_malicious", Kind::OneOf(VERDICT_ACTIONS)),
            field("on_suspicious", Kind::OneOf(VERDICT_ACTIONS)),
            field("on_malicious_write", Kind::OneOf(&["log", "quarantine"])),
            field("model_threshold", Kind::Number),
            field("model_block_threshold", Kind::Number),
        ]),
    ),
    field(
        "content",
        Kind::Table(&[
            field("hashes", Kind::TextList),
            field("allow", Kind::TextList),
            field("builtin", Kind::Bool),
            field("builtin_rules", Kind::Bool),
            field("rules", Kind::TextList),
            field("rules_on_error", Kind::OneOf(&["refuse", "skip"])),
            field("model", Kind::Text),
            field("clamav_db", Kind::Text),
            field("clamav_poll_s", Kind::Count),
        ]),
    ),
    field(
        "scan",
        Kind::Table(&[
            field("max_file_size", Kind::Count),
            field("workers", Kind::Count),
            field("queue_capacity", Kind::Count),
            field("cache_capacity", Kind::Count),
            field("ignore_marks", Kind::Bool),
            field("scan_on_write", Kind::Bool),
            field("trust_fast_path", Kind::Bool),
            field("inline_code", Kind::Bool),
            field("rule_timeout_ms", Kind::Count),
        ]),
    ),
    field("heuristics", Kind::Table(&[field("enabled", Kind::Bool)])),
    field(
        "daemon",
        Kind::Table(&[field("socket", Kind::Text), field("nice", Kind::Integer)]),
    ),
    field(
        "quarantine",
        Kind::Table(&[
            field("dir", Kind::Text),
            field("max_total_size", Kind::Count),
            field("max_age_days", Kind::Count),
        ]),
    ),
    field(
        "log",
        Kind::Table(&[
            field("events", Kind::Text),
            field("events_max_size", Kind::Count),
            field("events_keep", Kind::Count),
            field("level", Kind::Text),
        ]),
    ),
    field(
        "exclude",
        Kind::Table(&[
            field("paths", Kind::TextList),
            field("processes", Kind::TextList),
        ]),
    ),
    field(
        "policy",
        Kind::Table(&[
            field("profile", Kind::OneOf(&["desktop", "server", "lockdown"])),
            field(
                "rules",
                Kind::TableList(
                    &[
                        field("name", Kind::Text),
                        field(
                            "action",
                            Kind::OneOf(&["allow", "deny", "audit", "trusted-only"]),
                        ),
                        field("path", Kind::TextList),
                        field("parent", Kind::TextList),
                        field("uid", Kind::CountList),
                        field("gid", Kind::CountList),
                        field("file_uid", Kind::CountList),
                        field("non_root_writable", Kind::Bool),
                    ],
                    &["action"],
                ),
            ),
            field("trust_db", Kind::Text),
            field("dpkg_admin", Kind::Text),
            field("dpkg_root", Kind::Text),
            field("rpm_dbpath", Kind::Text),
            field("upgrade_window_s", Kind::Count),
            field("tmp_paths", Kind::TextList),
            field("services", Kind::TextList),
            field("shells", Kind::TextList),
            field("package_managers", Kind::TextList),
            field("sysctl_hardening", Kind::Bool),
        ]),
    ),
    field(
        "guard",
        Kind::Table(&[
            field("uncovered", Kind::OneOf(GUARD_MODES)),
            field("network", Kind::OneOf(GUARD_MODES)),
            field("cgroup", Kind::Text),
            field("memfd_programs", Kind::TextList),
        ]),
    ),
    field(
        "update",
        Kind::Table(&[
            field("dir", Kind::Text),
            field("keep", Kind::Count),
            field("timeout_s", Kind::Count),
            field("max_download_size", Kind::Count),
            field("max_unpacked_size", Kind::Count),
            field("max_files", Kind::Count),
            field(
                "sources",
                Kind::TableList(
                    &[
                        field("name", Kind::Text),
                        field("url", Kind::Text),
                        field(
                            "format",
                            Kind::OneOf(&["yara-archive", "hash-list", "bundle"]),
                        ),
                        field("verify", Kind::Text),
                        field("enabled", Kind::Bool),
                        field("include", Kind::TextList),
                    ],
                    &["name", "url", "format", "verify"],
                ),
            ),
        ]),
    ),
    field(
        "cache",
        Kind::Table(&[
            field("persistent", Kind::Bool),
            field("dir", Kind::Text),
            field("max_entries", Kind::Count),
        ]),
    ),
];

/// Where one leaf value was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Leaf {
    /// Full dotted key, e.g. `decision.deadline_ms`.
    pub(super) key: String,
    /// 1-based line of the value.
    pub(super) line: usize,
    /// 1-based line of each array item (empty for scalars).
    pub(super) items: Vec<usize>,
}

/// Checks every key and type of one parsed file; returns where each leaf was set.
///
/// # Errors
///
/// The first problem in file order: [`Error::UnknownKey`], [`Error::WrongType`] or
/// [`Error::InvalidValue`] (negative count, enum value not in the list).
pub(super) fn check(doc: &DeTable<'_>, text: &str, path: &Path) -> Result<Vec<Leaf>, Error> {
    let mut walk = Walk {
        text,
        path,
        leaves: Vec::new(),
    };
    walk.table(ROOT, doc, "")?;
    Ok(walk.leaves)
}

/// State of one walk over one file.
struct Walk<'a> {
    text: &'a str,
    path: &'a Path,
    leaves: Vec<Leaf>,
}

impl Walk<'_> {
    fn table(&mut self, fields: &[Field], table: &DeTable<'_>, prefix: &str) -> Result<(), Error> {
        // The map is sorted by key; walk in file order so the first error reported is
        // the first one in the file.
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        for (key, value) in entries {
            let name: &str = key.get_ref();
            let full = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            };
            let Some(field) = fields.iter().find(|field| field.key == name) else {
                return Err(Error::UnknownKey {
                    path: self.path.to_owned(),
                    line: self.line(key.span().start),
                    key: full,
                    expected: fields
                        .iter()
                        .map(|field| field.key)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            self.value(field.kind, value, full)?;
        }
        Ok(())
    }

    fn value(
        &mut self,
        kind: Kind,
        value: &Spanned<DeValue<'_>>,
        key: String,
    ) -> Result<(), Error> {
        let line = self.line(value.span().start);
        let mut items = Vec::new();
        match (kind, value.get_ref()) {
            (Kind::Table(fields), DeValue::Table(table)) => return self.table(fields, table, &key),
            // A float's range (finite, not negative) is checked by `validate` on the
            // merged value, so a drop-in can still fix it.
            (Kind::Bool, DeValue::Boolean(_))
            | (Kind::Text, DeValue::String(_))
            | (Kind::Number, DeValue::Float(_))
            | (Kind::Integer, DeValue::Integer(_)) => {}
            (Kind::Count, DeValue::Integer(integer)) => {
                if u64::from_str_radix(integer.as_str(), integer.radix()).is_err() {
                    return Err(self.invalid(
                        line,
                        key,
                        format!(
                            "expected a non-negative integer, found {}",
                            integer.as_str()
                        ),
                    ));
                }
            }
            (Kind::Number, DeValue::Integer(integer)) => {
                if u64::from_str_radix(integer.as_str(), integer.radix()).is_err() {
                    return Err(self.invalid(
                        line,
                        key,
                        format!("expected a non-negative number, found {}", integer.as_str()),
                    ));
                }
            }
            (Kind::OneOf(allowed), DeValue::String(text)) => {
                if !allowed.contains(&text.as_ref()) {
                    let expected: Vec<String> =
                        allowed.iter().map(|value| format!("{value:?}")).collect();
                    return Err(self.invalid(
                        line,
                        key,
                        format!("expected one of {}, found {text:?}", expected.join(", ")),
                    ));
                }
            }
            (Kind::CountList, DeValue::Array(array)) => {
                for (index, item) in array.iter().enumerate() {
                    let item_line = self.line(item.span().start);
                    let item_key = format!("{key}[{index}]");
                    let DeValue::Integer(integer) = item.get_ref() else {
                        return Err(Error::WrongType {
                            path: self.path.to_owned(),
                            line: item_line,
                            key: item_key,
                            expected: "an integer".to_owned(),
                            found: found(item.get_ref()).to_owned(),
                        });
                    };
                    if u32::from_str_radix(integer.as_str(), integer.radix()).is_err() {
                        return Err(self.invalid(
                            item_line,
                            item_key,
                            format!(
                                "expected an integer between 0 and {}, found {}",
                                u32::MAX,
                                integer.as_str()
                            ),
                        ));
                    }
                    items.push(item_line);
                }
            }
            (Kind::TableList(fields, required), DeValue::Array(array)) => {
                for (index, item) in array.iter().enumerate() {
                    let item_line = self.line(item.span().start);
                    let item_key = format!("{key}[{index}]");
                    let DeValue::Table(table) = item.get_ref() else {
                        return Err(Error::WrongType {
                            path: self.path.to_owned(),
                            line: item_line,
                            key: item_key,
                            expected: "a table".to_owned(),
                            found: found(item.get_ref()).to_owned(),
                        });
                    };
                    for name in required {
                        let present = table.iter().any(|(k, _)| {
                            let k: &str = k.get_ref();
                            k == *name
                        });
                        if !present {
                            return Err(self.invalid(
                                item_line,
                                item_key,
                                format!("missing key `{name}`"),
                            ));
                        }
                    }
                    // Leaves inside are recorded under `key[index].field`; the list
                    // itself keeps each item's line for errors about a whole rule.
                    self.table(fields, table, &item_key)?;
                    items.push(item_line);
                }
            }
            (Kind::TextList, DeValue::Array(array)) => {
                for (index, item) in array.iter().enumerate() {
                    let item_line = self.line(item.span().start);
                    if !matches!(item.get_ref(), DeValue::String(_)) {
                        return Err(Error::WrongType {
                            path: self.path.to_owned(),
                            line: item_line,
                            key: format!("{key}[{index}]"),
                            expected: "a string".to_owned(),
                            found: found(item.get_ref()).to_owned(),
                        });
                    }
                    items.push(item_line);
                }
            }
            (kind, other) => {
                return Err(Error::WrongType {
                    path: self.path.to_owned(),
                    line,
                    key,
                    expected: expected(kind).to_owned(),
                    found: found(other).to_owned(),
                });
            }
        }
        self.leaves.push(Leaf { key, line, items });
        Ok(())
    }

    fn invalid(&self, line: usize, key: String, message: String) -> Error {
        Error::InvalidValue {
            path: self.path.to_owned(),
            line,
            key,
            message,
        }
    }

    fn line(&self, offset: usize) -> usize {
        line_of(self.text, offset)
    }
}

/// 1-based line of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn expected(kind: Kind) -> &'static str {
    match kind {
        Kind::Table(_) => "a table",
        Kind::Bool => "a boolean",
        Kind::Count | Kind::Integer => "an integer",
        Kind::Number => "a number",
        Kind::Text | Kind::OneOf(_) => "a string",
        Kind::TextList => "an array of strings",
        Kind::CountList => "an array of integers",
        Kind::TableList(..) => "an array of tables",
    }
}

fn found(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WriteAction;
    use crate::config::{CacheConfig, GuardConfig, GuardMode};
    use crate::config::{Config, Content, Daemon, DecisionConfig, Exclude, FailMode, Log, Mode};
    use crate::config::{HeuristicsConfig, RuleErrorPolicy, Scan, ScanOnOpen, VerdictAction};
    use crate::config::{
        PolicyConfig, Profile, Quarantine, RuleAction, RuleConfig, Watch, Weights,
    };
    use crate::config::{SourceConfig, UpdateConfig};
    use serde::Deserialize;
    use serde::de::{self, Visitor};
    use std::cell::RefCell;

    /// A deserializer that records the field or variant names serde's derive asks for.
    #[derive(Default)]
    struct Probe(RefCell<Vec<&'static str>>);

    impl<'de> de::Deserializer<'de> for &Probe {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("probe"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.borrow_mut().extend_from_slice(fields);
            Err(de::Error::custom("probe"))
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.borrow_mut().extend_from_slice(variants);
            Err(de::Error::custom("probe"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map identifier ignored_any
        }
    }

    fn names<T: for<'de> Deserialize<'de>>() -> Vec<&'static str> {
        let probe = Probe::default();
        let _ = T::deserialize(&probe);
        probe.0.into_inner()
    }

    fn keys(fields: &[Field]) -> Vec<&'static str> {
        fields.iter().map(|field| field.key).collect()
    }

    fn sub(key: &str) -> &'static [Field] {
        match ROOT
            .iter()
            .find(|field| field.key == key)
            .map(|field| field.kind)
        {
            Some(Kind::Table(fields)) => fields,
            other => panic!("{key}: {other:?}"),
        }
    }

    fn sub_sub(table: &str, key: &str) -> &'static [Field] {
        match sub(table)
            .iter()
            .find(|field| field.key == key)
            .map(|field| field.kind)
        {
            Some(Kind::Table(fields)) => fields,
            other => panic!("{table}.{key}: {other:?}"),
        }
    }

    fn one_of(table: &str, key: &str) -> Vec<&'static str> {
        match sub(table)
            .iter()
            .find(|field| field.key == key)
            .map(|field| field.kind)
        {
            Some(Kind::OneOf(values)) => values.to_vec(),
            other => panic!("{table}.{key}: {other:?}"),
        }
    }

    fn rule_fields() -> &'static [Field] {
        match sub("policy")
            .iter()
            .find(|field| field.key == "rules")
            .map(|field| field.kind)
        {
            Some(Kind::TableList(fields, _)) => fields,
            other => panic!("policy.rules: {other:?}"),
        }
    }

    fn update_source_keys() -> Vec<&'static str> {
        match sub("update")
            .iter()
            .find(|field| field.key == "sources")
            .map(|field| field.kind)
        {
            Some(Kind::TableList(fields, _)) => keys(fields),
            other => panic!("update.sources: {other:?}"),
        }
    }

    fn rule_keys() -> Vec<&'static str> {
        keys(rule_fields())
    }

    fn rule_actions() -> Vec<&'static str> {
        match rule_fields()
            .iter()
            .find(|field| field.key == "action")
            .map(|field| field.kind)
        {
            Some(Kind::OneOf(values)) => values.to_vec(),
            other => panic!("policy.rules.action: {other:?}"),
        }
    }

    #[test]
    fn schema_matches_serde_derive() {
        let tables = [
            (keys(ROOT), names::<Config>()),
            (keys(sub("watch")), names::<Watch>()),
            (keys(sub("decision")), names::<DecisionConfig>()),
            (keys(sub_sub("decision", "weights")), names::<Weights>()),
            (keys(sub("content")), names::<Content>()),
            (keys(sub("scan")), names::<Scan>()),
            (keys(sub("heuristics")), names::<HeuristicsConfig>()),
            (keys(sub("daemon")), names::<Daemon>()),
            (keys(sub("quarantine")), names::<Quarantine>()),
            (keys(sub("log")), names::<Log>()),
            (keys(sub("exclude")), names::<Exclude>()),
            (keys(sub("policy")), names::<PolicyConfig>()),
            (rule_keys(), names::<RuleConfig>()),
            (one_of("policy", "profile"), names::<Profile>()),
            (keys(sub("guard")), names::<GuardConfig>()),
            (keys(sub("update")), names::<UpdateConfig>()),
            (update_source_keys(), names::<SourceConfig>()),
            (keys(sub("cache")), names::<CacheConfig>()),
            (one_of("guard", "uncovered"), names::<GuardMode>()),
            (one_of("guard", "network"), names::<GuardMode>()),
            (rule_actions(), names::<RuleAction>()),
            (one_of("watch", "scan_on_open"), names::<ScanOnOpen>()),
            (one_of("decision", "mode"), names::<Mode>()),
            (one_of("decision", "on_timeout"), names::<FailMode>()),
            (one_of("decision", "on_overflow"), names::<FailMode>()),
            (one_of("decision", "on_timeout_exec"), names::<FailMode>()),
            (one_of("decision", "on_flood"), names::<FailMode>()),
            (one_of("decision", "on_malicious"), names::<VerdictAction>()),
            (
                one_of("decision", "on_suspicious"),
                names::<VerdictAction>(),
            ),
            (
                one_of("decision", "on_malicious_write"),
                names::<WriteAction>(),
            ),
            (
                one_of("content", "rules_on_error"),
                names::<RuleErrorPolicy>(),
            ),
        ];
        for (schema, serde) in tables {
            assert_eq!(schema, serde);
        }
    }

    #[test]
    fn line_of_counts_newlines() {
        let text = "a\nb\n\nc";
        for (offset, line) in [(0, 1), (1, 1), (2, 2), (4, 3), (5, 4), (99, 4)] {
            assert_eq!(line_of(text, offset), line, "offset {offset}");
        }
    }

    #[test]
    fn leaves_record_lines() {
        let text = "[watch]\nfilesystems = [\n \"/\",\n \"/srv\"]\n[decision]\nmode = \"audit\"\n";
        let doc = DeTable::parse(text).unwrap();
        let leaves = check(doc.get_ref(), text, Path::new("x.toml")).unwrap();
        assert_eq!(
            leaves,
            vec![
                Leaf {
                    key: "watch.filesystems".into(),
                    line: 2,
                    items: vec![3, 4]
                },
                Leaf {
                    key: "decision.mode".into(),
                    line: 6,
                    items: vec![]
                },
            ]
        );
    }
}
