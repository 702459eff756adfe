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
    /// Whose requests may share prefix-cache blocks with this key's.
    #[serde(default)]
    pub cache_isolation: CacheIsolation,
    /// Whose cached answers this key's requests may get (the response
    /// cache); `None`: the route's or the server's setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_scope: Option<crate::config::cache::CacheScope>,
    /// Unix seconds.
    pub created: u64,
    #[serde(default)]
    pub revoked: bool,
}

/// The per-key salt option of automatic prefix caching: a key's requests
/// reuse cached prompt prefixes of every key (`shared`), only of the same
/// user (`user`), or only their own (`key`). A request's own `cache_salt`
/// narrows it further.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheIsolation {
    #[default]
    Shared,
    User,
    Key,
}

impl KeyRecord {
    /// The prefix-cache salt of a request by this key with its own `salt`.
    pub fn cache_salt(&self, salt: Option<String>) -> Option<String> {
        let scope = match (self.cache_isolation, &self.user) {
            (CacheIsolation::Shared, _) => None,
            (CacheIsolation::User, Some(user)) => Some(format!("user:{user}")),
            // A key without a user is its own user.
            (CacheIsolation::User, None) | (CacheIsolation::Key, _) => Some(format!("key:{}", self.id)),
        };
        match (scope, salt) {
            (None, s) => s,
            (Some(scope), None) => Some(scope),
            (Some(scope), Some(s)) => Some(format!("{scope}|{s}")),
        }
    }

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

    #[test]
    fn cache_isolation_scopes_the_salt() {
        let key = |isolation, user: Option<&str>| KeyRecord {
            id: "k1".into(),
            hash: String::new(),
            hint: String::new(),
            user: user.map(str::to_string),
            models: None,
            limits: Default::default(),
            metadata: Default::default(),
            cache_isolation: isolation,
            cache_scope: None,
            created: 0,
            revoked: false,
        };
        assert_eq!(key(CacheIsolation::Shared, Some("u")).cache_salt(None), None);
        assert_eq!(key(CacheIsolation::Shared, None).cache_salt(Some("s".into())), Some("s".into()));
        assert_eq!(key(CacheIsolation::User, Some("u")).cache_salt(None), Some("user:u".into()));
        assert_eq!(key(CacheIsolation::User, None).cache_salt(None), Some("key:k1".into()));
        assert_eq!(key(CacheIsolation::Key, Some("u")).cache_salt(Some("s".into())), Some("key:k1|s".into()));
    }
}
