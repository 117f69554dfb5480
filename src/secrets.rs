//! The key erpsync encrypts the secrets it stores with (`[secrets] key`), and sealing with
//! it: ChaCha20-Poly1305 with a random nonce per value, bound to what the value belongs to
//! (its connection id, as associated data), so a sealed value copied to another connection's
//! row does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use secrecy::{ExposeSecret, SecretString};

const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SecretsError {
    #[error("{0}")]
    Reference(String),
    #[error("the key must be 32 bytes written as 64 hex digits (`openssl rand -hex 32`)")]
    BadKey,
    #[error("a stored secret cannot be decrypted with the configured key (a different key, or a damaged value)")]
    Undecryptable,
}

/// The configured key. Its bytes are never printed (`Debug` says only that it is a key).
#[derive(Clone)]
pub struct SecretKey(Key);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// Reads the key `reference` names (`env:`, `file:`, `credential:`).
    pub fn load(reference: &str) -> Result<SecretKey, SecretsError> {
        let text = crate::config::reference::resolve(reference).map_err(SecretsError::Reference)?;
        SecretKey::from_hex(text.expose_secret().trim())
    }

    pub fn from_hex(hex: &str) -> Result<SecretKey, SecretsError> {
        let bytes: [u8; 32] = unhex(hex).and_then(|b| b.try_into().ok()).ok_or(SecretsError::BadKey)?;
        Ok(SecretKey(Key::from(bytes)))
    }

    /// `plaintext` encrypted for `owner`, as hex (nonce, then ciphertext and tag).
    pub fn seal(&self, owner: &str, plaintext: &SecretString) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = ChaCha20Poly1305::new(&self.0)
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext.expose_secret().as_bytes(), aad: owner.as_bytes() })
            .expect("ChaCha20-Poly1305 encrypts any message of a sane length");
        let mut out = hex(&nonce);
        out.push_str(&hex(&sealed));
        out
    }

    /// Opens what [`SecretKey::seal`] sealed for `owner`.
    pub fn open(&self, owner: &str, sealed: &str) -> Result<SecretString, SecretsError> {
        let bytes = unhex(sealed).filter(|b| b.len() > NONCE_LEN).ok_or(SecretsError::Undecryptable)?;
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at the nonce's length");
        let plain = ChaCha20Poly1305::new(&self.0)
            .decrypt(&Nonce::from(nonce), Payload { msg: body, aad: owner.as_bytes() })
            .map_err(|_| SecretsError::Undecryptable)?;
        String::from_utf8(plain).map(SecretString::from).map_err(|_| SecretsError::Undecryptable)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_hex(&"ab".repeat(32)).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_owner_and_key() {
        let secret = SecretString::from("refresh-token-1");
        let sealed = key().seal("acme", &secret);
        assert!(!sealed.contains("refresh"), "the value is not stored in the clear");
        assert_eq!(key().open("acme", &sealed).unwrap().expose_secret(), "refresh-token-1");
        assert_eq!(key().open("other", &sealed).unwrap_err(), SecretsError::Undecryptable);
        let other = SecretKey::from_hex(&"cd".repeat(32)).unwrap();
        assert_eq!(other.open("acme", &sealed).unwrap_err(), SecretsError::Undecryptable);
        assert_ne!(key().seal("acme", &secret), sealed, "every seal has its own nonce");
    }

    #[test]
    fn keys_must_be_32_hex_bytes() {
        assert_eq!(SecretKey::from_hex("abcd").unwrap_err(), SecretsError::BadKey);
        assert_eq!(SecretKey::from_hex(&"zz".repeat(32)).unwrap_err(), SecretsError::BadKey);
        assert!(format!("{:?}", key()).contains(".."));
    }
}
