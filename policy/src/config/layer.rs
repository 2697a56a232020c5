//! One config file as a checked layer, and the merge of layers into a [`Config`].
//!
//! Owns: the merged TOML table and, for every leaf key, the file and line that last
//! set it (so a range error found after merging still names the right drop-in).
//! Must not own: the key/type rules (`schema.rs`) or the ranges (`validate.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::de::{DeTable, Deserializer};

use super::{Config, schema, validate};
use crate::error::Error;

/// Where a leaf value was set.
#[derive(Debug, Clone)]
struct Origin {
    path: Arc<Path>,
    line: usize,
    /// Line of each array item.
    items: Vec<usize>,
}

/// A checked file, or several merged.
#[derive(Debug, Default)]
pub(super) struct Layer {
    table: toml::Table,
    origins: BTreeMap<String, Origin>,
}

impl Layer {
    /// Parses and checks one file on its own: syntax, keys, types, enum values.
    ///
    /// # Errors
    ///
    /// [`Error::Toml`], [`Error::UnknownKey`], [`Error::WrongType`] or
    /// [`Error::InvalidValue`], all naming `path` and the line.
    pub(super) fn parse(text: &str, path: &Path) -> Result<Layer, Error> {
        let toml_error = |error: toml::de::Error, prefix: &str| Error::Toml {
            path: path.to_owned(),
            line: error
                .span()
                .map_or(0, |span| schema::line_of(text, span.start)),
            message: format!("{prefix}{}", error.message().trim_end()),
        };
        let doc = DeTable::parse(text).map_err(|error| toml_error(error, "invalid TOML: "))?;
        let leaves = schema::check(doc.get_ref(), text, path)?;
        // Backstop: the schema walk should have caught everything serde rejects; a
        // mismatch is a bug, but it must still be an error naming the file.
        Config::deserialize(Deserializer::from(doc.clone()))
            .map_err(|error| toml_error(error, ""))?;
        let table = toml::Table::deserialize(Deserializer::from(doc))
            .map_err(|error| toml_error(error, ""))?;
        let path: Arc<Path> = path.into();
        let origins = leaves
            .into_iter()
            .map(|leaf| {
                let origin = Origin {
                    path: Arc::clone(&path),
                    line: leaf.line,
                    items: leaf.items,
                };
                (leaf.key, origin)
            })
            .collect();
        Ok(Layer { table, origins })
    }

    /// Merges `over` on top of `self`: tables key by key, everything else replaced.
    pub(super) fn merge(&mut self, over: Layer) {
        merge_tables(&mut self.table, over.table);
        self.origins.extend(over.origins);
    }

    /// Builds the typed config and validates it; `main` names the config when a
    /// problem has no better location.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] naming the key and where it was set.
    pub(super) fn into_config(self, main: &Path) -> Result<Config, Error> {
        let config: Config =
            toml::Value::Table(self.table)
                .try_into()
                .map_err(|error: toml::de::Error| Error::Toml {
                    path: main.to_owned(),
                    line: 0,
                    message: error.message().trim_end().to_owned(),
                })?;
        validate::check(&config).map_err(|invalid| {
            let origin = self.origins.get(invalid.key);
            let (path, line) = match origin {
                Some(origin) => (
                    origin.path.to_path_buf(),
                    invalid
                        .index
                        .and_then(|index| origin.items.get(index).copied())
                        .unwrap_or(origin.line),
                ),
                // Only reachable if a built-in default were invalid.
                None => (PathBuf::from("<built-in defaults>"), 0),
            };
            Error::InvalidValue {
                path,
                line,
                key: invalid.key.to_owned(),
                message: invalid.message,
            }
        })?;
        Ok(config)
    }
}

fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(over)) => merge_tables(base, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn merge_is_key_by_key_and_replaces_arrays() {
        let cases = [
            ("a = 1", "b = 2", "a = 1\nb = 2"),
            ("a = 1", "a = 2", "a = 2"),
            ("[t]\nx = 1\ny = 1", "[t]\ny = 2", "[t]\nx = 1\ny = 2"),
            ("l = [1, 2]", "l = [3]", "l = [3]"),
            (
                "[t.u]\nx = 1",
                "[t.u]\nz = 3\n[t]\nw = 4",
                "[t]\nw = 4\n[t.u]\nx = 1\nz = 3",
            ),
        ];
        for (base, over, want) in cases {
            let mut merged = table(base);
            merge_tables(&mut merged, table(over));
            assert_eq!(merged, table(want), "{base:?} + {over:?}");
        }
    }
}
