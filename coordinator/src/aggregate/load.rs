//! Committed results read back per plan job (each checked by `records`):
//! evaluate counts and probabilities per (model, dataset), pooled caption
//! embeddings, each model's graph labels, the diagnostic jobs' check; and the
//! safetensors decoding they need, every shape and dtype checked.

use super::AggregateError;
use crate::control::RunControl;
use crate::plan::Plan;
use mll_common::artifact::safetensors_io::{self, TensorError};
use mll_common::artifact::{ArtifactRef, ArtifactStore};
use mll_common::job::JobPayload;
use mll_common::output::{ClassCounts, Execution, JobOutput};
use mll_common::{Job, JobId};
use mll_method::outcome::DiagnosticSummary;
use mll_method::{ModelLabels, Predictions, SelectionReads};
use ndarray::{Array2, Axis};
use safetensors::SafeTensors;
use std::collections::BTreeMap;

/// Decodes with [`safetensors_io`], naming the artifact on failure.
fn in_artifact<T>(sha: &str, r: Result<T, TensorError>) -> Result<T, AggregateError> {
    r.map_err(|source| AggregateError::Tensor { sha256: sha.into(), source })
}

/// `top_nodes` (i32, n × K) as u32 lists, each checked to be a graph node.
fn top_nodes(st: &SafeTensors, sha: &str, graph_nodes: usize) -> Result<Array2<u32>, AggregateError> {
    let bad = |reason: String| AggregateError::Artifact { sha256: sha.into(), reason };
    let ((n, k), values) = in_artifact(sha, safetensors_io::matrix::<i32>(st, "top_nodes"))?;
    let lists = values
        .into_iter()
        .map(|x| match u32::try_from(x) {
            Ok(x) if (x as usize) < graph_nodes => Ok(x),
            _ => Err(bad(format!(
                "tensor 'top_nodes' names node {x} but the graph has {graph_nodes} nodes; the label artifacts do not belong to this graph"
            ))),
        })
        .collect::<Result<Vec<u32>, _>>()?;
    Ok(Array2::from_shape_vec((n, k), lists).expect("shape checked"))
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
    /// How each job's execution went, where its result recorded it (the
    /// evaluate jobs' durations give the k sweep's reuse cost).
    pub executions: BTreeMap<JobId, Execution>,
}

impl Outputs {
    /// Damaged results are logged with their job and left out (as missing).
    pub async fn load(ctl: &RunControl, plan: &Plan) -> anyhow::Result<Outputs> {
        let loaded = crate::records::load(&*ctl.store, plan).await?;
        Ok(Outputs { by_job: loaded.outputs, executions: loaded.executions })
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

/// Which of a model's graph images selection reads, and so which
/// [`model_labels`] keeps: with `selected_images_only` the images of every
/// dataset's V_sel ([`mll_method::HubSelection::selected_node_sets`]),
/// else all. Of those, only the images whose best-node list holds no node of
/// some V_sel keep their embedding (selection computes their S_m row), as the
/// hub index loads them ([`crate::hub::index::HubIndex::labels_for`]).
pub struct LabelScope<'a> {
    pub node_sets: &'a [&'a [usize]],
    pub selected_images_only: bool,
}

/// A model's labels on the graph as selection reads them (see [`LabelScope`]);
/// None if a shard is missing. Every shard is read whole and its checksum
/// verified, but only the kept images' nodes and lists and the fallback
/// images' embeddings stay in memory: at the paper's scale a model's image
/// embeddings are ~1 GB, of which selection computes a few percent.
pub fn model_labels(
    plan: &Plan,
    outs: &Outputs,
    artifacts: &ArtifactStore,
    model: &str,
    scope: &LabelScope,
) -> Result<Option<ModelLabels>, AggregateError> {
    match label_sources(plan, outs, model) {
        Some(sources) => labels_from(&sources, artifacts, plan.graph_node_ids.len(), scope).map(Some).map_err(|e| match e {
            AggregateError::Other(reason) => AggregateError::Other(format!("graph labels of {model}: {reason}; re-run its label jobs")),
            e => e,
        }),
        None => Ok(None),
    }
}

