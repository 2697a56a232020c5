//! FNV-1a, the stable hash behind every feature-hashed column (library and symbol
//! names into buckets).
//!
//! Owns no state. It must never change: a bucket index is part of the feature schema,
//! and std's `DefaultHasher` is randomized per process, so training rows and the
//! daemon would disagree. `const fn` so tables of known names are hashed at compile time.

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a (64-bit) of `bytes`.
pub(crate) const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = OFFSET_BASIS;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(PRIME);
        i += 1;
    }
    hash
}

/// The bucket of `bytes` among `buckets` (0 when `buckets` is 0).
pub(crate) fn bucket(bytes: &[u8], buckets: usize) -> usize {
    let hash = fnv1a(bytes);
    // Fold the high half in: the low bits of FNV-1a alone mix poorly for short keys.
    let folded = hash ^ (hash >> 32);
    match u64::try_from(buckets) {
        Ok(0) | Err(_) => 0,
        Ok(n) => usize::try_from(folded % n).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn bucket_is_stable_and_in_range() {
        assert_eq!(bucket(b"libc", 0), 0);
        for n in [1usize, 7, 16, 64] {
            assert!(bucket(b"socket", n) < n);
        }
        // Pinned: changing the hash or the folding moves every hashed column
        // (bump SCHEMA_VERSION).
        assert_eq!(bucket(b"socket", 16), 4);
        assert_eq!(bucket(b"libc", 8), 0);
        assert_eq!(bucket(b"connect", 16), 7);
        const H: u64 = fnv1a(b"connect");
        assert_eq!(H, fnv1a(b"connect"));
    }
}
