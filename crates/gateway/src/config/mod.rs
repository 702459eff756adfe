//! Configuration, read in two stages: a raw serde struct that rejects
//! unknown keys (naming them), then validation into the runtime `Config`
//! whose errors name the offending path.
//!
//! The raw types and their validation live here (`policy`, `backends`,
//! `routes`); the runtime types they produce live with the domain modules
//! that use them (`policy`, `backends::config`, `routing`, `cascade`,
//! `registry`). Dependencies point one way: config → domain.

pub mod backends;
pub mod cache;
pub mod embeddings;
pub mod guardrails;
pub mod live_eval;
pub mod policy;
pub mod routes;

pub use embeddings::EmbeddingSettings;

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub use policy::{PolicyConfig, StoreConfig};

/// The default model, as installed by `scripts/setup-models.sh`.
pub const DEFAULT_MODEL_NAME: &str = "smollm2-135m-instruct";
/// Its file name in the models directory.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The embedding model's folder in the models directory.
pub const DEFAULT_EMBEDDING_DIR: &str = "all-MiniLM-L6-v2";

/// Where `scripts/setup-models.sh` installs the default models, so that
/// `switchyard serve` finds them from any working directory:
/// `$SWITCHYARD_MODELS_DIR`, else `$XDG_DATA_HOME/switchyard/models`, else
/// `~/.local/share/switchyard/models`.
pub fn models_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("SWITCHYARD_MODELS_DIR") {
        return dir;
    }
    let data = var("XDG_DATA_HOME").or_else(|| var("HOME").map(|h| h.join(".local/share")));
    data.unwrap_or_else(|| PathBuf::from(".")).join("switchyard/models")
}

/// A default model file (or folder): in the models directory, else in
/// `models/` under the working directory (a checkout whose setup predates
/// the data directory). When neither exists, the models directory's path,
/// for the error message.
pub fn default_model_path(name: &str) -> PathBuf {
    let installed = models_dir().join(name);
    let local = Path::new("models").join(name);
    if !installed.exists() && local.exists() {
        return local;
    }
    installed
}
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config: {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    engine: RawEngine,
    /// Absent: the default model. `models = []`: no embedded model (a
    /// gateway in front of remote backends only).
    models: Option<Vec<RawModel>>,
    #[serde(default)]
    auth: policy::RawAuth,
    #[serde(default)]
    state: policy::RawState,
    #[serde(default)]
    limits: policy::RawLimitDefaults,
    #[serde(default)]
    keys: Vec<policy::RawKey>,
    #[serde(default)]
    users: Vec<policy::RawUser>,
    #[serde(default)]
    prices: std::collections::BTreeMap<String, policy::RawPrice>,
    #[serde(default)]
    backends: Vec<backends::RawBackend>,
    #[serde(default)]
    routes: Vec<routes::RawRoute>,
    /// The in-process embedding model (absent: the default one, if installed).
    embeddings: Option<embeddings::RawEmbeddings>,
    /// The response cache (absent: none).
    cache: Option<cache::RawCache>,
    #[serde(default)]
    guardrails: Vec<guardrails::RawGuardrail>,
    #[serde(default)]
    live_eval: Vec<live_eval::RawLiveEval>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    body_limit_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    max_num_seqs: Option<usize>,
    max_num_batched_tokens: Option<usize>,
    kv_cache_mib: Option<usize>,
    prefix_caching: Option<bool>,
    /// "fast" (default) or "native".
    weights: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: String,
    path: PathBuf,
    context_length: Option<usize>,
}

/// 1 TiB: far beyond any machine this runs on, and safe to shift into bytes.
pub const MAX_KV_CACHE_MIB: usize = 1 << 20;

/// Validated runtime configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub body_limit_bytes: usize,
    pub engine: EngineSettings,
    pub models: Vec<LocalModelConfig>,
    /// Remote servers and the models served through them.
    pub backends: Vec<crate::backends::config::BackendConfig>,
    /// Names for ordered lists of models, with retries and fallback.
    pub routes: Vec<crate::routing::RouteConfig>,
    pub policy: PolicyConfig,
    /// The in-process embedding model; `None`: none.
    pub embedding: Option<EmbeddingSettings>,
    /// The response cache, when `[cache]` is present.
    pub cache: Option<cache::CacheSettings>,
    /// `[[guardrails]]`, in order.
    pub guardrails: Vec<crate::guardrails::GuardrailConfig>,
    /// `[[live_eval]]`: sampled evaluation of live answers.
    pub live_eval: Vec<crate::eval::live::LiveEvalConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineSettings {
    pub max_num_seqs: usize,
    pub max_num_batched_tokens: usize,
    /// Memory for each local model's KV block pool.
    pub kv_cache_mib: usize,
    pub prefix_caching: bool,
    pub weights: engine::WeightFormat,
}

