//! Key-pair sign-in: a JWT signed (RS256) with the user's RSA private key replaces the
//! password. Its issuer names the public key by fingerprint — `ACCOUNT.USER.SHA256:<base64 of
//! the SHA-256 of the public key's DER SubjectPublicKeyInfo>` — the figure `DESCRIBE USER`
//! shows as `RSA_PUBLIC_KEY_FP`; its subject is `ACCOUNT.USER`, both upper-case; it is valid
//! for at most an hour. The key file is PEM: PKCS#8 (`BEGIN PRIVATE KEY`, what Snowflake's
//! guide makes) or PKCS#1 (`BEGIN RSA PRIVATE KEY`). An encrypted key is refused with the way
//! out named. The key's bytes never leave this module and show in no message.

use std::path::Path;

use base64::Engine as _;
use migrate_core::{Error, Result};
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::json;

/// How long a JWT is good for: Snowflake accepts at most an hour.
const VALIDITY_SECS: u64 = 59 * 60;

/// An RSA key pair read from a file, with its public key's fingerprint.
pub struct KeyPair {
    key: RsaKeyPair,
    fingerprint: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// DER: `tag`, the length of `body`, `body`.
fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    match n {
        0..=127 => out.push(n as u8),
        _ => {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
    }
    out.extend_from_slice(body);
    out
}

/// An RSA public key (PKCS#1 `RSAPublicKey` DER) wrapped as a `SubjectPublicKeyInfo`.
fn spki(pkcs1: &[u8]) -> Vec<u8> {
    // SEQUENCE { OID 1.2.840.113549.1.1.1 (rsaEncryption), NULL }
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let mut body = ALGORITHM.to_vec();
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

impl KeyPair {
    /// Reads the PEM key at `path`; errors name the file, never its content.
    pub fn from_file(path: &Path) -> Result<KeyPair> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!(
                "Snowflake private key file {shown} does not read: {e}"
            ))
        })?;
        KeyPair::from_pem(&text)
            .map_err(|why| Error::config(format!("Snowflake private key file {shown}: {why}")))
    }

    /// Reads a PEM key (see the module docs); the error says why, without the key.
    pub fn from_pem(text: &str) -> std::result::Result<KeyPair, String> {
        if text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
            return Err("the key is encrypted: decrypt it first (openssl pkcs8 -in KEY -out KEY.p8 -nocrypt) and keep the file private".into());
        }
        let pkcs1 = text.contains("BEGIN RSA PRIVATE KEY");
        if !pkcs1 && !text.contains("BEGIN PRIVATE KEY") {
            return Err(
                "not a PEM private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)".into(),
            );
        }
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| "the PEM body is not base64".to_string())?;
        let key = match pkcs1 {
            true => RsaKeyPair::from_der(&bytes),
            false => RsaKeyPair::from_pkcs8(&bytes),
        }
        .map_err(|e| format!("not an RSA private key Snowflake can use ({e})"))?;
        let public = spki(key.public().as_ref());
        let digest = ring::digest::digest(&ring::digest::SHA256, &public);
        let fingerprint = format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
        );
        Ok(KeyPair { key, fingerprint })
    }

    /// `SHA256:<base64>`: the public key's fingerprint, as `DESCRIBE USER` shows it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The public key as DER `SubjectPublicKeyInfo` (what `ALTER USER … SET RSA_PUBLIC_KEY`
    /// takes, base64-encoded).
    pub fn public_key_der(&self) -> Vec<u8> {
        spki(self.key.public().as_ref())
    }

    /// A JWT for `user` of account `account` (both as sign-in names them, upper-case),
    /// issued at `now` (seconds since the epoch).
    pub fn jwt(&self, account: &str, user: &str, now: u64) -> Result<String> {
        let subject = format!("{account}.{}", user.to_ascii_uppercase());
        let header = json!({"alg": "RS256", "typ": "JWT"});
        let claims = json!({
            "iss": format!("{subject}.{}", self.fingerprint),
            "sub": subject,
            "iat": now,
            "exp": now + VALIDITY_SECS,
        });
        let signing = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Error::fatal("signing the Snowflake sign-in token failed"))?;
        Ok(format!("{signing}.{}", b64url(&signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_use_the_long_form_past_127() {
        assert_eq!(der(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = der(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn encrypted_and_foreign_keys_are_refused_with_the_way_out() {
        let e = KeyPair::from_pem(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(e.contains("openssl pkcs8"), "{e}");
        let e = KeyPair::from_pem("hello").unwrap_err();
        assert!(e.contains("not a PEM private key"), "{e}");
    }
}
