//! `[cache]`: the response cache (exact and semantic tiers), its defaults
//! and its per-route (or per-model) overrides. Absent: no response cache.
//!
//! ```toml
//! [cache]
//! scope = "key"          # whose answers a request may get: key | user | global
//! ttl_s = 3600
//! sampled = false        # also cache temperature > 0 without a seed
//! charge = "free"        # a hit costs: free | full (the original answer's tokens)
//! redis_url = "redis://127.0.0.1:6379"   # L2 and replication; default: [state]'s Redis
//! journal = "/var/lib/switchyard/cache.log"  # semantic entries kept across restarts (no Redis)
//! [cache.exact]
//! max_mib = 256          # the in-process tier's size
//! [cache.semantic]
//! threshold = 0.75       # cosine similarity a candidate must reach
//! guard = true           # and the wrong-hit guard it must pass
//! text = "last_user"     # what is embedded: last_user | conversation
//! [cache.routes."support-bot"]
//! scope = "global"
//! threshold = 0.93
//! ```

use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Whose cached answers a request may be served: only its key's (default),
/// its user's, or everyone's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheScope {
    #[default]
    Key,
    User,
    Global,
}

/// What the semantic tier embeds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SemanticText {
    /// The last user turn; the turns before it are part of the partition
    /// (so a hit only differs in how the last question was worded).
    #[default]
    LastUser,
    /// Every turn's text.
    Conversation,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    enabled: Option<bool>,
    scope: Option<CacheScope>,
    ttl_s: Option<u64>,
    sampled: Option<bool>,
    charge: Option<String>,
    redis_url: Option<String>,
    journal: Option<PathBuf>,
    #[serde(default)]
    exact: RawExact,
    #[serde(default)]
    semantic: RawSemantic,
    #[serde(default)]
    routes: BTreeMap<String, RawOverride>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExact {
    enabled: Option<bool>,
    max_mib: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSemantic {
    enabled: Option<bool>,
    threshold: Option<f32>,
    guard: Option<bool>,
    text: Option<String>,
    max_entries: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    enabled: Option<bool>,
    scope: Option<CacheScope>,
    ttl_s: Option<u64>,
    sampled: Option<bool>,
    threshold: Option<f32>,
    semantic: Option<bool>,
}

/// The validated `[cache]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub policy: CachePolicy,
    /// Charge a hit the original answer's tokens (default: free).
    pub charge_hits: bool,
    pub redis_url: Option<String>,
    pub journal: Option<PathBuf>,
    pub exact_enabled: bool,
    pub l1_max_bytes: u64,
    pub semantic_enabled: bool,
    pub guard: bool,
    pub text: SemanticText,
    pub max_semantic_entries: usize,
    /// Route or model name → its policy.
    pub overrides: BTreeMap<String, CachePolicy>,
}

/// What the cache does for one route or model (the defaults, or an override).
#[derive(Debug, Clone, PartialEq)]
pub struct CachePolicy {
    pub enabled: bool,
    pub scope: CacheScope,
    pub ttl: Duration,
    /// Cache answers sampled with temperature > 0 and no seed.
    pub sampled: bool,
    pub semantic: bool,
    pub threshold: f32,
}

pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
pub const DEFAULT_THRESHOLD: f32 = 0.75;
pub const DEFAULT_L1_MIB: u64 = 256;
pub const DEFAULT_MAX_SEMANTIC_ENTRIES: usize = 1_000_000;

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            policy: CachePolicy {
                enabled: true,
                scope: CacheScope::Key,
                ttl: DEFAULT_TTL,
                sampled: false,
                semantic: true,
                threshold: DEFAULT_THRESHOLD,
            },
            charge_hits: false,
            redis_url: None,
            journal: None,
            exact_enabled: true,
            l1_max_bytes: DEFAULT_L1_MIB << 20,
            semantic_enabled: true,
            guard: true,
            text: SemanticText::LastUser,
            max_semantic_entries: DEFAULT_MAX_SEMANTIC_ENTRIES,
            overrides: BTreeMap::new(),
        }
    }
}

impl CacheSettings {
    /// The policy for a request to `model` (a route or a model, aliases resolved).
    pub fn policy_for(&self, model: &str) -> &CachePolicy {
        self.overrides.get(model).unwrap_or(&self.policy)
    }
}

pub fn threshold_ok(t: f32) -> bool {
    t.is_finite() && (0.0..=1.0).contains(&t)
}

fn ttl(path: &str, s: u64) -> Result<Duration, ConfigError> {
    if s == 0 {
        return Err(invalid(path, "must be at least 1 second"));
    }
    Ok(Duration::from_secs(s))
}

