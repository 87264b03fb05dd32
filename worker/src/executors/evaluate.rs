//! Evaluate jobs: zero-shot classification of one shard of a target dataset
//! by one model. Per class: n, top-1 and top-5 hits (top-5 = the true class is
//! among the top min(5, C) logits); optionally the per-sample softmax
//! probabilities as a safetensors artifact (`probs` f32 [n, C], `labels` i64 [n],
//! `entropy` f64 [n] of each probability row).
//!
//! logits = logit_scale · img · Wᵀ with L2-normalised image embeddings and the
//! classifier W [C, D] built from the job's class names and templates.

use super::model::{ClipModel, ModelProvider};
use crate::data::pipeline::{run_batches, PipelineError, PreparedBatch};
use crate::data::{self, DataError};
use crate::executor::{ExecContext, ExecError, Executor};
use mll_common::artifact::safetensors_io::{self, Named};
use mll_common::job::EvaluateJob;
use mll_common::output::{ClassCounts, EvaluateOutput};
use mll_common::telemetry::metrics;
use mll_common::{Job, JobOutput, JobPayload};
use std::sync::Arc;
use std::time::Instant;
use tch::{Kind, Tensor};

/// Counts and (optionally) probabilities accumulated batch by batch.
#[derive(Debug)]
pub struct EvalAccumulator {
    classes: usize,
    pub counts: ClassCounts,
    probs: Option<Vec<f32>>,
    labels: Vec<i64>,
}

impl EvalAccumulator {
    pub fn new(classes: usize, keep_probabilities: bool) -> Self {
        EvalAccumulator { classes, counts: ClassCounts::zeros(classes), probs: keep_probabilities.then(Vec::new), labels: Vec::new() }
    }

    /// Scores one batch: `features` [B, D] (L2-normalised), `classifier` [C, D].
    /// `names` name the samples for the out-of-range label error.
    pub fn add_batch(
        &mut self,
        features: &Tensor,
        classifier: &Tensor,
        logit_scale: f64,
        labels: &[i64],
        first_index: u64,
    ) -> Result<(), ExecError> {
        let c = self.classes as i64;
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l < 0 || l >= c) {
            return Err(ExecError::Permanent(format!(
                "sample {} has label {l} but the job has {c} classes: the dataset's labels do not match its class list (check classnames.txt / the spec's class names)",
                first_index + i as u64
            )));
        }
        let torch = |source| ExecError::Torch { doing: "scoring a batch failed in libtorch", source };
        let logits = features
            .f_matmul(&classifier.f_tr().map_err(torch)?)
            .map_err(torch)?
            .f_mul_scalar(logit_scale)
            .map_err(torch)?
            .f_to_kind(Kind::Float)
            .map_err(torch)?
            .f_to_device(tch::Device::Cpu)
            .map_err(torch)?;
        let b = labels.len() as i64;
        if logits.size() != [b, c] {
            return Err(ExecError::Permanent(format!(
                "the model returned {:?} logits for a batch of {b} images and {c} classes (is the exported module's embedding size consistent with its text side?)",
                logits.size()
            )));
        }
        let k = c.min(5);
        let (_, top) = logits.f_topk(k, 1, true, true).map_err(torch)?;
        let top: Vec<i64> = Vec::<i64>::try_from(top.reshape([-1])).map_err(torch)?;
        for (i, &label) in labels.iter().enumerate() {
            let row = &top[i * k as usize..(i + 1) * k as usize];
            let l = label as usize;
            self.counts.n[l] += 1;
            if row[0] == label {
                self.counts.top1[l] += 1;
            }
            if row.contains(&label) {
                self.counts.top5[l] += 1;
            }
        }
        if let Some(probs) = self.probs.as_mut() {
            let p = logits.f_softmax(1, Kind::Float).map_err(torch)?;
            probs.extend(Vec::<f32>::try_from(p.reshape([-1])).map_err(torch)?);
            self.labels.extend_from_slice(labels);
        }
        Ok(())
    }

    pub fn images(&self) -> u64 {
        self.counts.n.iter().sum()
    }

    /// Per sample, in order: (label, predicted class), the first of equal
    /// probabilities winning as in topk. None unless probabilities are kept.
    pub fn predictions(&self) -> Option<Vec<(i64, usize)>> {
        let probs = self.probs.as_ref()?;
        let rows = probs.chunks(self.classes.max(1));
        Some(
            rows.zip(&self.labels)
                .map(|(row, &label)| {
                    let best = row.iter().enumerate().fold(0, |b, (i, &p)| if p > row[b] { i } else { b });
                    (label, best)
                })
                .collect(),
        )
    }

    /// The probabilities artifact (safetensors bytes), when kept.
    pub fn probabilities_safetensors(&self) -> Option<Result<Vec<u8>, ExecError>> {
        let probs = self.probs.as_ref()?;
        let n = self.labels.len();
        // Stored so reuse reads n weights instead of taking n × C logarithms per model.
        let entropy: Vec<f64> = probs.chunks(self.classes.max(1)).map(|row| mll_method::prob::entropy(row.iter().copied())).collect();
        Some(
            safetensors_io::encode(&[
                Named::new("probs", vec![n, self.classes], probs),
                Named::new("labels", vec![n], &self.labels),
                Named::new("entropy", vec![n], &entropy),
            ])
            .map_err(ExecError::Encode),
        )
    }
}

