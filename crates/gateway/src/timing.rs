//! Where a request's time went: the gateway's own share (before the backend
//! starts, and after its last event) versus the backend's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub struct RequestTiming {
    start: Instant,
    /// Nanoseconds after `start`; 0 = not yet.
    backend_start: AtomicU64,
    backend_end: AtomicU64,
    model: Mutex<Option<String>>,
}

impl Default for RequestTiming {
    fn default() -> Self {
        RequestTiming {
            start: Instant::now(),
            backend_start: AtomicU64::new(0),
            backend_end: AtomicU64::new(0),
            model: Mutex::new(None),
        }
    }
}

impl RequestTiming {
    fn now(&self) -> u64 {
        (self.start.elapsed().as_nanos() as u64).max(1)
    }

    pub fn backend_started(&self) {
        self.backend_start.store(self.now(), Ordering::Relaxed);
    }

    pub fn backend_finished(&self) {
        self.backend_end.store(self.now(), Ordering::Relaxed);
    }

    pub fn set_model(&self, model: &str) {
        if let Ok(mut m) = self.model.lock() {
            *m = Some(model.to_string());
        }
    }

    pub fn model(&self) -> Option<String> {
        self.model.lock().ok().and_then(|m| m.clone())
    }

    /// (total, gateway overhead) in seconds, as of now.
    pub fn split(&self) -> (f64, f64) {
        let total = self.now();
        let (start, end) = (self.backend_start.load(Ordering::Relaxed), self.backend_end.load(Ordering::Relaxed));
        let backend = match (start, end) {
            (0, _) => 0,
            // Started but never finished (client gone, failure): the backend had the rest.
            (s, 0) => total - s.min(total),
            (s, e) => e.saturating_sub(s),
        };
        (total as f64 * 1e-9, total.saturating_sub(backend) as f64 * 1e-9)
    }
}
