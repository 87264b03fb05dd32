//! The run's outcome as data: what the method computed for every dataset and
//! the summary over them (plus the run's diagnostic-job check). Aggregation
//! and the method fill it in; `report` only formats and writes it.
//!
//! Output is deterministic: model and dataset lists keep spec order, method
//! maps are BTreeMaps, there are no timestamps, and every float is rounded to 6
//! decimals when written, so two builds from the same input are byte-identical.

use crate::options::MethodOptions;
use crate::MethodError;
use serde::Serialize;
use std::collections::BTreeMap;

/// Version of report.json's layout.
pub const REPORT_FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("dataset {dataset}: {source}")]
    Method { dataset: String, source: MethodError },
    #[error("dataset {dataset}: {message}")]
    Input { dataset: String, message: String },
    #[error("report: cannot write {path}: {source}; check that the output folder is writable")]
    Write { path: String, source: std::io::Error },
}

/// A hub model as the report describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    pub key: String,
    pub params_m: Option<f64>,
    pub gflops: Option<f64>,
    pub imagenet_top1: Option<f64>,
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
    pub diagnostic: Option<DiagnosticSummary>,
    /// The paper's experiments, when asked for (`report --experiments`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiments: Option<Experiments>,
}

/// Summary of diagnostic jobs: how many results and a checksum over their
/// values, so duplicate or lost results would show.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct DiagnosticSummary {
    pub planned: u64,
    pub results: u64,
    pub value_checksum: String,
}

/// The paper's experiments (docs/method.md, "Experiments"), from committed
/// results, over the complete datasets (`coordinator report RUN --experiments`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiments {
    /// α sweep: MLL's reuse accuracy and ranking metrics per α; None without MLL.
    pub alpha_sweep: Option<AlphaSweep>,
    /// k sweep: reuse accuracy and reuse cost per k, MLL and INB; None without MLL.
    pub k_sweep: Option<KSweep>,
    /// Hub growth: accuracy as the hub grows, over seeded random orders.
    pub hub_growth: Option<HubGrowth>,
    pub notes: Vec<String>,
}

/// One dataset's points of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetSeries<T> {
    pub dataset: String,
    pub points: Vec<T>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlphaSweep {
    pub alphas: Vec<f64>,
    /// Means over the datasets of `per_dataset` (each value over the datasets that have it).
    pub mean: Vec<AlphaPoint>,
    pub per_dataset: Vec<DatasetSeries<AlphaPoint>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlphaPoint {
    pub alpha: f64,
    /// `mll_k{k}` for every k of the method: reuse top-1 (null: not computable).
    pub accuracy: BTreeMap<String, Option<f64>>,
    /// MLL's predicted ranking against the ground truth.
    pub ranking: RankingPoint,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankingPoint {
    pub r5: f64,
    pub tau5: f64,
    pub kendall_tau_b: f64,
    pub weighted_tau: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KSweep {
    pub ks: Vec<usize>,
    /// Accuracies, model counts and hub fractions: means over the datasets of
    /// `per_dataset`; GPU-seconds: totals over them (null if one is unknown).
    pub mean: Vec<KPoint>,
    pub per_dataset: Vec<DatasetSeries<KPoint>>,
    /// Per dataset: GPU-seconds of evaluating the whole hub on it (the
    /// ground truth's cost), null where a result did not record its duration.
    pub hub_gpu_seconds: BTreeMap<String, Option<f64>>,
}

/// One k: reuse accuracy and what reuse costs — the distinct models some
/// class of the dataset uses, as a count and a fraction of the hub, and the
/// recorded GPU-seconds of those models' evaluate jobs on the dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KPoint {
    pub k: usize,
    pub mll: Option<f64>,
    pub mll_models: f64,
    pub mll_hub_fraction: f64,
    pub mll_gpu_seconds: Option<f64>,
    pub inb: Option<f64>,
    pub inb_models: f64,
    pub inb_gpu_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HubGrowth {
    /// Random orders of the hub, drawn from `seed` (the method's seed).
    pub orders: usize,
    pub seed: u64,
    /// Hub sizes 1..=M.
    pub sizes: Vec<usize>,
    /// Per method (`mll_k1`, `inb_k1`, `oracle`): per size, the accuracy
    /// averaged over the datasets, then its mean and standard deviation over the orders.
    pub curves: BTreeMap<String, GrowthCurve>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GrowthCurve {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub datasets: Vec<String>,
}
