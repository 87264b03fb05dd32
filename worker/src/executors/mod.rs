//! One executor per job kind; filled in by the executor engineers.
pub mod embed;
pub mod diagnostic;
pub mod evaluate;
pub mod label;
pub mod model;

use crate::consume::Executors;
use mll_common::config::Settings;
use mll_common::Stage;
use std::sync::Arc;

/// The executors a worker process serves: every job kind.
pub fn for_worker(_settings: &Settings) -> anyhow::Result<Executors> {
    Ok(Executors::default().with(Stage::Diagnostic, Arc::new(diagnostic::DiagnosticExecutor)))
}
