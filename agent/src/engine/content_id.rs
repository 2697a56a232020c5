//! The content id: one digest of everything a generation judges files with.
//!
//! Owns the list of what can change a scan's findings and so must change the id:
//! the hash lists and allow lists (each file's path and SHA-256, the built-in
//! signature included), the compiled YARA sources, the heuristics switch, the
//! model bundle (its manifest, which names each model file's SHA-256, and its
//! origin), the scores, weights and model thresholds of `[decision]` (the scan
//! stops at the first conclusive stage, so they shape the findings too), the
//! rule timeout, and the build of vigil itself (its version and the size and
//! mtime of its executable: a new build may extract features or apply
//! heuristics differently). Must not own: the reload counter
//! ([`super::generation::Generation::id`]), which counts reloads, not content:
//! two daemons, or two boots, that load the same content get the same content id,
//! and that is what lets the persistent verdict cache keep its verdicts across
//! restarts while any change of content invalidates them all.
//!
//! Not in it, on purpose: what decides the *action* (mode, `on_malicious`, …),
//! exclusions, exec rules, the trust store: those are applied to every event
//! after the verdict, never stored with it. Verdicts that depend on the file's
//! path (the trust fast path) or an allow entry are not persisted at all.

use std::fmt;
use std::os::unix::fs::MetadataExt as _;
use std::sync::OnceLock;

use sha2::{Digest as _, Sha256};

use super::generation::Generation;

/// A digest of a generation's content (see the module doc).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ContentId(pub [u8; 32]);

impl ContentId {
    /// The content id of `g`.
    pub fn of(g: &Generation) -> ContentId {
        let mut d = Feed(Sha256::new());
        d.text("vigil content id 1");
        d.bytes(build_identity());
        for (name, sources) in [("hashes", g.hashes.sources()), ("allow", g.allow.sources())] {
            d.text(name);
            d.count(sources.len() as u64);
            for (path, sha256, _) in sources {
                d.bytes(path.as_os_str().as_encoded_bytes());
                d.text(sha256);
            }
        }
        // ClamAV's databases are their own index, not a hash list: each file
        // by name, identity and what it held (freshclam replaces by rename).
        d.text("clamav");
        let stamps = g.clamav.fingerprint();
        d.count(stamps.len() as u64);
        for stamp in stamps {
            d.bytes(stamp.path.as_os_str().as_encoded_bytes());
            d.count(stamp.inode);
            d.count(stamp.size);
            let modified = stamp
                .modified
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(u64::MAX, |t| {
                    u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
                });
            d.count(modified);
        }
        for source in g.clamav.sources() {
            d.bytes(source.path.as_os_str().as_encoded_bytes());
            d.count(source.version.unwrap_or(u64::MAX));
            d.count(source.entries as u64);
        }
        d.text("rules");
        d.bytes(&g.rules.digest());
        d.text("heuristics");
        d.count(u64::from(g.config.heuristics.enabled));
        d.text("model");
        match &g.model {
            None => d.text("none"),
            Some(stage) => {
                let bundle = stage.bundle();
                d.text(&bundle.origin);
                // serde_json writes struct fields in declaration order and maps
                // sorted: the same manifest always gives the same bytes.
                d.bytes(&serde_json::to_vec(&bundle.manifest).unwrap_or_default());
            }
        }
        let decision = &g.config.decision;
        d.text("decision");
        d.count(u64::from(decision.malicious_score));
        d.count(u64::from(decision.suspicious_score));
        let w = &decision.weights;
        for f in [w.hash, w.rules, w.heuristics, w.model] {
            d.count(f.to_bits());
        }
        for t in [decision.model_threshold, decision.model_block_threshold] {
            d.count(t.map_or(u64::MAX, f64::to_bits));
        }
        d.count(u64::try_from(g.config.scan.rule_timeout.as_millis()).unwrap_or(u64::MAX));
        ContentId(d.0.finalize().into())
    }

    /// The first 8 bytes in hex, for logs and `vigil status`.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..8])
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({})", hex::encode(self.0))
    }
}

/// Length-prefixed writes, so that no two different inputs feed the same bytes.
struct Feed(Sha256);

impl Feed {
    fn bytes(&mut self, b: &[u8]) {
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
    }

    fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn count(&mut self, n: u64) {
        self.0.update(n.to_le_bytes());
    }
}

/// vigil's version and the size and mtime of the running executable, read once.
/// Not a hash of the executable: a debug build is a gigabyte. A package upgrade
/// or a rebuild replaces the file, and with it its mtime.
fn build_identity() -> &'static [u8] {
    static ID: OnceLock<Vec<u8>> = OnceLock::new();
    ID.get_or_init(|| {
        let mut id = env!("CARGO_PKG_VERSION").as_bytes().to_vec();
        if let Ok(meta) = std::fs::metadata("/proc/self/exe") {
            id.extend_from_slice(&meta.size().to_le_bytes());
            id.extend_from_slice(&meta.mtime().to_le_bytes());
            id.extend_from_slice(&meta.mtime_nsec().to_le_bytes());
        }
        id
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vigil-content-id-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A generation loaded from `toml` written in `dir`.
    fn load(dir: &std::path::Path, toml: &str) -> Generation {
        let path = dir.join("vigil.toml");
        std::fs::write(&path, toml).unwrap();
        Generation::load(1, Some(&path)).unwrap()
    }

    #[test]
    fn the_same_content_gives_the_same_id_and_any_change_another() {
        let dir = scratch("change");
        let list = dir.join("a.sha256");
        std::fs::write(&list, format!("{}  one\n", "a".repeat(64))).unwrap();
        let base = format!(
            "[content]\nhashes = [{list:?}]\nallow = []\nmodel = \"none\"\nbuiltin_rules = false\n"
        );
        let first = load(&dir, &base);
        let id = ContentId::of(&first);
        // The reload counter is not content.
        let mut again = load(&dir, &base);
        again.id = 7;
        assert_eq!(ContentId::of(&again), id);
        // Nor is what only decides the action.
        let audit = load(&dir, &format!("{base}[decision]\nmode = \"audit\"\n"));
        assert_eq!(ContentId::of(&audit), id);

        std::fs::write(&list, format!("{}  one\n", "b".repeat(64))).unwrap();
        let listed = ContentId::of(&load(&dir, &base));
        assert_ne!(listed, id, "another hash list");
        std::fs::write(&list, format!("{}  one\n", "a".repeat(64))).unwrap();
        assert_eq!(ContentId::of(&load(&dir, &base)), id, "back to the first");

        let changes = [
            base.replace("builtin_rules = false", "builtin_rules = true"),
            format!("{base}[decision]\nmalicious_score = 90\n"),
            format!("{base}[decision.weights]\nheuristics = 0.5\n"),
            format!("{base}[heuristics]\nenabled = false\n"),
            base.replace("model = \"none\"", "model = \"builtin\""),
        ];
        for text in changes {
            assert_ne!(ContentId::of(&load(&dir, &text)), id, "{text}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
