//! The default store: counters in process memory, keys, spend and the
//! newest live-evaluation samples in an append-only file of JSON lines.
//!
//! Durability: every settled spend and every key change is written as a
//! whole line (`write(2)`) before the call returns, so once a response has
//! been recorded a `kill -9` of the process loses nothing (the kernel holds
//! the bytes). The file is fsync'ed at open and after compaction; surviving
//! a power cut between those is not promised. At open the file is
//! replayed; at open and while running, once it holds far more lines than
//! live records, it is rewritten as a snapshot (write, fsync, rename).
//!
//! The file is written by a thread of its own, never on the async
//! runtime's workers (a slow disk or a compaction's fsync must not stall
//! other requests): callers send their records and wait for the
//! acknowledgement; records that arrive together go out in one write.

use super::{
    slot_key, unix_ms, CounterSpec, CounterState, Period, Reservation, StateStore, StoreError, Ticket,
    EVAL_SAMPLES_KEPT,
};
use crate::policy::keys::KeyRecord;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::oneshot;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    /// Settled spend added to a window; `expires_ms` for windows that end.
    Spend { slot: String, amount: u64, expires_ms: Option<u64> },
    /// A key created or changed (the latest record of an id wins).
    Key(KeyRecord),
    /// A scored live-evaluation sample (the newest of each evaluation stay).
    EvalSample { eval: String, sample: serde_json::Value },
}

/// The newest samples of each live evaluation, oldest first.
#[derive(Default, Clone)]
struct Samples(HashMap<String, VecDeque<serde_json::Value>>);

impl Samples {
    fn put(&mut self, eval: &str, sample: serde_json::Value) {
        let kept = self.0.entry(eval.to_string()).or_default();
        if kept.len() >= EVAL_SAMPLES_KEPT {
            kept.pop_front();
        }
        kept.push_back(sample);
    }

    fn len(&self) -> usize {
        self.0.values().map(VecDeque::len).sum()
    }
}

#[derive(Default)]
struct Counters {
    /// Window key → (value, end of the window in Unix ms).
    values: HashMap<String, (u64, Option<u64>)>,
    ops: u64,
}

impl Counters {
    fn get(&self, slot: &str, now_ms: u64) -> u64 {
        match self.values.get(slot) {
            Some((v, end)) if end.is_none_or(|e| e > now_ms) => *v,
            _ => 0,
        }
    }

    fn add(&mut self, slot: &str, delta: i128, end: Option<u64>, now_ms: u64) {
        let current = self.get(slot, now_ms) as i128;
        let value = (current + delta).clamp(0, u64::MAX as i128) as u64;
        self.values.insert(slot.to_string(), (value, end));
        self.ops += 1;
        if self.ops.is_multiple_of(4096) {
            self.values.retain(|_, (_, end)| end.is_none_or(|e| e > now_ms));
        }
    }
}

#[derive(Default, Clone)]
struct Keys {
    by_hash: HashMap<String, KeyRecord>,
    hash_of_id: HashMap<String, String>,
}

impl Keys {
    fn put(&mut self, key: KeyRecord) {
        if let Some(old) = self.hash_of_id.insert(key.id.clone(), key.hash.clone()) {
            self.by_hash.remove(&old);
        }
        self.by_hash.insert(key.hash.clone(), key);
    }
}

pub struct EmbeddedStore {
    counters: Mutex<Counters>,
    /// Changed only by the writer thread when there is a file (so a
    /// compaction never snapshots the map without a record the old file had).
    keys: Arc<Mutex<Keys>>,
    /// Like `keys`, changed by the writer thread when there is a file.
    samples: Arc<Mutex<Samples>>,
    /// The writer thread's queue; `None`: memory only (tests, or no state
    /// path configured).
    writer: Option<mpsc::Sender<Batch>>,
    path: Option<PathBuf>,
}

/// Records to append, and who waits for them to be written.
struct Batch {
    records: Vec<Record>,
    done: oneshot::Sender<Result<(), String>>,
}

