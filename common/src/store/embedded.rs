//! Embedded result store for local mode: the same semantics as the Redis store,
//! in process memory, with every mutation appended to a journal file
//! (`state.journal` in the output folder) so that an interrupted local run
//! (Ctrl-C) resumes where it stopped.
//!
//! The journal starts with [`JOURNAL_MAGIC`]; each record is a u32 length, a
//! 4-byte check of that length, and the bincode record sealed with its
//! checksum ([`super::seal`]). On replay:
//! - a final record cut short (the process died mid-write) is dropped with a
//!   warning: its mutation was never acknowledged, so its job runs again;
//! - a record whose length is intact but whose body fails its checksum is
//!   skipped and reported (with its job when it can be read), the journal is
//!   rewritten without it (the original is kept beside it), and the job it
//!   committed runs again;
//! - a damaged length field stops the replay with its byte offset: the records
//!   after it cannot be located.
//!
//! A mutation reaches memory only after its record is appended and synced: a
//! failed append (a full disk) changes nothing, is cut back off the file so
//! the next record follows the last whole one, and its caller gets the error
//! ([`StoreError::DiskFull`] for a full disk), so nothing is acknowledged that
//! the journal does not hold.
use super::seal;
use super::{CommitOutcome, Committer, JobCheck, Ledger, RunMeta, RunState, StageProgress, StoreError};
use crate::ids::{JobId, RunId};
use crate::queue::Lane;
use crate::stage::Stage;
use crate::wire::{decode_value, encode_value};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
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
    Discard(RunId, Stage, JobId),
    // New variants go last: bincode numbers them by position, and old journals must replay.
    ClearFailure(RunId, Stage, JobId),
}

impl Record {
    /// What a record was about, for the report of a damaged one.
    fn describe(&self) -> String {
        match self {
            Record::Commit(run, stage, job, _) => format!("the result of {stage} job {job} of run {run}"),
            Record::Failure(run, stage, job, _) => format!("the failure record of {stage} job {job} of run {run}"),
            Record::Discard(run, stage, job) => format!("the discarding of {stage} job {job} of run {run}"),
            Record::Meta(run, _) | Record::State(run, _) => format!("the state of run {run}"),
            Record::Expect(run, stage, _) => format!("the expected {stage} jobs of run {run}"),
            Record::ClearFailures(run, stage) => format!("the clearing of {stage} failures of run {run}"),
            Record::ClearFailure(run, stage, job) => format!("the clearing of the failure of {stage} job {job} of run {run}"),
            Record::Execution(run, job) => format!("an execution count of job {job} of run {run}"),
        }
    }
}

/// First bytes of a journal written by this release.
pub const JOURNAL_MAGIC: &[u8; 8] = b"MLLJRN\x00\x02";
/// Length field + its check, before each sealed record.
const FRAME_HEAD: usize = 8;

/// A journal record that failed its checksum and was left out on replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRecord {
    /// Byte offset of the record in the original journal.
    pub offset: u64,
    /// What the record was about, when its body could still be read.
    pub what: Option<String>,
    /// The job whose result it held, if it was a commit (that job runs again).
    pub job: Option<JobId>,
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
    /// Whether applying `r` would change anything (what [`Data::apply`]
    /// returns), without changing anything: a record is journaled first and
    /// applied only once it is on disk.
    fn would_change(&self, r: &Record) -> bool {
        let run = |run: &RunId| self.runs.get(run);
        let done = |r: &RunId, stage: &Stage, id: &JobId| run(r).and_then(|d| d.done.get(stage)).is_some_and(|s| s.contains(id));
        match r {
            Record::Meta(..) | Record::State(..) | Record::ClearFailures(..) | Record::Execution(..) => true,
            Record::Expect(r, stage, ids) => {
                let set = run(r).and_then(|d| d.expected.get(stage));
                ids.iter().any(|id| !set.is_some_and(|s| s.contains(id)))
            }
            Record::Commit(r, stage, id, _) | Record::Failure(r, stage, id, _) => !done(r, stage, id),
            Record::ClearFailure(r, stage, id) => run(r).and_then(|d| d.failed.get(stage)).is_some_and(|f| f.contains_key(id)),
            Record::Discard(r, stage, id) => done(r, stage, id),
        }
    }

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
            Record::ClearFailure(run, stage, id) => {
                self.runs.entry(run.clone()).or_default().failed.get_mut(stage).is_some_and(|f| f.remove(id).is_some())
            }
            Record::Execution(run, id) => {
                *self.runs.entry(run.clone()).or_default().executions.entry(id.clone()).or_default() += 1;
                true
            }
            Record::Discard(run, stage, id) => {
                let d = self.runs.entry(run.clone()).or_default();
                let was_done = d.done.get_mut(stage).is_some_and(|s| s.remove(id));
                d.results.remove(id);
                was_done
            }
        }
    }
}

