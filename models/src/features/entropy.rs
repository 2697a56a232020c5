//! Shannon entropy of byte counts (whole file, sliding windows, sections, overlay).
//!
//! Owns one lazily built table (`c·log2 c` for window-sized counts) so the
//! sliding-window entropy of the byte-entropy histogram costs a lookup per bin, not a
//! logarithm. Entropies are in bits per byte, in `[0, 8]`.

use std::sync::OnceLock;

/// Largest count the lookup table covers: one sliding window (see `bytescan`).
pub(crate) const TABLE_MAX: usize = 2048;

static XLOGX: OnceLock<Vec<f64>> = OnceLock::new();

/// `c · log2(c)` for `c` in `0..=TABLE_MAX` (0 for `c = 0`).
fn xlogx_table() -> &'static [f64] {
    XLOGX.get_or_init(|| {
        (0..=TABLE_MAX)
            .map(|c| {
                if c == 0 {
                    0.0
                } else {
                    let c = c as f64;
                    c * c.log2()
                }
            })
            .collect()
    })
}

/// Entropy in bits of a histogram whose counts all lie in `0..=TABLE_MAX` and sum to
/// `total`; uses the lookup table. Counts above the table fall back to `log2`.
pub(crate) fn entropy_small(counts: &[u32], total: u32) -> f32 {
    if total == 0 {
        return 0.0;
    }
    let table = xlogx_table();
    let mut sum = 0.0f64;
    for &c in counts {
        let c_us = usize::try_from(c).unwrap_or(usize::MAX);
        sum += match table.get(c_us) {
            Some(v) => *v,
            None => {
                let c = f64::from(c);
                c * c.log2()
            }
        };
    }
    let n = f64::from(total);
    let h = (n.log2() - sum / n) as f32;
    if h.is_finite() {
        h.clamp(0.0, 8.0)
    } else {
        0.0
    }
}

/// Entropy in bits per byte of a 256-bin byte histogram (any size).
pub(crate) fn entropy(hist: &[u64; 256]) -> f32 {
    let total: u64 = hist.iter().fold(0u64, |a, &c| a.saturating_add(c));
    if total == 0 {
        return 0.0;
    }
    let n = total as f64;
    let mut h = 0.0f64;
    for &c in hist {
        if c != 0 {
            let p = c as f64 / n;
            h -= p * p.log2();
        }
    }
    if h.is_finite() {
        (h as f32).clamp(0.0, 8.0)
    } else {
        0.0
    }
}

/// Entropy in bits per byte of `bytes` (tests compare the scan against it).
#[cfg(test)]
pub(crate) fn entropy_of(bytes: &[u8]) -> f32 {
    let mut hist = [0u64; 256];
    for &b in bytes {
        hist[usize::from(b)] += 1;
    }
    entropy(&hist)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_extremes() {
        assert_eq!(entropy_of(&[]), 0.0);
        assert_eq!(entropy_of(&[7u8; 1000]), 0.0);
        let all: Vec<u8> = (0..=255u8).cycle().take(256 * 16).collect();
        assert!((entropy_of(&all) - 8.0).abs() < 1e-4);
        let two: Vec<u8> = [0u8, 1].iter().copied().cycle().take(100).collect();
        assert!((entropy_of(&two) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn small_matches_exact() {
        let counts = [3u32, 5, 0, 8, 2048, 1];
        let total: u32 = counts.iter().sum();
        let exact = {
            let n = f64::from(total);
            counts
                .iter()
                .filter(|&&c| c > 0)
                .map(|&c| {
                    let p = f64::from(c) / n;
                    -p * p.log2()
                })
                .sum::<f64>()
        };
        assert!((f64::from(entropy_small(&counts, total)) - exact).abs() < 1e-3);
        // Counts beyond the table still work.
        assert!(entropy_small(&[5000, 5000], 10000) > 0.99);
        assert_eq!(entropy_small(&[0, 0], 0), 0.0);
    }
}
