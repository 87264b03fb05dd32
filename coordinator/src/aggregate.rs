//! Aggregation: committed results and their artifacts, read back per plan job,
//! assembled into the report's input. Everything is keyed by the plan (hub
//! order, dataset order, shard order), never by store iteration order, so the
//! same results always give the same report.

use crate::control::RunControl;
use crate::method::{ModelLabels, Predictions};
use crate::plan::Plan;
use mll_common::artifact::{ArtifactRef, ArtifactStore};
use mll_common::job::JobPayload;
use mll_common::output::{ClassCounts, JobOutput};
use mll_common::{wire, Job, JobId};
use ndarray::{Array2, Axis};
use safetensors::SafeTensors;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("aggregate: artifact {sha256}: {reason}")]
    Artifact { sha256: String, reason: String },
    #[error("aggregate: {0}")]
    Other(String),
}

/// Reads one tensor of a safetensors artifact as f32 or i64 (converted).
fn tensor_f32(st: &SafeTensors, name: &str, sha: &str) -> Result<(Vec<usize>, Vec<f32>), AggregateError> {
    let t = st.tensor(name).map_err(|e| AggregateError::Artifact { sha256: sha.into(), reason: format!("tensor '{name}': {e}") })?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(AggregateError::Artifact { sha256: sha.into(), reason: format!("tensor '{name}' is {:?}, expected F32", t.dtype()) });
    }
    let v = t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    Ok((t.shape().to_vec(), v))
}

fn tensor_i64(st: &SafeTensors, name: &str, sha: &str) -> Result<Vec<i64>, AggregateError> {
    let t = st.tensor(name).map_err(|e| AggregateError::Artifact { sha256: sha.into(), reason: format!("tensor '{name}': {e}") })?;
    if t.dtype() != safetensors::Dtype::I64 {
        return Err(AggregateError::Artifact { sha256: sha.into(), reason: format!("tensor '{name}' is {:?}, expected I64", t.dtype()) });
    }
    Ok(t.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect())
}

fn matrix(store: &ArtifactStore, aref: &ArtifactRef, name: &str) -> Result<Array2<f32>, AggregateError> {
    let bytes = store.get(aref).map_err(|e| AggregateError::Artifact { sha256: aref.sha256.clone(), reason: e.to_string() })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| AggregateError::Artifact { sha256: aref.sha256.clone(), reason: e.to_string() })?;
    let (shape, v) = tensor_f32(&st, name, &aref.sha256)?;
    let (r, c) = match shape.as_slice() {
        [r, c] => (*r, *c),
        _ => return Err(AggregateError::Artifact { sha256: aref.sha256.clone(), reason: format!("tensor '{name}' has shape {shape:?}, expected 2-D") }),
    };
    Ok(Array2::from_shape_vec((r, c), v).expect("shape checked"))
}

fn labels(store: &ArtifactStore, aref: &ArtifactRef, name: &str) -> Result<Vec<i64>, AggregateError> {
    let bytes = store.get(aref).map_err(|e| AggregateError::Artifact { sha256: aref.sha256.clone(), reason: e.to_string() })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| AggregateError::Artifact { sha256: aref.sha256.clone(), reason: e.to_string() })?;
    tensor_i64(&st, name, &aref.sha256)
}

fn vstack(parts: Vec<Array2<f32>>) -> Array2<f32> {
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(Axis(0), &views).expect("same column count")
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
}

