//! The policy half of the config file: `[auth]`, `[state]`, `[limits]`,
//! `[[keys]]`, `[[users]]` and `[prices]`, parsed then validated. Secrets
//! (keys, the admin token) come from environment variables named in the
//! file, never from the file itself; a key can also be given as its SHA-256.

use super::{env_secret, invalid, ConfigError};
use crate::policy::keys::{hash_key, KeyRecord};
use crate::policy::limits::{Budget, BudgetPeriod, Limits};
use crate::policy::pricing::{Price, PriceTable};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

pub const DEFAULT_ADMIN_TOKEN_ENV: &str = "SWITCHYARD_ADMIN_TOKEN";
pub const DEFAULT_STATE_PATH: &str = "state/switchyard-state.jsonl";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Require keys even on loopback with no keys configured.
    required: Option<bool>,
    admin_token_env: Option<String>,
    public_routes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// "embedded" (default) or "redis".
    store: Option<String>,
    path: Option<PathBuf>,
    redis_url: Option<String>,
    redis_url_env: Option<String>,
    prefix: Option<String>,
    fail_open: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimitDefaults {
    default_max_tokens: Option<u32>,
    /// Wall-clock limit of one request, in milliseconds.
    request_timeout_ms: Option<u64>,
    /// "disabled" (default: too long → 400) or "auto" (drop the oldest turns).
    truncation: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    id: String,
    key_env: Option<String>,
    key_sha256: Option<String>,
    user: Option<String>,
    models: Option<Vec<String>>,
    #[serde(default)]
    cache_isolation: crate::policy::keys::CacheIsolation,
    /// Whose cached answers the key's requests may get (`key`, `user`, `global`).
    cache_scope: Option<super::cache::CacheScope>,
    #[serde(flatten)]
    limits: RawLimits,
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    id: String,
    #[serde(flatten)]
    limits: RawLimits,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLimits {
    rpm: Option<u64>,
    rpd: Option<u64>,
    tpm: Option<u64>,
    tpd: Option<u64>,
    budget_usd: Option<f64>,
    budget_period: Option<BudgetPeriod>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    input_per_million: f64,
    output_per_million: f64,
}

/// Everything the `[auth]`, `[state]`, `[limits]`, `[[keys]]`, `[[users]]`
/// and `[prices]` tables hold, in raw form.
#[derive(Debug, Default)]
pub struct RawPolicy {
    pub auth: RawAuth,
    pub state: RawState,
    pub limits: RawLimitDefaults,
    pub keys: Vec<RawKey>,
    pub users: Vec<RawUser>,
    pub prices: BTreeMap<String, RawPrice>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StoreConfig {
    Embedded { path: PathBuf },
    Redis { url: String, prefix: String },
}

/// The validated policy configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    pub auth_required: bool,
    pub admin_token_env: String,
    pub public_routes: Vec<String>,
    pub store: StoreConfig,
    pub fail_open: bool,
    pub default_max_tokens: u32,
    pub request_timeout: std::time::Duration,
    pub truncate_by_default: bool,
    pub keys: Vec<KeyRecord>,
    pub users: HashMap<String, Limits>,
    pub prices: PriceTable,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            auth_required: false,
            admin_token_env: DEFAULT_ADMIN_TOKEN_ENV.into(),
            public_routes: crate::policy::DEFAULT_PUBLIC_ROUTES.map(String::from).into(),
            store: StoreConfig::Embedded { path: DEFAULT_STATE_PATH.into() },
            fail_open: false,
            default_max_tokens: crate::policy::DEFAULT_MAX_TOKENS,
            request_timeout: crate::policy::DEFAULT_REQUEST_TIMEOUT,
            truncate_by_default: false,
            keys: Vec::new(),
            users: HashMap::new(),
            prices: PriceTable::default(),
        }
    }
}

fn limits(path: &str, raw: RawLimits) -> Result<Limits, ConfigError> {
    let budget = match (raw.budget_usd, raw.budget_period) {
        (Some(usd), period) => Some(Budget { usd, period: period.unwrap_or(BudgetPeriod::Monthly) }),
        (None, Some(_)) => return Err(invalid(&format!("{path}.budget_period"), "needs budget_usd")),
        (None, None) => None,
    };
    let l = Limits { rpm: raw.rpm, rpd: raw.rpd, tpm: raw.tpm, tpd: raw.tpd, budget };
    l.validate().map_err(|m| invalid(path, m))?;
    Ok(l)
}

