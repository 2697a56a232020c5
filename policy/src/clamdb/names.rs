//! Signature names: their encoding in the scratch file, and the families table.
//!
//! Owns: the encoding of one name (written to the index's scratch file beside
//! the records), the in-memory table of families, and decoding a name from the
//! bytes read back. Must not own: the records that point at names, or the file
//! (`index.rs`, `build.rs`).
//!
//! Why: names are most of a ClamAV database's bytes (`Win.Trojan.Agent-1234567-0`
//! is 26 bytes, its MD5 16), and they follow ClamAV's convention
//! `<family>-<signature id>-<revision>`. A name of that shape is stored as a tag
//! byte, the family's offset in a table where each family is kept once, and the
//! two numbers, all as LEB128 varints: about 7 bytes instead of 27. Any other
//! name is stored as it is, cut to [`MAX_PLAIN`] bytes. The families table is
//! small (a family is shared by thousands of signatures) and stays in memory,
//! so a decoded name borrows its family from it; a plain name is copied into
//! an inline buffer: decoding never allocates.

use std::collections::HashMap;
use std::fmt;

use super::index::ArenaFull;

/// Tag of a name stored as its bytes, up to a `\n`.
const PLAIN: u8 = 0;
/// Tag of a `<family>-<id>-<revision>` name.
const NUMBERED: u8 = 1;
/// Longest plain name kept, in bytes; a longer one is cut (at a character
/// boundary) when it is stored: the name only labels a hit, the digest decides.
pub const MAX_PLAIN: usize = 255;
/// Longest encoding of a name: tag, name, `\n` (a numbered one is at most 16).
pub const MAX_ENCODED: usize = MAX_PLAIN + 2;

/// A decoded name. Never allocates.
// A plain name is inline (256 bytes) because boxing it would allocate on a hit.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name<'a> {
    /// Stored as written (cut to [`MAX_PLAIN`] bytes).
    Plain(PlainName),
    /// `<family>-<id>-<revision>`.
    Numbered {
        /// E.g. `Win.Trojan.Agent`.
        family: &'a str,
        /// ClamAV's signature id.
        id: u32,
        /// The signature's revision.
        revision: u32,
    },
    /// The digest is listed (its 8-byte prefix matched) but its entry could
    /// not be read back from the scratch file: the name, and whether the full
    /// digest and the size match, are unknown.
    Unreadable(std::io::ErrorKind),
}

/// A plain name's bytes, inline (a hit carries it without allocating).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PlainName {
    len: u8,
    bytes: [u8; MAX_PLAIN],
}

