//! The HTTP handlers that are not dialects of the generation API: model
//! list, health, metrics, admin.

pub mod admin;
pub mod health;
pub mod metrics;
pub mod models;
