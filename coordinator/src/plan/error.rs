//! Why a spec cannot be planned; every variant is an input the person fixes (exit 2).

use crate::captions::CaptionError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("plan: dataset '{name}': {reason}")]
    Dataset { name: String, reason: String },
    #[error("plan: graph {path}: {reason}")]
    Graph { path: PathBuf, reason: String },
    #[error("plan: captions {path}: {reason}")]
    Captions { path: PathBuf, reason: String },
    #[error("plan: dataset '{dataset}': {source}")]
    ClassMap { dataset: String, source: CaptionError },
    /// Classes without captions while captions are required (`--strict-captions`
    /// or `method.strict_captions`, which the `paper` preset sets).
    #[error(
        "plan: classes without captions (method.strict_captions / --strict-captions make this an error): {0}; \
             add them to the caption files or fix the datasets' class_map"
    )]
    MissingCaptions(String),
    #[error("plan: {0}")]
    Spec(String),
    /// A spec value that cannot be planned (see `checks`); `key` names it.
    #[error("plan: {key}: {reason}")]
    Input { key: String, reason: String },
}