pub struct EmbeddedStore {
    /// The lanes published to (`Ledger::add_lanes`); not journaled: a resumed
    /// run publishes, and so registers, its lanes again.
    lanes: Mutex<BTreeMap<Lane, String>>,
    data: Mutex<Data>,
    journal: Option<Mutex<Journal>>,
    path: Option<PathBuf>,
    damaged: Vec<DamagedRecord>,
}

/// The journal file open for appending.
struct Journal {
    file: File,
    path: PathBuf,
    /// Bytes up to the end of the last whole record.
    len: u64,
    /// Why appending stopped for good: a failed append could not be cut off
    /// again, so a record written after it would land behind a torn one.
    broken: Option<String>,
}

impl Journal {
    /// Appends and syncs one framed record; on failure the file is cut back
    /// to the last whole record, so later appends follow it.
    fn append(&mut self, framed: &[u8]) -> Result<(), StoreError> {
        if let Some(why) = &self.broken {
            return Err(StoreError::Operation {
                op: "append to the journal",
                reason: format!(
                    "{}: appending stopped after an earlier failure ({why}); run the command again once the cause is fixed \
                     (the journal is read back up to its last whole record)",
                    self.path.display()
                ),
            });
        }
        match self.file.write_all(framed).and_then(|()| self.file.sync_data()) {
            Ok(()) => {
                self.len += framed.len() as u64;
                Ok(())
            }
            Err(e) => {
                if let Err(t) = self.file.set_len(self.len).and_then(|()| self.file.sync_data()) {
                    self.broken = Some(format!("{e}, then cutting the partial record off failed: {t}"));
                }
                let path = self.path.display().to_string();
                if super::is_disk_full(&e) {
                    Err(StoreError::DiskFull { op: "append to the journal", path, reason: e.to_string() })
                } else {
                    Err(StoreError::Operation { op: "append to the journal", reason: format!("{path}: {e}") })
                }
            }
        }
    }
}

/// What a journal's bytes replay to.
struct Replay {
    data: Data,
    /// Bytes up to the end of the last whole record.
    valid_len: u64,
    /// Size of a torn final record that was dropped.
    torn_tail: Option<u64>,
    damaged: Vec<DamagedRecord>,
    /// Byte ranges of the whole, intact records (for a rewrite).
    intact: Vec<std::ops::Range<usize>>,
}

fn replay(buf: &[u8], path: &Path) -> Result<Replay, StoreError> {
    let corrupt = |pos: usize, reason: String| StoreError::Corrupt {
        key: format!("{} at byte {pos}", path.display()),
        reason: format!("{reason}; move the file away to start the local run afresh"),
    };
    let mut out = Replay { data: Data::default(), valid_len: 0, torn_tail: None, damaged: Vec::new(), intact: Vec::new() };
    if buf.is_empty() {
        return Ok(out);
    }
    if buf.len() < JOURNAL_MAGIC.len() || &buf[..JOURNAL_MAGIC.len()] != JOURNAL_MAGIC {
        if JOURNAL_MAGIC.starts_with(buf) {
            return Ok(out); // only part of the header was written
        }
        return Err(corrupt(0, "this is not a journal of this release (no header)".into()));
    }
    let mut pos = JOURNAL_MAGIC.len();
    while pos < buf.len() {
        let rest = buf.len() - pos;
        if rest < FRAME_HEAD {
            out.torn_tail = Some(rest as u64);
            break;
        }
        let len_bytes: [u8; 4] = buf[pos..pos + 4].try_into().expect("4 bytes");
        let len = u32::from_le_bytes(len_bytes);
        if buf[pos + 4..pos + FRAME_HEAD] != seal::length_check(len) {
            return Err(corrupt(
                pos,
                format!(
                    "the length field of a record is damaged ({} more bytes follow it, so this is not a cut-off tail);                      the records after it cannot be located",
                    rest - FRAME_HEAD
                ),
            ));
        }
        let end = pos + FRAME_HEAD + len as usize;
        if end > buf.len() {
            out.torn_tail = Some(rest as u64);
            break;
        }
        let body = &buf[pos + FRAME_HEAD..end];
        match seal::open(body) {
            Ok(payload) => {
                let rec: Record = decode_value(payload).map_err(|e| {
                    corrupt(pos, format!("a record with a valid checksum does not decode ({e}): written by another release?"))
                })?;
                out.data.apply(&rec);
                out.intact.push(pos..end);
            }
            Err(_) => {
                // The length is intact, so the next record is found; the
                // record itself may still decode enough to be named.
                let rec = body.get(seal::OVERHEAD..).and_then(|p| decode_value::<Record>(p).ok());
                out.damaged.push(DamagedRecord {
                    offset: pos as u64,
                    what: rec.as_ref().map(Record::describe),
                    job: match &rec {
                        Some(Record::Commit(_, _, job, _)) => Some(job.clone()),
                        _ => None,
                    },
                });
            }
        }
        pos = end;
        out.valid_len = pos as u64;
    }
    if out.valid_len == 0 {
        out.valid_len = JOURNAL_MAGIC.len() as u64;
    }
    Ok(out)
}

