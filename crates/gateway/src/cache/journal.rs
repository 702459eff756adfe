//! What one replica tells the others (and its own next start): an entry
//! stored with its question's embedding, an entry deleted, a purge. The
//! records go to a Redis Stream, which every replica reads from its start
//! (catching up after a restart) and then follows; or, without Redis, to an
//! append-only file read back at start and rewritten without what expired.

use super::entry::Entry;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Record {
    Put {
        exact: String,
        partition: Option<String>,
        question: String,
        /// Empty when the entry has no semantic side.
        vector: Vec<f32>,
        entry: Box<Entry>,
    },
    Delete {
        id: String,
    },
    Purge(Purge),
}

/// Which entries a purge removes (every field given must match; none given: all).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Purge {
    pub model: Option<String>,
    pub tenant: Option<String>,
    pub namespace: Option<String>,
}

impl Purge {
    pub fn matches(&self, e: &Entry) -> bool {
        self.model.as_ref().is_none_or(|m| *m == e.model || e.served_by.as_ref() == Some(m))
            && self.tenant.as_ref().is_none_or(|t| *t == e.tenant)
            && self.namespace.as_ref().is_none_or(|n| e.namespace.as_ref() == Some(n))
    }
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        lz4_flex::compress_prepend_size(&serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let json = lz4_flex::decompress_size_prepended(bytes).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// The file journal: length-prefixed records.
pub struct FileJournal {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl FileJournal {
    /// Reads every record, keeps those still live (`live`), rewrites the
    /// file with them and opens it for appending.
    pub fn open(path: &Path, live: impl Fn(&Record) -> bool) -> std::io::Result<(FileJournal, Vec<Record>)> {
        let records = match std::fs::File::open(path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)?;
                read_frames(&bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let kept: Vec<Record> = records.into_iter().filter(|r| live(r)).collect();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            for r in &kept {
                f.write_all(&frame(r))?;
            }
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok((FileJournal { path: path.to_path_buf(), file: Mutex::new(file) }, kept))
    }

    pub fn append(&self, r: &Record) {
        let Ok(mut f) = self.file.lock() else { return };
        if let Err(e) = f.write_all(&frame(r)) {
            tracing::error!(error = %e, path = %self.path.display(), "could not append to the cache journal");
        }
    }
}

fn frame(r: &Record) -> Vec<u8> {
    let body = r.encode();
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The records of a journal file; a torn last frame (a crash mid-write) is dropped.
fn read_frames(mut bytes: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let n = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let Some(body) = bytes.get(4..4 + n) else { break };
        if let Some(r) = Record::decode(body) {
            out.push(r);
        }
        bytes = &bytes[4 + n..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::Finish;

    fn entry(id: &str, expires_ms: u64) -> Entry {
        Entry {
            id: id.into(),
            model: "m".into(),
            served_by: None,
            tenant: "global".into(),
            namespace: Some("ns".into()),
            created_ms: 0,
            expires_ms,
            text: "t".into(),
            tool_calls: Vec::new(),
            finish: Finish::Stop,
            prompt_tokens: 1,
            completion_tokens: 1,
        }
    }

    fn put(id: &str, expires_ms: u64) -> Record {
        Record::Put {
            exact: id.into(),
            partition: Some("p".into()),
            question: "q".into(),
            vector: vec![0.5, 0.5],
            entry: Box::new(entry(id, expires_ms)),
        }
    }

    #[test]
    fn a_file_journal_keeps_what_lives_across_opens() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("cache.log");
        let (j, old) = FileJournal::open(&path, |_| true)?;
        assert!(old.is_empty());
        j.append(&put("a", u64::MAX));
        j.append(&put("b", 1));
        j.append(&Record::Delete { id: "a".into() });
        drop(j);
        // A torn frame at the end is ignored.
        std::fs::OpenOptions::new().append(true).open(&path)?.write_all(&[9, 0, 0, 0, 1])?;
        let live = |r: &Record| !matches!(r, Record::Put { entry, .. } if entry.expired(10));
        let (_j, records) = FileJournal::open(&path, live)?;
        assert_eq!(records, vec![put("a", u64::MAX), Record::Delete { id: "a".into() }]);
        Ok(())
    }

    #[test]
    fn a_purge_matches_every_field_it_names() {
        let e = entry("a", 1);
        assert!(Purge::default().matches(&e));
        assert!(Purge { model: Some("m".into()), ..Default::default() }.matches(&e));
        assert!(!Purge { model: Some("x".into()), ..Default::default() }.matches(&e));
        assert!(Purge { namespace: Some("ns".into()), tenant: Some("global".into()), ..Default::default() }.matches(&e));
        assert!(!Purge { tenant: Some("key:k".into()), ..Default::default() }.matches(&e));
    }
}