/// libtorch output [n, D] on any device → f32 rows on the CPU.
pub(crate) fn tensor_f32(t: &Tensor) -> Result<Vec<f32>, ExecError> {
    let torch = |source| ExecError::Torch { doing: "copying embeddings off the device failed", source };
    let t = t.f_to_kind(Kind::Float).map_err(torch)?.f_to_device(tch::Device::Cpu).map_err(torch)?;
    Vec::<f32>::try_from(t.reshape([-1])).map_err(torch)
}

pub(crate) fn data_error(e: DataError) -> ExecError {
    ExecError::Data { source: e }
}

pub(crate) fn pipeline_error(e: PipelineError) -> ExecError {
    match e {
        PipelineError::Data(d) => data_error(d),
        PipelineError::Image(i) => ExecError::Image { source: i },
    }
}

impl From<PipelineError> for ExecError {
    fn from(e: PipelineError) -> Self {
        pipeline_error(e)
    }
}

/// Runs `samples` through `model` in batches, feeding `on_batch` the image
/// embeddings of each batch. Counts images and batch time in the metrics and
/// checks for cancellation between batches.
pub(crate) fn encode_batches(
    model: &dyn ClipModel,
    samples: data::SampleIter<'_>,
    pool: &rayon::ThreadPool,
    batch_size: usize,
    ctx: &ExecContext,
    kind: &str,
    mut on_batch: impl FnMut(&PreparedBatch, Tensor) -> Result<(), ExecError>,
) -> Result<(), ExecError> {
    let cfg = model.preprocess();
    let images = metrics().worker_images.with_label_values(&[kind]);
    run_batches::<ExecError, _>(pool, samples, &cfg, batch_size, |batch| {
        ctx.check_cancelled()?;
        let t0 = Instant::now();
        let features = model.encode_images(&batch.images.to_tensor())?;
        on_batch(&batch, features)?;
        metrics().worker_batch_duration.observe(t0.elapsed().as_secs_f64());
        images.inc_by(batch.labels.len() as u64);
        Ok(())
    })
}

/// Runs evaluate jobs.
pub struct EvaluateExecutor {
    models: Arc<dyn ModelProvider>,
    batch_size: usize,
    pool: rayon::ThreadPool,
}

impl EvaluateExecutor {
    /// `decode_threads` = 0: one decode thread per core.
    pub fn new(models: Arc<dyn ModelProvider>, batch_size: usize, decode_threads: usize) -> anyhow::Result<Self> {
        let pool = crate::data::pipeline::decode_pool(decode_threads)?;
        Ok(EvaluateExecutor { models, batch_size: batch_size.max(1), pool })
    }

    /// Evaluates `job` on the dataset at `dataset_dir` (already resolved).
    pub fn evaluate(
        &self,
        job: &EvaluateJob,
        model_dir: &std::path::Path,
        dataset_dir: &std::path::Path,
        ctx: &ExecContext,
    ) -> Result<(EvalAccumulator, String), ExecError> {
        if job.classnames.is_empty() {
            return Err(ExecError::Permanent(format!(
                "evaluate job for {} has no class names (the spec must give the dataset's classes)",
                job.dataset.name
            )));
        }
        let ds = data::open_under(&ctx.data_root, dataset_dir, job.dataset.format).map_err(data_error)?;
        let samples = ds.samples(job.shard.start, job.shard.end).map_err(data_error)?;
        let mut samples = Some(samples);
        let mut acc = EvalAccumulator::new(job.classnames.len(), job.keep_probabilities);
        self.models.with_model(model_dir, &mut |model| {
            let classifier = model.classifier(&job.classnames, &job.templates, job.protocol)?;
            let scale = model.logit_scale();
            let samples = samples.take().expect("with_model runs its closure once");
            encode_batches(model, samples, &self.pool, self.batch_size, ctx, "evaluate", |batch, features| {
                acc.add_batch(&features, &classifier, scale, &batch.labels, batch.first_index)
            })
        })?;
        Ok((acc, job.protocol.as_str().to_string()))
    }
}

