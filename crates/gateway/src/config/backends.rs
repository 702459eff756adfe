//! `[[backends]]`: raw entries, validated into `backends::config::BackendConfig`
//! (with each model's registry card).

use super::{env_secret, invalid, ConfigError};
use crate::backends::config::{BackendConfig, Dialect, RemoteModel, Timeouts, DEFAULT_REMOTE_CONTEXT};
use crate::policy::pricing::Price;
use crate::registry::{Capabilities, ModelCard, CAPABILITY_NAMES};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    name: String,
    /// "openai" (an OpenAI-compatible server) or "anthropic" (the Messages API).
    kind: String,
    /// e.g. "http://127.0.0.1:8000/v1" or "https://api.openai.com/v1".
    base_url: String,
    /// PEM file of extra certificate authorities to trust for an https
    /// base URL (beside the system's), e.g. a private CA.
    ca_file: Option<std::path::PathBuf>,
    api_key_env: Option<String>,
    connect_timeout_ms: Option<u64>,
    first_byte_timeout_ms: Option<u64>,
    total_timeout_ms: Option<u64>,
    /// Requests sent at once; more wait in a queue (unlimited when absent).
    max_concurrency: Option<usize>,
    /// Requests allowed to wait; beyond, 503 at once (default 0).
    max_queue: Option<usize>,
    /// Longest wait in the queue before 504 (default 30 000).
    queue_timeout_ms: Option<u64>,
    /// Active health probe (`GET {base_url}/models`) every this many ms (off when absent).
    health_check_interval_ms: Option<u64>,
    /// Stream the upstream's chunks to clients byte for byte (default true;
    /// false re-renders them with the gateway's ids and model names).
    passthrough: Option<bool>,
    /// Check `json_schema` answers against their schema before returning
    /// them; an invalid one is the model's failure (default true).
    validate: Option<bool>,
    #[serde(default)]
    models: Vec<RawRemoteModel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemoteModel {
    /// The name clients send.
    name: String,
    /// The server's own id for it (default: `name`).
    upstream: Option<String>,
    context_length: Option<u32>,
    /// Most completion tokens one request may ask for.
    max_output_tokens: Option<u32>,
    /// What it serves (default: everything the backend's API offers).
    capabilities: Option<Vec<String>>,
    /// Share of traffic under the `weighted` strategy (default 1).
    weight: Option<u32>,
    /// Other names clients may use for it.
    #[serde(default)]
    aliases: Vec<String>,
    /// Price in US dollars per million tokens (same as a `[prices.<name>]` table).
    input_per_million: Option<f64>,
    output_per_million: Option<f64>,
}

