//! Client-side encryption of a staged file, as the official drivers do it for a stage whose
//! `PUT` answer carries `encryptionMaterial`: the content under AES-CBC with a random file key
//! and IV (PKCS#7 padding), the file key wrapped by AES-ECB under the query's master key, both
//! sent beside the file as the storage's metadata. Snowflake unwraps the key when it loads the
//! file; without it, the file is unreadable.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockCipherEncrypt, BlockModeEncrypt, KeyInit, KeyIvInit};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use migrate_core::{Error, Result};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value as Json;

/// The `encryptionMaterial` of a `PUT` answer. The master key never reaches `Debug` or logs.
pub(crate) struct Material {
    master_key: Vec<u8>,
    query_id: String,
    smk_id: String,
}

impl Material {
    /// Reads the answer's material; `None` when the stage is not encrypted client-side.
    pub(crate) fn from_answer(m: &Json) -> Result<Option<Material>> {
        if m.is_null() {
            return Ok(None);
        }
        let key = m["queryStageMasterKey"].as_str().ok_or_else(|| {
            Error::fatal("Snowflake's PUT answer has encryption material without a master key")
        })?;
        let master_key = B64.decode(key).map_err(|_| {
            Error::fatal("Snowflake's PUT answer has a master key that is not base64")
        })?;
        let smk_id = match &m["smkId"] {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        Ok(Some(Material {
            master_key,
            query_id: m["queryId"].as_str().unwrap_or_default().to_string(),
            smk_id,
        }))
    }
}

/// An encrypted file and what Snowflake needs to read it back.
#[derive(Debug)]
pub(crate) struct Sealed {
    /// The encrypted content.
    pub body: Vec<u8>,
    /// The wrapped file key, base64.
    pub key: String,
    /// The IV, base64.
    pub iv: String,
    /// `{"queryId":…,"smkId":…,"keySize":…}`: which master key wrapped the file key.
    pub matdesc: String,
}

/// Encrypts `plain` under a fresh random file key and IV.
pub(crate) fn seal(material: &Material, plain: &[u8]) -> Result<Sealed> {
    let rng = SystemRandom::new();
    let mut iv = [0u8; 16];
    let mut file_key = vec![0u8; material.master_key.len()];
    rng.fill(&mut iv)
        .and_then(|_| rng.fill(&mut file_key))
        .map_err(|_| Error::fatal("no randomness for a staged file's key"))?;
    seal_with(material, plain, &file_key, &iv)
}

fn seal_with(material: &Material, plain: &[u8], file_key: &[u8], iv: &[u8; 16]) -> Result<Sealed> {
    let (body, wrapped) = match material.master_key.len() {
        16 => encrypt::<aes::Aes128>(&material.master_key, file_key, iv, plain)?,
        32 => encrypt::<aes::Aes256>(&material.master_key, file_key, iv, plain)?,
        n => {
            return Err(Error::fatal(format!(
                "Snowflake's stage master key is {} bits; 128 or 256 were expected",
                n * 8
            )))
        }
    };
    let matdesc = format!(
        "{{\"queryId\":{},\"smkId\":{},\"keySize\":\"{}\"}}",
        Json::from(material.query_id.as_str()),
        Json::from(material.smk_id.as_str()),
        material.master_key.len() * 8
    );
    Ok(Sealed {
        body,
        key: B64.encode(wrapped),
        iv: B64.encode(iv),
        matdesc,
    })
}

/// `(content under AES-CBC(file_key, iv), PKCS#7-padded file_key under AES-ECB(master))`.
fn encrypt<C>(
    master: &[u8],
    file_key: &[u8],
    iv: &[u8; 16],
    plain: &[u8],
) -> Result<(Vec<u8>, Vec<u8>)>
where
    C: BlockCipherEncrypt + KeyInit,
    cbc::Encryptor<C>: KeyIvInit + BlockModeEncrypt,
{
    let bad = |_| Error::fatal("a staged file's key has the wrong length");
    let body = cbc::Encryptor::<C>::new_from_slices(file_key, iv)
        .map_err(bad)?
        .encrypt_padded_vec::<Pkcs7>(plain);
    // ECB over the padded key: each 16-byte block encrypted on its own.
    let wrap = C::new_from_slice(master)
        .map_err(|_| Error::fatal("the stage master key has the wrong length"))?;
    let pad = 16 - file_key.len() % 16;
    let mut wrapped = file_key.to_vec();
    wrapped.extend(std::iter::repeat_n(pad as u8, pad));
    for block in wrapped.chunks_mut(16) {
        let block = block
            .try_into()
            .map_err(|_| Error::fatal("a padded key is whole blocks"))?;
        wrap.encrypt_block(block);
    }
    Ok((body, wrapped))
}

/// Decrypts what [`seal`] sealed (as Snowflake does on load): for tests of what was sent.
#[cfg(test)]
pub(crate) fn open(master_key: &[u8], key: &str, iv: &str, body: &[u8]) -> Vec<u8> {
    #![allow(clippy::unwrap_used)]
    use aes::cipher::{BlockCipherDecrypt, BlockModeDecrypt};
    let mut file_key = B64.decode(key).unwrap();
    let iv = B64.decode(iv).unwrap();
    fn unwrap_key<C: BlockCipherDecrypt + KeyInit>(master: &[u8], key: &mut [u8]) {
        let wrap = C::new_from_slice(master).unwrap();
        for block in key.chunks_mut(16) {
            wrap.decrypt_block(block.try_into().unwrap());
        }
    }
    match master_key.len() {
        16 => unwrap_key::<aes::Aes128>(master_key, &mut file_key),
        _ => unwrap_key::<aes::Aes256>(master_key, &mut file_key),
    }
    file_key.truncate(master_key.len());
    match master_key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&file_key, &iv)
            .unwrap()
            .decrypt_padded_vec::<Pkcs7>(body)
            .unwrap(),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&file_key, &iv)
            .unwrap()
            .decrypt_padded_vec::<Pkcs7>(body)
            .unwrap(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn material(bytes: usize) -> Material {
        Material::from_answer(&serde_json::json!({
            "queryStageMasterKey": B64.encode((0..bytes as u8).collect::<Vec<_>>()),
            "queryId": "01b2-query-id",
            "smkId": 1234,
        }))
        .unwrap()
        .unwrap()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Vectors from the Python connector's own `encrypt_stream` with its randomness fixed
    /// (IV 0x20‥0x2f, file key 0x10‥, master key 0x00‥).
    #[test]
    fn files_are_sealed_as_the_python_connector_seals_them() {
        let iv: [u8; 16] = std::array::from_fn(|i| 0x20 + i as u8);
        let cases = [
            (
                16,
                "hello,world\n",
                "B/7vdOHVA26QDu4RjpSSk5VPZPLk6G6e7oLSAhZoSJk=",
                "f7f239abeeecb75e191118cc2ef6682c",
            ),
            (
                16,
                "0123456789abcdef",
                "B/7vdOHVA26QDu4RjpSSk5VPZPLk6G6e7oLSAhZoSJk=",
                "a7dd73df451dfc26a71afb4cc517774eca658f6e401083dd2201fd3bed69c5d6",
            ),
            (
                32,
                "hello,world\n",
                "6cPvirI0U+bwdJzWNueojmGmk25OjxAcHMH5k7VCoNSfO3UEkm+L024xGOkDpM1K",
                "ce7a34a304041a74ee22ee82195ab4f0",
            ),
            (
                32,
                "0123456789abcdef",
                "6cPvirI0U+bwdJzWNueojmGmk25OjxAcHMH5k7VCoNSfO3UEkm+L024xGOkDpM1K",
                "f4df9699011decebe1f890b0d2080c7b21de966e1abbd18292d1d5882bf095e9",
            ),
        ];
        for (bytes, plain, key, body) in cases {
            let file_key: Vec<u8> = (0..bytes as u8).map(|i| 0x10 + i).collect();
            let s = seal_with(&material(bytes), plain.as_bytes(), &file_key, &iv).unwrap();
            assert_eq!(
                (s.key.as_str(), hex(&s.body)),
                (key, body.to_string()),
                "{bytes}-byte key, {plain:?}"
            );
            assert_eq!(s.iv, "ICEiIyQlJicoKSorLC0uLw==");
            assert_eq!(
                s.matdesc,
                format!(
                    "{{\"queryId\":\"01b2-query-id\",\"smkId\":\"1234\",\"keySize\":\"{}\"}}",
                    bytes * 8
                )
            );
        }
    }

    #[test]
    fn a_sealed_file_opens_with_its_unwrapped_key_and_keys_differ_per_file() {
        let m = material(16);
        let plain = b"{\"a\":1}\n".repeat(100);
        let (a, b) = (seal(&m, &plain).unwrap(), seal(&m, &plain).unwrap());
        assert_ne!(
            (&a.key, &a.iv),
            (&b.key, &b.iv),
            "a fresh key and IV per file"
        );
        assert_eq!(open(&m.master_key, &a.key, &a.iv, &a.body), plain);
        let m = material(32);
        let c = seal(&m, &plain).unwrap();
        assert_eq!(open(&m.master_key, &c.key, &c.iv, &c.body), plain);
    }

    #[test]
    fn a_master_key_of_another_size_is_refused_by_name() {
        let e = seal(&material(24), b"x").unwrap_err();
        assert!(e.to_string().contains("192 bits"), "{e}");
    }
}