/// Most batches written together in one `write(2)`.
const GROUP_COMMIT: usize = 256;

/// The state file and what a snapshot of it would hold.
struct Log {
    file: File,
    path: PathBuf,
    /// Lines in the file.
    lines: usize,
    /// Settled spend per window slot (reservations in flight are not spend).
    spent: HashMap<String, (u64, Option<u64>)>,
    compact_slack: usize,
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

/// Rewrite the file as a snapshot once it holds this many more lines than
/// twice the snapshot's.
const COMPACT_SLACK: usize = 10_000;

impl EmbeddedStore {
    pub fn in_memory() -> Self {
        EmbeddedStore {
            counters: Mutex::default(),
            keys: Arc::default(),
            samples: Arc::default(),
            writer: None,
            path: None,
        }
    }

    /// Opens (or creates) the state file, replays it and compacts it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, COMPACT_SLACK)
    }

    fn open_with(path: &Path, compact_slack: usize) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| internal(format!("{}: {e}", dir.display())))?;
        }
        let mut counters = Counters::default();
        let mut keys = Keys::default();
        let mut samples = Samples::default();
        let mut lines = 0usize;
        let now = unix_ms();
        if path.exists() {
            let file = File::open(path).map_err(|e| internal(format!("{}: {e}", path.display())))?;
            for (n, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|e| internal(format!("{}: {e}", path.display())))?;
                if line.trim().is_empty() {
                    continue;
                }
                lines += 1;
                match serde_json::from_str::<Record>(&line) {
                    Ok(Record::Spend { slot, amount, expires_ms }) => {
                        counters.add(&slot, i128::from(amount), expires_ms, now)
                    }
                    Ok(Record::Key(k)) => keys.put(k),
                    Ok(Record::EvalSample { eval, sample }) => samples.put(&eval, sample),
                    // A torn last line (killed mid-write) is skipped; it was never acknowledged.
                    Err(e) => {
                        tracing::warn!(file = %path.display(), line = n + 1, error = %e, "skipping unreadable state record")
                    }
                }
            }
        }
        counters.values.retain(|_, (_, end)| end.is_none_or(|e| e > now));
        // At open, every counter is replayed spend.
        let spent = counters.values.clone();
        let live = spent.len() + keys.by_hash.len() + samples.len();
        if lines > 2 * live + compact_slack {
            write_snapshot(path, &spent, &keys, &samples)?;
            lines = live;
        }
        let mut file = open_append(path)?;
        if !ends_with_newline(path)? {
            // A torn last line: end it, so the next record starts on its own line.
            file.write_all(b"\n").map_err(internal)?;
        }
        file.sync_all().map_err(internal)?;
        let log = Log { file, path: path.to_path_buf(), lines, spent, compact_slack };
        let keys = Arc::new(Mutex::new(keys));
        let samples = Arc::new(Mutex::new(samples));
        let (tx, rx) = mpsc::channel();
        let kept = Kept { keys: keys.clone(), samples: samples.clone() };
        std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || write_loop(log, &kept, &rx))
            .map_err(|e| internal(format!("starting the state writer: {e}")))?;
        Ok(EmbeddedStore {
            counters: Mutex::new(counters),
            keys,
            samples,
            writer: Some(tx),
            path: Some(path.to_path_buf()),
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Appends records through the writer thread; returns once written.
    async fn append(&self, writer: &mpsc::Sender<Batch>, records: Vec<Record>) -> Result<(), StoreError> {
        let (done, written) = oneshot::channel();
        writer.send(Batch { records, done }).map_err(|_| internal("the state writer stopped"))?;
        written.await.map_err(|_| internal("the state writer stopped"))?.map_err(internal)
    }

    fn lock_counters(&self) -> Result<std::sync::MutexGuard<'_, Counters>, StoreError> {
        self.counters.lock().map_err(|_| internal("counter lock poisoned"))
    }

    fn lock_keys(&self) -> Result<std::sync::MutexGuard<'_, Keys>, StoreError> {
        self.keys.lock().map_err(|_| internal("key lock poisoned"))
    }

    fn lock_samples(&self) -> Result<std::sync::MutexGuard<'_, Samples>, StoreError> {
        self.samples.lock().map_err(|_| internal("sample lock poisoned"))
    }
}

