//! Embedded result store for local mode: the same semantics as the Redis store,
//! in process memory, with every mutation appended to a journal file so that an
//! interrupted local run (Ctrl-C) resumes where it stopped.
//!
//! The journal is a sequence of length-prefixed bincode records. A torn last
//! record (the process died mid-write) is ignored on replay: its mutation was
//! never acknowledged to anyone, so the job it belonged to simply runs again.

use super::{CommitOutcome, ResultStore, RunMeta, RunState, StageProgress, StoreError};
use crate::ids::{JobId, RunId};
use crate::stage::Stage;
use crate::wire::{decode_value, encode_value};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Record {
    Meta(RunId, RunMeta),
    State(RunId, RunState),
    Expect(RunId, Stage, Vec<JobId>),
    Commit(RunId, Stage, JobId, Vec<u8>),
    Failure(RunId, Stage, JobId, String),
    ClearFailures(RunId, Stage),
    Execution(RunId, JobId),
}

#[derive(Default)]
struct RunData {
    meta: Option<RunMeta>,
    expected: HashMap<Stage, BTreeSet<JobId>>,
    done: HashMap<Stage, BTreeSet<JobId>>,
    failed: HashMap<Stage, BTreeMap<JobId, String>>,
    results: HashMap<JobId, Vec<u8>>,
    executions: BTreeMap<JobId, u64>,
}

#[derive(Default)]
struct Data {
    runs: HashMap<RunId, RunData>,
}

impl Data {
    /// Applies a record; returns whether it changed anything (so only real
    /// changes reach the journal).
    fn apply(&mut self, r: &Record) -> bool {
        match r {
            Record::Meta(run, m) => {
                self.runs.entry(run.clone()).or_default().meta = Some(m.clone());
                true
            }
            Record::State(run, s) => {
                let d = self.runs.entry(run.clone()).or_default();
                match &mut d.meta {
                    Some(m) => m.state = *s,
                    None => d.meta = Some(RunMeta { state: *s, spec_digest: String::new() }),
                }
                true
            }
            Record::Expect(run, stage, ids) => {
                let set = self.runs.entry(run.clone()).or_default().expected.entry(*stage).or_default();
                let before = set.len();
                set.extend(ids.iter().cloned());
                set.len() != before
            }
            Record::Commit(run, stage, id, bytes) => {
                let d = self.runs.entry(run.clone()).or_default();
                if !d.done.entry(*stage).or_default().insert(id.clone()) {
                    return false;
                }
                d.results.insert(id.clone(), bytes.clone());
                if let Some(f) = d.failed.get_mut(stage) {
                    f.remove(id);
                }
                true
            }
            Record::Failure(run, stage, id, reason) => {
                let d = self.runs.entry(run.clone()).or_default();
                if d.done.get(stage).is_some_and(|s| s.contains(id)) {
                    return false;
                }
                d.failed.entry(*stage).or_default().insert(id.clone(), reason.clone());
                true
            }
            Record::ClearFailures(run, stage) => {
                self.runs.entry(run.clone()).or_default().failed.remove(stage);
                true
            }
            Record::Execution(run, id) => {
                *self.runs.entry(run.clone()).or_default().executions.entry(id.clone()).or_default() += 1;
                true
            }
        }
    }
}

pub struct EmbeddedStore {
    data: Mutex<Data>,
    journal: Option<Mutex<File>>,
    path: Option<PathBuf>,
}

fn io_err(op: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Operation { op, reason: e.to_string() }
}

impl EmbeddedStore {
    /// A store that lives only in memory (tests, throwaway runs).
    pub fn in_memory() -> Self {
        EmbeddedStore { data: Mutex::default(), journal: None, path: None }
    }

    /// Opens (or creates) the journal at `path` and replays it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_err("create the store folder", e))?;
        }
        let mut data = Data::default();
        let mut valid_len = 0u64;
        if let Ok(mut f) = File::open(path) {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).map_err(|e| io_err("read the journal", e))?;
            let mut pos = 0usize;
            while pos + 4 <= buf.len() {
                let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
                if pos + 4 + len > buf.len() {
                    break; // torn tail
                }
                let rec: Record = decode_value(&buf[pos + 4..pos + 4 + len]).map_err(|e| StoreError::Corrupt {
                    key: format!("{} at byte {pos}", path.display()),
                    reason: format!("{e}; move the file away to start the local run afresh"),
                })?;
                data.apply(&rec);
                pos += 4 + len;
            }
            valid_len = pos as u64;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io_err("open the journal for appending", e))?;
        // Drop a torn tail so new records follow the last whole one.
        file.set_len(valid_len).map_err(|e| io_err("truncate a torn journal tail", e))?;
        Ok(EmbeddedStore { data: Mutex::new(data), journal: Some(Mutex::new(file)), path: Some(path.to_path_buf()) })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn write(&self, rec: Record) -> Result<bool, StoreError> {
        let mut data = self.data.lock().unwrap();
        let changed = data.apply(&rec);
        if changed {
            if let Some(j) = &self.journal {
                let body = encode_value(&rec).map_err(|e| io_err("encode a journal record", e))?;
                let mut framed = (body.len() as u32).to_le_bytes().to_vec();
                framed.extend_from_slice(&body);
                let mut f = j.lock().unwrap();
                f.write_all(&framed).map_err(|e| io_err("append to the journal", e))?;
                f.sync_data().map_err(|e| io_err("sync the journal", e))?;
            }
        }
        Ok(changed)
    }

    fn read<T>(&self, run: &RunId, f: impl FnOnce(&RunData) -> T) -> T
    where
        T: Default,
    {
        let data = self.data.lock().unwrap();
        data.runs.get(run).map(f).unwrap_or_default()
    }
}

