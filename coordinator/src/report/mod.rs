//! The run report (issue 4, item 6): what aggregation collected goes in as a
//! [`ReportInput`]; [`build_report`] runs selection, reuse, metrics and baselines;
//! [`write_report`] writes report.json, report.md, accuracy_matrix.csv and SVG charts.
//!
//! Output is deterministic: model and dataset lists keep spec order, method
//! maps are BTreeMaps, there are no timestamps, and every float is rounded to 6
//! decimals when written, so two builds from the same input are byte-identical.

mod build;
pub mod names;
mod svg;
pub mod truth;
mod write;

use crate::method::{Accuracy, MethodError, ModelLabels, Predictions};
use mll_common::spec::{HubModel, MethodOptions};
use ndarray::Array2;
use serde::Serialize;
use std::collections::BTreeMap;

pub use build::{build_dataset_report, build_report, mll_notes, summarise};
pub use truth::{
    read_truth_csv, report_from_truth, spec_digest, truth_input, TruthError, TruthTable,
};
pub use write::{accuracy_matrix_csv, report_json, report_markdown, write_report};

/// Version of report.json's layout.
pub const REPORT_FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("dataset {dataset}: {source}")]
    Method {
        dataset: String,
        source: MethodError,
    },
    #[error("dataset {dataset}: {message}")]
    Input { dataset: String, message: String },
    #[error("report: cannot write {path}: {source}; check that the output folder is writable")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// A hub model as the report describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    pub key: String,
    pub params_m: Option<f64>,
    pub gflops: Option<f64>,
    pub imagenet_top1: Option<f64>,
}

impl From<&HubModel> for ModelInfo {
    fn from(m: &HubModel) -> Self {
        ModelInfo {
            key: m.key.clone(),
            params_m: m.params_m,
            gflops: m.gflops,
            imagenet_top1: m.imagenet_top1,
        }
    }
}

/// One target dataset's collected results. Every per-model Vec is in hub order
/// and as long as the hub (or empty, meaning "none for any model").
#[derive(Debug, Clone, Default)]
pub struct DatasetInput {
    pub name: String,
    pub domain: String,
    pub task: String,
    pub class_names: Vec<String>,
    /// Per model: accuracies (from summed evaluate counts, [`Accuracy::from_counts`],
    /// or a truth table); None where the model has no result yet.
    pub accuracy: Vec<Option<Accuracy>>,
    /// Per model: stored evaluate probabilities (n × C) and labels, for reuse.
    pub predictions: Vec<Option<Predictions>>,
    /// E_T: C × D_e caption embeddings of the classes (for MLL selection).
    pub class_embeddings: Option<Array2<f32>>,
    /// MLL's selection, when the caller already ran it (aggregation streams
    /// models through [`crate::method::model_node_counts`] instead of holding
    /// every model's labels); None: computed here from the graph's labels.
    pub selection: Option<crate::method::Selection>,
}

/// The graph side of MLL: node caption embeddings and every model's labels.
#[derive(Debug, Clone)]
pub struct GraphInput {
    /// Node ids (e.g. WordNet `n02084071`), V of them; the report names matched nodes by them.
    pub node_ids: Vec<String>,
    /// E_G: V × D_e, rows L2-normalised.
    pub node_embeddings: Array2<f32>,
    /// Per hub model; MLL runs only when every model has labels.
    pub models: Vec<Option<ModelLabels>>,
}

#[derive(Debug, Clone)]
pub struct ReportInput {
    pub run: String,
    pub spec_digest: String,
    /// Where the accuracies came from ("evaluate" or "truth:<file>").
    pub source: String,
    pub options: MethodOptions,
    pub models: Vec<ModelInfo>,
    pub datasets: Vec<DatasetInput>,
    pub graph: Option<GraphInput>,
}

/// One model's accuracies in the report (NaN is written as null).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelAccuracy {
    pub model: String,
    pub top1: f64,
    pub top5: f64,
    pub mean_per_class_recall: f64,
}

/// One predicted ranking against the ground truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankingReport {
    /// Model keys, best first (only models with a ground-truth accuracy).
    pub predicted: Vec<String>,
    pub r5: f64,
    pub tau5: f64,
    pub kendall_tau_b: f64,
    pub weighted_tau: f64,
}

/// One selection method's result on one dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelectionReport {
    /// Reuse top-1 accuracy; null when it could not be computed (see the dataset's notes).
    pub accuracy: Option<f64>,
    /// The models it uses for every class, when that is one list (INB, oracle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// How the number was obtained.
    pub how: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchedNodeReport {
    pub node: usize,
    pub id: String,
    pub similarity: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KPick {
    pub k: usize,
    pub models: Vec<String>,
}

/// MLL's per-class result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassSelection {
    pub class: String,
    pub matched_nodes: Vec<MatchedNodeReport>,
    pub picks: Vec<KPick>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetReport {
    pub name: String,
    /// CLIP_benchmark-style name (the accuracy matrix's column).
    pub benchmark_name: String,
    pub domain: String,
    pub task: String,
    pub classes: usize,
    /// True when every hub model has a top-1 accuracy here; only complete
    /// datasets enter the summary.
    pub complete: bool,
    pub missing_models: Vec<String>,
    pub accuracy: Vec<ModelAccuracy>,
    /// Model keys by top-1, best first (ties in hub order; models without a value left out).
    pub gt_ranking: Vec<String>,
    pub rankings: BTreeMap<String, RankingReport>,
    pub selections: BTreeMap<String, SelectionReport>,
    /// Per class, when MLL ran.
    pub class_selections: Vec<ClassSelection>,
    pub notes: Vec<String>,
}

/// A mean over the complete datasets that have the value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRanking {
    pub r5: f64,
    pub tau5: f64,
    pub kendall_tau_b: f64,
    pub weighted_tau: f64,
    /// Complete datasets averaged.
    pub datasets: usize,
    /// Complete datasets where this method has no value (left out of the mean).
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummarySelection {
    pub accuracy: f64,
    pub datasets: usize,
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub datasets: usize,
    pub complete: usize,
    /// Datasets with a missing model result, left out of every mean.
    pub incomplete: Vec<String>,
    pub rankings: BTreeMap<String, SummaryRanking>,
    pub selections: BTreeMap<String, SummarySelection>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub run: String,
    pub spec_digest: String,
    pub source: String,
    pub method: MethodOptions,
    pub models: Vec<ModelInfo>,
    pub datasets: Vec<DatasetReport>,
    pub summary: Summary,
    pub notes: Vec<String>,
    /// Diagnostic (queue-only) jobs of the run: result count and checksum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<crate::aggregate::DiagnosticSummary>,
}
