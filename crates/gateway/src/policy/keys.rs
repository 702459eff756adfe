//! API keys: what a key may do, and how it is stored (a SHA-256 of the
//! key, never the key itself; the full key is shown once, at creation).

use super::limits::Limits;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Keys look like `sy-` followed by 48 hex digits (192 random bits).
pub const KEY_PREFIX: &str = "sy-";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Stable name, used in the admin API, metrics-free logs and counters.
    pub id: String,
    /// Lower-case hex SHA-256 of the key.
    pub hash: String,
    /// The key's first characters, so people can tell keys apart.
    pub hint: String,
    #[serde(default)]
    pub user: Option<String>,
    /// Models this key may call; `None` = every model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Unix seconds.
    pub created: u64,
    #[serde(default)]
    pub revoked: bool,
}

impl KeyRecord {
    pub fn allows_model(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|m| m.iter().any(|x| x == model || x == "*"))
    }
}

pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex(&digest)
}

/// A new random key.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", hex(&bytes))
}

/// What a key's record shows of it: enough to recognise, not to use.
pub fn hint_of(key: &str) -> String {
    let shown: String = key.chars().take(KEY_PREFIX.len() + 4).collect();
    format!("{shown}…")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two hashes in time independent of where they differ.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashed() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 48);
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
        // SHA-256 of "abc", a published test vector.
        assert_eq!(hash_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(!hint_of(&a).contains(&a[8..]));
        assert!(same_hash(&hash_key(&a), &hash_key(&a)) && !same_hash(&hash_key(&a), &hash_key(&b)));
    }
}