/// What the writer thread applies records to.
struct Kept {
    keys: Arc<Mutex<Keys>>,
    samples: Arc<Mutex<Samples>>,
}

/// The writer thread: appends each arriving batch (with whatever else is
/// queued, in one write), applies its key changes and spend, compacts when
/// due, then acknowledges. Ends when the store is dropped.
fn write_loop(mut log: Log, kept: &Kept, rx: &mpsc::Receiver<Batch>) {
    while let Ok(first) = rx.recv() {
        let mut batches = vec![first];
        while batches.len() < GROUP_COMMIT {
            match rx.try_recv() {
                Ok(b) => batches.push(b),
                Err(_) => break,
            }
        }
        let records: Vec<&Record> = batches.iter().flat_map(|b| &b.records).collect();
        let result = write_records(&mut log, &records).map_err(|e| e.to_string());
        if result.is_ok() {
            apply(&mut log, kept, &records);
            maybe_compact(&mut log, kept);
        }
        for b in batches {
            // A caller that went away needs no answer.
            let _ = b.done.send(result.clone());
        }
    }
}

/// What written records change: settled spend, and key records (the
/// latest of an id wins).
fn apply(log: &mut Log, kept: &Kept, records: &[&Record]) {
    for r in records {
        match r {
            Record::Spend { slot, amount, expires_ms } => {
                let entry = log.spent.entry(slot.clone()).or_insert((0, *expires_ms));
                entry.0 += amount;
            }
            Record::Key(k) => match kept.keys.lock() {
                Ok(mut keys) => keys.put(k.clone()),
                Err(_) => tracing::error!("key lock poisoned: a written key record is not applied until restart"),
            },
            Record::EvalSample { eval, sample } => match kept.samples.lock() {
                Ok(mut samples) => samples.put(eval, sample.clone()),
                Err(_) => tracing::error!("sample lock poisoned: a written sample is not kept until restart"),
            },
        }
    }
}

/// Rewrites the file as a snapshot once it has grown well past one.
/// A failure is logged and the file kept: appending still works.
fn maybe_compact(log: &mut Log, kept: &Kept) {
    let now = unix_ms();
    log.spent.retain(|_, (_, end)| end.is_none_or(|e| e > now));
    // Copied under the locks, written without them: requests that look up
    // a key must not wait for the snapshot's write and fsync. Only this
    // thread changes them while there is a file, so the copy stays current.
    let (keys, samples, live) = {
        let (Ok(keys), Ok(samples)) = (kept.keys.lock(), kept.samples.lock()) else { return };
        let live = log.spent.len() + keys.by_hash.len() + samples.len();
        if log.lines <= 2 * live + log.compact_slack {
            return;
        }
        (keys.clone(), samples.clone(), live)
    };
    let result = write_snapshot(&log.path, &log.spent, &keys, &samples).and_then(|()| open_append(&log.path));
    match result {
        Ok(file) => {
            log.file = file;
            log.lines = live;
        }
        Err(e) => tracing::error!(file = %log.path.display(), error = %e, "state file compaction failed"),
    }
}

fn ends_with_newline(path: &Path) -> Result<bool, StoreError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path).map_err(internal)?;
    let len = f.metadata().map_err(internal)?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::End(-1)).and_then(|_| f.read_exact(&mut last)).map_err(internal)?;
    Ok(last[0] == b'\n')
}

fn open_append(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new().create(true).append(true).open(path).map_err(|e| internal(format!("{}: {e}", path.display())))
}

/// The thread that last wrote the file (tests check it is the writer's).
#[cfg(test)]
static LAST_WRITER: Mutex<Option<String>> = Mutex::new(None);