impl RawPolicy {
    pub fn validate(self) -> Result<PolicyConfig, ConfigError> {
        let mut cfg = PolicyConfig::default();
        if let Some(v) = self.auth.admin_token_env {
            cfg.admin_token_env = v;
        }
        if let Some(routes) = self.auth.public_routes {
            if let Some(bad) = routes.iter().find(|r| !r.starts_with('/')) {
                return Err(invalid("auth.public_routes", format!("'{bad}' is not a path")));
            }
            cfg.public_routes = routes;
        }
        cfg.auth_required = self.auth.required.unwrap_or(false);
        cfg.fail_open = self.state.fail_open.unwrap_or(false);
        cfg.store = match self.state.store.as_deref().unwrap_or("embedded") {
            "embedded" => StoreConfig::Embedded { path: self.state.path.unwrap_or_else(|| DEFAULT_STATE_PATH.into()) },
            "redis" => {
                let url = match (self.state.redis_url, self.state.redis_url_env) {
                    (Some(u), None) => u,
                    (None, Some(var)) => env_secret("state.redis_url_env", &var)?,
                    (None, None) => "redis://127.0.0.1:6379".into(),
                    (Some(_), Some(_)) => {
                        return Err(invalid("state.redis_url", "give redis_url or redis_url_env, not both"))
                    }
                };
                redis::Client::open(url.as_str()).map_err(|e| invalid("state.redis_url", e.to_string()))?;
                StoreConfig::Redis { url, prefix: self.state.prefix.unwrap_or_else(|| "switchyard".into()) }
            }
            other => return Err(invalid("state.store", format!("'{other}' is not one of 'embedded', 'redis'"))),
        };
        if let Some(n) = self.limits.default_max_tokens {
            if n == 0 {
                return Err(invalid("limits.default_max_tokens", "must be at least 1"));
            }
            cfg.default_max_tokens = n;
        }
        if let Some(ms) = self.limits.request_timeout_ms {
            if ms == 0 {
                return Err(invalid("limits.request_timeout_ms", "must be at least 1"));
            }
            cfg.request_timeout = std::time::Duration::from_millis(ms);
        }
        cfg.truncate_by_default = match self.limits.truncation.as_deref() {
            None | Some("disabled") => false,
            Some("auto") => true,
            Some(other) => {
                return Err(invalid("limits.truncation", format!("'{other}' is not one of 'auto', 'disabled'")))
            }
        };
        for (i, u) in self.users.into_iter().enumerate() {
            let path = format!("users[{i}]");
            if cfg.users.contains_key(&u.id) {
                return Err(invalid(&format!("{path}.id"), format!("'{}' is listed twice", u.id)));
            }
            cfg.users.insert(u.id, limits(&path, u.limits)?);
        }
        for (i, k) in self.keys.into_iter().enumerate() {
            let path = format!("keys[{i}]");
            if k.id.trim().is_empty() {
                return Err(invalid(&format!("{path}.id"), "must not be empty"));
            }
            if cfg.keys.iter().any(|o: &KeyRecord| o.id == k.id) {
                return Err(invalid(&format!("{path}.id"), format!("'{}' is listed twice", k.id)));
            }
            let (hash, hint) = match (k.key_env, k.key_sha256) {
                (Some(var), None) => {
                    let key = env_secret(&format!("{path}.key_env"), &var)?;
                    (hash_key(&key), crate::policy::keys::hint_of(&key))
                }
                (None, Some(h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    (h.to_ascii_lowercase(), "(config)".to_string())
                }
                (None, Some(_)) => return Err(invalid(&format!("{path}.key_sha256"), "must be 64 hex digits")),
                _ => return Err(invalid(&path, "give exactly one of key_env, key_sha256")),
            };
            if cfg.keys.iter().any(|o| o.hash == hash) {
                return Err(invalid(&path, "the same key is listed twice"));
            }
            cfg.keys.push(KeyRecord {
                id: k.id,
                hash,
                hint,
                user: k.user,
                models: k.models,
                limits: limits(&path, k.limits)?,
                metadata: k.metadata,
                cache_isolation: k.cache_isolation,
                cache_scope: k.cache_scope,
                created: 0,
                revoked: false,
            });
        }
        for (model, p) in self.prices {
            let ok = |v: f64| v.is_finite() && v >= 0.0;
            if !ok(p.input_per_million) || !ok(p.output_per_million) {
                return Err(invalid(&format!("prices.{model}"), "prices must be finite and not negative"));
            }
            cfg.prices.models.insert(
                model,
                Price { input_per_million: p.input_per_million, output_per_million: p.output_per_million },
            );
        }
        Ok(cfg)
    }
}
