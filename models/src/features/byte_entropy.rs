//! The byte-entropy histogram group (EMBER): for every sliding window (2048 bytes,
//! step 1024) its entropy picks one of 16 rows and its 16 high-nibble counts are added
//! to that row; the 16×16 table is normalized to sum to 1.
//!
//! Owns nothing; reads the table of the shared byte scan (`bytescan`). Column
//! `byte_ent_hHH_nNN` is entropy bin HH (bin width 0.5 bit) and high nibble NN.

use super::Input;
use super::row::Row;

/// Number of columns of this group.
pub(crate) const LEN: usize = 256;

/// Column names, row-major: entropy bin, then nibble.
pub(crate) fn generated_names() -> impl Iterator<Item = String> {
    (0..16).flat_map(|h| (0..16).map(move |n| format!("byte_ent_h{h:02}_n{n:02}")))
}

/// Fills the group.
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    let table = &input.bytescan.entropy_hist;
    let total: u64 = table
        .iter()
        .flatten()
        .fold(0u64, |a, &c| a.saturating_add(c));
    if total == 0 {
        return;
    }
    for (i, &c) in table.iter().flatten().enumerate() {
        row.set(i, (c as f64 / total as f64) as f32);
    }
}