impl EngineSettings {
    pub fn engine_config(&self) -> engine::EngineConfig {
        engine::EngineConfig {
            max_num_seqs: self.max_num_seqs,
            max_num_batched_tokens: self.max_num_batched_tokens,
            kv_cache_bytes: self.kv_cache_mib << 20,
            prefix_caching: self.prefix_caching,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalModelConfig {
    pub name: String,
    pub path: PathBuf,
    pub context_length: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        let defaults = engine::EngineConfig::default();
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: DEFAULT_BODY_LIMIT,
            engine: EngineSettings {
                max_num_seqs: defaults.max_num_seqs,
                max_num_batched_tokens: defaults.max_num_batched_tokens,
                kv_cache_mib: defaults.kv_cache_bytes >> 20,
                prefix_caching: defaults.prefix_caching,
                weights: engine::WeightFormat::default(),
            },
            models: vec![LocalModelConfig {
                name: DEFAULT_MODEL_NAME.into(),
                path: default_model_path(DEFAULT_MODEL_FILE),
                context_length: None,
            }],
            backends: Vec::new(),
            routes: Vec::new(),
            policy: PolicyConfig::default(),
            embedding: Some(EmbeddingSettings::default()),
            cache: None,
            guardrails: Vec::new(),
            live_eval: Vec::new(),
        }
    }
}

/// A value that does not validate, named by its path in the file.
pub(crate) fn invalid(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { path: path.to_string(), message: message.into() }
}

/// A secret from the environment variable the file names at `path`.
pub(crate) fn env_secret(path: &str, var: &str) -> Result<String, ConfigError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(invalid(path, format!("environment variable {var} is not set"))),
    }
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.display().to_string(), message },
            other => other,
        })
    }

    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: String::new(), message: e.to_string() })?;
        let mut cfg = Config::default();
        if let Some(listen) = raw.listen {
            cfg.listen = parse_listen(&listen).map_err(|m| invalid("listen", m))?;
        }
        if let Some(limit) = raw.server.body_limit_bytes {
            if limit == 0 {
                return Err(invalid("server.body_limit_bytes", "must be greater than 0"));
            }
            cfg.body_limit_bytes = limit;
        }
        if let Some(n) = raw.engine.max_num_seqs {
            if n == 0 {
                return Err(invalid("engine.max_num_seqs", "must be at least 1"));
            }
            cfg.engine.max_num_seqs = n;
        }
        if let Some(n) = raw.engine.max_num_batched_tokens {
            if n < 16 {
                return Err(invalid("engine.max_num_batched_tokens", "must be at least 16"));
            }
            cfg.engine.max_num_batched_tokens = n;
        }
        if let Some(n) = raw.engine.kv_cache_mib {
            if n == 0 || n > MAX_KV_CACHE_MIB {
                return Err(invalid("engine.kv_cache_mib", format!("must be between 1 and {MAX_KV_CACHE_MIB}")));
            }
            cfg.engine.kv_cache_mib = n;
        }
        if let Some(on) = raw.engine.prefix_caching {
            cfg.engine.prefix_caching = on;
        }
        if let Some(w) = raw.engine.weights {
            cfg.engine.weights = parse_weights(&w).map_err(|m| invalid("engine.weights", m))?;
        }
        cfg.policy = policy::RawPolicy {
            auth: raw.auth,
            state: raw.state,
            limits: raw.limits,
            keys: raw.keys,
            users: raw.users,
            prices: raw.prices,
        }
        .validate()?;
        cfg.backends = backends::validate(raw.backends)?;
        for (i, b) in cfg.backends.iter().enumerate() {
            for (j, m) in b.models.iter().enumerate() {
                let Some(price) = m.price else { continue };
                if cfg.policy.prices.models.insert(m.name.clone(), price).is_some() {
                    return Err(invalid(
                        &format!("backends[{i}].models[{j}].input_per_million"),
                        format!("'{}' also has a [prices] table: give its price once", m.name),
                    ));
                }
            }
        }
        if let Some(raw_models) = raw.models {
            let mut models = Vec::with_capacity(raw_models.len());
            for (i, m) in raw_models.into_iter().enumerate() {
                if m.name.trim().is_empty() {
                    return Err(invalid(&format!("models[{i}].name"), "must not be empty"));
                }
                if models.iter().any(|o: &LocalModelConfig| o.name == m.name) {
                    return Err(invalid(&format!("models[{i}].name"), format!("'{}' is listed twice", m.name)));
                }
                if m.context_length == Some(0) {
                    return Err(invalid(&format!("models[{i}].context_length"), "must be at least 1"));
                }
                models.push(LocalModelConfig { name: m.name, path: m.path, context_length: m.context_length });
            }
            cfg.models = models;
        }
        cfg.routes = routes::validate(raw.routes)?;
        match raw.embeddings {
            Some(e) => cfg.embedding = e.validate()?,
            // `models = []`: a gateway in front of remote backends only, no
            // in-process model of either kind unless `[embeddings]` says so.
            None if cfg.models.is_empty() => cfg.embedding = None,
            None => {}
        }
        if let Some(c) = raw.cache {
            cfg.cache = c.validate()?;
        }
        cfg.guardrails = guardrails::validate(raw.guardrails)?;
        cfg.live_eval = live_eval::validate(raw.live_eval)?;
        Ok(cfg)
    }
}

pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|e| format!("'{s}' is not an ADDRESS:PORT ({e})"))
}

pub fn parse_weights(s: &str) -> Result<engine::WeightFormat, String> {
    match s {
        "fast" => Ok(engine::WeightFormat::Fast),
        "native" => Ok(engine::WeightFormat::Native),
        other => Err(format!("'{other}' is not one of 'fast', 'native'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default() -> Result<(), ConfigError> {
        assert_eq!(Config::from_toml("")?, Config::default());
        Ok(())
    }

    #[test]
    fn the_embedding_model_is_on_by_default_off_for_a_bare_gateway_and_configurable() -> Result<(), ConfigError> {
        assert!(Config::from_toml("")?.embedding.is_some_and(|e| !e.required));
        assert_eq!(Config::from_toml("models = []")?.embedding, None);
        let e =
            Config::from_toml("models = []\n[embeddings]\nname = \"e\"\ntoo_long = \"truncate\"\nmax_wait_ms = 5\n")?
                .embedding;
        assert!(e.is_some_and(|e| e.required && e.truncate && e.name == "e" && e.max_wait.as_millis() == 5));
        assert_eq!(Config::from_toml("[embeddings]\nenabled = false\n")?.embedding, None);
        assert!(Config::from_toml("[embeddings]\ntoo_long = \"cut\"\n").is_err());
        Ok(())
    }

    #[test]
    fn reads_listen_and_models() -> Result<(), ConfigError> {
        let cfg = Config::from_toml(
            "listen = \"0.0.0.0:9000\"\n[engine]\nmax_num_seqs = 4\nkv_cache_mib = 64\nprefix_caching = false\n[[models]]\nname = \"a\"\npath = \"/m/a.gguf\"\ncontext_length = 2048\n",
        )?;
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.engine.max_num_seqs, 4);
        assert_eq!((cfg.engine.kv_cache_mib, cfg.engine.prefix_caching), (64, false));
        assert_eq!(
            cfg.models,
            vec![LocalModelConfig { name: "a".into(), path: "/m/a.gguf".into(), context_length: Some(2048) }]
        );
        Ok(())
    }

    #[test]
    fn unknown_keys_are_named() {
        let err =
            Config::from_toml("listen = \"127.0.0.1:1\"\nlisten_port = 3\n").map(|_| ()).map_err(|e| e.to_string());
        assert!(matches!(&err, Err(m) if m.contains("listen_port")), "{err:?}");
        let err = Config::from_toml("[[models]]\nname = \"a\"\npath = \"x\"\nctx = 5\n")
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(matches!(&err, Err(m) if m.contains("ctx")), "{err:?}");
    }

    #[test]
    fn invalid_values_name_their_path() {
        let err = Config::from_toml("listen = \"nope\"").map(|_| ()).map_err(|e| e.to_string());
        assert!(matches!(&err, Err(m) if m.contains("listen")), "{err:?}");
        let err = Config::from_toml("[engine]\nweights = \"q2\"").map(|_| ()).map_err(|e| e.to_string());
        assert!(matches!(&err, Err(m) if m.contains("engine.weights")), "{err:?}");
    }

    #[test]
    fn reads_keys_users_prices_and_state() -> Result<(), ConfigError> {
        std::env::set_var("SY_TEST_CONFIG_KEY", "sy-secret-from-env");
        let cfg = Config::from_toml(
            r#"
[state]
store = "redis"
redis_url = "redis://127.0.0.1:6390"
fail_open = true
[limits]
default_max_tokens = 128
[[keys]]
id = "team-a"
key_env = "SY_TEST_CONFIG_KEY"
user = "alice"
models = ["m"]
rpm = 10
tpm = 1000
budget_usd = 2.5
budget_period = "daily"
metadata = { team = "a" }
[[keys]]
id = "ops"
key_sha256 = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
[[users]]
id = "alice"
rpd = 100
[prices.m]
input_per_million = 0.5
output_per_million = 1.5
"#,
        )?;
        let p = &cfg.policy;
        assert_eq!(p.store, StoreConfig::Redis { url: "redis://127.0.0.1:6390".into(), prefix: "switchyard".into() });
        assert!(p.fail_open);
        assert_eq!(p.default_max_tokens, 128);
        assert_eq!(p.keys[0].hash, crate::policy::keys::hash_key("sy-secret-from-env"));
        assert_eq!((p.keys[0].limits.rpm, p.keys[0].limits.tpm), (Some(10), Some(1000)));
        assert_eq!(p.keys[0].limits.budget.as_ref().map(|b| b.usd), Some(2.5));
        assert_eq!(p.keys[1].hash, crate::policy::keys::hash_key("abc"));
        assert_eq!(p.users.get("alice").and_then(|l| l.rpd), Some(100));
        assert_eq!(p.prices.cost_nanos("m", 1_000_000, 0), 500_000_000);
        Ok(())
    }

    #[test]
    fn policy_mistakes_name_their_path() {
        let err = |t: &str| Config::from_toml(t).map(|_| ()).map_err(|e| e.to_string());
        let e = err("[[keys]]\nid = \"a\"\nkey_env = \"SY_TEST_UNSET_VARIABLE\"\n");
        assert!(matches!(&e, Err(m) if m.contains("keys[0].key_env") && m.contains("SY_TEST_UNSET_VARIABLE")), "{e:?}");
        let e = err("[[keys]]\nid = \"a\"\nkey_sha256 = \"00\"\nrpm = 0\n");
        assert!(matches!(&e, Err(m) if m.contains("keys[0]")), "{e:?}");
        let e = err("[[users]]\nid = \"u\"\nrmp = 5\n");
        assert!(matches!(&e, Err(m) if m.contains("rmp")), "{e:?}");
        let e = err("[state]\nstore = \"etcd\"\n");
        assert!(matches!(&e, Err(m) if m.contains("state.store")), "{e:?}");
        let e = err("[state]\nstore = \"redis\"\nredis_url = \"localhost\"\n");
        assert!(matches!(&e, Err(m) if m.contains("state.redis_url")), "{e:?}");
    }

    #[test]
    fn reads_remote_backends_and_rejects_clashes() -> Result<(), ConfigError> {
        let cfg = Config::from_toml(
            "[[backends]]\nname = \"vllm\"\nkind = \"openai\"\nbase_url = \"http://10.0.0.5:8000/v1/\"\nfirst_byte_timeout_ms = 500\n[[backends.models]]\nname = \"big\"\nupstream = \"org/big-model\"\n",
        )?;
        let b = &cfg.backends[0];
        assert_eq!((b.base_url.as_str(), b.api_key.as_deref()), ("http://10.0.0.5:8000/v1", None));
        assert_eq!(b.timeouts.first_byte, std::time::Duration::from_millis(500));
        assert_eq!((b.models[0].upstream.as_str(), b.models[0].context_length), ("org/big-model", 8192));
        let err = |t: &str| Config::from_toml(t).map(|_| ()).map_err(|e| e.to_string());
        let remote = |name: &str, kind: &str, url: &str| {
            format!("[[backends]]\nname = \"r\"\nkind = \"{kind}\"\nbase_url = \"{url}\"\n[[backends.models]]\nname = \"{name}\"\n")
        };
        let e = err(&remote("x", "grpc", "http://h:1/v1"));
        assert!(matches!(&e, Err(m) if m.contains("backends[0].kind")), "{e:?}");
        let e = err(&remote("x", "openai", "h:1/v1"));
        assert!(matches!(&e, Err(m) if m.contains("backends[0].base_url")), "{e:?}");
        assert!(err(&remote("x", "openai", "https://api.example.com/v1")).is_ok());
        let e = err(&remote("x", "openai", "https://h/v1")
            .replace("[[backends.models]]", "ca_file = \"/nonexistent/ca.pem\"\n[[backends.models]]"));
        assert!(matches!(&e, Err(m) if m.contains("backends[0].ca_file")), "{e:?}");
        let e = err("[[backends]]\nname = \"r\"\nkind = \"openai\"\nbase_url = \"http://h:1\"\napi_key_env = \"SY_TEST_UNSET_UPSTREAM_KEY\"\n[[backends.models]]\nname = \"x\"\n");
        assert!(matches!(&e, Err(m) if m.contains("backends[0].api_key_env")), "{e:?}");
        Ok(())
    }

    #[test]
    fn reads_model_cards_and_route_strategies() -> Result<(), ConfigError> {
        let model = "[[backends]]\nname = \"r\"\nkind = \"openai\"\nbase_url = \"http://h:1/v1\"\n[[backends.models]]\nname = \"x\"\n";
        let cfg = Config::from_toml(&format!(
            "{model}capabilities = [\"chat\"]\nmax_output_tokens = 100\nweight = 4\naliases = [\"y\"]\n\
             input_per_million = 1.5\noutput_per_million = 2\n\
             [[routes]]\nname = \"w\"\nmodels = [\"x\"]\nstrategy = \"weighted\"\n\
             [[routes]]\nname = \"c\"\nkind = \"cascade\"\nmodels = [\"x\"]\nscorer = \"logprob\"\nthreshold = -0.5\nmax_cost = 0.01\n"
        ))?;
        let card = &cfg.backends[0].models[0].card;
        assert_eq!((card.capabilities.names(), card.max_output_tokens, card.weight), (vec!["chat"], Some(100), 4));
        assert_eq!(card.aliases, ["y"]);
        assert_eq!(cfg.models.len(), 1, "the default model when [[models]] is absent");
        assert!(Config::from_toml(&format!("models = []\n{model}"))?.models.is_empty(), "remote backends only");
        assert_eq!(cfg.policy.prices.price("x").input_per_million, 1.5);
        assert_eq!(cfg.routes[0].strategy, crate::routing::Strategy::Weighted);
        assert!(cfg.routes[1].cascade.is_some() && cfg.routes[1].max_cost_usd == Some(0.01));
        let err = |t: &str| Config::from_toml(t).map(|_| ()).map_err(|e| e.to_string());
        for (extra, path) in [
            ("capabilities = [\"vision\"]\n", "models[0].capabilities"),
            ("input_per_million = 1.0\n", "models[0].input_per_million"),
            ("input_per_million = 1.0\noutput_per_million = 1.0\n[prices.x]\ninput_per_million = 1.0\noutput_per_million = 1.0\n", "models[0].input_per_million"),
            ("[[routes]]\nname = \"s\"\nmodels = [\"x\"]\nstrategy = \"random\"\n", "routes[0].strategy"),
            ("[[routes]]\nname = \"s\"\nmodels = [\"x\"]\nthreshold = 1.0\n", "routes[0].threshold"),
            ("[[routes]]\nname = \"s\"\nkind = \"cascade\"\nmodels = [\"x\"]\nscorer = \"judge\"\nthreshold = 5\n", "routes[0].judge_model"),
            ("[[routes]]\nname = \"s\"\nmodels = [\"x\"]\nmax_cost = -1\n", "routes[0].max_cost"),
        ] {
            let e = err(&format!("{model}{extra}"));
            assert!(matches!(&e, Err(m) if m.contains(path)), "{extra}: {e:?}");
        }
        Ok(())
    }
}
