//! Hubs (the paper's Algorithm 1 takes a labelled hub): a run whose graph labels and graph caption embeddings
//! are committed is a labelled hub. Its spec (saved at submit time) names the
//! models, the graph, the embedder and the method options; its committed
//! label and embed results are what `select` scores a new task against.
//!
//! A hub is found where any run is: the saved submissions under the artifact
//! store's `runs/<run>/submission.json` (cluster: `artifacts.root`; local
//! mode: `<out>/artifacts`), with progress from the result store (Redis, or
//! `<out>/state.journal`). Nothing is cached: a grown spec resubmitted under
//! the same run serves its new model as soon as that model's labels are in.

pub mod index;

use crate::aggregate::{self, Outputs};
use crate::control::{RunControl, Submission};
use crate::plan::Plan;
use crate::spec::BenchmarkSpec;
use mll_common::job::JobPayload;
use mll_common::{JobId, RunId, Stage};
use mll_method::ModelLabels;
use ndarray::Array2;
use serde::Serialize;
use std::collections::BTreeSet;

/// Wrong input from the person running the command (exit code 2).
pub use mll_common::exit::InputError;

pub fn input_error(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(InputError(message.into()))
}

/// What `hub list` shows of a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HubSummary {
    pub run: String,
    /// A local run's output folder (`hub list` of local runs); absent for the cluster's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// The run's state (`running`, `done`, `failed`, `cancelled`), or `unknown`
    /// when the store has no record of it.
    pub state: String,
    /// Whether `select` and `adapt` accept it now.
    pub usable: bool,
    /// Why not, when not usable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub models: Vec<String>,
    /// Models whose graph labels are all committed.
    pub labelled_models: usize,
    pub graph_nodes: usize,
    pub graph_images: u64,
    pub datasets: Vec<String>,
    pub embedder: Option<String>,
}

/// The saved submission of every run the artifact store knows, by run id.
fn saved_runs(ctl: &RunControl) -> anyhow::Result<Vec<RunId>> {
    let dir = ctl.artifacts.root().join("runs");
    let mut runs = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(runs),
        Err(e) => return Err(anyhow::anyhow!("cannot list {}: {e}", dir.display())),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().join("submission.json").is_file() {
            if let Ok(run) = RunId::new(&name) {
                runs.push(run);
            }
        }
    }
    runs.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(runs)
}

fn plan_of(sub: &Submission) -> anyhow::Result<Plan> {
    Ok(sub.plan()?)
}

/// Label jobs per model (hub order) and the graph's embed jobs.
fn hub_jobs(plan: &Plan) -> (Vec<Vec<JobId>>, Vec<JobId>) {
    let mut labels = vec![Vec::new(); plan.spec.hub.len()];
    let mut graph = Vec::new();
    for j in &plan.jobs {
        match &j.payload {
            JobPayload::Label(l) => {
                if let Some(m) = plan.spec.hub.iter().position(|h| h.key == l.model.key) {
                    labels[m].push(j.id.clone());
                }
            }
            JobPayload::Embed(e) if e.source == "graph" => graph.push(j.id.clone()),
            _ => {}
        }
    }
    (labels, graph)
}

/// Summarises one run as a hub: usable when it has a graph and an embedder,
/// is not cancelled, and every model's labels and the graph's caption
/// embeddings are committed (evaluate jobs are not needed for selection).
pub async fn summarise(ctl: &RunControl, run: &RunId) -> anyhow::Result<HubSummary> {
    let sub = ctl.saved_submission(run)?;
    let plan = plan_of(&sub)?;
    let meta = ctl.store.meta(run).await?;
    let state = match &meta {
        Some(_) => ctl.status(run).await?.state.to_string(),
        None => "unknown".to_string(),
    };
    let label_done: BTreeSet<JobId> = ctl.store.done(run, Stage::Label).await?.into_iter().collect();
    let embed_done: BTreeSet<JobId> = ctl.store.done(run, Stage::Embed).await?.into_iter().collect();
    let (labels, graph) = hub_jobs(&plan);
    let labelled: Vec<bool> = labels.iter().map(|ids| !ids.is_empty() && ids.iter().all(|id| label_done.contains(id))).collect();
    let spec = &plan.spec;
    let reason = if spec.graph.is_none() {
        Some("the spec has no [graph]: its models were never labelled".to_string())
    } else if spec.embedder.is_none() {
        Some("the spec has no [embedder]: a task's classes cannot be matched to its graph".to_string())
    } else if meta.is_none() {
        Some("the result store has no record of this run (`coordinator resume RUN` re-registers it)".to_string())
    } else if state == "cancelled" {
        Some("the run was cancelled".to_string())
    } else if spec.hub.is_empty() {
        Some("the hub has no model".to_string())
    } else if let Some(m) = labelled.iter().position(|l| !l) {
        let missing = labelled.iter().filter(|l| !**l).count();
        Some(format!(
            "not finished: graph labels of {missing} of {} models are missing (first: {}); wait for the run (`coordinator status {run}`)",
            labelled.len(),
            spec.hub[m].key
        ))
    } else if graph.is_empty() || !graph.iter().all(|id| embed_done.contains(id)) {
        Some(format!("not finished: the graph's caption embeddings are missing; wait for the run (`coordinator status {run}`)"))
    } else {
        None
    };
    Ok(HubSummary {
        dir: None,
        run: run.to_string(),
        state,
        usable: reason.is_none(),
        reason,
        models: spec.hub.iter().map(|m| m.key.clone()).collect(),
        labelled_models: labelled.iter().filter(|l| **l).count(),
        graph_nodes: plan.graph_nodes,
        graph_images: plan.graph_images,
        datasets: plan.datasets.iter().map(|d| d.spec.name.clone()).collect(),
        embedder: spec.embedder.as_ref().map(|e| e.name()),
    })
}