impl Outputs {
    pub async fn load(ctl: &RunControl, plan: &Plan) -> anyhow::Result<Outputs> {
        let mut by_job = BTreeMap::new();
        for job in &plan.jobs {
            if let Some(bytes) = ctl.store.result(&plan.run, &job.id).await? {
                let out: JobOutput = wire::decode_value(&bytes)
                    .map_err(|e| anyhow::anyhow!("result of job {} cannot be decoded: {e}", job.id))?;
                by_job.insert(job.id.clone(), out);
            }
        }
        Ok(Outputs { by_job })
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
}

pub fn pair_result(plan: &Plan, outs: &Outputs, artifacts: &ArtifactStore, model: &str, dataset: &str)
    -> Result<PairResult, AggregateError>
{
    let jobs: Vec<&Job> = plan
        .jobs
        .iter()
        .filter(|j| matches!(&j.payload, JobPayload::Evaluate(e) if e.model.key == model && e.dataset.name == dataset))
        .collect();
    let mut counts: Option<ClassCounts> = None;
    let mut probs = Vec::new();
    let mut labs = Vec::new();
    let mut complete = !jobs.is_empty();
    let mut have_probs = true;
    for j in &jobs {
        match outs.get(j) {
            Some(JobOutput::Evaluate(e)) => {
                match &mut counts {
                    Some(c) => c.add(&e.counts),
                    None => counts = Some(e.counts.clone()),
                }
                match &e.probabilities {
                    Some(a) if have_probs => {
                        probs.push(matrix(artifacts, a, "probs")?);
                        labs.extend(labels(artifacts, a, "labels")?);
                    }
                    _ => have_probs = false,
                }
            }
            _ => complete = false,
        }
    }
    if !complete {
        return Ok(PairResult { counts: None, predictions: None });
    }
    let predictions = (have_probs && !probs.is_empty()).then(|| Predictions {
        probs: vstack(probs),
        labels: labs.into_iter().map(|l| l as usize).collect(),
    });
    Ok(PairResult { counts, predictions })
}

/// The embeddings of one text source, pooled per item; None if a chunk is missing.
pub fn source_embeddings(plan: &Plan, outs: &Outputs, artifacts: &ArtifactStore, source: &str)
    -> Result<Option<Array2<f32>>, AggregateError>
{
    let Some(ranges) = plan.texts.sources.get(source) else { return Ok(None) };
    let mut chunks: Vec<(u64, Array2<f32>)> = Vec::new();
    for j in &plan.jobs {
        if let JobPayload::Embed(e) = &j.payload {
            if e.source != source {
                continue;
            }
            match outs.get(j) {
                Some(JobOutput::Embed(o)) => chunks.push((e.start, matrix(artifacts, &o.embeddings, "embeddings")?)),
                _ => return Ok(None),
            }
        }
    }
    if chunks.is_empty() {
        return Ok(None);
    }
    chunks.sort_by_key(|c| c.0);
    let rows = vstack(chunks.into_iter().map(|c| c.1).collect());
    Ok(Some(pool_rows(&rows, ranges)))
}

/// A model's labels on the graph; None if a shard is missing.
pub fn model_labels(plan: &Plan, outs: &Outputs, artifacts: &ArtifactStore, model: &str)
    -> Result<Option<ModelLabels>, AggregateError>
{
    let mut shards: Vec<(u64, Array2<f32>, Vec<i64>)> = Vec::new();
    let mut texts = None;
    for j in &plan.jobs {
        if let JobPayload::Label(l) = &j.payload {
            if l.model.key != model {
                continue;
            }
            match outs.get(j) {
                Some(JobOutput::Label(o)) => {
                    shards.push((l.shard.start, matrix(artifacts, &o.images, "image_embeddings")?, labels(artifacts, &o.images, "nodes")?));
                    if let Some(t) = &o.node_texts {
                        texts = Some(matrix(artifacts, t, "text_embeddings")?);
                    }
                }
                _ => return Ok(None),
            }
        }
    }
    let Some(node_text_embeddings) = texts else { return Ok(None) };
    shards.sort_by_key(|s| s.0);
    let image_nodes = shards.iter().flat_map(|s| s.2.iter().map(|&n| n as usize)).collect();
    let image_embeddings = vstack(shards.into_iter().map(|s| s.1).collect());
    Ok(Some(ModelLabels { image_embeddings, image_nodes, node_text_embeddings }))
}

/// Summary of diagnostic jobs: how many results and a checksum over their
/// values, so duplicate or lost results would show.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct DiagnosticSummary {
    pub planned: u64,
    pub results: u64,
    pub value_checksum: String,
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

/// Builds the run's report from everything committed so far. Datasets or
/// models with missing results are reported as incomplete.
pub async fn build(ctl: &RunControl, plan: &Plan) -> anyhow::Result<crate::report::Report> {
    use crate::method::Accuracy;
    use crate::report::{DatasetInput, GraphInput, ModelInfo, ReportInput};
    let outs = Outputs::load(ctl, plan).await?;
    let arts = &ctl.artifacts;
    let spec = &plan.spec;
    let mut datasets = Vec::new();
    for d in &plan.datasets {
        let mut accuracy = Vec::new();
        let mut predictions = Vec::new();
        for m in &spec.hub {
            let pr = pair_result(plan, &outs, arts, &m.key, &d.spec.name)?;
            accuracy.push(pr.counts.as_ref().map(Accuracy::from_counts));
            predictions.push(pr.predictions);
        }
        datasets.push(DatasetInput {
            name: d.spec.name.clone(),
            domain: d.spec.domain.clone(),
            task: d.spec.task.clone(),
            class_names: d.classnames.clone(),
            accuracy,
            predictions,
            class_embeddings: source_embeddings(plan, &outs, arts, &format!("dataset:{}", d.spec.name))?,
        });
    }
    let graph = match (&spec.graph, source_embeddings(plan, &outs, arts, "graph")?) {
        (Some(_), Some(node_embeddings)) => {
            let mut models = Vec::new();
            for m in &spec.hub {
                models.push(model_labels(plan, &outs, arts, &m.key)?);
            }
            Some(GraphInput { node_ids: plan.graph_node_ids.clone(), node_embeddings, models })
        }
        _ => None,
    };
    let input = ReportInput {
        run: plan.run.to_string(),
        spec_digest: crate::report::spec_digest(spec),
        source: "evaluate".into(),
        options: spec.method.clone(),
        models: spec.hub.iter().map(ModelInfo::from).collect(),
        datasets,
        graph,
    };
    let mut report = crate::report::build_report(&input)?;
    report.diagnostic = diagnostic_summary(plan, &outs);
    Ok(report)
}

/// Builds the report and writes every format into `out`.
pub async fn write_report(ctl: &RunControl, plan: &Plan, out: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let report = build(ctl, plan).await?;
    Ok(crate::report::write_report(&report, out)?)
}
