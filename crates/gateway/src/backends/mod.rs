//! Remote backends: models served by another server, reached over HTTP.
//!
//! - `config`: `[[backends]]` in the config file, parsed then validated;
//! - `openai`: any OpenAI-compatible server (vLLM, llama.cpp's server,
//!   Ollama, OpenAI itself), or Anthropic's Messages API, as a `Backend`;
//! - `embeddings`: an OpenAI-compatible server's embedding models;
//! - `probe`: active health checks on an interval;
//! - `translate`: the internal request as an upstream's JSON body;
//! - `whole`: a non-streamed answer read as events;
//! - `schema_check`: `json_schema` answers validated before they are returned;
//! - `sse`: reading a server-sent-event stream line by line.

pub mod config;
pub mod embeddings;
pub mod moderations;
pub mod openai;
pub mod probe;
pub mod schema_check;
pub mod sse;
pub mod translate;
pub mod whole;
