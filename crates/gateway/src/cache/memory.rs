//! L1: entries in this process, bounded by bytes, each expiring at its own
//! time (moka: concurrent, TinyLFU admission, per-entry expiry).

use super::entry::Entry;
use moka::sync::Cache;
use moka::Expiry;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Memory {
    entries: Cache<String, Arc<Entry>>,
}

struct UntilExpiry;

impl Expiry<String, Arc<Entry>> for UntilExpiry {
    fn expire_after_create(&self, _key: &String, value: &Arc<Entry>, _now: Instant) -> Option<Duration> {
        Some(Duration::from_millis(value.expires_ms.saturating_sub(crate::store::unix_ms())))
    }
}

impl Memory {
    pub fn new(max_bytes: u64) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &String, v: &Arc<Entry>| v.weight().saturating_add(k.len() as u32))
            .expire_after(UntilExpiry)
            .support_invalidation_closures()
            .build();
        Memory { entries }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.entries.get(key).filter(|e| !e.expired(crate::store::unix_ms()))
    }

    pub fn put(&self, key: String, entry: Arc<Entry>) {
        self.entries.insert(key, entry);
    }

    /// Drops every entry `matches` selects (takes effect for lookups at once).
    pub fn remove_if(&self, matches: impl Fn(&Entry) -> bool + Send + Sync + 'static) {
        if let Err(e) = self.entries.invalidate_entries_if(move |_, v| matches(v)) {
            tracing::error!(error = %e, "could not purge the in-process cache tier");
        }
    }

    /// (entries, bytes), after pending maintenance.
    pub fn size(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }
}
