//! One pass over the whole file that yields everything the byte-level groups need:
//! the 256-bin byte histogram, the EMBER-style byte-entropy histogram, the share of
//! high-entropy windows (a packer indicator) and the entropy of each ELF section.
//!
//! Owns only the counts it returns. The file is walked in `STEP`-byte blocks; each
//! block is counted once (four interleaved `u16` tables, folded into one histogram),
//! and each sliding window of `WINDOW` bytes is the sum of two consecutive blocks, so
//! every byte is touched once although windows overlap. Windows follow EMBER: start
//! at 0, step 1024, only whole windows; a file shorter than one window is one window.
//! Section entropies reuse the block histograms: whole blocks inside a section are
//! added to its accumulator, only the partial blocks at its edges are recounted; at
//! most `MAX_ACTIVE` sections are accumulated at once (deeper overlaps, which only
//! crafted files have, get no entropy), so the pass stays linear.

use super::entropy::entropy_small;

/// Sliding-window length of the byte-entropy histogram.
pub(crate) const WINDOW: usize = 2048;
/// Step between window starts (half a window: every byte is in two windows).
pub(crate) const STEP: usize = WINDOW / 2;
/// Window entropy (bits per byte estimated from the high nibble, as EMBER does, in
/// `[0, 8]`) at or above which a window counts as high-entropy (compressed or
/// encrypted data).
pub(crate) const HIGH_ENTROPY_BITS: f32 = 7.5;
/// Sections accumulated at the same time.
const MAX_ACTIVE: usize = 16;

/// A byte range whose entropy is wanted, tagged with the caller's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// Caller's identifier (the section index).
    pub id: usize,
    /// First byte.
    pub start: usize,
    /// One past the last byte (≤ input length).
    pub end: usize,
}

/// Counts gathered by [`scan`].
pub(crate) struct ByteScan {
    /// Occurrences of each byte value in the whole file.
    pub hist: [u64; 256],
    /// Rows: window entropy bin (16 bins over `[0, 8]` bits), columns: high nibble;
    /// each window adds its 16 nibble counts to its entropy row.
    pub entropy_hist: [[u64; 16]; 16],
    /// Number of windows.
    pub windows: u64,
    /// Windows whose entropy is at least [`HIGH_ENTROPY_BITS`].
    pub high_entropy_windows: u64,
    /// `(span id, entropy in bits per byte)` for every span that got one, by id.
    pub span_entropy: Vec<(usize, f32)>,
}

/// Counts the byte histogram of one block (≤ `STEP` bytes, so `u16` cannot wrap)
/// into `out`: bytes are read eight at a time, all-zero words (padding) are counted
/// at once, and the others go to four interleaved tables (a run of equal bytes would
/// otherwise serialize every increment on one counter).
fn block_hist(block: &[u8], out: &mut [u32; 256]) {
    let mut t = [[0u16; 256]; 4];
    let mut zero_words = 0u32;
    let mut words = block.chunks_exact(8);
    for word in &mut words {
        let w = <[u8; 8]>::try_from(word).map_or(0, u64::from_le_bytes);
        if w == 0 {
            zero_words += 1;
            continue;
        }
        for (k, table) in [0usize, 1, 2, 3, 0, 1, 2, 3].into_iter().enumerate() {
            let b = usize::from((w >> (8 * k)) as u8);
            if let Some(slot) = t.get_mut(table).and_then(|t| t.get_mut(b)) {
                *slot = slot.wrapping_add(1);
            }
        }
    }
    for &b in words.remainder() {
        t[0][usize::from(b)] = t[0][usize::from(b)].wrapping_add(1);
    }
    let [t0, t1, t2, t3] = &t;
    for ((o, (a, b)), (c, d)) in out.iter_mut().zip(t0.iter().zip(t1)).zip(t2.iter().zip(t3)) {
        *o = u32::from(*a) + u32::from(*b) + u32::from(*c) + u32::from(*d);
    }
    out[0] = out[0].wrapping_add(zero_words * 8);
}

/// Adds the bytes of a short slice (a section edge) to `hist`.
fn count_into(bytes: &[u8], hist: &mut [u32; 256]) {
    for &b in bytes {
        if let Some(slot) = hist.get_mut(usize::from(b)) {
            *slot = slot.wrapping_add(1);
        }
    }
}

/// Entropy in bits per byte of a histogram of `total` bytes.
fn hist_entropy(hist: &[u32; 256], total: usize) -> f32 {
    entropy_small(hist, u32::try_from(total).unwrap_or(u32::MAX))
}

