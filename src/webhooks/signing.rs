//! Signing as the Standard Webhooks specification describes: a secret is `whsec_` and
//! the base64 of random bytes; a signature is `v1,` and the base64 of the HMAC-SHA256,
//! keyed with the secret's bytes, of `{webhook-id}.{webhook-timestamp}.{body}`. While a
//! rotated-out secret still counts, each signature is sent, space-separated, so a
//! receiver holding either secret verifies the delivery.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// What every signing secret starts with, so a leaked one is recognisable.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a new secret: the specification asks for at least 24.
const SECRET_BYTES: usize = 32;

/// A new signing secret (the thread RNG is a CSPRNG seeded from the OS).
pub fn new_secret() -> SecretString {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    SecretString::from(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The key bytes of secret `secret` (`whsec_` and base64); None if it is not of that shape.
pub fn key(secret: &SecretString) -> Option<Vec<u8>> {
    let encoded = secret.expose_secret().strip_prefix(SECRET_PREFIX)?;
    STANDARD.decode(encoded).ok().filter(|k| !k.is_empty())
}

/// The `v1,…` signature of `body` sent as message `id` at `timestamp` (seconds).
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per key, space-separated.
pub fn header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter().map(|k| sign(k, id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_specifications_reference_libraries_do() {
        // The Standard Webhooks reference libraries' own test vector.
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&key(&secret).unwrap(), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn new_secrets_are_prefixed_random_and_long_enough() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.expose_secret().starts_with(SECRET_PREFIX));
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(key(&a).unwrap().len() >= 24);
        assert_eq!(key(&SecretString::from("nope")), None);
    }

    #[test]
    fn a_rotation_sends_both_signatures() {
        let h = header(&[vec![1; 24], vec![2; 24]], "msg_1", 5, b"{}");
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }
}
