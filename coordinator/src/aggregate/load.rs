//! Committed results read back per plan job (each checked by `records`):
//! evaluate counts and probabilities per (model, dataset), pooled caption
//! embeddings, each model's graph labels, the diagnostic jobs' check; and the
//! safetensors decoding they need, every shape and dtype checked.

use super::AggregateError;
use crate::control::RunControl;
use crate::method::{ModelLabels, Predictions};
use crate::outcome::DiagnosticSummary;
use crate::plan::Plan;
use mll_common::artifact::safetensors_io::{self, TensorError};
use mll_common::artifact::{ArtifactRef, ArtifactStore};
use mll_common::job::JobPayload;
use mll_common::output::{decode_result, ClassCounts, Execution, JobOutput};
use mll_common::{Job, JobId};
use ndarray::{Array2, Axis};
use safetensors::SafeTensors;
use std::collections::BTreeMap;

/// Decodes with [`safetensors_io`], naming the artifact on failure.
fn in_artifact<T>(sha: &str, r: Result<T, TensorError>) -> Result<T, AggregateError> {
    r.map_err(|source| AggregateError::Tensor { sha256: sha.into(), source })
}

/// `top_nodes` (i32, n × K) as u32 lists, each checked to be a graph node, and
/// their heads ([`crate::method::TopNodes`]), split in the same pass.
fn top_nodes(st: &SafeTensors, sha: &str, graph_nodes: usize) -> Result<(Array2<u32>, Vec<u32>), AggregateError> {
    let bad = |reason: String| AggregateError::Artifact { sha256: sha.into(), reason };
    let ((n, k), values) = in_artifact(sha, safetensors_io::matrix::<i32>(st, "top_nodes"))?;
    let mut lists = Vec::with_capacity(n * k);
    let mut head = Vec::with_capacity(n * crate::method::TopNodes::head_width(k));
    for (j, x) in values.into_iter().enumerate() {
        if x < 0 || x as usize >= graph_nodes {
            return Err(bad(format!(
                "tensor 'top_nodes' names node {x} but the graph has {graph_nodes} nodes; the label artifacts do not belong to this graph"
            )));
        }
        let x = x as u32;
        if j % k < crate::method::TopNodes::head_width(k) {
            head.push(x);
        }
        lists.push(x);
    }
    Ok((Array2::from_shape_vec((n, k), lists).expect("shape checked"), head))
}

fn safetensors_of<'a>(bytes: &'a [u8], aref: &ArtifactRef) -> Result<SafeTensors<'a>, AggregateError> {
    in_artifact(&aref.sha256, safetensors_io::parse(bytes))
}

fn read(store: &ArtifactStore, aref: &ArtifactRef) -> Result<Vec<u8>, AggregateError> {
    store.get(aref).map_err(|source| AggregateError::Read { sha256: aref.sha256.clone(), source })
}

fn matrix(store: &ArtifactStore, aref: &ArtifactRef, name: &str) -> Result<Array2<f32>, AggregateError> {
    let bytes = read(store, aref)?;
    matrix_of(&safetensors_of(&bytes, aref)?, name, &aref.sha256)
}

fn matrix_of(st: &SafeTensors, name: &str, sha: &str) -> Result<Array2<f32>, AggregateError> {
    let (shape, v) = in_artifact(sha, safetensors_io::matrix::<f32>(st, name))?;
    Ok(Array2::from_shape_vec(shape, v).expect("shape checked"))
}

/// Stacks row blocks whose widths the callers checked against their artifacts.
fn vstack(parts: Vec<Array2<f32>>, what: &str) -> Result<Array2<f32>, AggregateError> {
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(Axis(0), &views).map_err(|source| AggregateError::Stack { what: what.into(), source })
}

/// Mean of each item's caption rows, re-normalised (a node's or class's embedding).
pub fn pool_rows(rows: &Array2<f32>, ranges: &[std::ops::Range<usize>]) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((ranges.len(), rows.ncols()));
    for (i, r) in ranges.iter().enumerate() {
        let mut acc = out.row_mut(i);
        for j in r.clone() {
            acc += &rows.row(j);
        }
        let norm = acc.dot(&acc).sqrt().max(1e-12);
        acc.mapv_inplace(|x| x / norm);
    }
    out
}