pub fn validate(raw: Vec<RawBackend>) -> Result<Vec<BackendConfig>, ConfigError> {
    let mut out: Vec<BackendConfig> = Vec::with_capacity(raw.len());
    for (i, b) in raw.into_iter().enumerate() {
        let path = format!("backends[{i}]");
        if b.name.trim().is_empty() || out.iter().any(|o| o.name == b.name) {
            return Err(invalid(&format!("{path}.name"), "must be non-empty and unique"));
        }
        let dialect = match b.kind.as_str() {
            "openai" => Dialect::OpenAi,
            "anthropic" => Dialect::Anthropic,
            other => {
                return Err(invalid(&format!("{path}.kind"), format!("'{other}' is not one of 'openai', 'anthropic'")))
            }
        };
        let base_url = b.base_url.trim_end_matches('/').to_string();
        if !base_url.starts_with("http://") && !base_url.starts_with("https://") {
            return Err(invalid(&format!("{path}.base_url"), "must start with http:// or https://"));
        }
        let extra_roots = match &b.ca_file {
            None => Vec::new(),
            Some(file) => read_roots(file).map_err(|e| invalid(&format!("{path}.ca_file"), e))?,
        };
        let api_key = match b.api_key_env {
            None => None,
            Some(var) => Some(env_secret(&format!("{path}.api_key_env"), &var)?),
        };
        let ms = |v: Option<u64>, default: u64, name: &str| match v {
            Some(0) => Err(invalid(&format!("{path}.{name}"), "must be at least 1")),
            v => Ok(Duration::from_millis(v.unwrap_or(default))),
        };
        let timeouts = Timeouts {
            connect: ms(b.connect_timeout_ms, 2_000, "connect_timeout_ms")?,
            first_byte: ms(b.first_byte_timeout_ms, 60_000, "first_byte_timeout_ms")?,
            total: ms(b.total_timeout_ms, 600_000, "total_timeout_ms")?,
        };
        if b.models.is_empty() {
            return Err(invalid(&format!("{path}.models"), "list at least one model"));
        }
        let mut models = Vec::with_capacity(b.models.len());
        for (j, m) in b.models.into_iter().enumerate() {
            if m.name.trim().is_empty() {
                return Err(invalid(&format!("{path}.models[{j}].name"), "must not be empty"));
            }
            if m.context_length == Some(0) {
                return Err(invalid(&format!("{path}.models[{j}].context_length"), "must be at least 1"));
            }
            let mp = format!("{path}.models[{j}]");
            let capabilities = match &m.capabilities {
                Some(names) => capabilities(&format!("{mp}.capabilities"), names)?,
                None if dialect == Dialect::Anthropic => Capabilities::ANTHROPIC,
                None => Capabilities::OPENAI,
            };
            if dialect == Dialect::Anthropic
                && (capabilities.logprobs || capabilities.json_mode || capabilities.embeddings)
            {
                return Err(invalid(
                    &format!("{mp}.capabilities"),
                    "the Messages API has no logprobs, JSON mode or embeddings",
                ));
            }
            if m.max_output_tokens == Some(0) {
                return Err(invalid(&format!("{mp}.max_output_tokens"), "must be at least 1"));
            }
            if m.aliases.iter().any(|a| a.trim().is_empty() || *a == m.name) {
                return Err(invalid(&format!("{mp}.aliases"), "aliases must be non-empty and differ from the name"));
            }
            let price = match (m.input_per_million, m.output_per_million) {
                (None, None) => None,
                (Some(i), Some(o)) if i.is_finite() && i >= 0.0 && o.is_finite() && o >= 0.0 => {
                    Some(Price { input_per_million: i, output_per_million: o })
                }
                _ => {
                    return Err(invalid(
                        &format!("{mp}.input_per_million"),
                        "give both input_per_million and output_per_million, finite and not negative",
                    ))
                }
            };
            let context_length = m.context_length.unwrap_or(DEFAULT_REMOTE_CONTEXT);
            let card = ModelCard {
                name: m.name.clone(),
                context_length,
                max_output_tokens: m.max_output_tokens,
                capabilities,
                weight: m.weight.unwrap_or(1),
                aliases: m.aliases,
            };
            models.push(RemoteModel {
                upstream: m.upstream.unwrap_or_else(|| m.name.clone()),
                name: m.name,
                context_length,
                card,
                price,
            });
        }
        let queue = match (b.max_concurrency, b.max_queue, b.queue_timeout_ms) {
            (None, None, None) => None,
            (None, _, _) => return Err(invalid(&format!("{path}.max_concurrency"), "a queue needs max_concurrency")),
            (Some(0), _, _) => return Err(invalid(&format!("{path}.max_concurrency"), "must be at least 1")),
            (Some(n), queue, timeout) => Some(crate::queue::QueueConfig {
                max_concurrency: n,
                max_queue: queue.unwrap_or(0),
                timeout: ms(timeout, 30_000, "queue_timeout_ms")?,
            }),
        };
        let health_check_interval = match b.health_check_interval_ms {
            None => None,
            v => Some(ms(v, 0, "health_check_interval_ms")?),
        };
        out.push(BackendConfig {
            name: b.name,
            dialect,
            base_url,
            api_key,
            extra_roots,
            timeouts,
            queue,
            health_check_interval,
            passthrough: b.passthrough.unwrap_or(true),
            validate: b.validate.unwrap_or(true),
            models,
        });
    }
    Ok(out)
}

/// The certificates of a PEM file (at least one).
fn read_roots(file: &std::path::Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", file.display()));
    }
    Ok(certs)
}

/// A list of names from the config; `path` names it in errors.
fn capabilities(path: &str, names: &[String]) -> Result<Capabilities, ConfigError> {
    let mut c = Capabilities {
        chat: false,
        completions: false,
        streaming: false,
        json_mode: false,
        logprobs: false,
        tools: false,
        vision: false,
        embeddings: false,
        moderation: false,
    };
    for n in names {
        let flag = match n.as_str() {
            "chat" => &mut c.chat,
            "completions" => &mut c.completions,
            "streaming" => &mut c.streaming,
            "json_mode" => &mut c.json_mode,
            "logprobs" => &mut c.logprobs,
            "tools" => &mut c.tools,
            "vision" => &mut c.vision,
            "embeddings" => &mut c.embeddings,
            "moderation" => &mut c.moderation,
            other => return Err(invalid(path, format!("'{other}' is not one of {}", CAPABILITY_NAMES.join(", ")))),
        };
        *flag = true;
    }
    if !c.chat && !c.completions && !c.embeddings && !c.moderation {
        return Err(invalid(path, "list 'chat', 'completions', 'embeddings' or 'moderation'"));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_parse_by_name() {
        let c = capabilities("p", &["chat".into(), "json_mode".into()]);
        assert!(matches!(c, Ok(c) if c.chat && c.json_mode && !c.completions && !c.streaming));
        assert!(capabilities("p", &["telepathy".into()]).is_err());
        assert!(matches!(capabilities("p", &["chat".into(), "vision".into()]), Ok(c) if c.vision && !c.tools));
        assert!(capabilities("p", &["streaming".into()]).is_err(), "serves nothing");
    }
}