impl Executor for EvaluateExecutor {
    fn execute(&self, job: &Job, ctx: &ExecContext) -> Result<JobOutput, ExecError> {
        let JobPayload::Evaluate(ej) = &job.payload else {
            return Err(ExecError::Permanent(format!("the evaluate executor got a {} job", job.stage())));
        };
        let model_dir = ctx.resolve(&ej.model.artifact)?;
        let dataset_dir = ctx.resolve(&ej.dataset.path)?;
        let expected = ej.shard.end - ej.shard.start;
        let (acc, protocol) = self.evaluate(ej, &model_dir, &dataset_dir, ctx)?;
        if acc.images() != expected {
            return Err(ExecError::Permanent(format!("evaluated {} images but the shard has {expected}", acc.images())));
        }
        let probabilities = match acc.probabilities_safetensors() {
            None => None,
            Some(bytes) => Some(ctx.artifacts.put(&bytes?)?),
        };
        Ok(JobOutput::Evaluate(EvaluateOutput { counts: acc.counts.clone(), protocol, probabilities, images: acc.images() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_top1_top5_and_probabilities() {
        // 3 samples, 6 classes, D = 6 with one-hot class vectors: features
        // choose the ranking directly.
        let classifier = Tensor::eye(6, (Kind::Float, tch::Device::Cpu));
        let feats = Tensor::from_slice(&[
            0.9f32, 0.5, 0.4, 0.3, 0.2, 0.1, // true 0: top-1 hit
            0.6, 0.9, 0.8, 0.7, 0.65, 0.1, // true 5: 6th place, miss both
            0.1, 0.2, 0.9, 0.8, 0.7, 0.6, // true 5: 4th place, top-5 hit
        ])
        .view([3, 6]);
        let mut acc = EvalAccumulator::new(6, true);
        acc.add_batch(&feats, &classifier, 100.0, &[0, 5, 5], 0).unwrap();
        assert_eq!(acc.counts.n, vec![1, 0, 0, 0, 0, 2]);
        assert_eq!(acc.counts.top1, vec![1, 0, 0, 0, 0, 0]);
        assert_eq!(acc.counts.top5, vec![1, 0, 0, 0, 0, 1]);
        let bytes = acc.probabilities_safetensors().unwrap().unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let probs = st.tensor("probs").unwrap();
        assert_eq!(probs.shape(), &[3, 6]);
        let p: Vec<f32> = probs.data().chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        for row in p.chunks(6) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        // softmax(100·x): the 0.9 entry of row 0 dominates the 0.5 one by e^40.
        assert!(p[0] > 0.999);
        assert_eq!(st.tensor("labels").unwrap().shape(), &[3]);
        let h: Vec<f64> = st.tensor("entropy").unwrap().data().chunks(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect();
        let expected: Vec<f64> = p.chunks(6).map(|row| mll_method::prob::entropy(row.iter().copied())).collect();
        assert_eq!(h, expected, "stored entropies are the shared formula's, bit for bit");
        assert!(h[0] < h[1], "the confident row has the lower entropy: {h:?}");

        let err = acc.add_batch(&feats, &classifier, 100.0, &[0, 6, 1], 10).unwrap_err();
        assert!(matches!(err, ExecError::Permanent(ref m) if m.contains("sample 11") && m.contains("label 6")), "{err}");
    }

    #[test]
    fn fewer_than_five_classes_counts_every_sample_in_top5() {
        let classifier = Tensor::eye(3, (Kind::Float, tch::Device::Cpu));
        let feats = Tensor::from_slice(&[0.1f32, 0.2, 0.9, 0.9, 0.2, 0.1]).view([2, 3]);
        let mut acc = EvalAccumulator::new(3, false);
        acc.add_batch(&feats, &classifier, 100.0, &[0, 0], 0).unwrap();
        assert_eq!(acc.counts.top1, vec![1, 0, 0]);
        assert_eq!(acc.counts.top5, vec![2, 0, 0]);
        assert!(acc.probabilities_safetensors().is_none());
    }
}
