//! A remote backend's settings (validated from `[[backends]]` by
//! `config::backends`): where the server is, how to authenticate to it,
//! how long to wait, and which of its models are served under which names.

use crate::policy::pricing::Price;
use crate::registry::ModelCard;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    pub name: String,
    pub dialect: Dialect,
    /// Scheme, host, port and path prefix, without a trailing slash.
    pub base_url: String,
    /// The key itself, read from `api_key_env` (never logged).
    pub api_key: Option<String>,
    /// Certificate authorities trusted beside the system's (from `ca_file`).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub timeouts: Timeouts,
    pub queue: Option<crate::queue::QueueConfig>,
    pub health_check_interval: Option<Duration>,
    /// Relay an OpenAI-compatible upstream's stream chunks unchanged.
    pub passthrough: bool,
    /// Check `json_schema` answers against their schema before returning them.
    pub validate: bool,
    pub models: Vec<RemoteModel>,
}

/// The API a remote server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    /// Anthropic's Messages API (`/messages`, `x-api-key`, named stream events).
    Anthropic,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Until the response headers arrive.
    pub first_byte: Duration,
    /// The whole response, streams included.
    pub total: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoteModel {
    pub name: String,
    pub upstream: String,
    pub context_length: u32,
    /// Its entry in the model registry.
    pub card: ModelCard,
    pub price: Option<Price>,
}

/// A context length for remote models that do not state one.
pub const DEFAULT_REMOTE_CONTEXT: u32 = 8192;
