//! Checking a download before anything parses it: a minisign (Ed25519)
//! signature or a pinned SHA-256.
//!
//! Owns: the minisign key, signature and secret-key handling (through the
//! `minisign` crate, which is maintained by minisign's author and reads the
//! files the `minisign` tool writes), and the digest comparison. Must not own:
//! fetching the signature (the caller downloads `<url>.minisig`).

use std::io::Cursor;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use vigil_policy::Verify;

use crate::error::Error;

/// Environment variable holding the password of an encrypted secret key for
/// `vigil bundle pack`.
pub const KEY_PASSWORD_ENV: &str = "VIGIL_BUNDLE_KEY_PASSWORD";

/// Checks `bytes` against `verify`; `signature` is the text of the `.minisig`
/// file (needed for [`Verify::Minisign`] only).
///
/// # Errors
///
/// Why the download is refused: a digest mismatch (both digests named), a
/// malformed key or signature, a signature by another key, or a bad signature.
pub fn check(verify: &Verify, bytes: &[u8], signature: Option<&str>) -> Result<(), String> {
    match verify {
        Verify::None => Ok(()),
        Verify::Sha256(want) => {
            let got = hex::encode(Sha256::digest(bytes));
            if got == *want {
                Ok(())
            } else {
                Err(format!("SHA-256 is {got}, expected {want}"))
            }
        }
        Verify::Minisign(key) => {
            let key = minisign::PublicKey::from_base64(key)
                .map_err(|e| format!("the configured public key is not a minisign key: {e}"))?;
            let signature = signature.ok_or("no signature was downloaded")?;
            let signature = minisign::SignatureBox::from_string(signature)
                .map_err(|e| format!("the .minisig file is malformed: {e}"))?;
            minisign::verify(&key, &signature, Cursor::new(bytes), true, false, false)
                .map_err(|e| format!("bad minisign signature: {e}"))
        }
    }
}

/// Signs `bytes` with the minisign secret key at `key_path`; returns the text of
/// the `.minisig` file. An encrypted key takes its password from
/// [`KEY_PASSWORD_ENV`].
///
/// # Errors
///
/// [`Error::Io`] if the key cannot be read; [`Error::Invalid`] if it is not a
/// minisign secret key, needs a password that is not given, or signing fails.
pub fn sign(key_path: &Path, bytes: &[u8], trusted_comment: &str) -> Result<String, Error> {
    let invalid = |message: String| Error::Invalid {
        path: key_path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(key_path)
        .map_err(Error::io(key_path, "cannot read the secret key"))?;
    let key = match minisign::SecretKey::from_unencrypted_box(
        minisign::SecretKeyBox::from_string(&text).map_err(|e| invalid(e.to_string()))?,
    ) {
        Ok(key) => key,
        Err(_) => {
            let password = std::env::var(KEY_PASSWORD_ENV).map_err(|_| {
                invalid(format!(
                    "not an unencrypted minisign secret key (an encrypted one needs its password in {KEY_PASSWORD_ENV})"
                ))
            })?;
            let boxed =
                minisign::SecretKeyBox::from_string(&text).map_err(|e| invalid(e.to_string()))?;
            minisign::SecretKey::from_box(boxed, Some(password))
                .map_err(|e| invalid(format!("not a minisign secret key: {e}")))?
        }
    };
    let signature = minisign::sign(
        None,
        &key,
        Cursor::new(bytes),
        Some(trusted_comment),
        Some("signature from vigil bundle pack"),
    )
    .map_err(|e| invalid(format!("signing failed: {e}")))?;
    Ok(signature.into_string())
}

/// Makes a new unencrypted key pair: (public key file text, secret key file text,
/// the base64 public key line for `verify = "minisign:…"`).
///
/// # Errors
///
/// The system's random source failed.
pub fn keygen() -> Result<(String, String, String), String> {
    let pair = minisign::KeyPair::generate_unencrypted_keypair().map_err(|e| e.to_string())?;
    let public = pair.pk.to_base64();
    let public_file = pair.pk.to_box().map_err(|e| e.to_string())?.into_string();
    let secret_file = pair
        .sk
        .to_box(Some(
            "vigil bundle secret key (unencrypted: keep it offline)",
        ))
        .map_err(|e| e.to_string())?
        .into_string();
    Ok((public_file, secret_file, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_digests_are_checked() {
        let dir = std::env::temp_dir().join(format!("vigil-verify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (_, secret, public) = keygen().unwrap();
        let (_, _, other) = keygen().unwrap();
        let key = dir.join("k.key");
        std::fs::write(&key, secret).unwrap();
        let data = b"rule content";
        let signature = sign(&key, data, "version:1").unwrap();

        let good = Verify::Minisign(public.clone());
        assert_eq!(check(&good, data, Some(&signature)), Ok(()));
        let tampered = check(&good, b"rule contenT", Some(&signature)).unwrap_err();
        assert!(tampered.contains("bad minisign signature"), "{tampered}");
        let wrong_key = check(&Verify::Minisign(other), data, Some(&signature)).unwrap_err();
        assert!(
            wrong_key.contains("different from public key"),
            "{wrong_key}"
        );
        let garbage = check(&good, data, Some("not a signature")).unwrap_err();
        assert!(garbage.contains("malformed"), "{garbage}");
        assert!(check(&good, data, None).is_err());

        let digest = hex::encode(Sha256::digest(data));
        assert_eq!(check(&Verify::Sha256(digest.clone()), data, None), Ok(()));
        let mismatch = check(&Verify::Sha256(digest.clone()), b"x", None).unwrap_err();
        assert!(
            mismatch.contains(&format!("expected {digest}")),
            "{mismatch}"
        );
        assert_eq!(check(&Verify::None, b"anything", None), Ok(()));

        std::fs::write(&key, "not a key").unwrap();
        assert!(sign(&key, data, "v").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