fn write_records(log: &mut Log, records: &[&Record]) -> Result<(), StoreError> {
    #[cfg(test)]
    if let Ok(mut w) = LAST_WRITER.lock() {
        *w = std::thread::current().name().map(str::to_string);
    }
    let mut buf = Vec::new();
    for r in records {
        serde_json::to_writer(&mut buf, r).map_err(internal)?;
        buf.push(b'\n');
    }
    log.file.write_all(&buf).map_err(|e| internal(format!("writing the state file: {e}")))?;
    log.lines += records.len();
    Ok(())
}

fn write_snapshot(
    path: &Path,
    spent: &HashMap<String, (u64, Option<u64>)>,
    keys: &Keys,
    samples: &Samples,
) -> Result<(), StoreError> {
    let tmp = path.with_extension("compacting");
    let mut out = Vec::new();
    for k in keys.by_hash.values() {
        serde_json::to_writer(&mut out, &Record::Key(k.clone())).map_err(internal)?;
        out.push(b'\n');
    }
    for (eval, kept) in &samples.0 {
        for sample in kept {
            let r = Record::EvalSample { eval: eval.clone(), sample: sample.clone() };
            serde_json::to_writer(&mut out, &r).map_err(internal)?;
            out.push(b'\n');
        }
    }
    for (slot, (amount, end)) in spent {
        let r = Record::Spend { slot: slot.clone(), amount: *amount, expires_ms: *end };
        serde_json::to_writer(&mut out, &r).map_err(internal)?;
        out.push(b'\n');
    }
    let mut f = File::create(&tmp).map_err(|e| internal(format!("{}: {e}", tmp.display())))?;
    f.write_all(&out).map_err(internal)?;
    f.sync_all().map_err(internal)?;
    std::fs::rename(&tmp, path).map_err(internal)?;
    let records = keys.by_hash.len() + spent.len() + samples.len();
    tracing::info!(file = %path.display(), records, "state file compacted");
    Ok(())
}

/// End of the window of a slot, in Unix ms.
fn window_end(period: &Period, now_ms: u64, reset_ms: Option<u64>) -> Option<u64> {
    match period {
        Period::Seconds(_) => reset_ms.map(|r| now_ms + r),
        Period::Named(_) | Period::Total => None,
    }
}

#[async_trait::async_trait]
impl StateStore for EmbeddedStore {
    async fn reserve(&self, specs: &[CounterSpec]) -> Result<Reservation, StoreError> {
        let now = unix_ms();
        let mut counters = self.lock_counters()?;
        let mut slots = Vec::with_capacity(specs.len());
        let mut states = Vec::with_capacity(specs.len());
        let mut denied = None;
        for (i, spec) in specs.iter().enumerate() {
            let (slot, reset_ms) = slot_key(&spec.name, &spec.period, now);
            let used = counters.get(&slot, now);
            if denied.is_none() && used.saturating_add(spec.amount) > spec.limit {
                denied = Some(i);
            }
            states.push(CounterState { limit: spec.limit, used, reset_ms });
            slots.push((slot, window_end(&spec.period, now, reset_ms)));
        }
        if let Some(index) = denied {
            return Ok(Reservation::Denied { index, states });
        }
        let mut ticket = Ticket { slots: Vec::with_capacity(specs.len()) };
        for ((spec, (slot, end)), state) in specs.iter().zip(slots).zip(states.iter_mut()) {
            counters.add(&slot, i128::from(spec.amount), end, now);
            state.used += spec.amount;
            ticket.slots.push((slot, spec.amount, spec.durable));
        }
        Ok(Reservation::Admitted { ticket, states })
    }

