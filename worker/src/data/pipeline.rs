//! Samples → preprocessed batches, overlapped with inference: a producer
//! thread pulls samples in order, reads and decodes each batch in parallel on a
//! rayon pool, and hands finished batches over a bounded channel to the caller,
//! which runs the model on its own thread (tch's no-grad and autocast guards
//! are thread-local, so the model stays on the caller's thread).

use super::{DataError, Sample, SampleIter};
use crate::engine::image::{preprocess_into, ImageBatch, ImageError, PreprocessConfig};
use rayon::prelude::*;

/// Batches decoded ahead of the model; two keep the pool busy while one runs.
const PREFETCH_BATCHES: usize = 2;

#[derive(Debug)]
pub struct PreparedBatch {
    /// `[n, 3, S, S]`, normalised.
    pub images: ImageBatch,
    pub labels: Vec<i64>,
    /// Dataset index of the first sample; the rest follow contiguously.
    pub first_index: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl PipelineError {
    pub fn is_transient(&self) -> bool {
        match self {
            PipelineError::Data(e) => e.is_transient(),
            PipelineError::Image(_) => false,
        }
    }
}

/// Builds the decode pool (`threads` = 0: one per core).
pub fn decode_pool(threads: usize) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("decode-{i}")).build()
}

/// Decodes one batch of samples in parallel on `pool`.
pub fn prepare_batch(pool: &rayon::ThreadPool, samples: &[Sample], cfg: &PreprocessConfig) -> Result<PreparedBatch, PipelineError> {
    let len = cfg.image_len();
    let mut data = vec![0f32; samples.len() * len];
    pool.install(|| {
        data.par_chunks_mut(len).zip(samples.par_iter()).try_for_each(|(out, s)| -> Result<(), PipelineError> {
            let bytes = s.bytes()?;
            preprocess_into(&bytes, cfg, &s.name, out)?;
            Ok(())
        })
    })?;
    Ok(PreparedBatch {
        images: ImageBatch { data, n: samples.len(), size: cfg.size },
        labels: samples.iter().map(|s| s.label).collect(),
        first_index: samples.first().map(|s| s.index).unwrap_or(0),
    })
}

/// Runs `consume` on every batch of `samples` in order. Stops at the first
/// error from either side; the producer stops when the consumer goes away.
pub fn run_batches<E, F>(
    pool: &rayon::ThreadPool,
    samples: SampleIter<'_>,
    cfg: &PreprocessConfig,
    batch_size: usize,
    mut consume: F,
) -> Result<(), E>
where
    E: From<PipelineError> + Send,
    F: FnMut(PreparedBatch) -> Result<(), E>,
{
    let batch_size = batch_size.max(1);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<PreparedBatch, PipelineError>>(PREFETCH_BATCHES);
        scope.spawn(move || {
            let mut samples = samples;
            loop {
                let mut chunk = Vec::with_capacity(batch_size);
                for s in samples.by_ref() {
                    match s {
                        Ok(s) => chunk.push(s),
                        Err(e) => {
                            let _ = tx.send(Err(e.into()));
                            return;
                        }
                    }
                    if chunk.len() == batch_size {
                        break;
                    }
                }
                if chunk.is_empty() {
                    return;
                }
                let last = chunk.len() < batch_size;
                let batch = prepare_batch(pool, &chunk, cfg);
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed || last {
                    return;
                }
            }
        });
        // `rx` is dropped when this closure returns, even on error, which
        // unblocks the producer before the scope joins it.
        for batch in rx {
            consume(batch.map_err(E::from)?)?;
        }
        Ok(())
    })
}