/// A section being accumulated: its id, histogram so far, total length and the
/// block after its last whole block.
struct Active {
    id: usize,
    hist: [u32; 256],
    len: usize,
    end_block: usize,
}

/// Sections waiting for, or in, the sweep.
struct Sweep<'a> {
    bytes: &'a [u8],
    /// Spans with at least one whole block, by first whole block.
    pending: Vec<(usize, Span)>,
    next: usize,
    active: Vec<Active>,
    done: Vec<(usize, f32)>,
}

impl<'a> Sweep<'a> {
    fn new(bytes: &'a [u8], spans: &[Span], blocks: usize) -> Self {
        let mut done = Vec::new();
        let mut pending = Vec::new();
        for s in spans {
            let Some(data) = bytes.get(s.start..s.end) else {
                continue;
            };
            let first = s.start.div_ceil(STEP);
            let last = (s.end / STEP).min(blocks);
            if first < last {
                pending.push((first, *s));
            } else {
                let mut hist = [0u32; 256];
                count_into(data, &mut hist);
                done.push((s.id, hist_entropy(&hist, data.len())));
            }
        }
        pending.sort_by_key(|(first, s)| (*first, s.id));
        Sweep {
            bytes,
            pending,
            next: 0,
            active: Vec::new(),
            done,
        }
    }

    /// Feeds block `index` (its histogram) to every section covering it whole.
    fn block(&mut self, index: usize, counts: &[u32; 256]) {
        while let Some(&(first, s)) = self.pending.get(self.next) {
            if first != index {
                break;
            }
            self.next += 1;
            if self.active.len() >= MAX_ACTIVE {
                continue;
            }
            let end_block = (s.end / STEP).max(first);
            let mut hist = [0u32; 256];
            let head = self
                .bytes
                .get(s.start..first.saturating_mul(STEP))
                .unwrap_or(&[]);
            let tail = self
                .bytes
                .get(end_block.saturating_mul(STEP)..s.end)
                .unwrap_or(&[]);
            count_into(head, &mut hist);
            count_into(tail, &mut hist);
            self.active.push(Active {
                id: s.id,
                hist,
                len: s.end.saturating_sub(s.start),
                end_block,
            });
        }
        for a in &mut self.active {
            for (h, c) in a.hist.iter_mut().zip(counts) {
                *h = h.wrapping_add(*c);
            }
        }
        let done = &mut self.done;
        self.active.retain(|a| {
            let finished = a.end_block <= index + 1;
            if finished {
                done.push((a.id, hist_entropy(&a.hist, a.len)));
            }
            !finished
        });
    }

    fn finish(mut self) -> Vec<(usize, f32)> {
        self.done.sort_by_key(|(id, _)| *id);
        self.done
    }
}

impl ByteScan {
    fn empty() -> Self {
        ByteScan {
            hist: [0; 256],
            entropy_hist: [[0; 16]; 16],
            windows: 0,
            high_entropy_windows: 0,
            span_entropy: Vec::new(),
        }
    }

    /// Adds a block's counts to the file histogram and returns its nibble counts.
    fn fold(&mut self, counts: &[u32; 256]) -> [u32; 16] {
        for (h, c) in self.hist.iter_mut().zip(counts) {
            *h = h.wrapping_add(u64::from(*c));
        }
        let mut nibbles = [0u32; 16];
        for (n, row) in nibbles.iter_mut().zip(counts.chunks_exact(16)) {
            *n = row.iter().fold(0u32, |a, &c| a.wrapping_add(c));
        }
        nibbles
    }

    /// Adds one window (its nibble counts, summing to `total`).
    fn add_window(&mut self, nibbles: &[u32; 16], total: u32) {
        // Nibble entropy is at most 4 bits; doubled it estimates bits per byte.
        let h = entropy_small(nibbles, total) * 2.0;
        let bin = ((h * 2.0) as usize).min(15);
        if let Some(row) = self.entropy_hist.get_mut(bin) {
            for (slot, &c) in row.iter_mut().zip(nibbles) {
                *slot = slot.saturating_add(u64::from(c));
            }
        }
        self.windows = self.windows.saturating_add(1);
        if h >= HIGH_ENTROPY_BITS {
            self.high_entropy_windows = self.high_entropy_windows.saturating_add(1);
        }
    }
}

