//! Label jobs: one model × one shard of the semantic graph's images. Writes the
//! images' L2-normalised embeddings (`image_embeddings` f32 [n, D]) and their
//! true nodes (`nodes` i64 [n]); with `encode_node_texts` (shard 0), also every
//! node's text embedding (`text_embeddings` f32 [V, D]) as a second artifact.

use super::evaluate::{data_error, encode_batches, f32_bytes, i64_bytes, safetensors_bytes, tensor_f32};
use super::model::ModelProvider;
use crate::data::graph::GraphFile;
use crate::executor::{ExecContext, ExecError, Executor};
use mll_common::artifact::ArtifactRef;
use mll_common::job::LabelJob;
use mll_common::output::LabelOutput;
use mll_common::{Job, JobOutput, JobPayload};
use std::path::Path;
use std::sync::Arc;

/// Node texts encoded per call; bounded so long graphs do not build one huge batch.
const TEXT_BATCH: usize = 256;

pub struct LabelExecutor {
    models: Arc<dyn ModelProvider>,
    batch_size: usize,
    pool: rayon::ThreadPool,
}

/// What a label job computed, before it goes to the artifact store.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelResult {
    pub dim: usize,
    pub image_embeddings: Vec<f32>,
    pub nodes: Vec<i64>,
    pub text_embeddings: Option<Vec<f32>>,
}

impl LabelExecutor {
    /// `decode_threads` = 0: one decode thread per core.
    pub fn new(models: Arc<dyn ModelProvider>, batch_size: usize, decode_threads: usize) -> anyhow::Result<Self> {
        let pool = crate::data::pipeline::decode_pool(decode_threads)?;
        Ok(LabelExecutor { models, batch_size: batch_size.max(1), pool })
    }

    pub fn label(&self, job: &LabelJob, model_dir: &Path, graph_path: &Path, ctx: &ExecContext) -> Result<LabelResult, ExecError> {
        let graph = GraphFile::load(graph_path).map_err(data_error)?;
        let mut samples = Some(graph.samples(job.shard.start, job.shard.end).map_err(data_error)?);
        let mut out = LabelResult { dim: 0, image_embeddings: Vec::new(), nodes: Vec::new(), text_embeddings: None };
        self.models.with_model(model_dir, &mut |model| {
            let samples = samples.take().expect("with_model runs its closure once");
            encode_batches(model, samples, &self.pool, self.batch_size, ctx, "label", |batch, features| {
                out.dim = features.size().last().copied().unwrap_or(0) as usize;
                out.image_embeddings.extend(tensor_f32(&features)?);
                out.nodes.extend_from_slice(&batch.labels);
                Ok(())
            })?;
            if job.encode_node_texts {
                let texts = graph.node_texts();
                let mut emb = Vec::new();
                for chunk in texts.chunks(TEXT_BATCH) {
                    ctx.check_cancelled()?;
                    let t = model.encode_texts(chunk)?;
                    out.dim = t.size().last().copied().unwrap_or(0) as usize;
                    emb.extend(tensor_f32(&t)?);
                }
                out.text_embeddings = Some(emb);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

fn put(ctx: &ExecContext, bytes: Vec<u8>) -> Result<ArtifactRef, ExecError> {
    ctx.artifacts.put(&bytes).map_err(|e| ExecError::Transient(e.to_string()))
}

impl Executor for LabelExecutor {
    fn execute(&self, job: &Job, ctx: &ExecContext) -> Result<JobOutput, ExecError> {
        let JobPayload::Label(lj) = &job.payload else {
            return Err(ExecError::Permanent(format!("the label executor got a {} job", job.stage())));
        };
        let model_dir = ctx.resolve(&lj.model.artifact)?;
        let graph_path = ctx.resolve(&lj.graph)?;
        let r = self.label(lj, &model_dir, &graph_path, ctx)?;
        let n = r.nodes.len();
        if n as u64 != lj.shard.end - lj.shard.start {
            return Err(ExecError::Permanent(format!("labelled {n} images but the shard has {}", lj.shard.end - lj.shard.start)));
        }
        let images = put(
            ctx,
            safetensors_bytes(&[
                ("image_embeddings", safetensors::Dtype::F32, vec![n, r.dim], f32_bytes(&r.image_embeddings)),
                ("nodes", safetensors::Dtype::I64, vec![n], i64_bytes(&r.nodes)),
            ])?,
        )?;
        let node_texts = match &r.text_embeddings {
            None => None,
            Some(t) => {
                let v = if r.dim == 0 { 0 } else { t.len() / r.dim };
                Some(put(ctx, safetensors_bytes(&[("text_embeddings", safetensors::Dtype::F32, vec![v, r.dim], f32_bytes(t))])?)?)
            }
        };
        Ok(JobOutput::Label(LabelOutput { images, node_texts, count: n as u64 }))
    }
}
