//! The `[cache]` table: the persistent verdict cache.
//!
//! Owns: the keys of the on-disk verdict store the daemon keeps across restarts,
//! their defaults and their ranges. Must not own: the store itself, its key or
//! its file format (the agent's `daemon::cache::persistent`), nor the in-memory
//! cache's size (`scan.cache_capacity`, which predates this table).

use std::path::PathBuf;

use serde::Deserialize;

/// Default `cache.dir`.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/vigil/cache";
/// Default `cache.max_entries`, as many as the in-memory cache holds: more than
/// the executables and libraries of a desktop install, in about 29 MiB of store
/// (445 bytes an entry measured with 20,000 entries, B-tree pages included).
pub const DEFAULT_CACHE_MAX_ENTRIES: u64 = 65_536;
/// Largest accepted `cache.max_entries`.
pub const MAX_CACHE_MAX_ENTRIES: u64 = 16_777_216;

/// The `[cache]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Keep verdicts on disk, so a restart or a reboot does not make every file
    /// cold again.
    pub persistent: bool,
    /// The directory of the store (created 0700, root); absolute.
    pub dir: PathBuf,
    /// Most verdicts kept; the least recently written go first;
    /// 1..=[`MAX_CACHE_MAX_ENTRIES`].
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            persistent: true,
            dir: PathBuf::from(DEFAULT_CACHE_DIR),
            max_entries: DEFAULT_CACHE_MAX_ENTRIES,
        }
    }
}
