//! `select`: a task given by its class names (and optionally captions) scored
//! against a hub's committed labels with the method's own selection
//! functions: embed the class texts (one embed run, deterministic ids, so the
//! same classes are embedded once), match them to the graph, count every
//! model on the matched nodes, score, and pick the per-class top-k.

use super::task::ClassTexts;
use crate::aggregate::{source_embeddings, Outputs};
use crate::control::{RunControl, Submission};
use crate::drive::{self, DriveOptions};
use crate::hub::Hub;
use crate::plan::{embed_jobs, Plan, TextLayout};
use mll_common::ids::sha256_hex;
use mll_common::store::RunState;
use mll_common::RunId;
use mll_method::{HubSelection, Selection};
use ndarray::Array2;
use serde::Serialize;

/// The text source name of a task's classes in its embed run.
const SOURCE: &str = "task";

/// A run id derived from the hub and a digest of what the run is for:
/// `<hub, at most 40 chars>.<what>-<16 hex>`.
pub fn derived_run(hub: &RunId, what: &str, digest: &str) -> RunId {
    let head: String = hub.as_str().chars().take(40).collect();
    RunId::new(&format!("{head}.{what}-{}", &digest[..16])).expect("derived from a valid run id")
}

/// The hub's spec reduced to what a derived run needs: no models, datasets,
/// graph or generator; its data root absolute, so the saved spec replans from
/// anywhere.
pub fn derived_spec(hub: &Hub, run: &RunId) -> crate::spec::BenchmarkSpec {
    let mut spec = hub.spec().clone();
    spec.name = run.to_string();
    spec.description = format!("derived from hub {}", hub.run());
    spec.data_root = hub.plan.data_root.display().to_string();
    spec.hub.clear();
    spec.datasets.clear();
    spec.graph = None;
    spec.embedder = None;
    spec.diagnostic = None;
    spec.world = None;
    // The task's classes are embedded by their own embed run, not by the
    // derived run's planner: captions cannot be required there.
    spec.method.strict_captions = false;
    spec
}

/// Embeds the class texts with the hub's embedder through `ctl` (whose queue
/// is the cluster's, or in-process workers'), waiting for the result; returns
/// the classes' pooled embeddings E_T and the embed run's id.
pub async fn embed_classes(ctl: &RunControl, hub: &Hub, classes: &ClassTexts, opts: &DriveOptions) -> anyhow::Result<(Array2<f32>, RunId)> {
    let emb = hub.spec().embedder.clone().expect("a usable hub has an embedder");
    let digest = sha256_hex(serde_json::to_string(&(hub.run().as_str(), &emb.path, &classes.texts)).expect("strings serialise").as_bytes());
    let run = derived_run(hub.run(), "embed", &digest);
    let (ranges, jobs) = embed_jobs(&run, &emb, SOURCE, &classes.texts);
    let mut spec = derived_spec(hub, &run);
    spec.embedder = Some(emb);
    let mut texts = TextLayout::default();
    texts.sources.insert(SOURCE.to_string(), ranges);
    let plan = Plan {
        run: run.clone(),
        spec: spec.clone(),
        data_root: hub.plan.data_root.clone(),
        datasets: Vec::new(),
        graph_node_ids: Vec::new(),
        graph_node_names: Vec::new(),
        graph_nodes: 0,
        graph_images: 0,
        graph_construction: None,
        texts,
        jobs,
    };
    let hub_submission = ctl.saved_submission(hub.run())?;
    let submission = Submission {
        spec_text: toml::to_string(&spec).map_err(|e| anyhow::anyhow!("writing the embed run's spec: {e}"))?,
        spec_path: hub_submission.spec_path,
    };
    ctl.submit(&plan, &submission, false).await?;
    let status = drive::wait(ctl, &plan, opts).await?;
    if status.state != RunState::Done {
        let reasons: Vec<String> = status.failures.iter().map(|f| f.reason.clone()).collect();
        anyhow::bail!(
            "embedding the task's classes (run {run}) ended {}: {}; fix the cause and run the command again",
            status.state,
            reasons.join("; ")
        );
    }
    ctl.store.set_state(&run, RunState::Done).await?;
    let outs = Outputs::load(ctl, &plan).await?;
    let e_t = source_embeddings(&plan, &outs, &ctl.artifacts, SOURCE)?
        .ok_or_else(|| anyhow::anyhow!("run {run}: the class embeddings are missing after the run finished"))?;
    Ok((e_t, run))
}