/// Every committed output of the plan's jobs, in plan order (None = missing).
pub struct Outputs {
    pub by_job: BTreeMap<JobId, JobOutput>,
    /// How each evaluate job's execution went, where its result recorded it.
    pub executions: BTreeMap<JobId, Execution>,
}

impl Outputs {
    /// Damaged results are logged with their job and left out (as missing).
    pub async fn load(ctl: &RunControl, plan: &Plan) -> anyhow::Result<Outputs> {
        let (by_job, _damaged) = crate::records::load(&*ctl.store, plan).await?;
        // Durations for the k sweep's reuse cost: evaluate records only.
        let mut executions = BTreeMap::new();
        for job in plan.jobs.iter().filter(|j| matches!(j.payload, JobPayload::Evaluate(_)) && by_job.contains_key(&j.id)) {
            if let Some(x) = ctl.store.result(&plan.run, &job.id).await?.and_then(|b| decode_result(&b).ok()).and_then(|r| r.execution) {
                executions.insert(job.id.clone(), x);
            }
        }
        Ok(Outputs { by_job, executions })
    }

    fn get(&self, job: &Job) -> Option<&JobOutput> {
        self.by_job.get(&job.id)
    }
}

/// Evaluate results of one (model, dataset) pair: summed counts, and the
/// per-sample probabilities when every shard kept them.
pub struct PairResult {
    pub counts: Option<ClassCounts>,
    pub predictions: Option<Predictions>,
    /// Summed execution seconds of the pair's evaluate jobs, when every shard recorded them.
    pub seconds: Option<f64>,
}

pub fn pair_result(
    plan: &Plan,
    outs: &Outputs,
    artifacts: &ArtifactStore,
    model: &str,
    dataset: &str,
) -> Result<PairResult, AggregateError> {
    let jobs: Vec<&Job> = plan
        .jobs
        .iter()
        .filter(|j| matches!(&j.payload, JobPayload::Evaluate(e) if e.model.key == model && e.dataset.name == dataset))
        .collect();
    let mut counts: Option<ClassCounts> = None;
    let mut probs = Vec::new();
    let mut labs: Vec<usize> = Vec::new();
    let mut entropy: Option<Vec<f64>> = Some(Vec::new());
    let mut complete = !jobs.is_empty();
    let mut have_probs = true;
    let mut seconds = Some(0.0);
    for j in &jobs {
        match outs.get(j) {
            Some(JobOutput::Evaluate(e)) => {
                seconds = match (seconds, outs.executions.get(&j.id)) {
                    (Some(s), Some(x)) => Some(s + x.seconds),
                    _ => None,
                };
                match &mut counts {
                    Some(c) => c.add(&e.counts),
                    None => counts = Some(e.counts.clone()),
                }
                match &e.probabilities {
                    Some(a) if have_probs => {
                        let bytes = read(artifacts, a)?;
                        let st = safetensors_of(&bytes, a)?;
                        let p = matrix_of(&st, "probs", &a.sha256)?;
                        let l = in_artifact(&a.sha256, safetensors_io::values::<i64>(&st, "labels"))?;
                        let classes = e.counts.n.len();
                        let bad = |reason: String| AggregateError::Artifact { sha256: a.sha256.clone(), reason };
                        if p.ncols() != classes || p.nrows() != l.len() {
                            return Err(bad(format!("'probs' is {}x{} for {} labels of {classes} classes", p.nrows(), p.ncols(), l.len())));
                        }
                        for &x in &l {
                            match usize::try_from(x) {
                                Ok(c) if c < classes => labs.push(c),
                                _ => return Err(bad(format!("'labels' holds {x}, not a class of 0..{classes}"))),
                            }
                        }
                        probs.push(p);
                        // Older artifacts have no entropies: reuse then computes them all.
                        match (&mut entropy, safetensors_io::has(&st, "entropy")) {
                            (Some(h), true) => {
                                let x = in_artifact(&a.sha256, safetensors_io::values::<f64>(&st, "entropy"))?;
                                if x.len() != l.len() {
                                    return Err(bad(format!("'entropy' has {} values for {} samples", x.len(), l.len())));
                                }
                                h.extend(x)
                            }
                            _ => entropy = None,
                        }
                    }
                    _ => have_probs = false,
                }
            }
            _ => complete = false,
        }
    }
    if !complete {
        return Ok(PairResult { counts: None, predictions: None, seconds: None });
    }
    let predictions = if have_probs && !probs.is_empty() {
        Some(Predictions { probs: vstack(probs, &format!("probabilities of {model} on {dataset}"))?, labels: labs, entropy })
    } else {
        None
    };
    Ok(PairResult { counts, predictions, seconds })
}

