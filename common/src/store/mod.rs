//! Result store backends: `redis` for the cluster, `embedded` (in-process,
//! persisted to a journal file) for local mode.
//!
//! Exactly-once results: `commit` writes a job's result and its done-set
//! membership in one atomic step and is idempotent, so redelivered jobs may run
//! twice but count once. Completion is `expected` vs `done` set membership.

pub mod embedded;
pub mod redis;
pub mod seal;

use crate::ids::{JobId, RunId};
use crate::queue::Lane;
use crate::stage::Stage;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: cannot connect to {url}: {reason} (is Redis running and is store.url right?)")]
    Connect { url: String, reason: String },
    /// Redis refused the login: the password or user in store.url is wrong.
    #[error(
        "store: {url} refused the login: {reason}; check the user and password in store.url (MLL__STORE__URL, or the secret it comes from)"
    )]
    Auth { url: String, reason: String },
    #[error("store: {op} failed: {reason}")]
    Operation { op: &'static str, reason: String },
    #[error("store: corrupt value at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// The disk holding the local journal is full: no retry can help until
    /// space is freed, so callers stop instead of retrying.
    #[error(
        "store: cannot {op} {path}: the disk is full ({reason}); nothing was recorded for this step. Free space \
         (or use an --out folder on a larger disk) and run the same command again: finished jobs are kept"
    )]
    DiskFull { op: &'static str, path: String, reason: String },
}

impl StoreError {
    /// Whether retrying the same call later in this process can succeed: not
    /// for a damaged value or a full disk.
    pub fn is_retriable(&self) -> bool {
        matches!(self, StoreError::Connect { .. } | StoreError::Operation { .. })
    }
}

/// Whether an I/O error means the disk (or the user's quota on it) is full.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}

/// Lifecycle of a run as shown by `coordinator status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Done,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Done => "done",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageProgress {
    pub expected: u64,
    pub done: u64,
    pub failed: u64,
}

impl StageProgress {
    pub fn finished(&self) -> bool {
        self.done + self.failed >= self.expected
    }
}

/// Outcome of a commit: the first commit of a job wins, later ones are
/// duplicates (a redelivered job that ran again) and change nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    Duplicate,
}

/// Run-level metadata kept beside the sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub state: RunState,
    /// SHA-256 of the submitted spec text.
    pub spec_digest: String,
}

/// What a worker reads before it starts a job ([`Committer::check_job`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobCheck {
    /// The run's metadata; `None` when it is missing (never a cancel: Redis
    /// may have lost it).
    pub meta: Option<RunMeta>,
    /// Whether the job is in its stage's done set already.
    pub done: bool,
}

impl JobCheck {
    /// The run was cancelled: its jobs are dropped.
    pub fn cancelled(&self) -> bool {
        self.meta.as_ref().is_some_and(|m| m.state == RunState::Cancelled)
    }
}

/// One job's committed result as [`Ledger::results`] reads it: none yet,
/// its bytes, or `Err(StoreError::Corrupt)` when its checksum fails.
pub type Fetched = Result<Option<Vec<u8>>, StoreError>;