/// Steps a–h of selection (docs/method.md, "Selection") for the task against
/// the hub, with the same streaming selection the benchmark's aggregation uses
/// (one model's labels in memory at a time); `k` replaces the hub's list of k.
pub fn select_on_hub(hub: &Hub, class_embeddings: &Array2<f32>, k: usize) -> anyhow::Result<Selection> {
    let mut options = hub.spec().method.clone();
    options.k = vec![k];
    let e_t = [Some(class_embeddings.view())];
    let mut selection = HubSelection::new(&e_t, hub.node_embeddings.view(), &options)
        .map_err(|(_, e)| anyhow::anyhow!("selection on hub {}: {e}", hub.run()))?;
    for m in 0..hub.spec().hub.len() {
        // Only the images of the matched nodes, from the model's hub index.
        let labels = hub.selection_labels(m, &selection.selected_node_sets())?;
        selection.add_model(&labels).map_err(|(_, e)| anyhow::anyhow!("hub {}: {e}", hub.run()))?;
    }
    selection
        .finish()
        .pop()
        .flatten()
        .ok_or_else(|| anyhow::anyhow!("selection on hub {}: the task's classes matched no graph node", hub.run()))
}

/// What `select --json` prints, and adapt.json's `selection`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SelectReport {
    pub hub: String,
    pub k: usize,
    /// How the classes were embedded: captions or class names.
    pub embedded: String,
    pub classes_without_captions: Vec<String>,
    pub classes: Vec<ClassChoice>,
    /// Every hub model by mean_y r_{m,y}, best first.
    pub ranking: Vec<ModelScore>,
    /// Hub models some class selects, in hub order.
    pub models_selected: Vec<String>,
    pub embed_run: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassChoice {
    pub class: String,
    /// N_y: the graph nodes the class matched, best first.
    pub nodes: Vec<NodeMatch>,
    /// F_y: the top-k models with r_{m,y}, best first.
    pub models: Vec<ModelScore>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeMatch {
    /// The node's id (a WordNet synset's wnid, e.g. n02084071).
    pub node: String,
    /// Its name (the synset's lemma, e.g. dog).
    pub name: String,
    pub similarity: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelScore {
    pub model: String,
    pub score: f64,
}

/// Hub indexes of the models some class selects, ascending (hub order).
pub fn union_of(selection: &Selection, k: usize) -> Vec<usize> {
    let mut used: Vec<usize> = selection.top_k[&k].iter().flatten().copied().collect();
    used.sort_unstable();
    used.dedup();
    used
}

pub fn report(hub: &Hub, classes: &ClassTexts, selection: &Selection, k: usize, embed_run: &RunId) -> SelectReport {
    let key = |m: usize| hub.spec().hub[m].key.clone();
    let node_id = |v: usize| hub.plan.graph_node_ids.get(v).cloned().unwrap_or_else(|| v.to_string());
    let node_name = |v: usize| hub.plan.graph_node_names.get(v).cloned().unwrap_or_default();
    let choices = classes
        .names
        .iter()
        .enumerate()
        .map(|(y, name)| ClassChoice {
            class: name.clone(),
            nodes: selection.matched[y]
                .iter()
                .map(|n| NodeMatch { node: node_id(n.node), name: node_name(n.node), similarity: n.similarity })
                .collect(),
            models: selection.top_k[&k][y].iter().map(|&m| ModelScore { model: key(m), score: selection.mixed_scores[[m, y]] }).collect(),
        })
        .collect();
    SelectReport {
        hub: hub.run().to_string(),
        k,
        embedded: classes.how(),
        classes_without_captions: classes.by_name.clone(),
        classes: choices,
        ranking: selection.ranking.iter().map(|&m| ModelScore { model: key(m), score: selection.model_scores[m] }).collect(),
        models_selected: union_of(selection, k).into_iter().map(key).collect(),
        embed_run: embed_run.to_string(),
    }
}

/// The human form of [`SelectReport`].
pub fn render_text(r: &SelectReport) -> String {
    let mut s = format!("hub {}: top-{} models per class (classes embedded from {})\n", r.hub, r.k, r.embedded);
    // Aligned up to 40 characters; a longer name just pushes its line out.
    let width = r.classes.iter().map(|c| c.class.chars().count()).max().unwrap_or(5).clamp(5, 40);
    for c in &r.classes {
        let models: Vec<String> = c.models.iter().map(|m| format!("{} ({:.4})", m.model, m.score)).collect();
        s.push_str(&format!("  {:<width$}  {}\n", c.class, models.join(", ")));
    }
    s.push_str(&format!("models to run: {} of {}: {}\n", r.models_selected.len(), r.ranking.len(), r.models_selected.join(", ")));
    s.push_str("predicted model ranking:\n");
    for (i, m) in r.ranking.iter().enumerate().take(10) {
        s.push_str(&format!("  {:>2}. {} ({:.4})\n", i + 1, m.model, m.score));
    }
    if r.ranking.len() > 10 {
        s.push_str(&format!("  ... {} more (--json lists all)\n", r.ranking.len() - 10));
    }
    s
}
