//! Aggregation: committed results and their artifacts (or a published
//! accuracy table, `truth`), read back per plan job and handed to the method.
//! Everything is keyed by the plan (hub order, dataset order, shard order),
//! never by store iteration order, so the same results always give the same
//! report. Nothing here computes a method's number; `method` does.

mod load;
pub mod truth;

pub use load::{
    diagnostic_summary, label_sources, model_labels, pair_result, pool_rows, source_embeddings, LabelScope, LabelSources, Outputs,
    PairResult,
};
pub use mll_method::outcome::DiagnosticSummary;

use crate::control::RunControl;
use crate::modelgpt::ModelGpt;
use crate::plan::Plan;
use crate::spec::HubModel;
use mll_method::assess::{assess_dataset, experiment_notes, mll_notes, summarise, DatasetInput};
use mll_method::experiments::{combine, ExperimentOptions};
use mll_method::outcome::{ModelInfo, Report, REPORT_FORMAT_VERSION};
use mll_method::{Accuracy, HubSelection};
use ndarray::ArrayView2;

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// A committed artifact could not be read back from the artifact store.
    #[error("aggregate: artifact {sha256}: {source}")]
    Read {
        sha256: String,
        #[source]
        source: mll_common::artifact::ArtifactError,
    },
    /// An artifact's tensors are not what its job writes (missing, wrong dtype or shape).
    #[error("aggregate: artifact {sha256}: {source}")]
    Tensor {
        sha256: String,
        #[source]
        source: mll_common::artifact::safetensors_io::TensorError,
    },
    /// An artifact's tensors disagree with its job or with each other.
    #[error("aggregate: artifact {sha256}: {reason}")]
    Artifact { sha256: String, reason: String },
    /// Row blocks of one matrix (shards, chunks) that do not stack.
    #[error("aggregate: {what}: blocks of different widths: {source}")]
    Stack {
        what: String,
        #[source]
        source: ndarray::ShapeError,
    },
    #[error("aggregate: {0}")]
    Other(String),
}

impl AggregateError {
    /// The address of the artifact at fault, when one is.
    pub fn artifact(&self) -> Option<&str> {
        match self {
            AggregateError::Read { sha256, .. } | AggregateError::Tensor { sha256, .. } | AggregateError::Artifact { sha256, .. } => {
                Some(sha256)
            }
            AggregateError::Stack { .. } | AggregateError::Other(_) => None,
        }
    }
}

/// Builds the run's report from everything committed so far. Datasets or
/// models with missing results are reported as incomplete.
///
/// Memory stays at one model's labels plus one dataset's probabilities: MLL's
/// matchings are made for every dataset first, then each model's labels are
/// loaded once (only what selection reads: [`LabelScope`]), counted against
/// every matching and dropped; then each dataset's evaluate outputs are
/// loaded, reported on and dropped.
pub async fn build(ctl: &RunControl, plan: &Plan) -> anyhow::Result<Report> {
    build_with(ctl, plan, None, &ModelGpt::default()).await
}