/// [`model_labels`] from a model's label artifacts.
pub fn labels_from(
    sources: &LabelSources,
    artifacts: &ArtifactStore,
    graph_nodes: usize,
    scope: &LabelScope,
) -> Result<ModelLabels, AggregateError> {
    let bad = AggregateError::Other;
    let (shards, texts) = (&sources.shards, &sources.node_texts);
    let reads = SelectionReads::new(scope.node_sets, graph_nodes, scope.selected_images_only);

    // The lists are used only when every shard has them with the same K; a
    // first pass over the headers would cost a second read, so a mixed set of
    // shards (artifacts of different releases) is found while reading and the
    // read starts over without lists.
    let mut use_lists = true;
    'read: loop {
        let mut k: Option<usize> = None;
        let mut d: Option<usize> = None;
        let mut nodes: Vec<usize> = Vec::new();
        let mut lists: Vec<u32> = Vec::new();
        // Per kept image, its row in `fallback` or u32::MAX.
        let mut rows: Vec<u32> = Vec::new();
        let mut fallback: Vec<f32> = Vec::new();
        for (index, aref) in shards.iter().enumerate() {
            let bytes = read(artifacts, aref)?;
            let st = safetensors_of(&bytes, aref)?;
            let sha = &aref.sha256;
            let shard_nodes = in_artifact(sha, safetensors_io::values::<i64>(&st, "nodes"))?;
            let ((n, width), emb) = in_artifact(sha, safetensors_io::matrix::<f32>(&st, "image_embeddings"))?;
            if n != shard_nodes.len() || d.is_some_and(|d| d != width) {
                return Err(bad(format!(
                    "a shard has {n}x{width} image embeddings for {} images (other shards are {} wide)",
                    shard_nodes.len(),
                    d.unwrap_or(width)
                )));
            }
            d = Some(width);
            let top = match use_lists && safetensors_io::has(&st, "top_nodes") {
                true => Some(top_nodes(&st, sha, graph_nodes)?),
                false => None,
            };
            if let Some(t) = top.as_ref().filter(|t| t.nrows() != n) {
                return Err(bad(format!("a shard has best-node lists for {} of its {n} images", t.nrows())));
            }
            let consistent = match (&top, k) {
                (Some(t), None) => index == 0 && t.ncols() > 0,
                (Some(t), Some(k)) => t.ncols() == k,
                (None, _) => !use_lists,
            };
            if !consistent {
                use_lists = false;
                continue 'read;
            }
            if index == 0 {
                k = top.as_ref().map(|t| t.ncols());
            }
            for (r, &g) in shard_nodes.iter().enumerate() {
                if g < 0 || g as usize >= graph_nodes {
                    return Err(bad(format!("an image's true node is {g} but the graph has {graph_nodes} nodes")));
                }
                let g = g as usize;
                if !reads.visits(g) {
                    continue;
                }
                nodes.push(g);
                let list = top.as_ref().map(|t| t.row(r).to_slice().expect("a row of a standard-layout array"));
                lists.extend_from_slice(list.unwrap_or_default());
                if reads.computes_row(g, list) {
                    rows.push((fallback.len() / width) as u32);
                    fallback.extend_from_slice(&emb[r * width..(r + 1) * width]);
                } else {
                    rows.push(u32::MAX);
                }
            }
        }
        let d = d.unwrap_or(0);
        let n = nodes.len();
        // Images go in true-node order (stable, so shard order within a node): selection
        // then reads each node's images as one run of memory (ImagesByNode).
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| nodes[i]);
        let image_nodes: Vec<usize> = order.iter().map(|&i| nodes[i]).collect();
        let image_rows: Vec<u32> = order.iter().map(|&i| rows[i]).collect();
        let top_nodes = match k {
            Some(k) => {
                let mut sorted = Array2::<u32>::zeros((n, k));
                for (slot, &i) in order.iter().enumerate() {
                    sorted.row_mut(slot).assign(&ndarray::ArrayView1::from(&lists[i * k..(i + 1) * k]));
                }
                let h = mll_method::TopNodes::head_width(k);
                let mut head = Vec::with_capacity(n * h);
                for row in sorted.rows() {
                    head.extend(row.iter().take(h));
                }
                Some(mll_method::TopNodes::from_checked_parts(sorted, head, graph_nodes))
            }
            None => None,
        };
        let image_embeddings = Array2::from_shape_vec((fallback.len() / d.max(1), d), fallback).expect("whole rows of width d");
        // The node texts are read only when some S_m row is computed.
        let node_text_embeddings = if image_embeddings.nrows() > 0 {
            let t = matrix(artifacts, texts, "text_embeddings")?;
            if t.ncols() != d || t.nrows() != graph_nodes {
                return Err(bad(format!(
                    "{}x{} node text embeddings for a graph of {graph_nodes} nodes and images {d} wide",
                    t.nrows(),
                    t.ncols()
                )));
            }
            t
        } else {
            Array2::zeros((0, d))
        };
        return Ok(ModelLabels { image_embeddings, image_nodes, image_rows: Some(image_rows), node_text_embeddings, top_nodes });
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::index::tests::{fixture, model, Fixture, V};
    use crate::spec::MethodOptions;
    use mll_method::{HubSelection, SplitMix64};

    /// Labels loaded for what selection reads give the same selections as
    /// whole labels, with and without `selected_images_only`, for lists that
    /// often miss (fallback rows), complete lists (no embedding kept) and no
    /// lists (every kept image's embedding).
    #[test]
    fn scoped_labels_select_as_whole_labels_do() {
        let Fixture { _dir, store, models, node_emb, tasks } = fixture(11);
        let e_t: Vec<_> = tasks.iter().map(|t| Some(t.view())).collect();
        for selected_images_only in [true, false] {
            let options = MethodOptions { k: vec![2], nodes_per_class: 3, selected_images_only, ..MethodOptions::default() };
            let mut whole = HubSelection::new(&e_t, node_emb.view(), &options).unwrap();
            let mut scoped = HubSelection::new(&e_t, node_emb.view(), &options).unwrap();
            let sets: Vec<Vec<usize>> = scoped.selected_node_sets().into_iter().map(<[usize]>::to_vec).collect();
            let sets: Vec<&[usize]> = sets.iter().map(Vec::as_slice).collect();
            let scope = LabelScope { node_sets: &sets, selected_images_only };
            for (sources, labels) in &models {
                whole.add_model(labels).unwrap();
                let part = labels_from(sources, &store, V, &scope).unwrap();
                let kept = part.image_rows.as_ref().unwrap().iter().filter(|&&r| r != u32::MAX).count();
                assert_eq!(kept, part.image_embeddings.nrows(), "a row per embedding kept");
                match (part.top_nodes.as_ref().map(|t| t.lists().ncols()), selected_images_only) {
                    (Some(V), _) => assert_eq!((kept, part.node_text_embeddings.nrows()), (0, 0), "complete lists never fall back"),
                    (None, _) => assert_eq!(kept, part.image_nodes.len(), "without lists every image's row is computed"),
                    _ => assert!(kept > 0, "short lists: some rows fall back"),
                }
                if selected_images_only {
                    assert!(part.image_nodes.len() < labels.image_nodes.len(), "only the images of V_sel are kept");
                } else {
                    assert_eq!(part.image_nodes, labels.image_nodes);
                }
                scoped.add_model(&part).unwrap();
            }
            let (whole, scoped) = (whole.finish(), scoped.finish());
            assert!(whole.iter().all(Option::is_some));
            assert_eq!(whole, scoped, "selected_images_only = {selected_images_only}");
        }
    }

    /// Shards of one model where one lacks the lists (artifacts of two
    /// releases) are read without lists; a damaged shard names its checksum.
    #[test]
    fn mixed_shards_are_read_without_lists_and_damage_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path());
        let mut rng = SplitMix64::new(3);
        let (mut with, _) = model(&mut rng, &store, &[20, 20], 3);
        let (without, _) = model(&mut rng, &store, &[20], 0);
        with.shards.push(without.shards[0].clone());
        let all: Vec<usize> = (0..V).collect();
        let scope = LabelScope { node_sets: &[&all], selected_images_only: true };
        let labels = labels_from(&with, &store, V, &scope).unwrap();
        assert!(labels.top_nodes.is_none());
        assert_eq!((labels.image_nodes.len(), labels.image_embeddings.nrows()), (60, 60));
        assert!(labels.image_nodes.is_sorted());
        std::fs::write(store.path_of(&with.shards[1].sha256), b"garbage").unwrap();
        let err = labels_from(&with, &store, V, &scope).unwrap_err();
        assert_eq!(err.artifact(), Some(with.shards[1].sha256.as_str()), "{err}");
        // Labels of another graph are refused.
        let err = labels_from(&without, &store, V / 2, &scope).unwrap_err().to_string();
        assert!(err.contains("nodes"), "{err}");
    }
}
