//! The contract between the worker loop and the code that does a job's work.
//! Executors are blocking (libtorch, file I/O): the loop runs them on a
//! dedicated thread so the async runtime keeps the broker heartbeats flowing.

use mll_common::artifact::ArtifactStore;
use mll_common::{Job, JobOutput};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Why a job failed. Transient errors are retried (with backoff, then by
/// requeueing); permanent ones are dead-lettered at once with the message.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
    #[error("cancelled: {0}")]
    Cancelled(String),
}

impl ExecError {
    pub fn permanent(e: impl std::fmt::Display) -> Self {
        ExecError::Permanent(e.to_string())
    }
    pub fn transient(e: impl std::fmt::Display) -> Self {
        ExecError::Transient(e.to_string())
    }
}

/// What an executor may use besides the job itself.
#[derive(Clone)]
pub struct ExecContext {
    pub artifacts: ArtifactStore,
    /// Job paths are relative to this root and may not leave it.
    pub data_root: PathBuf,
    /// Set when the job timed out or the worker is shutting down; long
    /// executors check it between batches.
    pub cancel: Arc<AtomicBool>,
}

impl ExecContext {
    pub fn new(artifacts: ArtifactStore, data_root: PathBuf) -> Self {
        ExecContext { artifacts, data_root, cancel: Arc::new(AtomicBool::new(false)) }
    }

    /// Resolves a path named by a job under the data root. Absolute paths and
    /// `..` are refused, so a payload cannot read outside the configured root.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, ExecError> {
        resolve_under(&self.data_root, rel)
    }

    pub fn check_cancelled(&self) -> Result<(), ExecError> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(ExecError::Cancelled("the job was stopped (timeout or shutdown)".into()))
        } else {
            Ok(())
        }
    }
}

/// [`mll_common::paths::confine`]: the same rule the planner applies at submit.
pub fn resolve_under(root: &Path, rel: &str) -> Result<PathBuf, ExecError> {
    mll_common::paths::confine(root, rel).map_err(|e| ExecError::Permanent(format!("job: {e}")))
}

/// Runs jobs of some kinds. A worker holds one executor per kind it serves.
pub trait Executor: Send + Sync {
    fn execute(&self, job: &Job, ctx: &ExecContext) -> Result<JobOutput, ExecError>;
}
