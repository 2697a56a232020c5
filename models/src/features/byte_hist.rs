//! The byte-histogram group: the share of each byte value 0–255 in the whole file.
//!
//! Owns nothing; reads the counts of the shared byte scan (`bytescan`). Columns sum
//! to 1 for a non-empty file.

use super::Input;
use super::row::Row;

/// Number of columns of this group.
pub(crate) const LEN: usize = 256;

/// Column names: `byte_hist_000` … `byte_hist_255`.
pub(crate) fn generated_names() -> impl Iterator<Item = String> {
    (0..LEN).map(|i| format!("byte_hist_{i:03}"))
}

/// Fills the group.
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    let total = input.bytes.len() as f64;
    if total == 0.0 {
        return;
    }
    for (i, &c) in input.bytescan.hist.iter().enumerate() {
        row.set(i, (c as f64 / total) as f32);
    }
}
