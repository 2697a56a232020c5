//! Any bytes through the ELF feature extractor (vigil-models) and the ELF/script
//! heuristics (vigil-policy): both parse untrusted file content on the hot path.
//! Checks: no panic, no hang, every feature finite and the row full width.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let row = vigil_models::features::extract(data);
    assert_eq!(row.values.len(), vigil_models::features::FEATURE_COUNT);
    assert!(
        row.values.iter().all(|v| v.is_finite()),
        "non-finite feature"
    );
    let _ = vigil_policy::heuristics::analyze(data);
});