/// The embeddings of one text source, pooled per item; None if a chunk is missing.
pub fn source_embeddings(
    plan: &Plan,
    outs: &Outputs,
    artifacts: &ArtifactStore,
    source: &str,
) -> Result<Option<Array2<f32>>, AggregateError> {
    let Some(ranges) = plan.texts.sources.get(source) else { return Ok(None) };
    let mut chunks: Vec<(u64, Array2<f32>)> = Vec::new();
    for j in &plan.jobs {
        if let JobPayload::Embed(e) = &j.payload {
            if e.source != source {
                continue;
            }
            match outs.get(j) {
                Some(JobOutput::Embed(o)) => {
                    let m = matrix(artifacts, &o.embeddings, "embeddings")?;
                    let width = chunks.first().map(|c| c.1.ncols());
                    if m.nrows() != e.texts.len() || width.is_some_and(|w| w != m.ncols()) {
                        return Err(AggregateError::Artifact {
                            sha256: o.embeddings.sha256.clone(),
                            reason: format!(
                                "'embeddings' is {}x{} for {} texts; other chunks of {source} are {} wide",
                                m.nrows(),
                                m.ncols(),
                                e.texts.len(),
                                width.unwrap_or(m.ncols())
                            ),
                        });
                    }
                    chunks.push((e.start, m))
                }
                _ => return Ok(None),
            }
        }
    }
    if chunks.is_empty() {
        return Ok(None);
    }
    chunks.sort_by_key(|c| c.0);
    let rows = vstack(chunks.into_iter().map(|c| c.1).collect(), &format!("embeddings of {source}"))?;
    Ok(Some(pool_rows(&rows, ranges)))
}

/// Whether every label job of a model has a committed result.
pub(super) fn labels_committed(plan: &Plan, outs: &Outputs, model: &str) -> bool {
    let mut any = false;
    for j in &plan.jobs {
        if let JobPayload::Label(l) = &j.payload {
            if l.model.key == model {
                any = true;
                if !matches!(outs.get(j), Some(JobOutput::Label(_))) {
                    return false;
                }
            }
        }
    }
    any
}

/// A model's labels on the graph; None if a shard is missing.
/// Where one model's graph labels are: its label shards' image artifacts in
/// image order (shard start) and its node text embeddings. None until every
/// label job of the model is committed. The hub index is built from these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSources {
    pub shards: Vec<ArtifactRef>,
    pub node_texts: ArtifactRef,
}

pub fn label_sources(plan: &Plan, outs: &Outputs, model: &str) -> Option<LabelSources> {
    let mut shards = Vec::new();
    let mut node_texts = None;
    for j in &plan.jobs {
        if let JobPayload::Label(l) = &j.payload {
            if l.model.key != model {
                continue;
            }
            let Some(JobOutput::Label(o)) = outs.get(j) else { return None };
            shards.push((l.shard.start, o.images.clone()));
            if let Some(t) = &o.node_texts {
                node_texts = Some(t.clone());
            }
        }
    }
    shards.sort_by_key(|(start, _)| *start);
    Some(LabelSources { shards: shards.into_iter().map(|(_, a)| a).collect(), node_texts: node_texts? })
}