/// [`build`], plus the paper's experiments when `experiments` is given (each
/// dataset's while its probabilities are loaded, combined at the end), and
/// the ModelGPT baseline's rankings (`crate::modelgpt`).
pub async fn build_with(
    ctl: &RunControl,
    plan: &Plan,
    experiments: Option<&ExperimentOptions>,
    modelgpt: &ModelGpt,
) -> anyhow::Result<Report> {
    let started = std::time::Instant::now();
    let outs = Outputs::load(ctl, plan).await?;
    let arts = &ctl.artifacts;
    let spec = &plan.spec;
    let models: Vec<ModelInfo> = spec.hub.iter().map(HubModel::info).collect();
    let class_embeddings = plan
        .datasets
        .iter()
        .map(|d| source_embeddings(plan, &outs, arts, &format!("dataset:{}", d.spec.name)))
        .collect::<Result<Vec<_>, _>>()?;

    // MLL: matchings per dataset, then one model's labels at a time.
    let node_embeddings = match &spec.graph {
        Some(_) => source_embeddings(plan, &outs, arts, "graph")?,
        None => None,
    };
    let mut labelled: Option<Vec<bool>> = None;
    let mut selections = vec![None; plan.datasets.len()];
    if let Some(e_g) = &node_embeddings {
        let name = |d: usize| &plan.datasets[d].spec.name;
        let e_t: Vec<Option<ArrayView2<f32>>> = class_embeddings.iter().map(|e| e.as_ref().map(|e| e.view())).collect();
        let mut hub = HubSelection::new(&e_t, e_g.view(), &spec.method)
            .map_err(|(d, e)| anyhow::anyhow!("MLL selection for dataset {}: {e}", name(d)))?;
        let have: Vec<bool> = spec.hub.iter().map(|m| load::labels_committed(plan, &outs, &m.key)).collect();
        // MLL runs only with every model's labels; otherwise the notes name the missing ones.
        if have.iter().all(|h| *h) {
            // Only the images selection reads are kept (LabelScope).
            let node_sets: Vec<Vec<usize>> = hub.selected_node_sets().into_iter().map(<[usize]>::to_vec).collect();
            let node_sets: Vec<&[usize]> = node_sets.iter().map(Vec::as_slice).collect();
            let scope = LabelScope { node_sets: &node_sets, selected_images_only: spec.method.selected_images_only };
            for (i, m) in spec.hub.iter().enumerate() {
                let t0 = std::time::Instant::now();
                let labels = model_labels(plan, &outs, arts, &m.key, &scope)?
                    .ok_or_else(|| anyhow::anyhow!("graph labels of {} disappeared while reading them", m.key))?;
                // At full scale each model's labels are hundreds of MB (log.level = "debug" shows each).
                tracing::debug!(
                    model = %m.key,
                    index = i + 1,
                    of = spec.hub.len(),
                    images = labels.image_nodes.len(),
                    embeddings = labels.image_embeddings.nrows(),
                    lists = labels.top_nodes.is_some(),
                    seconds = t0.elapsed().as_secs_f64(),
                    "aggregate: graph labels loaded; counting for every dataset"
                );
                hub.add_model(&labels).map_err(|(d, e)| match d {
                    Some(d) => anyhow::anyhow!("MLL selection for dataset {}: {e}", name(d)),
                    None => anyhow::anyhow!("MLL selection: {e}"),
                })?;
            }
            selections = hub.finish();
        }
        labelled = Some(have);
    }
    // The labels were streamed above; the report only needs the node ids.
    let node_ids = node_embeddings.as_ref().map(|_| plan.graph_node_ids.as_slice());

    let mut datasets = Vec::new();
    let mut per_dataset = Vec::new();
    for ((d, e_t), selection) in plan.datasets.iter().zip(class_embeddings).zip(selections) {
        let mut accuracy = Vec::new();
        let mut predictions = Vec::new();
        let mut evaluate_seconds = Vec::new();
        for m in &spec.hub {
            let pr = pair_result(plan, &outs, arts, &m.key, &d.spec.name)?;
            accuracy.push(pr.counts.as_ref().map(|c| Accuracy::from_counts(&c.n, &c.top1, &c.top5)));
            predictions.push(pr.predictions);
            evaluate_seconds.push(pr.seconds);
        }
        let input = DatasetInput {
            name: d.spec.name.clone(),
            domain: d.spec.domain.clone(),
            task: d.spec.task.clone(),
            class_names: d.classnames.clone(),
            accuracy,
            predictions,
            class_embeddings: e_t,
            evaluate_seconds,
            modelgpt: modelgpt.rankings.get(&d.spec.name).cloned(),
        };
        let (mut report, exp) = assess_dataset(&models, &spec.method, node_ids, &input, selection.as_ref(), experiments)?;
        if !d.caption_fallbacks.is_empty() {
            // The dataset's own note (report.md prefixes it with the dataset's name).
            report.notes.push(crate::captions::fallback_classes_note(&d.caption_fallbacks));
        }
        datasets.push(report);
        per_dataset.extend(exp);
        tracing::debug!(dataset = %d.spec.name, "aggregate: dataset reported");
    }
    let summary = summarise(&datasets);
    let experiments = experiments.map(|exp| combine(per_dataset, &spec.method, exp, spec.hub.len(), experiment_notes(&datasets)));
    tracing::info!(
        models = spec.hub.len(),
        datasets = datasets.len(),
        seconds = started.elapsed().as_secs_f64(),
        "aggregate: report built"
    );
    Ok(Report {
        format_version: REPORT_FORMAT_VERSION,
        run: plan.run.to_string(),
        spec_digest: spec.digest(),
        source: "evaluate".into(),
        method: spec.method.clone(),
        notes: mll_notes(&models, labelled.as_deref()).into_iter().chain(std::iter::once(modelgpt.note())).collect(),
        models,
        datasets,
        summary,
        diagnostic: diagnostic_summary(plan, &outs),
        experiments,
    })
}
