//! Signature names, stored compactly in one arena.
//!
//! Owns: the encoding of a name at an offset of the arena, and the table of
//! families. Must not own: the records that point here (`index.rs`).
//!
//! Why: names are most of a ClamAV database's bytes (`Win.Trojan.Agent-1234567-0`
//! is 26 bytes, its MD5 16), and they follow ClamAV's convention
//! `<family>-<signature id>-<revision>`. A name of that shape is stored as a tag
//! byte, the family's offset in a table where each family is kept once, and the
//! two numbers, all as LEB128 varints: about 7 bytes instead of 27. Any other
//! name is stored as it is. Decoding borrows from the arena: no allocation.

use std::collections::HashMap;
use std::fmt;

use super::index::ArenaFull;

/// Tag of a name stored as its bytes, up to a `\n`.
const PLAIN: u8 = 0;
/// Tag of a `<family>-<id>-<revision>` name.
const NUMBERED: u8 = 1;

/// A decoded name, borrowed from the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name<'a> {
    /// Stored as written.
    Plain(&'a str),
    /// `<family>-<id>-<revision>`.
    Numbered {
        /// E.g. `Win.Trojan.Agent`.
        family: &'a str,
        /// ClamAV's signature id.
        id: u32,
        /// The signature's revision.
        revision: u32,
    },
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Plain(name) => f.write_str(name),
            Name::Numbered {
                family,
                id,
                revision,
            } => write!(f, "{family}-{id}-{revision}"),
        }
    }
}

/// The arena of names and the table of families.
#[derive(Debug, Clone, Default)]
pub struct Names {
    arena: Vec<u8>,
    families: Vec<u8>,
}

/// Builds [`Names`]; the family table's index lives only while building.
#[derive(Debug, Default)]
pub struct NamesBuilder {
    names: Names,
    family_ids: HashMap<String, u32>,
}

impl NamesBuilder {
    /// The offset the next name will get.
    pub fn next_offset(&self) -> Result<u32, ArenaFull> {
        u32::try_from(self.names.arena.len()).map_err(|_| ArenaFull)
    }

    /// Stores `name`; returns its offset.
    pub fn push(&mut self, name: &str) -> Result<u32, ArenaFull> {
        let offset = self.next_offset()?;
        match split(name) {
            Some((family, id, revision)) => {
                let family = self.family(family)?;
                self.names.arena.push(NUMBERED);
                for value in [family, id, revision] {
                    put_varint(&mut self.names.arena, value);
                }
            }
            None => {
                self.names.arena.push(PLAIN);
                self.names.arena.extend_from_slice(name.as_bytes());
                // A name comes from one line: it never holds a newline.
                self.names.arena.push(b'\n');
            }
        }
        // Offsets are u32: the whole arena must stay addressable.
        u32::try_from(self.names.arena.len()).map_err(|_| ArenaFull)?;
        Ok(offset)
    }

    fn family(&mut self, family: &str) -> Result<u32, ArenaFull> {
        if let Some(&offset) = self.family_ids.get(family) {
            return Ok(offset);
        }
        let offset = u32::try_from(self.names.families.len()).map_err(|_| ArenaFull)?;
        self.names.families.extend_from_slice(family.as_bytes());
        self.names.families.push(b'\n');
        self.family_ids.insert(family.to_owned(), offset);
        Ok(offset)
    }

    /// The finished arena (the family index is dropped).
    pub fn finish(mut self) -> Names {
        self.names.arena.shrink_to_fit();
        self.names.families.shrink_to_fit();
        self.names
    }
}

impl Names {
    /// The name at `offset`, if it decodes. Never allocates.
    pub fn get(&self, offset: u32) -> Option<Name<'_>> {
        let rest = self.arena.get(usize::try_from(offset).ok()?..)?;
        let (&tag, rest) = rest.split_first()?;
        match tag {
            PLAIN => {
                let end = memchr::memchr(b'\n', rest)?;
                std::str::from_utf8(rest.get(..end)?).ok().map(Name::Plain)
            }
            NUMBERED => {
                let (family, rest) = get_varint(rest)?;
                let (id, rest) = get_varint(rest)?;
                let (revision, _) = get_varint(rest)?;
                let families = self.families.get(usize::try_from(family).ok()?..)?;
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
        self.arena.capacity() + self.families.capacity()
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
        let offsets: Vec<u32> = names.iter().map(|n| builder.push(n).unwrap()).collect();
        let stored = builder.finish();
        for (name, offset) in names.iter().zip(&offsets) {
            assert_eq!(stored.get(*offset).unwrap().to_string(), *name);
        }
        assert!(matches!(
            stored.get(offsets[0]),
            Some(Name::Numbered {
                id: 1234567,
                revision: 0,
                ..
            })
        ));
        assert!(matches!(
            stored.get(offsets[3]),
            Some(Name::Plain("Eicar-Test-Signature"))
        ));
        assert!(
            matches!(stored.get(offsets[4]), Some(Name::Plain(_))),
            "leading zero"
        );
        assert!(
            matches!(stored.get(offsets[5]), Some(Name::Plain(_))),
            "past u32"
        );
        // The family is stored once; a numbered name is a handful of bytes.
        let family = &b"Win.Trojan.Agent"[..];
        assert_eq!(
            stored.families.windows(16).filter(|w| *w == family).count(),
            1
        );
        assert!(offsets[2] - offsets[1] <= 8, "{offsets:?}");
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
