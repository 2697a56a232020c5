//! The column writer every feature group fills, the `columns!` macro that declares a
//! group's fixed columns, and the numeric transforms all groups share.
//!
//! Owns no state beyond the borrowed output slice. Guarantees: writing never panics
//! (an out-of-range column is ignored; the schema tests catch that mistake) and never
//! stores a non-finite value (NaN and ±inf become 0). Column conventions used by every
//! group: a `_log` column is `ln(1 + x)` of a count or byte size, a `_rel` column is a
//! ratio to the file size clamped to `[0, REL_MAX]`, a flag is 0 or 1, and a one-hot
//! family has exactly one 1 when the group applies.

/// The largest value a `_rel` (relative to file size) column takes: offsets and sizes
/// far past the end of a malformed file saturate here instead of growing unbounded.
pub(crate) const REL_MAX: f32 = 4.0;

/// Declares the fixed columns of a feature group: an index enum (declaration order is
/// column order) and the table of stable column names, in the same order.
macro_rules! columns {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $col:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum $name {
            $(
                #[doc = $col]
                $variant,
            )+
        }

        impl $name {
            /// Column names in column order; the index of a name is `Self::X as usize`.
            pub(crate) const NAMES: &'static [&'static str] = &[$($col),+];
        }

        impl From<$name> for usize {
            fn from(col: $name) -> usize {
                col as usize
            }
        }
    };
}
pub(crate) use columns;

/// A mutable view of one feature group's slice of the output row.
pub(crate) struct Row<'a> {
    cells: &'a mut [f32],
}

impl<'a> Row<'a> {
    /// Wraps a group's slice (already zeroed by the caller).
    pub(crate) fn new(cells: &'a mut [f32]) -> Self {
        Row { cells }
    }

    /// Stores `value` at `col`; non-finite values become 0, out-of-range columns are
    /// ignored.
    pub(crate) fn set(&mut self, col: impl Into<usize>, value: f32) {
        if let Some(cell) = self.cells.get_mut(col.into()) {
            *cell = if value.is_finite() { value } else { 0.0 };
        }
    }

    /// Stores 1 when `on`, else 0.
    pub(crate) fn flag(&mut self, col: impl Into<usize>, on: bool) {
        self.set(col, if on { 1.0 } else { 0.0 });
    }

    /// Stores `ln(1 + x)`.
    pub(crate) fn log(&mut self, col: impl Into<usize>, x: u64) {
        self.set(col, log1p(x));
    }

    /// Stores `part / whole` clamped to `[0, REL_MAX]` (0 when `whole` is 0).
    pub(crate) fn rel(&mut self, col: impl Into<usize>, part: u64, whole: u64) {
        self.set(col, rel(part, whole));
    }

    /// Adds `value` to the cell at `col` (used by hashed and histogram families).
    pub(crate) fn add(&mut self, col: usize, value: f32) {
        if let Some(cell) = self.cells.get_mut(col) {
            let sum = *cell + value;
            *cell = if sum.is_finite() { sum } else { 0.0 };
        }
    }

    /// Replaces every cell `c` with `ln(1 + c)` in `range` (for hashed count families).
    pub(crate) fn log_in_place(&mut self, start: usize, len: usize) {
        let end = start.saturating_add(len).min(self.cells.len());
        if let Some(cells) = self.cells.get_mut(start..end) {
            for cell in cells {
                let v = cell.max(0.0).ln_1p();
                *cell = if v.is_finite() { v } else { 0.0 };
            }
        }
    }
}

/// `ln(1 + x)` as f32; always finite.
pub(crate) fn log1p(x: u64) -> f32 {
    // u64 -> f64 is lossy for huge values but always finite; ln_1p of a finite
    // non-negative f64 is finite.
    (x as f64).ln_1p() as f32
}

/// `part / whole` clamped to `[0, REL_MAX]`; 0 when `whole` is 0.
pub(crate) fn rel(part: u64, whole: u64) -> f32 {
    if whole == 0 {
        return 0.0;
    }
    let r = part as f64 / whole as f64;
    if r.is_finite() {
        (r as f32).clamp(0.0, REL_MAX)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    columns! {
        /// Test columns.
        Demo { A = "demo_a", B = "demo_b" }
    }

    #[test]
    fn columns_macro_orders_names() {
        assert_eq!(Demo::NAMES, &["demo_a", "demo_b"]);
        assert_eq!(usize::from(Demo::B), 1);
    }

    #[test]
    fn row_sanitizes_and_ignores_out_of_range() {
        let mut cells = [0.0f32; 2];
        let mut row = Row::new(&mut cells);
        row.set(Demo::A, f32::NAN);
        row.set(Demo::B, f32::INFINITY);
        row.set(7usize, 1.0);
        row.add(9, 1.0);
        assert_eq!(cells, [0.0, 0.0]);
        let mut row = Row::new(&mut cells);
        row.flag(Demo::A, true);
        row.log(Demo::B, u64::MAX);
        assert_eq!(cells[0], 1.0);
        assert!(cells[1].is_finite() && cells[1] > 40.0);
    }

    #[test]
    fn rel_clamps() {
        assert_eq!(rel(1, 0), 0.0);
        assert_eq!(rel(u64::MAX, 1), REL_MAX);
        assert_eq!(rel(1, 4), 0.25);
    }

    #[test]
    fn log_in_place_stays_finite() {
        let mut cells = [1.0f32, -3.0, f32::MAX];
        let mut row = Row::new(&mut cells);
        row.log_in_place(0, 10);
        assert!(cells.iter().all(|v| v.is_finite() && *v >= 0.0));
    }
}
