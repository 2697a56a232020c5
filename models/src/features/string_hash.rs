//! The string-hash group (schema 2): printable strings feature-hashed into
//! buckets, the EMBER way. Schema 1 counts strings that match its markers; this
//! sees every string, so format strings, messages and hard-coded names that no
//! marker lists still shape the row.
//!
//! Owns nothing but the column layout: the string scan (`strings::scan`) hashes
//! each string of [`HASH_MIN_LEN`] to [`HASH_MAX_LEN`] bytes with FNV-1a, at most
//! [`HASH_BYTE_BUDGET`] bytes per file, and only when a schema-2 row is asked for.

use super::Input;
use super::row::Row;

/// Buckets for strings.
pub(crate) const BUCKETS: usize = 64;
/// Number of columns of this group.
pub(crate) const LEN: usize = BUCKETS;
/// Shortest string hashed (shorter ones are mostly code bytes that happen to be
/// printable).
pub(crate) const HASH_MIN_LEN: usize = 6;
/// Longest string hashed (longer ones are text blobs, not names).
pub(crate) const HASH_MAX_LEN: usize = 128;
/// At most this many string bytes are hashed per file.
pub(crate) const HASH_BYTE_BUDGET: usize = 256 << 10;

/// Names of the columns, in order.
pub(crate) fn generated_names() -> impl Iterator<Item = String> {
    (0..BUCKETS).map(|i| format!("strh_hash_{i:02}"))
}

/// Fills the group from the string scan's buckets.
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    for (i, &n) in input.strings.hashed.iter().enumerate() {
        row.log(i, u64::from(n));
    }
}