fn threshold(path: &str, t: f32) -> Result<f32, ConfigError> {
    if !threshold_ok(t) {
        return Err(invalid(path, "must be between 0 and 1"));
    }
    Ok(t)
}

impl RawCache {
    pub fn validate(self) -> Result<Option<CacheSettings>, ConfigError> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let mut s = CacheSettings::default();
        if let Some(scope) = self.scope {
            s.policy.scope = scope;
        }
        if let Some(t) = self.ttl_s {
            s.policy.ttl = ttl("cache.ttl_s", t)?;
        }
        s.policy.sampled = self.sampled.unwrap_or(false);
        s.charge_hits = match self.charge.as_deref() {
            None | Some("free") => false,
            Some("full") => true,
            Some(other) => return Err(invalid("cache.charge", format!("'{other}' is not one of 'free', 'full'"))),
        };
        if let Some(url) = self.redis_url {
            if !url.starts_with("redis://") && !url.starts_with("rediss://") {
                return Err(invalid("cache.redis_url", "must start with redis:// or rediss://"));
            }
            s.redis_url = Some(url);
        }
        s.journal = self.journal;
        s.exact_enabled = self.exact.enabled.unwrap_or(true);
        if let Some(mib) = self.exact.max_mib {
            if mib == 0 || mib > super::MAX_KV_CACHE_MIB as u64 {
                return Err(invalid("cache.exact.max_mib", "must be between 1 and 1048576"));
            }
            s.l1_max_bytes = mib << 20;
        }
        s.semantic_enabled = self.semantic.enabled.unwrap_or(true);
        s.policy.semantic = s.semantic_enabled;
        if let Some(t) = self.semantic.threshold {
            s.policy.threshold = threshold("cache.semantic.threshold", t)?;
        }
        s.guard = self.semantic.guard.unwrap_or(true);
        s.text = match self.semantic.text.as_deref() {
            None | Some("last_user") => SemanticText::LastUser,
            Some("conversation") => SemanticText::Conversation,
            Some(other) => {
                return Err(invalid(
                    "cache.semantic.text",
                    format!("'{other}' is not one of 'last_user', 'conversation'"),
                ))
            }
        };
        if let Some(n) = self.semantic.max_entries {
            if n == 0 {
                return Err(invalid("cache.semantic.max_entries", "must be at least 1"));
            }
            s.max_semantic_entries = n;
        }
        for (name, o) in self.routes {
            let path = format!("cache.routes.{name}");
            let mut p = s.policy.clone();
            if let Some(on) = o.enabled {
                p.enabled = on;
            }
            if let Some(scope) = o.scope {
                p.scope = scope;
            }
            if let Some(t) = o.ttl_s {
                p.ttl = ttl(&format!("{path}.ttl_s"), t)?;
            }
            if let Some(on) = o.sampled {
                p.sampled = on;
            }
            if let Some(on) = o.semantic {
                p.semantic = on && s.semantic_enabled;
            }
            if let Some(t) = o.threshold {
                p.threshold = threshold(&format!("{path}.threshold"), t)?;
            }
            s.overrides.insert(name, p);
        }
        Ok(Some(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<CacheSettings>, ConfigError> {
        let raw: RawCache = toml::from_str(text).map_err(|e| invalid("cache", e.to_string()))?;
        raw.validate()
    }

    #[test]
    fn defaults_and_overrides() -> Result<(), ConfigError> {
        let s = parse("").map(Option::unwrap_or_default)?;
        assert_eq!(s.policy.scope, CacheScope::Key);
        assert!(!s.policy.sampled && !s.charge_hits && s.guard);
        let s = parse(
            "scope = \"user\"\n[semantic]\nthreshold = 0.8\n[routes.bot]\nscope = \"global\"\nthreshold = 0.95\n",
        )?
        .unwrap_or_default();
        assert_eq!(s.policy_for("other").scope, CacheScope::User);
        assert_eq!(s.policy_for("other").threshold, 0.8);
        assert_eq!(s.policy_for("bot").scope, CacheScope::Global);
        assert_eq!(s.policy_for("bot").threshold, 0.95);
        assert!(parse("enabled = false")?.is_none());
        Ok(())
    }

    #[test]
    fn bad_values_name_their_field() {
        for (text, field) in [
            ("[semantic]\nthreshold = 1.5", "cache.semantic.threshold"),
            ("ttl_s = 0", "cache.ttl_s"),
            ("charge = \"half\"", "cache.charge"),
            ("[semantic]\ntext = \"all\"", "cache.semantic.text"),
            ("[routes.x]\nthreshold = -1.0", "cache.routes.x.threshold"),
        ] {
            let r = parse(text);
            assert!(matches!(&r, Err(ConfigError::Invalid { path, .. }) if path == field), "{text}: {r:?}");
        }
    }
}
