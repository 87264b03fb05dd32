//! Errors of the inference engine. Each says what failed and what to do; the
//! executors turn them into job failures ([`crate::executor::ExecError::Engine`]).

use std::path::PathBuf;
use tch::TchError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The artifact folder or its model.json is missing or invalid: the job
    /// names a bad model, retrying elsewhere cannot help.
    #[error("model artifact {path}: {reason}")]
    Artifact { path: PathBuf, reason: String },
    /// A file of the artifact cannot be read.
    #[error("model artifact {path}: cannot read: {source}")]
    ArtifactRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// model.json is not JSON of the expected fields.
    #[error("model artifact {path}: invalid model.json: {source} (see docs/formats.md for the fields)")]
    Meta {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// tokenizer.json cannot be loaded.
    #[error("model artifact {path}: not a Hugging Face tokenizer.json: {source}")]
    TokenizerFile {
        path: PathBuf,
        #[source]
        source: tokenizers::Error,
    },
    /// libtorch could not load module.pt (truncated, corrupt, wrong format);
    /// `source` is libtorch's error when it gave one.
    #[error("cannot load TorchScript module {path}: {reason} (re-export it with scripts/export-open-clip)")]
    Load {
        path: PathBuf,
        reason: String,
        #[source]
        source: Option<TchError>,
    },
    #[error("tokenizer: {doing}: {source}")]
    Tokenizer {
        doing: String,
        #[source]
        source: tokenizers::Error,
    },
    /// The caller passed something the model cannot take (wrong shape...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Out of device memory even with a batch of one.
    #[error("out of device memory: {doing}: {} (free the device or give the worker a smaller model cache)", first_line(.source))]
    OutOfMemory {
        doing: String,
        #[source]
        source: TchError,
    },
    #[error("device: {0}")]
    Device(String),
    /// The model returned something it should not have (a wrong shape...).
    #[error("libtorch: {0}")]
    Torch(String),
    /// Any other libtorch failure while running the model.
    #[error("libtorch: {doing}: {}", first_line(.source))]
    TorchCall {
        doing: String,
        #[source]
        source: TchError,
    },
}

impl EngineError {
    pub fn artifact(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        EngineError::Artifact { path: path.into(), reason: reason.into() }
    }

    /// A libtorch error while `doing`: out of memory when libtorch says so.
    pub fn torch(doing: impl Into<String>, source: TchError) -> Self {
        let doing = doing.into();
        if is_oom_message(&source.to_string()) {
            EngineError::OutOfMemory { doing, source }
        } else {
            EngineError::TorchCall { doing, source }
        }
    }

    /// Whether another try (later, or on another worker) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, EngineError::OutOfMemory { .. } | EngineError::Device(_))
    }
}

/// The first lines of a libtorch message (a C++ backtrace follows them).
pub(crate) fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().take(3).collect::<Vec<_>>().join(" | ")
}

/// True when a libtorch error message is an allocation failure (CUDA or CPU).
pub(crate) fn is_oom_message(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("out of memory") || m.contains("outofmemoryerror") || m.contains("defaultcpuallocator: can't allocate")
}
