//! Active health probes: every `health_check_interval_ms`, ask a remote
//! server for its model list. A server that does not answer with 2xx has
//! its models' circuits opened at once (requests go to healthy models
//! without first failing on it); when it answers again, the circuits the
//! probe opened close.

use super::openai::OpenAiBackend;
use crate::health::Health;
use backend_api::Backend;
use std::sync::Arc;
use std::time::Duration;

pub fn spawn(backend: Arc<OpenAiBackend>, every: Duration, health: Arc<Health>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::error!(backend = backend.name(), "no runtime to run health probes on");
        return;
    };
    rt.spawn(async move {
        let models: Vec<String> = backend.models().into_iter().map(|m| m.id).collect();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_ok = true;
        loop {
            tick.tick().await;
            let outcome = backend.probe().await;
            if let Err(e) = &outcome {
                if was_ok {
                    tracing::warn!(backend = backend.name(), error = %e, "health probe failed");
                }
            }
            was_ok = outcome.is_ok();
            for m in &models {
                health.probe(m, was_ok);
            }
        }
    });
}