/// What a worker needs of the result store: the reads before a job, the
/// commit after it, its execution count and its failure record, and the
/// lanes to choose from. The worker
/// holds `Arc<dyn Committer>`; test and benchmark wrappers implement these
/// five methods only.
#[async_trait]
pub trait Committer: Send + Sync {
    /// Every lane jobs were published to (`queue::lanes`) with its model's
    /// artifact folder, for a worker choosing where to consume next.
    async fn lanes(&self) -> Result<Vec<(Lane, String)>, StoreError>;
    async fn meta(&self, run: &RunId) -> Result<Option<RunMeta>, StoreError>;
    /// Atomically stores the result and adds the id to the done set, unless it is
    /// there already. Also clears a failure record of the job.
    async fn commit(&self, run: &RunId, stage: Stage, job: &JobId, result: &[u8]) -> Result<CommitOutcome, StoreError>;
    /// [`meta`](Self::meta) and whether the job is in its stage's done set,
    /// together: the reads a worker needs before it starts a job, in one
    /// step (one round trip on Redis).
    async fn check_job(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<JobCheck, StoreError>;
    /// Records that a job failed for good (dead-lettered), with the reason. A
    /// later successful commit removes the record.
    async fn record_failure(&self, run: &RunId, stage: Stage, job: &JobId, reason: &str) -> Result<(), StoreError>;
    /// Counts one execution start of a job (executions beyond one are the
    /// duplicate executions that at-least-once delivery allows).
    async fn count_execution(&self, run: &RunId, job: &JobId) -> Result<u64, StoreError>;
}

/// What the coordinator needs of the result store beyond a worker's part:
/// run metadata and state, the expected, done and failed sets, results read
/// back, discards, execution counts and progress. Local mode's in-process
/// worker and the coordinator share one store, so a ledger is a committer.
#[async_trait]
pub trait Ledger: Committer {
    /// Records lanes about to be published to, each with its model's artifact
    /// folder (idempotent), so workers find them.
    async fn add_lanes(&self, lanes: &[(Lane, String)]) -> Result<(), StoreError>;
    async fn put_meta(&self, run: &RunId, meta: &RunMeta) -> Result<(), StoreError>;
    async fn set_state(&self, run: &RunId, state: RunState) -> Result<(), StoreError>;

    /// Adds ids to the stage's expected set (idempotent).
    async fn expect(&self, run: &RunId, stage: Stage, jobs: &[JobId]) -> Result<(), StoreError>;
    async fn expected(&self, run: &RunId, stage: Stage) -> Result<Vec<JobId>, StoreError>;

    async fn is_done(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<bool, StoreError>;
    async fn done(&self, run: &RunId, stage: Stage) -> Result<Vec<JobId>, StoreError>;
    /// A committed result. Every result is stored with a checksum
    /// ([`seal`]); a damaged one is `Err(StoreError::Corrupt)` naming the job.
    async fn result(&self, run: &RunId, job: &JobId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Several committed results, in `jobs` order, each as [`result`](Self::result)
    /// gives it (a damaged one is its own `Err(StoreError::Corrupt)`); the outer
    /// error is the store's. Reading a run back is one call per batch: Redis
    /// answers a batch in one round trip, where one call per job took
    /// 10^5 round trips at 10^5 jobs. This default, for stores where a call is
    /// cheap, asks one job at a time.
    async fn results(&self, run: &RunId, jobs: &[JobId]) -> Result<Vec<Fetched>, StoreError> {
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(match self.result(run, job).await {
                Err(e @ StoreError::Corrupt { .. }) => Err(e),
                Err(e) => return Err(e),
                Ok(r) => Ok(r),
            });
        }
        Ok(out)
    }
    /// Forgets a committed result and its done-set membership, so the job is
    /// published again (a damaged result or artifact). Returns whether it was done.
    async fn discard(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<bool, StoreError>;
    /// Ids of the runs this store knows (to say what exists when a run is not found).
    async fn runs(&self) -> Result<Vec<RunId>, StoreError>;

    async fn failures(&self, run: &RunId, stage: Stage) -> Result<BTreeMap<JobId, String>, StoreError>;
    /// Forgets failure records so `resume --retry-failed` can try those jobs again.
    async fn clear_failures(&self, run: &RunId, stage: Stage) -> Result<(), StoreError>;
    /// Forgets one job's failure record (`coordinator retry --job`); false
    /// when the job had none.
    async fn clear_failure(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<bool, StoreError>;

    async fn executions(&self, run: &RunId) -> Result<BTreeMap<JobId, u64>, StoreError>;
    /// Executions beyond each job's first, summed over the run (what `status`
    /// shows). Redis sums them where they are instead of sending one count
    /// per job; this default reads [`executions`](Self::executions).
    async fn duplicate_executions(&self, run: &RunId) -> Result<u64, StoreError> {
        Ok(self.executions(run).await?.values().map(|n| n.saturating_sub(1)).sum())
    }

    async fn progress(&self, run: &RunId, stage: Stage) -> Result<StageProgress, StoreError>;
}