fn io_err(op: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Operation { op, reason: e.to_string() }
}

impl EmbeddedStore {
    /// A store that lives only in memory (tests, throwaway runs).
    pub fn in_memory() -> Self {
        EmbeddedStore { lanes: Mutex::default(), data: Mutex::default(), journal: None, path: None, damaged: Vec::new() }
    }

    /// Opens (or creates) the journal at `path` and replays it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_err("create the store folder", e))?;
        }
        // Only a journal that does not exist yet starts afresh; any other
        // read error stops here, so a journal is never truncated by mistake.
        let buf = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(StoreError::Operation {
                    op: "read the journal",
                    reason: format!("{}: {e} (fix its permissions or move it away)", path.display()),
                })
            }
        };
        let replay = replay(&buf, path)?;
        if let Some(torn) = replay.torn_tail {
            tracing::warn!(
                journal = %path.display(),
                offset = replay.valid_len,
                bytes = torn,
                "dropping a torn final journal record ({torn} bytes, the process stopped mid-write); its job runs again"
            );
        }
        for d in &replay.damaged {
            tracing::warn!(
                journal = %path.display(),
                offset = d.offset,
                record = d.what.as_deref().unwrap_or("unreadable"),
                "a journal record fails its checksum and is left out; a result it held is computed again"
            );
        }
        if !replay.damaged.is_empty() {
            // Keep the original for inspection, then rewrite the journal with
            // the intact records only, so the warning is not repeated forever.
            let kept = path.with_extension("journal.damaged");
            std::fs::copy(path, &kept).map_err(|e| io_err("keep a copy of the damaged journal", e))?;
            let mut tmp =
                tempfile::NamedTempFile::new_in(path.parent().unwrap_or(Path::new("."))).map_err(|e| io_err("rewrite the journal", e))?;
            tmp.write_all(JOURNAL_MAGIC).map_err(|e| io_err("rewrite the journal", e))?;
            for r in &replay.intact {
                tmp.write_all(&buf[r.clone()]).map_err(|e| io_err("rewrite the journal", e))?;
            }
            tmp.as_file().sync_all().map_err(|e| io_err("rewrite the journal", e))?;
            tmp.persist(path).map_err(|e| io_err("rewrite the journal", e.error))?;
            tracing::warn!(copy = %kept.display(), "the damaged journal was kept beside the rewritten one");
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| io_err("open the journal for appending", e))?;
        let mut len = file.metadata().map_err(|e| io_err("open the journal for appending", e))?.len();
        if replay.damaged.is_empty() {
            // Drop a torn tail so new records follow the last whole one.
            file.set_len(replay.valid_len).map_err(|e| io_err("truncate a torn journal tail", e))?;
            len = replay.valid_len;
        }
        let mut journal = Journal { file, path: path.to_path_buf(), len, broken: None };
        if len == 0 {
            journal.append(JOURNAL_MAGIC)?;
        }
        Ok(EmbeddedStore {
            lanes: Mutex::default(),
            data: Mutex::new(replay.data),
            journal: Some(Mutex::new(journal)),
            path: Some(path.to_path_buf()),
            damaged: replay.damaged,
        })
    }

    /// Records left out on replay because they failed their checksum.
    pub fn damaged(&self) -> &[DamagedRecord] {
        &self.damaged
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Journals a record, then applies it: memory changes only once the
    /// record is on disk, so a failed append changes nothing and its caller
    /// is told (a commit is not acknowledged; its job runs again).
    fn write(&self, rec: Record) -> Result<bool, StoreError> {
        let mut data = self.data.lock().unwrap();
        if !data.would_change(&rec) {
            return Ok(false);
        }
        if let Some(j) = &self.journal {
            let body = seal::seal(&encode_value(&rec).map_err(|e| io_err("encode a journal record", e))?);
            let len = u32::try_from(body.len()).map_err(|_| io_err("encode a journal record", "record over 4 GiB"))?;
            let mut framed = len.to_le_bytes().to_vec();
            framed.extend_from_slice(&seal::length_check(len));
            framed.extend_from_slice(&body);
            j.lock().unwrap().append(&framed)?;
        }
        let changed = data.apply(&rec);
        debug_assert!(changed, "would_change and apply disagree on {}", rec.describe());
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
impl Committer for EmbeddedStore {
    async fn meta(&self, run: &RunId) -> Result<Option<RunMeta>, StoreError> {
        Ok(self.read(run, |d| d.meta.clone()))
    }
    async fn commit(&self, run: &RunId, stage: Stage, job: &JobId, result: &[u8]) -> Result<CommitOutcome, StoreError> {
        let changed = self.write(Record::Commit(run.clone(), stage, job.clone(), result.to_vec()))?;
        Ok(if changed { CommitOutcome::Committed } else { CommitOutcome::Duplicate })
    }
    async fn check_job(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<JobCheck, StoreError> {
        // Both under one lock: the same answer as `meta` then `is_done`.
        Ok(self.read(run, |d| JobCheck { meta: d.meta.clone(), done: d.done.get(&stage).is_some_and(|s| s.contains(job)) }))
    }
    async fn record_failure(&self, run: &RunId, stage: Stage, job: &JobId, reason: &str) -> Result<(), StoreError> {
        self.write(Record::Failure(run.clone(), stage, job.clone(), reason.to_string())).map(|_| ())
    }
    async fn count_execution(&self, run: &RunId, job: &JobId) -> Result<u64, StoreError> {
        self.write(Record::Execution(run.clone(), job.clone()))?;
        Ok(self.read(run, |d| d.executions.get(job).copied().unwrap_or_default()))
    }
    async fn lanes(&self) -> Result<Vec<(Lane, String)>, StoreError> {
        Ok(self.lanes.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(l, a)| (l.clone(), a.clone())).collect())
    }
}

#[async_trait]
impl Ledger for EmbeddedStore {
    async fn add_lanes(&self, lanes: &[(Lane, String)]) -> Result<(), StoreError> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner()).extend(lanes.iter().cloned());
        Ok(())
    }
    async fn put_meta(&self, run: &RunId, meta: &RunMeta) -> Result<(), StoreError> {
        self.write(Record::Meta(run.clone(), meta.clone())).map(|_| ())
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
    async fn is_done(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<bool, StoreError> {
        Ok(self.read(run, |d| d.done.get(&stage).is_some_and(|s| s.contains(job))))
    }
    async fn done(&self, run: &RunId, stage: Stage) -> Result<Vec<JobId>, StoreError> {
        Ok(self.read(run, |d| d.done.get(&stage).map(|s| s.iter().cloned().collect()).unwrap_or_default()))
    }
    async fn result(&self, run: &RunId, job: &JobId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read(run, |d| d.results.get(job).cloned()))
    }
    async fn discard(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<bool, StoreError> {
        self.write(Record::Discard(run.clone(), stage, job.clone()))
    }
    async fn runs(&self) -> Result<Vec<RunId>, StoreError> {
        let mut runs: Vec<RunId> = self.data.lock().unwrap().runs.keys().cloned().collect();
        runs.sort();
        Ok(runs)
    }
    async fn failures(&self, run: &RunId, stage: Stage) -> Result<BTreeMap<JobId, String>, StoreError> {
        Ok(self.read(run, |d| d.failed.get(&stage).cloned().unwrap_or_default()))
    }
    async fn clear_failures(&self, run: &RunId, stage: Stage) -> Result<(), StoreError> {
        self.write(Record::ClearFailures(run.clone(), stage)).map(|_| ())
    }
    async fn clear_failure(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<bool, StoreError> {
        self.write(Record::ClearFailure(run.clone(), stage, job.clone()))
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

    /// Frames of a journal: (offset, length of the whole frame).
    fn frames(buf: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut pos = JOURNAL_MAGIC.len();
        while pos + FRAME_HEAD <= buf.len() {
            let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
            out.push((pos, FRAME_HEAD + len));
            pos += FRAME_HEAD + len;
        }
        out
    }

    /// A journal with `n` committed jobs; returns the jobs.
    async fn journal_with(path: &Path, run: &RunId, n: usize) -> Vec<JobId> {
        let s = EmbeddedStore::open(path).unwrap();
        let jobs: Vec<JobId> = (0..n).map(|i| JobId::derive(run, &[&i.to_string()])).collect();
        s.expect(run, Stage::Evaluate, &jobs).await.unwrap();
        for (i, j) in jobs.iter().enumerate() {
            s.commit(run, Stage::Evaluate, j, format!("counts of job {i}: 7 7 7 7 7 7 7 7").as_bytes()).await.unwrap();
        }
        jobs
    }

    #[tokio::test]
    async fn a_damaged_commit_record_is_left_out_and_named_and_the_rest_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.journal");
        let run = RunId::new("r").unwrap();
        let jobs = journal_with(&path, &run, 5).await;
        let mut buf = std::fs::read(&path).unwrap();
        // Frame 0 is the expect record; frames 1..=5 the commits. Flip 8 bytes
        // inside the result bytes at the end of the third commit.
        let (off, len) = frames(&buf)[3];
        for b in &mut buf[off + len - 12..off + len - 4] {
            *b ^= 0x5A;
        }
        std::fs::write(&path, &buf).unwrap();

        let s = EmbeddedStore::open(&path).unwrap();
        assert_eq!(s.damaged().len(), 1);
        assert_eq!(s.damaged()[0].offset, off as u64);
        assert_eq!(s.damaged()[0].job.as_ref(), Some(&jobs[2]), "the damaged record names its job");
        assert!(!s.is_done(&run, Stage::Evaluate, &jobs[2]).await.unwrap(), "treated as missing");
        assert_eq!(s.result(&run, &jobs[2]).await.unwrap(), None);
        for j in [&jobs[0], &jobs[1], &jobs[3], &jobs[4]] {
            assert!(s.is_done(&run, Stage::Evaluate, j).await.unwrap(), "records after the damaged one are kept");
        }
        // The job runs again and its new result sticks; the damaged copy is kept aside.
        s.commit(&run, Stage::Evaluate, &jobs[2], b"again").await.unwrap();
        drop(s);
        assert!(path.with_extension("journal.damaged").is_file());
        let s = EmbeddedStore::open(&path).unwrap();
        assert!(s.damaged().is_empty(), "the rewritten journal is clean");
        assert_eq!(s.progress(&run, Stage::Evaluate).await.unwrap().done, 5);
        assert_eq!(s.result(&run, &jobs[2]).await.unwrap().unwrap(), b"again");
    }

    #[tokio::test]
    async fn a_damaged_length_in_the_middle_stops_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.journal");
        let run = RunId::new("r").unwrap();
        journal_with(&path, &run, 4).await;
        let mut buf = std::fs::read(&path).unwrap();
        let (off, _) = frames(&buf)[2];
        buf[off + 2] = 0x7F; // the record now claims ~8 MB, past the end of the file
        std::fs::write(&path, &buf).unwrap();
        let err = EmbeddedStore::open(&path).err().expect("a damaged length is not a torn tail").to_string();
        assert!(err.contains(&format!("at byte {off}")), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), buf, "nothing was cut from the journal");
    }

    #[tokio::test]
    async fn only_a_short_final_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.journal");
        let run = RunId::new("r").unwrap();
        let jobs = journal_with(&path, &run, 3).await;
        let full = std::fs::read(&path).unwrap();
        let (off, len) = *frames(&full).last().unwrap();
        // The last commit was cut mid-write.
        std::fs::write(&path, &full[..off + len - 5]).unwrap();
        let s = EmbeddedStore::open(&path).unwrap();
        assert!(s.is_done(&run, Stage::Evaluate, &jobs[1]).await.unwrap());
        assert!(!s.is_done(&run, Stage::Evaluate, &jobs[2]).await.unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), off as u64, "the torn tail is cut");
    }

    #[test]
    fn a_journal_that_cannot_be_read_is_not_started_afresh() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where the journal should be: reading fails with something
        // other than "not found".
        let path = dir.path().join("state.journal");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("keep"), b"x").unwrap();
        assert!(EmbeddedStore::open(&path).is_err());
        assert!(path.join("keep").is_file());
        // A file of another format is refused, not truncated.
        let other = dir.path().join("other.journal");
        std::fs::write(&other, b"\x10\x00\x00\x00old records").unwrap();
        let err = EmbeddedStore::open(&other).err().expect("refused").to_string();
        assert!(err.contains("at byte 0"), "{err}");
        assert_eq!(std::fs::read(&other).unwrap(), b"\x10\x00\x00\x00old records");
    }

    #[tokio::test]
    async fn discard_makes_a_job_missing_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.journal");
        let run = RunId::new("r").unwrap();
        let jobs = journal_with(&path, &run, 2).await;
        {
            let s = EmbeddedStore::open(&path).unwrap();
            assert!(s.discard(&run, Stage::Evaluate, &jobs[0]).await.unwrap());
            assert!(!s.discard(&run, Stage::Evaluate, &jobs[0]).await.unwrap());
            assert_eq!(s.runs().await.unwrap(), vec![run.clone()]);
        }
        let s = EmbeddedStore::open(&path).unwrap();
        assert!(!s.is_done(&run, Stage::Evaluate, &jobs[0]).await.unwrap());
        assert!(s.is_done(&run, Stage::Evaluate, &jobs[1]).await.unwrap());
    }

    #[tokio::test]
    async fn check_job_answers_as_meta_and_is_done_do() {
        let s = EmbeddedStore::in_memory();
        let run = RunId::new("r").unwrap();
        let (a, b) = (JobId::derive(&run, &["a"]), JobId::derive(&run, &["b"]));
        // An unknown run: no meta (not a cancel), nothing done.
        let c = s.check_job(&run, Stage::Evaluate, &a).await.unwrap();
        assert_eq!(c, JobCheck { meta: None, done: false });
        assert!(!c.cancelled());
        let meta = RunMeta { state: RunState::Running, spec_digest: "d".into() };
        s.put_meta(&run, &meta).await.unwrap();
        s.commit(&run, Stage::Evaluate, &a, b"1").await.unwrap();
        for (stage, job) in [(Stage::Evaluate, &a), (Stage::Evaluate, &b), (Stage::Embed, &a)] {
            let c = s.check_job(&run, stage, job).await.unwrap();
            assert_eq!(c.meta, s.meta(&run).await.unwrap());
            assert_eq!(c.done, s.is_done(&run, stage, job).await.unwrap(), "{stage} {job}");
        }
        assert!(s.check_job(&run, Stage::Evaluate, &a).await.unwrap().done);
        assert!(!s.check_job(&run, Stage::Embed, &a).await.unwrap().done, "done sets are per stage");
        s.set_state(&run, RunState::Cancelled).await.unwrap();
        assert!(s.check_job(&run, Stage::Evaluate, &b).await.unwrap().cancelled());
    }

    #[tokio::test]
    async fn clearing_one_failure_keeps_the_others_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.journal");
        let run = RunId::new("r").unwrap();
        let (a, b) = (JobId::derive(&run, &["a"]), JobId::derive(&run, &["b"]));
        {
            let s = EmbeddedStore::open(&path).unwrap();
            s.record_failure(&run, Stage::Evaluate, &a, "broken model").await.unwrap();
            s.record_failure(&run, Stage::Evaluate, &b, "broken model").await.unwrap();
            assert!(s.clear_failure(&run, Stage::Evaluate, &a).await.unwrap());
            assert!(!s.clear_failure(&run, Stage::Evaluate, &a).await.unwrap(), "a second clear finds nothing");
        }
        let s = EmbeddedStore::open(&path).unwrap();
        let left: Vec<JobId> = s.failures(&run, Stage::Evaluate).await.unwrap().into_keys().collect();
        assert_eq!(left, vec![b]);
    }
}
