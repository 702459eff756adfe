//! The request policies around every call (steps 1, 3, 4 and 11 of the
//! request path):
//!
//! - `auth`: API key → `Principal` (a middleware; admin routes use the admin token);
//! - `keys`: key records, hashing, generation;
//! - `limits`: rate limits and budgets as counters, response headers;
//! - `admission`: reserve the estimate before the backend runs, settle to
//!   the real usage after (streams included), record cost and metrics;
//! - `pricing`: the price table.
//!
//! `Policy` holds what they share: the state store, the keys and users
//! from the config file, prices and settings.

pub mod admission;
pub mod auth;
pub mod keys;
pub mod limits;
pub mod meter;
pub mod pricing;

use crate::metrics::GatewayMetrics;
use crate::store::{StateStore, StoreError};
use keys::{hash_key, KeyRecord};
use limits::Limits;
use pricing::PriceTable;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a key record read from the store is trusted. Changes made
/// through this process's admin API apply at once; changes made through
/// another replica (a revocation) reach this one within this time.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Auth is off (loopback, no keys): no limits apply.
    Anonymous,
    Key(Arc<KeyRecord>),
}

impl Principal {
    pub fn allows_model(&self, model: &str) -> bool {
        match self {
            Principal::Anonymous => true,
            Principal::Key(k) => k.allows_model(model),
        }
    }
}

/// Settings of the policy layer, validated from the config file.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySettings {
    /// Keys must be presented on every route not listed in `public_routes`.
    pub auth_required: bool,
    pub public_routes: Vec<String>,
    /// SHA-256 of the admin token; `None` = the admin API is off.
    pub admin_token_hash: Option<String>,
    /// Keys from the config file (hashed), read-only through the admin API.
    pub config_keys: Vec<KeyRecord>,
    /// Per-user limits, across all of a user's keys.
    pub users: HashMap<String, Limits>,
    pub prices: PriceTable,
    /// A chat without `max_tokens` is capped (and reserved) at this many
    /// completion tokens: no answer is unbounded, and its real usage can
    /// never exceed what was admitted.
    pub default_max_tokens: u32,
    /// Wall-clock limit of one request: its answer then ends with `length`.
    pub request_timeout: Duration,
    /// When the state store is unreachable: serve without limits (true) or refuse with 503.
    pub fail_open: bool,
    /// Chats that do not fit the context are trimmed (oldest turns first)
    /// unless the request says `truncation: "disabled"`.
    pub truncate_by_default: bool,
}

/// Routes open without a key unless the config says otherwise.
pub const DEFAULT_PUBLIC_ROUTES: [&str; 3] = ["/health", "/ready", "/metrics"];
/// The completion cap of chats without `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
/// The wall-clock limit of a request unless the config sets one.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            auth_required: false,
            public_routes: DEFAULT_PUBLIC_ROUTES.map(String::from).into(),
            admin_token_hash: None,
            config_keys: Vec::new(),
            users: HashMap::new(),
            prices: PriceTable::default(),
            default_max_tokens: DEFAULT_MAX_TOKENS,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            fail_open: false,
            truncate_by_default: false,
        }
    }
}

pub struct Policy {
    pub settings: PolicySettings,
    pub store: Arc<dyn StateStore>,
    pub metrics: Arc<GatewayMetrics>,
    config_keys: HashMap<String, Arc<KeyRecord>>,
    /// The last record read per key hash, and when. Reused for
    /// `KEY_CACHE_TTL` (saves a store round trip per request on Redis), and
    /// lets known keys through while the store is down and `fail_open` is set.
    seen: std::sync::Mutex<HashMap<String, (Arc<KeyRecord>, Instant)>>,
}

/// Why a key was not accepted.
#[derive(Debug)]
pub enum KeyRejection {
    Unknown,
    Revoked,
    Store(StoreError),
}

impl Policy {
    pub fn new(settings: PolicySettings, store: Arc<dyn StateStore>, metrics: Arc<GatewayMetrics>) -> Self {
        let config_keys = settings.config_keys.iter().map(|k| (k.hash.clone(), Arc::new(k.clone()))).collect();
        Policy { settings, store, metrics, config_keys, seen: Default::default() }
    }

    pub fn is_config_key(&self, id: &str) -> bool {
        self.settings.config_keys.iter().any(|k| k.id == id)
    }

    /// Looks a presented key up: config keys first, then the store.
    pub async fn authenticate(&self, presented: &str) -> Result<Arc<KeyRecord>, KeyRejection> {
        let hash = hash_key(presented);
        let cached = self.seen.lock().ok().and_then(|s| s.get(&hash).cloned());
        let fresh = cached.as_ref().filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL).map(|(k, _)| k.clone());
        let record = match (self.config_keys.get(&hash), fresh) {
            (Some(k), _) => k.clone(),
            (None, Some(k)) => k,
            (None, None) => match self.store.key_by_hash(&hash).await {
                Ok(Some(k)) => {
                    let k = Arc::new(k);
                    if let Ok(mut seen) = self.seen.lock() {
                        seen.insert(hash, (k.clone(), Instant::now()));
                    }
                    k
                }
                Ok(None) => return Err(KeyRejection::Unknown),
                Err(e) => match cached.map(|(k, _)| k) {
                    Some(k) if self.settings.fail_open => {
                        tracing::warn!(error = %e, "state store unreachable: accepting a key seen before (fail_open)");
                        self.metrics.store_error(true);
                        k
                    }
                    _ => {
                        self.metrics.store_error(false);
                        return Err(KeyRejection::Store(e));
                    }
                },
            },
        };
        if record.revoked {
            return Err(KeyRejection::Revoked);
        }
        Ok(record)
    }

    /// A key changed through the admin API: stop trusting the cached record.
    pub fn forget_key(&self, hash: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(hash);
        }
    }

    pub fn user_limits(&self, user: &str) -> Option<&Limits> {
        self.settings.users.get(user)
    }
}