/// Every run of the store whose spec has a graph (runs without one, such as
/// the embed and adapt runs `select` and `adapt` make, are not hubs), in
/// run-id order. A run whose spec no longer plans (data moved) is listed as
/// unusable with the reason.
pub async fn list(ctl: &RunControl) -> anyhow::Result<Vec<HubSummary>> {
    let mut out = Vec::new();
    for run in saved_runs(ctl)? {
        let has_graph = ctl
            .saved_submission(&run)
            .ok()
            .and_then(|s| BenchmarkSpec::from_toml(&s.spec_text, "saved spec").ok())
            .is_none_or(|spec| spec.graph.is_some());
        if !has_graph {
            continue;
        }
        match summarise(ctl, &run).await {
            Ok(s) => out.push(s),
            Err(e) => out.push(HubSummary::unreadable(run.to_string(), format!("{e:#}"))),
        }
    }
    Ok(out)
}

impl HubSummary {
    /// A run that could not be read: listed, not usable, with the reason.
    pub fn unreadable(run: String, reason: String) -> HubSummary {
        HubSummary {
            dir: None,
            run,
            state: "unknown".into(),
            usable: false,
            reason: Some(reason),
            models: Vec::new(),
            labelled_models: 0,
            graph_nodes: 0,
            graph_images: 0,
            datasets: Vec::new(),
            embedder: None,
        }
    }
}

/// A usable hub, opened for selection: its plan (spec, data root, graph), the
/// graph nodes' caption embeddings E_G, and its committed outputs, from which
/// each model's labels are read when asked (one model in memory at a time).
pub struct Hub {
    pub plan: Plan,
    pub node_embeddings: Array2<f32>,
    outputs: Outputs,
    ctl: RunControl,
    /// Per model (hub order): its index's path and digest.
    indexes: Vec<(std::path::PathBuf, String)>,
}

impl Hub {
    /// Opens `run` as a hub; an unknown or unfinished run is an [`InputError`].
    pub async fn open(ctl: &RunControl, run: &RunId) -> anyhow::Result<Hub> {
        if ctl.artifacts.get_named(&crate::control::submission_artifact_name(run))?.is_none() {
            return Err(input_error(format!(
                "hub '{run}' is not a run of this store (no saved spec under {}); `coordinator hub list` shows the hubs",
                ctl.artifacts.root().display()
            )));
        }
        let summary = summarise(ctl, run).await?;
        if let Some(reason) = summary.reason {
            return Err(input_error(format!("hub '{run}' cannot serve tasks: {reason}")));
        }
        let plan = plan_of(&ctl.saved_submission(run)?)?;
        let outputs = Outputs::load(ctl, &plan).await?;
        let node_embeddings = aggregate::source_embeddings(&plan, &outputs, &ctl.artifacts, "graph")?
            .ok_or_else(|| anyhow::anyhow!("hub '{run}': the graph's caption embeddings disappeared while reading them"))?;
        let indexes = ensure_indexes(ctl, &plan, &outputs)?;
        Ok(Hub { plan, node_embeddings, outputs, ctl: ctl.clone(), indexes })
    }

    pub fn run(&self) -> &RunId {
        &self.plan.run
    }

    pub fn spec(&self) -> &BenchmarkSpec {
        &self.plan.spec
    }

