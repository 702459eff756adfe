//! Step 8, the request queue: a backend with a concurrency limit and a
//! bounded wait queue. A request beyond both is refused at once (503 with
//! `Retry-After`; a route falls back to its next model); one that waits
//! past the queue timeout gets 504. A slot is held for the whole answer,
//! streams included, and freed when it ends or the client goes away.

use backend_api::{Backend, BackendError, GenerationStream, ModelInfo, ValidatedRequest};
use futures::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueConfig {
    pub max_concurrency: usize,
    pub max_queue: usize,
    pub timeout: Duration,
}

/// A queue's live counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct QueueStats {
    pub in_flight: AtomicU64,
    pub waiting: AtomicU64,
    pub rejected_full: AtomicU64,
    pub timed_out: AtomicU64,
    /// Requests that had to wait, and their summed wait, in microseconds.
    pub waited: AtomicU64,
    pub wait_micros: AtomicU64,
}

pub struct Queued {
    inner: Arc<dyn Backend>,
    config: QueueConfig,
    slots: Arc<Semaphore>,
    pub stats: Arc<QueueStats>,
}

impl Queued {
    pub fn new(inner: Arc<dyn Backend>, config: QueueConfig) -> Self {
        let slots = Arc::new(Semaphore::new(config.max_concurrency.max(1)));
        Queued { inner, config, slots, stats: Arc::default() }
    }
}

/// Holds the slot and the in-flight count for as long as the answer lives.
struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    stats: Arc<QueueStats>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl Backend for Queued {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn models(&self) -> Vec<ModelInfo> {
        self.inner.models()
    }

    fn count_prompt_tokens(&self, request: &ValidatedRequest) -> Result<u32, BackendError> {
        self.inner.count_prompt_tokens(request)
    }

    async fn generate(&self, request: ValidatedRequest) -> Result<GenerationStream, BackendError> {
        let s = &self.stats;
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if s.waiting.fetch_add(1, Ordering::SeqCst) >= self.config.max_queue as u64 {
                    s.waiting.fetch_sub(1, Ordering::SeqCst);
                    s.rejected_full.fetch_add(1, Ordering::Relaxed);
                    return Err(BackendError::Overloaded {
                        message: format!(
                            "backend '{}' is at its limit of {} requests with {} waiting",
                            self.inner.name(),
                            self.config.max_concurrency,
                            self.config.max_queue
                        ),
                        retry_after: None,
                    });
                }
                let started = Instant::now();
                let waited = tokio::time::timeout(self.config.timeout, self.slots.clone().acquire_owned()).await;
                s.waiting.fetch_sub(1, Ordering::SeqCst);
                s.waited.fetch_add(1, Ordering::Relaxed);
                s.wait_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                match waited {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => return Err(BackendError::Unavailable("the request queue is closed".into())),
                    Err(_) => {
                        s.timed_out.fetch_add(1, Ordering::Relaxed);
                        return Err(BackendError::Timeout(format!(
                            "waited {} ms in the queue of backend '{}'",
                            self.config.timeout.as_millis(),
                            self.inner.name()
                        )));
                    }
                }
            }
        };
        s.in_flight.fetch_add(1, Ordering::Relaxed);
        let slot = Slot { _permit: permit, stats: s.clone() };
        let stream = self.inner.generate(request).await?;
        // The slot lives inside the stream: freed when the answer ends or is dropped.
        Ok(stream
            .map(move |event| {
                let _held = &slot;
                event
            })
            .boxed())
    }

    async fn ready(&self) -> bool {
        self.inner.ready().await
    }
}
