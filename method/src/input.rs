//! The method's inputs: one dataset's collected results, the graph's labels,
//! the whole run's; and [`DatasetData`], one dataset's inputs checked against
//! each other, shared by the report (`assess`) and the experiments.

use crate::metrics::ranking_metrics;
use crate::options::{EnsembleWeight, MethodOptions};
use crate::outcome::*;
use crate::{order_desc, Accuracy, ModelLabels, Predictions, ReusePool};
use ndarray::{Array2, ArrayView2};

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
    /// Per model: the recorded seconds of its evaluate jobs on this dataset
    /// (the k sweep's reuse cost); empty or None where unknown.
    pub evaluate_seconds: Vec<Option<f64>>,
    /// The ModelGPT baseline's reading of the LLM's answer; None when it was not run.
    pub modelgpt: Option<crate::modelgpt::ModelGptRanking>,
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

/// Everything of a run in memory (tests, benchmarks, truth tables). Aggregation
/// streams the same steps instead, one model's labels at a time.
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

/// The dataset's class count: its class names, else the probabilities' width.
pub(crate) fn classes_of(d: &DatasetInput) -> usize {
    if !d.class_names.is_empty() {
        return d.class_names.len();
    }
    d.predictions.iter().flatten().next().map(|p| p.probs.ncols()).unwrap_or(0)
}

/// One dataset's inputs checked against each other, shared by the report and
/// the experiments: ground-truth top-1 per model, the samples' labels, and
/// reuse pools over the stored probabilities.
pub struct DatasetData<'a> {
    pub models: &'a [ModelInfo],
    pub input: &'a DatasetInput,
    pub classes: usize,
    /// Per model, NaN where it has no result.
    pub top1: Vec<f64>,
    /// Models with a top-1, hub order.
    pub available: Vec<usize>,
    /// The samples' labels, when some model's probabilities are there.
    pub labels: Option<&'a [usize]>,
}

impl<'a> DatasetData<'a> {
    pub fn new(models: &'a [ModelInfo], d: &'a DatasetInput) -> Result<Self, ReportError> {
        let input_err = |message: String| ReportError::Input { dataset: d.name.clone(), message };
        let m = models.len();
        for (what, len) in [("accuracy", d.accuracy.len()), ("predictions", d.predictions.len())] {
            if len != 0 && len != m {
                return Err(input_err(format!("{what} has {len} entries but the hub has {m} models")));
            }
        }
        let top1: Vec<f64> = (0..m).map(|i| d.accuracy.get(i).copied().flatten().map_or(f64::NAN, |a| a.top1)).collect();
        let available: Vec<usize> = (0..m).filter(|&i| !top1[i].is_nan()).collect();
        let classes = classes_of(d);
        // Predictions for reuse: every present matrix must agree with the classes and the labels.
        let present: Vec<(usize, &Predictions)> =
            d.predictions.iter().enumerate().filter_map(|(i, p)| p.as_ref().map(|p| (i, p))).collect();
        let labels: Option<&[usize]> = present.first().map(|(_, p)| p.labels.as_slice());
        let key = |i: usize| &models[i].key;
        for (i, p) in &present {
            if p.probs.ncols() != classes {
                return Err(input_err(format!("model {}: probabilities have {} classes, expected {classes}", key(*i), p.probs.ncols())));
            }
            if p.probs.nrows() != p.labels.len() {
                return Err(input_err(format!("model {}: {} probability rows but {} labels", key(*i), p.probs.nrows(), p.labels.len())));
            }
            if Some(p.labels.as_slice()) != labels {
                return Err(input_err(format!(
                    "model {}: sample labels differ from model {}'s; evaluate outputs must cover the same samples in the same order",
                    key(*i),
                    key(present[0].0)
                )));
            }
        }
        Ok(DatasetData { models, input: d, classes, top1, available, labels })
    }

    pub fn key(&self, i: usize) -> String {
        self.models[i].key.clone()
    }

    /// A reuse pool over every stored probability matrix, weighted by `weighting`.
    pub fn pool(&self, weighting: EnsembleWeight) -> Result<ReusePool<'a>, ReportError> {
        let method_err = |source| ReportError::Method { dataset: self.input.name.clone(), source };
        let views: Vec<Option<ArrayView2<f32>>> =
            (0..self.models.len()).map(|i| self.input.predictions.get(i).and_then(|p| p.as_ref()).map(|p| p.probs.view())).collect();
        let mut pool = ReusePool::new(views, weighting).map_err(method_err)?;
        for (i, p) in self.input.predictions.iter().enumerate() {
            if let Some(h) = p.as_ref().and_then(|p| p.entropy.as_ref()) {
                pool.set_entropy(i, h).map_err(method_err)?;
            }
        }
        Ok(pool)
    }

    /// Whether every model of `set` has stored probabilities.
    pub fn has_probs(&self, set: &[usize]) -> bool {
        set.iter().all(|&i| self.input.predictions.get(i).is_some_and(|p| p.is_some()))
    }

    /// Reuse accuracy of per-class model lists, None (with a note) when a
    /// selected model's probabilities are missing.
    pub fn reuse(&self, pool: &ReusePool, set: &[Vec<usize>], what: &str, notes: &mut Vec<String>) -> Result<Option<f64>, ReportError> {
        let used: Vec<usize> = set.iter().flatten().copied().collect();
        match self.labels {
            Some(l) if self.has_probs(&used) => {
                Ok(Some(pool.accuracy(l, set).map_err(|source| ReportError::Method { dataset: self.input.name.clone(), source })?))
            }
            _ => {
                notes.push(format!("{what}: no reuse accuracy, probabilities of a selected model are missing"));
                Ok(None)
            }
        }
    }

    /// A predicted ranking (scores per hub model) against the ground truth,
    /// over the models that have a ground-truth accuracy.
    pub fn rank(&self, scores: &[f64]) -> RankingReport {
        let t: Vec<f64> = self.available.iter().map(|&i| self.top1[i]).collect();
        let p: Vec<f64> = self.available.iter().map(|&i| scores[i]).collect();
        let mt = ranking_metrics(&t, &p);
        RankingReport {
            predicted: order_desc(&p).into_iter().map(|j| self.key(self.available[j])).collect(),
            r5: mt.r5,
            tau5: mt.tau5,
            kendall_tau_b: mt.kendall_tau_b,
            weighted_tau: mt.weighted_tau,
        }
    }

    /// ImageNet top-1 per hub model (INB's input).
    pub fn imagenet(&self) -> Vec<Option<f64>> {
        self.models.iter().map(|x| x.imagenet_top1).collect()
    }
}

/// Mean of the finite values (NaN when there are none).
pub fn mean_finite(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}
