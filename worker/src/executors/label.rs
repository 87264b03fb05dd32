//! Label jobs: one model × one shard of the semantic graph's images. Writes the
//! images' L2-normalised embeddings (`image_embeddings` f32 [n, D]), their true
//! nodes (`nodes` i64 [n]) and, when the job asks for K > 0, each image's K best
//! nodes by cosine (`top_nodes` i32 [n, K], best first): selection then finds
//! the argmax over its selected nodes by walking that list instead of
//! recomputing the image's row of S_m (docs/method.md, "Model labels" and
//! "Selection"). With `encode_node_texts` (shard 0) the node texts' embeddings
//! (`text_embeddings` f32 [V, D]) are stored as a second artifact; every shard
//! encodes them when it needs the lists.

use super::evaluate::{data_error, encode_batches, tensor_f32};
use super::model::ModelProvider;
use crate::data::graph::GraphFile;
use crate::executor::{ExecContext, ExecError, Executor};
use mll_common::artifact::safetensors_io::{self, Named};
use mll_common::artifact::ArtifactRef;
use mll_common::job::LabelJob;
use mll_common::output::LabelOutput;
use mll_common::{Job, JobOutput, JobPayload};
use std::path::Path;
use std::sync::Arc;
use tch::{Kind, Tensor};

/// Node texts encoded per call; bounded so long graphs do not build one huge batch.
const TEXT_BATCH: usize = 256;

pub struct LabelExecutor {
    models: Arc<dyn ModelProvider>,
    batch_size: usize,
    pool: rayon::ThreadPool,
    /// The last (model folder, node texts digest) and its node text
    /// embeddings: every shard needs them for its best-node lists, and a
    /// worker usually runs many shards of one model in a row.
    node_texts: std::sync::Mutex<Option<(NodeTextsKey, Tensor)>>,
}

type NodeTextsKey = (std::path::PathBuf, String);

/// What a label job computed, before it goes to the artifact store.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelResult {
    pub dim: usize,
    pub image_embeddings: Vec<f32>,
    pub nodes: Vec<i64>,
    pub text_embeddings: Option<Vec<f32>>,
    /// K per image (0 when the job asked for none).
    pub top_k: usize,
    /// n × K node indexes, best first.
    pub top_nodes: Vec<i32>,
}

impl LabelExecutor {
    /// `decode_threads` = 0: one decode thread per core.
    pub fn new(models: Arc<dyn ModelProvider>, batch_size: usize, decode_threads: usize) -> anyhow::Result<Self> {
        let pool = crate::data::pipeline::decode_pool(decode_threads)?;
        Ok(LabelExecutor { models, batch_size: batch_size.max(1), pool, node_texts: std::sync::Mutex::new(None) })
    }

