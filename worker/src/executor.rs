//! The contract between the worker loop and the code that does a job's work.
//! Executors are blocking (libtorch, file I/O): the loop runs them on a
//! dedicated thread so the async runtime keeps the broker heartbeats flowing.

use crate::data::DataError;
use crate::engine::image::ImageError;
use crate::engine::minilm::MiniLmError;
use crate::engine::EngineError;
use mll_common::artifact::safetensors_io::TensorError;
use mll_common::artifact::{ArtifactError, ArtifactStore};
use mll_common::{Job, JobOutput};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Why a job failed. Transient errors are retried (with backoff, then by
/// requeueing); permanent ones are dead-lettered at once with the message
/// ([`ExecError::is_permanent`]). Failures of another layer keep that error
/// as their source.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// The inference engine failed; transient when [`EngineError::is_transient`].
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The text embedder failed; transient when libtorch failed.
    #[error(transparent)]
    Embedder(#[from] MiniLmError),
    /// libtorch failed while `doing` something outside the engine; transient.
    #[error("{doing}: {source}")]
    Torch {
        doing: &'static str,
        #[source]
        source: tch::TchError,
    },
    /// The job's dataset could not be read; transient when [`DataError::is_transient`].
    #[error("{source} ({})", if .source.is_transient() { "may be a passing storage problem; will retry" } else { "fix the dataset on disk, then re-run the job" })]
    Data {
        #[source]
        source: DataError,
    },
    /// An image of the dataset cannot be decoded; permanent.
    #[error("{source}; replace or remove that image, then re-run the job")]
    Image {
        #[source]
        source: ImageError,
    },
    /// The result's artifact could not be written; transient.
    #[error(transparent)]
    Store(#[from] ArtifactError),
    /// The result's artifact could not be encoded; permanent.
    #[error(transparent)]
    Encode(#[from] TensorError),
}

impl ExecError {
    /// Whether the job fails for good at once (dead-lettered with the message);
    /// otherwise it is retried, or was cancelled.
    pub fn is_permanent(&self) -> bool {
        match self {
            ExecError::Permanent(_) | ExecError::Image { .. } | ExecError::Encode(_) => true,
            ExecError::Transient(_) | ExecError::Cancelled(_) | ExecError::Torch { .. } | ExecError::Store(_) => false,
            ExecError::Engine(e) => !e.is_transient(),
            ExecError::Embedder(e) => !matches!(e, MiniLmError::Torch(_)),
            ExecError::Data { source } => !source.is_transient(),
        }
    }

    /// The result's artifact could not be written because the disk is full:
    /// not the job's fault and not passing either, so the worker stops
    /// instead of burning the job's attempts (and every other job's).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, ExecError::Store(e) if e.is_disk_full())
    }

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
