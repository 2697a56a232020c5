//! The value stored for a file version in the persistent verdict cache.
//!
//! Owns the byte layout of a [`Record`]: the content id it was judged under, a
//! write sequence number (for eviction), the file's SHA-256 and the scan's
//! findings. Must not own: the verdict, which is not stored but decided again
//! from the findings by `vigil_policy::decide` under the current generation
//! (whose content id must equal the record's, so the decision is the same one),
//! nor the key ([`super::store_key`]).
//!
//! Layout (integers little-endian): format (1), content id (32), sequence (8),
//! SHA-256 (32), reason count (2), then per reason: stage (1), score (4), id
//! length (2) and bytes, detail length (2) and bytes. [`Record::decode`]
//! refuses anything else (a record from another format, a torn or forged
//! value): a refused record is a miss, never a verdict.

use vigil_policy::{Reason, Stage};

/// First byte of every record.
const RECORD_FORMAT: u8 = 1;
/// Offset of the sequence number (patched by the writer at commit time).
pub const SEQ_AT: usize = 1 + 32;
/// Bytes before the reasons.
const HEADER: usize = SEQ_AT + 8 + 32 + 2;
/// Longest id or detail kept; longer text is cut at a character boundary (a YARA
/// rule's description is the longest thing that lands here, well below this).
const TEXT_MAX: usize = 4096;

/// What the store keeps about one file version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The content id of the generation that judged the file.
    pub content_id: [u8; 32],
    /// Write order, for eviction.
    pub seq: u64,
    /// SHA-256 of the file.
    pub sha256: [u8; 32],
    /// The findings of the scan.
    pub reasons: Vec<Reason>,
}

impl Record {
    /// The bytes stored.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.reasons.len() * 64);
        out.push(RECORD_FORMAT);
        out.extend_from_slice(&self.content_id);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.sha256);
        let count = u16::try_from(self.reasons.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for reason in self.reasons.iter().take(usize::from(count)) {
            out.push(stage_byte(reason.stage));
            out.extend_from_slice(&reason.score.to_le_bytes());
            for text in [&reason.id, &reason.detail] {
                let text = cut(text);
                // `cut` keeps it below TEXT_MAX, which fits a u16.
                let len = u16::try_from(text.len()).unwrap_or(0);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&text.as_bytes()[..usize::from(len)]);
            }
        }
        out
    }

    /// The record in `bytes`; `None` unless they are exactly one well-formed
    /// record of this format.
    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(1)? != [RECORD_FORMAT] {
            return None;
        }
        let content_id = r.take(32)?.try_into().ok()?;
        let seq = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let sha256 = r.take(32)?.try_into().ok()?;
        let count = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
        let mut reasons = Vec::with_capacity(usize::from(count).min(64));
        for _ in 0..count {
            let stage = stage_of(r.take(1)?[0])?;
            let score = u32::from_le_bytes(r.take(4)?.try_into().ok()?);
            let id = r.text()?;
            let detail = r.text()?;
            reasons.push(Reason {
                stage,
                id,
                score,
                detail,
            });
        }
        (r.at == bytes.len()).then_some(Record {
            content_id,
            seq,
            sha256,
            reasons,
        })
    }

    /// The content id of an encoded record, without decoding the rest (a
    /// lookup under other content stops here).
    pub fn content_id_of(bytes: &[u8]) -> Option<&[u8]> {
        (bytes.first() == Some(&RECORD_FORMAT)).then(|| bytes.get(1..SEQ_AT))?
    }

    /// The sequence number of an encoded record.
    pub fn seq_of(bytes: &[u8]) -> Option<u64> {
        let b = bytes.get(SEQ_AT..SEQ_AT + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// Writes `seq` into an encoded record.
    pub fn set_seq(bytes: &mut [u8], seq: u64) {
        if let Some(b) = bytes.get_mut(SEQ_AT..SEQ_AT + 8) {
            b.copy_from_slice(&seq.to_le_bytes());
        }
    }
}

/// The stored number of a stage. Stable: a new stage gets a new number.
fn stage_byte(stage: Stage) -> u8 {
    match stage {
        Stage::Hash => 1,
        Stage::Rules => 2,
        Stage::Heuristics => 3,
        Stage::Model => 4,
    }
}

fn stage_of(byte: u8) -> Option<Stage> {
    Stage::ALL.into_iter().find(|&s| stage_byte(s) == byte)
}

/// `text` cut below [`TEXT_MAX`] bytes at a character boundary.
fn cut(text: &str) -> &str {
    if text.len() < TEXT_MAX {
        return text;
    }
    let mut end = TEXT_MAX - 1;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }

    fn text(&mut self) -> Option<String> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        String::from_utf8(self.take(usize::from(len))?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            content_id: [3; 32],
            seq: 99,
            sha256: [4; 32],
            reasons: vec![
                Reason {
                    stage: Stage::Hash,
                    id: "hash.sha256".into(),
                    score: 100,
                    detail: "Linux.Test in /etc/vigil/x.sha256:1".into(),
                },
                Reason {
                    stage: Stage::Model,
                    id: "model.elf".into(),
                    score: 0,
                    detail: "score 0.01 — é".into(),
                },
            ],
        }
    }

    #[test]
    fn a_record_round_trips() {
        for r in [
            record(),
            Record {
                reasons: Vec::new(),
                ..record()
            },
        ] {
            let bytes = r.encode();
            assert_eq!(Record::decode(&bytes), Some(r.clone()));
            assert_eq!(Record::content_id_of(&bytes), Some(&[3u8; 32][..]));
            assert_eq!(Record::seq_of(&bytes), Some(99));
        }
    }

    #[test]
    fn every_stage_has_its_own_number() {
        let mut seen: Vec<u8> = Stage::ALL.iter().map(|&s| stage_byte(s)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), Stage::ALL.len());
        for s in Stage::ALL {
            assert_eq!(stage_of(stage_byte(s)), Some(s));
        }
        assert_eq!(stage_of(0), None);
    }

    #[test]
    fn the_sequence_is_patched_in_place() {
        let mut bytes = record().encode();
        Record::set_seq(&mut bytes, 7);
        assert_eq!(Record::decode(&bytes).map(|r| r.seq), Some(7));
    }

    #[test]
    fn damaged_bytes_are_refused() {
        let bytes = record().encode();
        for n in 0..bytes.len() {
            assert_eq!(Record::decode(&bytes[..n]), None, "truncated to {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Record::decode(&longer), None, "trailing byte");
        let mut format = bytes.clone();
        format[0] = 2;
        assert_eq!(Record::decode(&format), None, "another format");
        assert_eq!(Record::content_id_of(&format), None);
        let mut stage = bytes.clone();
        stage[HEADER] = 9;
        assert_eq!(Record::decode(&stage), None, "unknown stage");
        let mut utf8 = bytes;
        let id_at = HEADER + 1 + 4 + 2;
        utf8[id_at] = 0xff;
        assert_eq!(Record::decode(&utf8), None, "not UTF-8");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let mut r = record();
        r.reasons[0].detail = "é".repeat(TEXT_MAX);
        let back = Record::decode(&r.encode()).map(|r| r.reasons[0].detail.clone());
        let back = back.unwrap_or_default();
        assert!(back.len() < TEXT_MAX && !back.is_empty());
        assert!(back.chars().all(|c| c == 'é'));
    }
}