impl PlainName {
    /// `text` cut to at most [`MAX_PLAIN`] bytes at a character boundary.
    fn new(text: &str) -> PlainName {
        let text = cut(text);
        let mut bytes = [0; MAX_PLAIN];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        PlainName {
            // `cut` keeps at most MAX_PLAIN (255) bytes.
            len: u8::try_from(text.len()).unwrap_or(u8::MAX),
            bytes,
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Built from a `&str` cut at a character boundary, so this is UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for PlainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// `text` cut to at most [`MAX_PLAIN`] bytes, at a character boundary.
fn cut(text: &str) -> &str {
    let mut end = text.len().min(MAX_PLAIN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Plain(name) => f.write_str(name.as_str()),
            Name::Numbered {
                family,
                id,
                revision,
            } => write!(f, "{family}-{id}-{revision}"),
            Name::Unreadable(kind) => {
                write!(f, "unknown signature (its entry could not be read: {kind})")
            }
        }
    }
}

/// The table of families, `\n`-terminated, each kept once.
#[derive(Debug, Clone, Default)]
pub struct Families {
    bytes: Vec<u8>,
}

/// Encodes names; the family table's index lives only while building.
#[derive(Debug, Default)]
pub struct NamesBuilder {
    families: Families,
    family_ids: HashMap<String, u32>,
}

impl NamesBuilder {
    /// Appends the encoding of `name` (at most [`MAX_ENCODED`] bytes) to `out`.
    pub fn encode(&mut self, name: &str, out: &mut Vec<u8>) -> Result<(), ArenaFull> {
        match split(name) {
            Some((family, id, revision)) => {
                let family = self.family(family)?;
                out.push(NUMBERED);
                for value in [family, id, revision] {
                    put_varint(out, value);
                }
            }
            None => {
                out.push(PLAIN);
                // A name comes from one line: it never holds a newline.
                out.extend_from_slice(cut(name).as_bytes());
                out.push(b'\n');
            }
        }
        Ok(())
    }

    fn family(&mut self, family: &str) -> Result<u32, ArenaFull> {
        if let Some(&offset) = self.family_ids.get(family) {
            return Ok(offset);
        }
        let offset = u32::try_from(self.families.bytes.len()).map_err(|_| ArenaFull)?;
        self.families.bytes.extend_from_slice(family.as_bytes());
        self.families.bytes.push(b'\n');
        self.family_ids.insert(family.to_owned(), offset);
        Ok(offset)
    }

    /// The finished table of families (the index of it is dropped).
    pub fn finish(mut self) -> Families {
        self.families.bytes.shrink_to_fit();
        self.families
    }
}

impl Families {
    /// The name encoded at the start of `bytes` (what [`NamesBuilder::encode`]
    /// wrote, possibly followed by anything), if it decodes. Never allocates.
    pub fn decode(&self, bytes: &[u8]) -> Option<Name<'_>> {
        let (&tag, rest) = bytes.split_first()?;
        match tag {
            PLAIN => {
                let end = memchr::memchr(b'\n', rest)?;
                std::str::from_utf8(rest.get(..end)?)
                    .ok()
                    .map(|text| Name::Plain(PlainName::new(text)))
            }
            NUMBERED => {
                let (family, rest) = get_varint(rest)?;
                let (id, rest) = get_varint(rest)?;
                let (revision, _) = get_varint(rest)?;
                let families = self.bytes.get(usize::try_from(family).ok()?..)?;
                let end = memchr::memchr(b'\n', families)?;
                let family = std::str::from_utf8(families.get(..end)?).ok()?;
                Some(Name::Numbered {
                    family,
                    id,
                    revision,
                })
            }
            _ => None,
        }
    }

    /// Bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }
}

/// `<family>-<id>-<revision>` with both numbers in canonical decimal (no sign,
/// no leading zero), so that decoding gives back exactly the same text.
fn split(name: &str) -> Option<(&str, u32, u32)> {
    let number = |text: &str| -> Option<u32> {
        let canonical = !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'));
        if canonical { text.parse().ok() } else { None }
    };
    let (rest, revision) = name.rsplit_once('-')?;
    let (family, id) = rest.rsplit_once('-')?;
    if family.is_empty() || family.contains('\n') {
        return None;
    }
    Some((family, number(id)?, number(revision)?))
}

fn put_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        // Truncation intended: the low seven bits, with the continuation bit.
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, bytes.get(i + 1..)?));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_share_families() {
        let long = "x".repeat(300) + "é";
        let names = [
            "Win.Trojan.Agent-1234567-0",
            "Win.Trojan.Agent-7654321-12",
            "Unix.Malware.Mirai-4294967295-1",
            "Eicar-Test-Signature",
            "Leading.Zero-0123-0",
            "Too.Big-4294967296-0",
            "Unix.Test.First-1",
            "-1-2",
            "plain",
            "Ünïcode-1-2",
        ];
        let mut builder = NamesBuilder::default();
        let mut arena = Vec::new();
        let mut offsets = Vec::new();
        for name in names.iter().copied().chain([long.as_str()]) {
            offsets.push(arena.len());
            let before = arena.len();
            builder.encode(name, &mut arena).unwrap();
            assert!(arena.len() - before <= MAX_ENCODED, "{name}");
        }
        let families = builder.finish();
        let at = |i: usize| families.decode(&arena[offsets[i]..]).unwrap();
        for (i, name) in names.iter().enumerate() {
            assert_eq!(at(i).to_string(), *name);
        }
        // A name longer than MAX_PLAIN is cut, never in the middle of a character.
        assert_eq!(at(names.len()).to_string(), "x".repeat(MAX_PLAIN));
        assert_eq!(cut(&("é".repeat(200))).len(), 254);
        assert!(matches!(
            at(0),
            Name::Numbered {
                id: 1234567,
                revision: 0,
                ..
            }
        ));
        assert!(matches!(at(3), Name::Plain(p) if p.as_str() == "Eicar-Test-Signature"));
        assert!(matches!(at(4), Name::Plain(_)), "leading zero");
        assert!(matches!(at(5), Name::Plain(_)), "past u32");
        // The family is stored once; a numbered name is a handful of bytes.
        let family = &b"Win.Trojan.Agent"[..];
        assert_eq!(
            families.bytes.windows(16).filter(|w| *w == family).count(),
            1
        );
        assert!(offsets[2] - offsets[1] <= 8, "{offsets:?}");
        assert_eq!(families.decode(&[7, 1, 2]), None, "unknown tag");
        assert_eq!(families.decode(&[PLAIN, b'a']), None, "no end");
    }

    #[test]
    fn varints_round_trip() {
        for value in [0, 1, 127, 128, 300, 16_383, 16_384, u32::MAX - 1, u32::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(get_varint(&out), Some((value, &[][..])), "{value}");
        }
        assert_eq!(get_varint(&[0x80, 0x80]), None);
    }
}