    /// What selection reads of hub model `m` for matchings whose V_sel are
    /// `node_sets`, from the model's hub index (every node's images when the
    /// options count all images, not only the selected nodes').
    pub fn selection_labels(&self, m: usize, node_sets: &[&[usize]]) -> anyhow::Result<ModelLabels> {
        let (path, digest) = &self.indexes[m];
        let graph_nodes = self.plan.graph_node_ids.len();
        let read = |index: index::HubIndex| index.labels_for(node_sets, self.plan.spec.method.selected_images_only, &self.ctl.artifacts);
        match index::HubIndex::open(path, digest, graph_nodes).and_then(read) {
            // A changed index is rebuilt from the label artifacts (checked by
            // their own checksums), loudly, and read again.
            Err(e @ index::IndexError::Damaged { .. }) => {
                eprintln!("warning: {e}");
                let model = &self.plan.spec.hub[m].key;
                let sources = aggregate::label_sources(&self.plan, &self.outputs, model)
                    .ok_or_else(|| anyhow::anyhow!("hub '{}': graph labels of {model} are not all committed", self.plan.run))?;
                let bytes = index::build(&self.ctl.artifacts, &sources, graph_nodes)?;
                self.ctl.artifacts.put_named(&index::name(&self.plan.run, digest), &bytes)?;
                Ok(index::HubIndex::open(path, digest, graph_nodes).and_then(read)?)
            }
            r => Ok(r?),
        }
    }

    /// Each model's GFLOPs per image as the spec gives them (hub order).
    pub fn gflops(&self) -> Vec<Option<f64>> {
        self.plan.spec.hub.iter().map(|m| m.gflops).collect()
    }

    /// Each model's recorded evaluate seconds per image on the hub's own
    /// datasets (hub order): the sum of its evaluate jobs' execution seconds
    /// over the images they covered. None for a model without recorded
    /// evaluate jobs (a hub without datasets, or results from before
    /// durations were recorded).
    pub fn evaluate_seconds_per_image(&self) -> Vec<Option<f64>> {
        evaluate_rates(&self.plan, &self.outputs)
    }
}

/// Each hub model's index (path, digest), built from its label artifacts
/// where missing or unreadable: once per labelling, with a line per model on
/// stderr because at the paper's scale each takes seconds.
fn ensure_indexes(ctl: &RunControl, plan: &Plan, outs: &Outputs) -> anyhow::Result<Vec<(std::path::PathBuf, String)>> {
    let graph_nodes = plan.graph_node_ids.len();
    let mut out = Vec::with_capacity(plan.spec.hub.len());
    for (m, model) in plan.spec.hub.iter().enumerate() {
        let sources = aggregate::label_sources(plan, outs, &model.key)
            .ok_or_else(|| anyhow::anyhow!("hub '{}': graph labels of {} are not all committed", plan.run, model.key))?;
        let digest = index::digest(&sources, graph_nodes);
        let name = index::name(&plan.run, &digest);
        let path = ctl.artifacts.root().join(&name);
        let opened = index::HubIndex::open(&path, &digest, graph_nodes);
        if let Err(e @ index::IndexError::Damaged { .. }) = &opened {
            eprintln!("warning: {e}");
        }
        if opened.is_err() {
            let started = std::time::Instant::now();
            let bytes = index::build(&ctl.artifacts, &sources, graph_nodes)?;
            ctl.artifacts.put_named(&name, &bytes)?;
            eprintln!(
                "indexed the labels of hub model {}/{} ({}) for selection in {:.1} s (once; later commands read the index)",
                m + 1,
                plan.spec.hub.len(),
                model.key,
                started.elapsed().as_secs_f64()
            );
        }
        out.push((path, digest));
    }
    Ok(out)
}

/// Recorded evaluate seconds per image of each hub model of `plan`.
pub fn evaluate_rates(plan: &Plan, outs: &Outputs) -> Vec<Option<f64>> {
    let mut seconds = vec![0.0f64; plan.spec.hub.len()];
    let mut images = vec![0u64; plan.spec.hub.len()];
    for j in &plan.jobs {
        if let JobPayload::Evaluate(e) = &j.payload {
            let (Some(m), Some(x)) = (plan.spec.hub.iter().position(|h| h.key == e.model.key), outs.executions.get(&j.id)) else {
                continue;
            };
            seconds[m] += x.seconds;
            images[m] += e.shard.end.saturating_sub(e.shard.start);
        }
    }
    seconds.iter().zip(&images).map(|(&s, &n)| (n > 0).then(|| s / n as f64)).collect()
}