    async fn settle(&self, ticket: &Ticket, actual: &[u64]) -> Result<(), StoreError> {
        let now = unix_ms();
        let mut records = Vec::new();
        {
            let mut counters = self.lock_counters()?;
            for ((slot, reserved, durable), actual) in ticket.slots.iter().zip(actual) {
                let Some(&(_, end)) = counters.values.get(slot) else { continue };
                if end.is_some_and(|e| e <= now) {
                    continue;
                }
                counters.add(slot, i128::from(*actual) - i128::from(*reserved), end, now);
                if *durable && *actual > 0 {
                    records.push(Record::Spend { slot: slot.clone(), amount: *actual, expires_ms: end });
                }
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        match &self.writer {
            Some(w) => self.append(w, records).await,
            None => Ok(()),
        }
    }

    async fn read(&self, name: &str, period: &Period) -> Result<u64, StoreError> {
        let now = unix_ms();
        let (slot, _) = slot_key(name, period, now);
        Ok(self.lock_counters()?.get(&slot, now))
    }

    async fn put_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        match &self.writer {
            // Written, then applied by the writer (see `keys`).
            Some(w) => self.append(w, vec![Record::Key(key.clone())]).await,
            None => {
                self.lock_keys()?.put(key.clone());
                Ok(())
            }
        }
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.lock_keys()?.by_hash.get(hash).cloned())
    }

