//! Errors of the inference engine. Each says what failed and what to do; the
//! executors turn them into job failures with [`From<EngineError> for ExecError`].

use crate::executor::ExecError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The artifact folder or its model.json is missing or invalid: the job
    /// names a bad model, retrying elsewhere cannot help.
    #[error("model artifact {path}: {reason}")]
    Artifact { path: PathBuf, reason: String },
    /// libtorch could not load module.pt (truncated, corrupt, wrong format).
    #[error("cannot load TorchScript module {path}: {reason} (re-export it with scripts/export_open_clip.py)")]
    Load { path: PathBuf, reason: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The caller passed something the model cannot take (wrong shape...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Out of device memory even with a batch of one.
    #[error("out of device memory: {0} (free the device or give the worker a smaller model cache)")]
    OutOfMemory(String),
    #[error("device: {0}")]
    Device(String),
    /// Any other libtorch failure while running the model.
    #[error("libtorch: {0}")]
    Torch(String),
}

impl EngineError {
    pub fn artifact(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        EngineError::Artifact { path: path.into(), reason: reason.into() }
    }

    /// Whether another try (later, or on another worker) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, EngineError::OutOfMemory(_) | EngineError::Device(_))
    }
}

impl From<EngineError> for ExecError {
    fn from(e: EngineError) -> Self {
        if e.is_transient() {
            ExecError::Transient(e.to_string())
        } else {
            ExecError::Permanent(e.to_string())
        }
    }
}

/// True when a libtorch error message is an allocation failure (CUDA or CPU).
pub(crate) fn is_oom_message(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("out of memory") || m.contains("outofmemoryerror") || m.contains("defaultcpuallocator: can't allocate")
}
