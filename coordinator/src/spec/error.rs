//! What can be wrong with a benchmark spec, shared by its parser and the catalog
//! references it resolves.

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("benchmark spec {path}: cannot read it: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("benchmark spec {path}: {message}")]
    Parse { path: String, message: String },
    #[error("benchmark spec {path}: {key}: {message}")]
    Invalid { path: String, key: String, message: String },
}