    async fn key_by_id(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let keys = self.lock_keys()?;
        Ok(keys.hash_of_id.get(id).and_then(|h| keys.by_hash.get(h)).cloned())
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut all: Vec<KeyRecord> = self.lock_keys()?.by_hash.values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    async fn put_eval_sample(&self, eval: &str, sample: &serde_json::Value) -> Result<(), StoreError> {
        match &self.writer {
            Some(w) => {
                self.append(w, vec![Record::EvalSample { eval: eval.to_string(), sample: sample.clone() }]).await
            }
            None => {
                self.lock_samples()?.put(eval, sample.clone());
                Ok(())
            }
        }
    }

    async fn eval_samples(&self, eval: &str, limit: usize) -> Result<Vec<serde_json::Value>, StoreError> {
        let samples = self.lock_samples()?;
        Ok(samples.0.get(eval).map(|k| k.iter().rev().take(limit).cloned().collect()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_is_compacted_while_running_and_loses_nothing() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(internal)?;
        let path = dir.path().join("state.log");
        let s = EmbeddedStore::open_with(&path, 20)?;
        for i in 0..200u64 {
            let specs = [spec("spend", 1 << 40, 100, true), spec("req", 1 << 40, 1, false)];
            let Reservation::Admitted { ticket, .. } = s.reserve(&specs).await? else { panic!("denied") };
            s.settle(&ticket, &[i, 1]).await?;
        }
        // Reserved, in flight: must not become spend in a snapshot.
        s.reserve(&[spec("spend", 1 << 40, 5000, true)]).await?;
        let lines = std::fs::read_to_string(&path).map_err(internal)?.lines().count();
        assert!(lines < 60, "{lines} lines: never compacted");
        drop(s);
        let reopened = EmbeddedStore::open(&path)?;
        assert_eq!(reopened.read("spend", &Period::Total).await?, (0..200).sum::<u64>());
        assert_eq!(reopened.read("req", &Period::Seconds(60)).await?, 0, "rate counters are not persisted");
        Ok(())
    }

    #[tokio::test]
    async fn eval_samples_survive_a_restart_and_only_the_newest_stay() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(internal)?;
        let path = dir.path().join("state.log");
        let s = EmbeddedStore::open_with(&path, 50)?;
        for i in 0..EVAL_SAMPLES_KEPT + 5 {
            s.put_eval_sample("e", &serde_json::json!({"n": i})).await?;
        }
        s.put_eval_sample("other", &serde_json::json!({"n": 0})).await?;
        let newest = s.eval_samples("e", 2).await?;
        assert_eq!(
            newest,
            vec![serde_json::json!({"n": EVAL_SAMPLES_KEPT + 4}), serde_json::json!({"n": EVAL_SAMPLES_KEPT + 3})]
        );
        drop(s);
        let reopened = EmbeddedStore::open(&path)?;
        let all = reopened.eval_samples("e", usize::MAX).await?;
        assert_eq!(all.len(), EVAL_SAMPLES_KEPT, "capped, across the compactions");
        assert_eq!(all.last(), Some(&serde_json::json!({"n": 5})), "the oldest were dropped");
        assert_eq!(reopened.eval_samples("other", 10).await?.len(), 1);
        assert!(reopened.eval_samples("none", 10).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn the_file_is_written_by_its_own_thread_not_the_runtime_s() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(internal)?;
        let path = dir.path().join("state.log");
        let s = EmbeddedStore::open(&path)?;
        let Reservation::Admitted { ticket, .. } = s.reserve(&[spec("spend", 100, 10, true)]).await? else {
            panic!("denied")
        };
        s.settle(&ticket, &[7]).await?;
        let writer = LAST_WRITER.lock().map_err(internal)?.clone();
        assert_eq!(writer.as_deref(), Some("state-writer"));
        // Acknowledged means written: the line is in the file already.
        assert!(std::fs::read_to_string(&path).map_err(internal)?.contains("\"amount\":7"));
        Ok(())
    }

    fn spec(name: &str, limit: u64, amount: u64, durable: bool) -> CounterSpec {
        let period = if durable { Period::Total } else { Period::Seconds(60) };
        CounterSpec { name: name.into(), period, limit, amount, durable }
    }

    #[tokio::test]
    async fn reserve_is_all_or_nothing_and_settle_reconciles() -> Result<(), StoreError> {
        let s = EmbeddedStore::in_memory();
        let specs = [spec("req", 2, 1, false), spec("tok", 100, 60, false)];
        let Reservation::Admitted { ticket, states } = s.reserve(&specs).await? else { panic!("denied") };
        assert_eq!(states[1].used, 60);
        // Tokens would overflow: nothing at all is reserved, requests included.
        let Reservation::Denied { index, .. } = s.reserve(&specs).await? else { panic!("admitted") };
        assert_eq!(index, 1);
        assert_eq!(s.read("req", &Period::Seconds(60)).await?, 1);
        // It used 20 of the 60 reserved: the difference is free again.
        s.settle(&ticket, &[1, 20]).await?;
        assert_eq!(s.read("tok", &Period::Seconds(60)).await?, 20);
        assert!(matches!(s.reserve(&specs).await?, Reservation::Admitted { .. }));
        assert!(matches!(s.reserve(&specs).await?, Reservation::Denied { index: 0, .. }));
        Ok(())
    }

    #[tokio::test]
    async fn spend_and_keys_survive_reopening() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(internal)?;
        let path = dir.path().join("state.log");
        {
            let s = EmbeddedStore::open(&path)?;
            for _ in 0..3 {
                let Reservation::Admitted { ticket, .. } = s.reserve(&[spec("spend", 1000, 100, true)]).await? else {
                    panic!("denied")
                };
                s.settle(&ticket, &[7]).await?;
            }
            // Reserved but never settled (in flight at the crash): not spend.
            s.reserve(&[spec("spend", 1000, 100, true)]).await?;
            let key = KeyRecord {
                id: "a".into(),
                hash: "h".into(),
                hint: "sy-…".into(),
                user: None,
                models: None,
                limits: Default::default(),
                metadata: Default::default(),
                cache_isolation: Default::default(),
                cache_scope: None,
                created: 1,
                revoked: false,
            };
            s.put_key(&key).await?;
            s.put_key(&KeyRecord { revoked: true, ..key }).await?;
        }
        // A torn line at the end (a write cut by a crash) is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"spend\":{\"slo"))
            .map_err(internal)?;
        let s = EmbeddedStore::open(&path)?;
        assert_eq!(s.read("spend", &Period::Total).await?, 21);
        assert_eq!(s.key_by_id("a").await?.map(|k| k.revoked), Some(true));
        assert_eq!(s.list_keys().await?.len(), 1);
        // Records written after the torn line are read back too.
        let Reservation::Admitted { ticket, .. } = s.reserve(&[spec("spend", 1000, 100, true)]).await? else {
            panic!("denied")
        };
        s.settle(&ticket, &[9]).await?;
        drop(s);
        assert_eq!(EmbeddedStore::open(&path)?.read("spend", &Period::Total).await?, 30);
        Ok(())
    }
}
