//! Any text through the configuration loader (TOML parse, layer, schema and value
//! validation). Checks: no panic; every error names the file it came from.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vigil_policy::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::from_toml(text, Path::new("/etc/vigil/fuzz.toml")) {
        let msg = e.to_string();
        assert!(
            msg.contains("fuzz.toml"),
            "error without the file name: {msg}"
        );
    }
});