/// Scans `bytes` once, with the entropy of each of `spans` (spans out of range are
/// ignored). Never panics; an empty input gives all-zero counts.
pub(crate) fn scan(bytes: &[u8], spans: &[Span]) -> ByteScan {
    let mut out = ByteScan::empty();
    if bytes.is_empty() {
        return out;
    }
    let blocks = if bytes.len() < WINDOW {
        0
    } else {
        bytes.len() / STEP
    };
    let mut sweep = Sweep::new(bytes, spans, blocks);
    if blocks == 0 {
        let mut nibbles = [0u32; 16];
        let mut counts = [0u32; 256];
        for part in bytes.chunks(STEP) {
            block_hist(part, &mut counts);
            let n = out.fold(&counts);
            for (a, b) in nibbles.iter_mut().zip(n) {
                *a = a.wrapping_add(b);
            }
        }
        out.add_window(&nibbles, u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        out.span_entropy = sweep.finish();
        return out;
    }
    let mut chunks = bytes.chunks_exact(STEP);
    let mut prev: Option<[u32; 16]> = None;
    let mut counts = [0u32; 256];
    for (index, block) in (&mut chunks).enumerate() {
        block_hist(block, &mut counts);
        let nibbles = out.fold(&counts);
        sweep.block(index, &counts);
        if let Some(p) = prev {
            let mut window = [0u32; 16];
            for ((w, a), b) in window.iter_mut().zip(p).zip(nibbles) {
                *w = a.wrapping_add(b);
            }
            out.add_window(&window, WINDOW as u32);
        }
        prev = Some(nibbles);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        block_hist(tail, &mut counts);
        out.fold(&counts);
    }
    out.span_entropy = sweep.finish();
    out
}

#[cfg(test)]
mod tests {
    use super::super::entropy::entropy_of;
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn empty_and_short() {
        let s = scan(&[], &[]);
        assert_eq!(s.windows, 0);
        let s = scan(
            b"hello",
            &[Span {
                id: 3,
                start: 1,
                end: 5,
            }],
        );
        assert_eq!(s.windows, 1);
        assert_eq!(s.hist.iter().sum::<u64>(), 5);
        assert_eq!(s.entropy_hist.iter().flatten().sum::<u64>(), 5);
        assert_eq!(s.span_entropy, vec![(3, entropy_of(b"ello"))]);
    }

    #[test]
    fn windows_follow_ember() {
        // 5000 bytes: blocks at 0,1024,2048,3072 (+ tail 904) → windows 0,1024,2048.
        let bytes = vec![0u8; 5000];
        let s = scan(&bytes, &[]);
        assert_eq!(s.windows, 3);
        assert_eq!(s.hist[0], 5000);
        // Constant data: entropy 0, all counts in row 0, nibble 0.
        assert_eq!(s.entropy_hist[0][0], 3 * 2048);
        assert_eq!(s.high_entropy_windows, 0);
    }

    #[test]
    fn random_data_is_high_entropy() {
        let bytes = noise(64 * 1024, 0x1234_5678_9abc_def0);
        let s = scan(&bytes, &[]);
        assert_eq!(s.windows, 63);
        assert_eq!(s.high_entropy_windows, 63);
        assert!(s.entropy_hist[15].iter().sum::<u64>() > 0);
        let mut hist = [0u64; 256];
        for &b in &bytes {
            hist[usize::from(b)] += 1;
        }
        assert_eq!(s.hist, hist);
    }

    #[test]
    fn span_entropy_matches_direct_count() {
        let mut bytes = noise(40_000, 7);
        bytes[10_000..20_000].fill(b'A');
        for (i, b) in bytes[25_000..30_000].iter_mut().enumerate() {
            *b = (i % 7) as u8;
        }
        let spans = [
            Span {
                id: 0,
                start: 0,
                end: 40_000,
            },
            Span {
                id: 1,
                start: 9_999,
                end: 20_001,
            },
            Span {
                id: 2,
                start: 25_000,
                end: 30_000,
            },
            Span {
                id: 3,
                start: 100,
                end: 900,
            },
            Span {
                id: 4,
                start: 1024,
                end: 2048,
            },
            Span {
                id: 5,
                start: 39_000,
                end: 40_000,
            },
            Span {
                id: 6,
                start: 5,
                end: 50_000,
            },
        ];
        let s = scan(&bytes, &spans);
        let ids: Vec<usize> = s.span_entropy.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4, 5]);
        for (id, h) in &s.span_entropy {
            let sp = spans[*id];
            let want = entropy_of(&bytes[sp.start..sp.end]);
            assert!((h - want).abs() < 1e-3, "span {id}: {h} vs {want}");
        }
    }

    #[test]
    fn deep_overlap_is_capped() {
        let bytes = noise(64 * 1024, 9);
        let spans: Vec<Span> = (0..100)
            .map(|id| Span {
                id,
                start: 0,
                end: bytes.len(),
            })
            .collect();
        let s = scan(&bytes, &spans);
        assert_eq!(s.span_entropy.len(), MAX_ACTIVE);
    }
}
