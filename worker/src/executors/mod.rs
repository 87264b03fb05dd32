//! One executor per job kind, and the set a worker process serves.
pub mod diagnostic;
pub mod embed;
pub mod evaluate;
pub mod label;
pub mod model;

use crate::consume::Executors;
use crate::engine::{pick_device, ModelCache, Precision};
use mll_common::config::Settings;
use mll_common::Stage;
use std::sync::Arc;

/// The executors a worker process serves: every job kind, sharing one model
/// cache on the configured device (fp16 autocast on CUDA, fp32 on CPU).
pub fn for_worker(settings: &Settings) -> anyhow::Result<Executors> {
    let w = &settings.worker;
    let device = pick_device(w.device)?;
    let precision = if device.is_cuda() { Precision::Fp16 } else { Precision::Fp32 };
    let cache = Arc::new(ModelCache::new(device, precision, w.model_cache_mb * 1024 * 1024));
    let decode_threads =
        if w.decode_threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) } else { w.decode_threads };
    Ok(Executors::default()
        .with(Stage::Diagnostic, Arc::new(diagnostic::DiagnosticExecutor))
        .with(Stage::Evaluate, Arc::new(evaluate::EvaluateExecutor::new(cache.clone(), w.batch_size, decode_threads)?))
        .with(Stage::Label, Arc::new(label::LabelExecutor::new(cache, w.batch_size, decode_threads)?))
        .with(Stage::Embed, Arc::new(embed::EmbedExecutor::new(device))))
}