#[async_trait]
impl ResultStore for EmbeddedStore {
    async fn put_meta(&self, run: &RunId, meta: &RunMeta) -> Result<(), StoreError> {
        self.write(Record::Meta(run.clone(), meta.clone())).map(|_| ())
    }
    async fn meta(&self, run: &RunId) -> Result<Option<RunMeta>, StoreError> {
        Ok(self.read(run, |d| d.meta.clone()))
    }
    async fn set_state(&self, run: &RunId, state: RunState) -> Result<(), StoreError> {
        self.write(Record::State(run.clone(), state)).map(|_| ())
    }
    async fn expect(&self, run: &RunId, stage: Stage, jobs: &[JobId]) -> Result<(), StoreError> {
        self.write(Record::Expect(run.clone(), stage, jobs.to_vec())).map(|_| ())
    }
    async fn expected(&self, run: &RunId, stage: Stage) -> Result<Vec<JobId>, StoreError> {
        Ok(self.read(run, |d| d.expected.get(&stage).map(|s| s.iter().cloned().collect()).unwrap_or_default()))
    }
    async fn commit(&self, run: &RunId, stage: Stage, job: &JobId, result: &[u8]) -> Result<CommitOutcome, StoreError> {
        let changed = self.write(Record::Commit(run.clone(), stage, job.clone(), result.to_vec()))?;
        Ok(if changed { CommitOutcome::Committed } else { CommitOutcome::Duplicate })
    }
    async fn is_done(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<bool, StoreError> {
        Ok(self.read(run, |d| d.done.get(&stage).is_some_and(|s| s.contains(job))))
    }
    async fn done(&self, run: &RunId, stage: Stage) -> Result<Vec<JobId>, StoreError> {
        Ok(self.read(run, |d| d.done.get(&stage).map(|s| s.iter().cloned().collect()).unwrap_or_default()))
    }
    async fn result(&self, run: &RunId, job: &JobId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read(run, |d| d.results.get(job).cloned()))
    }
    async fn record_failure(&self, run: &RunId, stage: Stage, job: &JobId, reason: &str) -> Result<(), StoreError> {
        self.write(Record::Failure(run.clone(), stage, job.clone(), reason.to_string())).map(|_| ())
    }
    async fn failures(&self, run: &RunId, stage: Stage) -> Result<BTreeMap<JobId, String>, StoreError> {
        Ok(self.read(run, |d| d.failed.get(&stage).cloned().unwrap_or_default()))
    }
    async fn clear_failures(&self, run: &RunId, stage: Stage) -> Result<(), StoreError> {
        self.write(Record::ClearFailures(run.clone(), stage)).map(|_| ())
    }
    async fn count_execution(&self, run: &RunId, job: &JobId) -> Result<u64, StoreError> {
        self.write(Record::Execution(run.clone(), job.clone()))?;
        Ok(self.read(run, |d| d.executions.get(job).copied().unwrap_or_default()))
    }
    async fn executions(&self, run: &RunId) -> Result<BTreeMap<JobId, u64>, StoreError> {
        Ok(self.read(run, |d| d.executions.clone()))
    }
    async fn progress(&self, run: &RunId, stage: Stage) -> Result<StageProgress, StoreError> {
        Ok(self.read(run, |d| {
            let expected = d.expected.get(&stage);
            let count = |s: Option<&BTreeSet<JobId>>| {
                s.map(|s| s.iter().filter(|id| expected.is_some_and(|e| e.contains(*id))).count() as u64).unwrap_or(0)
            };
            StageProgress {
                expected: expected.map(|e| e.len() as u64).unwrap_or(0),
                done: count(d.done.get(&stage)),
                failed: d
                    .failed
                    .get(&stage)
                    .map(|f| f.keys().filter(|id| expected.is_some_and(|e| e.contains(*id))).count() as u64)
                    .unwrap_or(0),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commits_are_idempotent_and_survive_reopen_with_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.journal");
        let run = RunId::new("r").unwrap();
        let a = JobId::derive(&run, &["a"]);
        {
            let s = EmbeddedStore::open(&path).unwrap();
            s.expect(&run, Stage::Evaluate, &[a.clone(), JobId::derive(&run, &["b"])]).await.unwrap();
            s.record_failure(&run, Stage::Evaluate, &a, "boom").await.unwrap();
            assert_eq!(s.commit(&run, Stage::Evaluate, &a, b"1").await.unwrap(), CommitOutcome::Committed);
            assert_eq!(s.commit(&run, Stage::Evaluate, &a, b"2").await.unwrap(), CommitOutcome::Duplicate);
        }
        // Simulate a crash mid-append.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        let s = EmbeddedStore::open(&path).unwrap();
        assert_eq!(s.result(&run, &a).await.unwrap().unwrap(), b"1");
        let p = s.progress(&run, Stage::Evaluate).await.unwrap();
        assert_eq!((p.expected, p.done, p.failed), (2, 1, 0));
        s.record_failure(&run, Stage::Evaluate, &a, "late").await.unwrap();
        assert!(s.failures(&run, Stage::Evaluate).await.unwrap().is_empty(), "a done job cannot fail");
    }
}