pub fn model_labels(plan: &Plan, outs: &Outputs, artifacts: &ArtifactStore, model: &str) -> Result<Option<ModelLabels>, AggregateError> {
    struct ShardLabels {
        start: u64,
        embeddings: Array2<f32>,
        nodes: Vec<i64>,
        top: Option<(Array2<u32>, Vec<u32>)>,
    }
    let mut shards: Vec<ShardLabels> = Vec::new();
    let mut texts = None;
    for j in &plan.jobs {
        if let JobPayload::Label(l) = &j.payload {
            if l.model.key != model {
                continue;
            }
            match outs.get(j) {
                Some(JobOutput::Label(o)) => {
                    let bytes = read(artifacts, &o.images)?;
                    let st = safetensors_of(&bytes, &o.images)?;
                    let sha = &o.images.sha256;
                    shards.push(ShardLabels {
                        start: l.shard.start,
                        embeddings: matrix_of(&st, "image_embeddings", sha)?,
                        nodes: in_artifact(sha, safetensors_io::values::<i64>(&st, "nodes"))?,
                        top: if safetensors_io::has(&st, "top_nodes") {
                            Some(top_nodes(&st, sha, plan.graph_node_ids.len())?)
                        } else {
                            None
                        },
                    });
                    if let Some(t) = &o.node_texts {
                        texts = Some(matrix(artifacts, t, "text_embeddings")?);
                    }
                }
                _ => return Ok(None),
            }
        }
    }
    let Some(node_text_embeddings) = texts else { return Ok(None) };
    shards.sort_by_key(|s| s.start);
    // The lists are used only when every shard has them with the same K.
    let k = shards.first().and_then(|s| s.top.as_ref().map(|t| t.0.ncols()));
    let lists = k.is_some_and(|k| k > 0) && shards.iter().all(|s| s.top.as_ref().map(|t| t.0.ncols()) == k);
    let k = if lists { k.unwrap_or(0) } else { 0 };
    let d = node_text_embeddings.ncols();
    let graph_nodes = plan.graph_node_ids.len();
    let bad = |reason: String| AggregateError::Other(format!("graph labels of {model}: {reason}; re-run its label jobs"));
    // Images go in true-node order (stable, so shard order within a node): selection
    // then reads each node's images as one run of memory (ImagesByNode).
    let mut offsets = vec![0usize; graph_nodes + 1];
    for sh in &shards {
        if sh.embeddings.ncols() != d || sh.embeddings.nrows() != sh.nodes.len() {
            return Err(bad(format!(
                "a shard has {}x{} image embeddings for {} images of width {d}",
                sh.embeddings.nrows(),
                sh.embeddings.ncols(),
                sh.nodes.len()
            )));
        }
        for &g in &sh.nodes {
            if g < 0 || g as usize >= graph_nodes {
                return Err(bad(format!("an image's true node is {g} but the graph has {graph_nodes} nodes")));
            }
            offsets[g as usize + 1] += 1;
        }
    }
    for v in 0..graph_nodes {
        offsets[v + 1] += offsets[v];
    }
    let n = offsets[graph_nodes];
    let mut image_embeddings = Array2::<f32>::zeros((n, d));
    let mut image_nodes = vec![0usize; n];
    let mut top_lists = Array2::<u32>::zeros((if lists { n } else { 0 }, k));
    let h = crate::method::TopNodes::head_width(k);
    let mut head = vec![0u32; if lists { n * h } else { 0 }];
    for sh in &shards {
        for (r, &g) in sh.nodes.iter().enumerate() {
            let slot = offsets[g as usize];
            offsets[g as usize] += 1;
            image_nodes[slot] = g as usize;
            image_embeddings.row_mut(slot).assign(&sh.embeddings.row(r));
            if let (true, Some((t, hd))) = (lists, &sh.top) {
                top_lists.row_mut(slot).assign(&t.row(r));
                head[slot * h..(slot + 1) * h].copy_from_slice(&hd[r * h..(r + 1) * h]);
            }
        }
    }
    let top_nodes = lists.then(|| crate::method::TopNodes::from_checked_parts(top_lists, head, graph_nodes));
    Ok(Some(ModelLabels { image_embeddings, image_nodes, image_rows: None, node_text_embeddings, top_nodes }))
}

pub fn diagnostic_summary(plan: &Plan, outs: &Outputs) -> Option<DiagnosticSummary> {
    let jobs: Vec<&Job> = plan.jobs.iter().filter(|j| matches!(j.payload, JobPayload::Diagnostic(_))).collect();
    if jobs.is_empty() {
        return None;
    }
    let mut sum: u64 = 0;
    let mut results = 0;
    for j in &jobs {
        if let Some(JobOutput::Diagnostic(d)) = outs.get(j) {
            sum = sum.wrapping_add(d.value);
            results += 1;
        }
    }
    Some(DiagnosticSummary { planned: jobs.len() as u64, results, value_checksum: format!("{sum:016x}") })
}