    pub fn label(&self, job: &LabelJob, model_dir: &Path, graph_path: &Path, ctx: &ExecContext) -> Result<LabelResult, ExecError> {
        let graph = GraphFile::load_under(&ctx.data_root, graph_path).map_err(data_error)?;
        let mut samples = Some(graph.samples(job.shard.start, job.shard.end).map_err(data_error)?);
        let mut out =
            LabelResult { dim: 0, image_embeddings: Vec::new(), nodes: Vec::new(), text_embeddings: None, top_k: 0, top_nodes: Vec::new() };
        let torch = |source| ExecError::Torch { doing: "ranking graph nodes failed in libtorch", source };
        self.models.with_model(model_dir, &mut |model| {
            let samples = samples.take().expect("with_model runs its closure once");
            // Node texts first: the per-image node lists need them on the device.
            let texts: Option<Tensor> = if job.encode_node_texts || job.top_nodes > 0 {
                let node_texts = graph.node_texts_for(job.definition_only).map_err(data_error)?;
                if node_texts.is_empty() {
                    return Err(ExecError::Permanent("the graph has no nodes; rebuild it with `coordinator graph build`".into()));
                }
                let key: NodeTextsKey = (model_dir.to_path_buf(), texts_digest(&node_texts));
                let mut cache = self.node_texts.lock().unwrap_or_else(|e| e.into_inner());
                match cache.as_ref() {
                    Some((k, t)) if *k == key => Some(t.shallow_clone()),
                    _ => {
                        let mut parts = Vec::new();
                        for chunk in node_texts.chunks(TEXT_BATCH) {
                            ctx.check_cancelled()?;
                            parts.push(model.encode_texts(chunk)?.f_to_kind(Kind::Float).map_err(torch)?);
                        }
                        let t = Tensor::f_cat(&parts, 0).map_err(torch)?;
                        *cache = Some((key, t.shallow_clone()));
                        Some(t)
                    }
                }
            } else {
                None
            };
            let v = texts.as_ref().map_or(0, |t| t.size()[0]);
            let k = (job.top_nodes as i64).min(v);
            out.top_k = k as usize;
            encode_batches(model, samples, &self.pool, self.batch_size, ctx, "label", |batch, features| {
                out.dim = features.size().last().copied().unwrap_or(0) as usize;
                if let (Some(t), true) = (&texts, k > 0) {
                    let sims = features.f_to_kind(Kind::Float).map_err(torch)?.f_matmul(&t.f_tr().map_err(torch)?).map_err(torch)?;
                    out.top_nodes.extend(best_nodes(&sims, k).map_err(torch)?);
                }
                out.image_embeddings.extend(tensor_f32(&features)?);
                out.nodes.extend_from_slice(&batch.labels);
                Ok(())
            })?;
            if job.encode_node_texts {
                out.text_embeddings = Some(tensor_f32(texts.as_ref().expect("encoded above"))?);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

fn texts_digest(texts: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for t in texts {
        h.update(t.as_bytes());
        h.update([0x1f]);
    }
    hex::encode(h.finalize())
}

/// Each row's `k` best columns of `sims` [B, V], best first, equal scores by
/// lower node index. topk on the device shortlists; the order is then fixed on
/// the CPU because libtorch does not define the order of ties.
fn best_nodes(sims: &Tensor, k: i64) -> Result<Vec<i32>, tch::TchError> {
    let (values, indexes) = sims.f_topk(k, 1, true, true)?;
    let values: Vec<f32> = Vec::try_from(values.f_to_device(tch::Device::Cpu)?.reshape([-1]))?;
    let indexes: Vec<i64> = Vec::try_from(indexes.f_to_device(tch::Device::Cpu)?.reshape([-1]))?;
    let mut out = Vec::with_capacity(indexes.len());
    let mut row: Vec<(f32, i64)> = Vec::with_capacity(k as usize);
    for (vals, idx) in values.chunks(k as usize).zip(indexes.chunks(k as usize)) {
        row.clear();
        row.extend(vals.iter().copied().zip(idx.iter().copied()));
        row.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out.extend(row.iter().map(|&(_, i)| i as i32));
    }
    Ok(out)
}

fn put(ctx: &ExecContext, bytes: Vec<u8>) -> Result<ArtifactRef, ExecError> {
    Ok(ctx.artifacts.put(&bytes)?)
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
        let mut tensors = vec![Named::new("image_embeddings", vec![n, r.dim], &r.image_embeddings), Named::new("nodes", vec![n], &r.nodes)];
        if r.top_k > 0 {
            tensors.push(Named::new("top_nodes", vec![n, r.top_k], &r.top_nodes));
        }
        let images = put(ctx, safetensors_io::encode(&tensors)?)?;
        let node_texts = match &r.text_embeddings {
            None => None,
            Some(t) => {
                let v = t.len().checked_div(r.dim).unwrap_or(0);
                let bytes = safetensors_io::encode(&[Named::new("text_embeddings", vec![v, r.dim], t)])?;
                Some(put(ctx, bytes)?)
            }
        };
        Ok(JobOutput::Label(LabelOutput { images, node_texts, count: n as u64 }))
    }
}
