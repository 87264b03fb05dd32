//! Model Label Learning (docs/method.md) as pure functions over in-memory
//! matrices: selection, reuse, metrics, baselines and the paper's experiments
//! (`assess` assembles them into a run's [`outcome`]), and the report files
//! written from that outcome (`report`). Nothing here reads a store, a queue or
//! an artifact file, and nothing runs a model: the coordinator loads results
//! and calls in. The crate has no async runtime, broker, store or libtorch in
//! its dependency tree, so `cargo test -p mll-method` is quick.
//!
//! Conventions shared by every function:
//! - models are indexed in hub order (the order of the benchmark spec); every tie
//!   between models is broken towards the lower index;
//! - embeddings are `f32`, scores and accuracies `f64`;
//! - "higher is better" for every score that ranks models.
//!
//! - `options` — α, k, node scoring, pooling, ensemble weight; the presets;
//! - `selection`, `reuse`, `metrics`, `baselines`, `experiments` — the method;
//! - `prob` — the entropy formula workers and the coordinator share bit for bit;
//! - `assess` — one dataset's and the run's outcome from the above;
//! - `outcome` — that outcome as data (report.json's shape);
//! - `report` — report.json, report.md, accuracy_matrix.csv and SVG charts;
//! - `names` — dataset names across MLL, CLIP_benchmark and open_clip.

pub mod assess;
pub mod baselines;
pub mod experiments;
pub mod input;
pub mod metrics;
pub mod modelgpt;
pub mod names;
pub mod options;
pub mod outcome;
pub mod prob;
pub mod report;
pub mod reuse;
pub mod rng;
pub mod selection;

use ndarray::Array2;

pub use baselines::{hub_average, imagenet_ranking, inb_models, oracle, random_selection, RandomSelection};
pub use metrics::{
    gt_ranking, kendall_tau_b, rank_by_score, ranking_metrics, recall_at_5, tau_at_5, weighted_tau, Accuracy, RankingMetrics,
};
pub use reuse::{ensemble_accuracy, ensemble_predict, entropy, same_models_for_all_classes, ReusePool};
pub use rng::SplitMix64;
pub use selection::{
    check_labels, match_classes, mix, model_node_counts, pick_top_k, score, select, HubSelection, ImagesByNode, MatchedNode, Matching,
    Mixed, NodeCounts, Selection, SelectionReads,
};

/// What labeling one model on the semantic graph produced (docs/method.md,
/// "Model labels"): its L2-normalised image embeddings of the graph images,
/// the true node of each image, and its L2-normalised embeddings of every
/// node's text. The label matrix S_m = 100 · images · textsᵀ is never
/// materialised.
#[derive(Debug, Clone)]
pub struct ModelLabels {
    /// N_G × D_m, rows L2-normalised; with `image_rows`, only the rows of
    /// some images.
    pub image_embeddings: Array2<f32>,
    /// N_G true node indexes, one per image.
    pub image_nodes: Vec<usize>,
    /// None: `image_embeddings` row i is image i's. Some (a hub index loads
    /// only the rows selection computes): image i's row, or `u32::MAX` when
    /// not loaded; then `node_text_embeddings` may be 0 × D_m when no row is.
    /// Selection fails, rather than reads zeros, if it needs a row not loaded.
    pub image_rows: Option<Vec<u32>>,
    /// V × D_m, rows L2-normalised.
    pub node_text_embeddings: Array2<f32>,
    /// Each image's K best nodes by S_m, when the label jobs stored them.
    /// Selection then looks argmaxes up instead of recomputing rows of S_m.
    pub top_nodes: Option<TopNodes>,
}

/// Per-image best-node lists: `lists` N_G × K, best first (equal scores by
/// lower node index), and their first [`TopNodes::HEAD`] entries again in a
/// narrow contiguous array: most lookups stop within the head, and 16 bytes
/// per image stream through the cache where the K-wide rows do not.
#[derive(Debug, Clone, PartialEq)]
pub struct TopNodes {
    lists: Array2<u32>,
    head: Vec<u32>,
    graph_nodes: usize,
}

impl TopNodes {
    /// Entries per image kept in the head.
    pub const HEAD: usize = 4;

    /// Head width for lists of `k` entries.
    pub fn head_width(k: usize) -> usize {
        k.min(Self::HEAD)
    }

    /// Lists of a graph with `graph_nodes` nodes; an entry outside it is an error.
    pub fn new(lists: Array2<u32>, graph_nodes: usize) -> Result<Self, MethodError> {
        if let Some(&bad) = lists.iter().find(|&&t| t as usize >= graph_nodes) {
            return Err(MethodError::Input(format!(
                "a best-node list names node {bad} but the graph has {graph_nodes} nodes; the label artifacts do not belong to this graph"
            )));
        }
        let h = Self::head_width(lists.ncols());
        let mut head = Vec::with_capacity(lists.nrows() * h);
        for row in lists.rows() {
            head.extend(row.iter().take(h));
        }
        Ok(TopNodes { lists, head, graph_nodes })
    }

    /// From lists and their head (each row's first [`Self::head_width`]
    /// entries, flattened) split while decoding, where every entry was already
    /// checked to be below `graph_nodes` (aggregation fuses that check into the
    /// decode pass so selection does not repeat it).
    pub fn from_checked_parts(lists: Array2<u32>, head: Vec<u32>, graph_nodes: usize) -> Self {
        debug_assert!(lists.iter().all(|&t| (t as usize) < graph_nodes));
        debug_assert_eq!(head.len(), lists.nrows() * Self::head_width(lists.ncols()));
        TopNodes { lists, head, graph_nodes }
    }

    pub fn lists(&self) -> &Array2<u32> {
        &self.lists
    }

    /// Nodes of the graph the lists index.
    pub fn graph_nodes(&self) -> usize {
        self.graph_nodes
    }

    /// `position` maps graph nodes to V_sel positions (usize::MAX: not
    /// selected); the first listed node that is selected is the image's argmax
    /// over V_sel. None: no listed node is selected.
    #[inline]
    pub(crate) fn first_selected(&self, image: usize, position: &[usize]) -> Option<usize> {
        let h = Self::head_width(self.lists.ncols());
        for &t in &self.head[image * h..(image + 1) * h] {
            let p = position[t as usize];
            if p != usize::MAX {
                return Some(p);
            }
        }
        self.lists.row(image).iter().skip(h).map(|&t| position[t as usize]).find(|&p| p != usize::MAX)
    }
}

/// Per-sample class probabilities of one model on one target dataset (an
/// evaluate artifact): `probs` n × C (softmax already applied), `labels` n,
/// and each row's entropy when the worker stored it (else reuse computes it).
#[derive(Debug, Clone)]
pub struct Predictions {
    pub probs: Array2<f32>,
    pub labels: Vec<usize>,
    pub entropy: Option<Vec<f64>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MethodError {
    #[error("{what}: expected {expected}, got {got}; check that every input comes from the same graph, dataset and hub")]
    Shape { what: String, expected: String, got: String },
    #[error("{0}")]
    Input(String),
    #[error(
        "model {model} is selected for some class but its probabilities are missing; run its evaluate jobs (with keep_probabilities) first"
    )]
    MissingProbabilities { model: usize },
}

pub(crate) fn shape_err(what: impl Into<String>, expected: impl ToString, got: impl ToString) -> MethodError {
    MethodError::Shape { what: what.into(), expected: expected.to_string(), got: got.to_string() }
}

/// Index of the first largest value: strict '>' keeps the lowest index on
/// ties, and NaN never wins. 0 for an empty or all-NaN input.
pub(crate) fn first_max<T: PartialOrd + Copy>(values: &[T]) -> usize {
    // Start at the first non-NaN value; after that NaN never compares greater.
    #[allow(clippy::eq_op)]
    let Some(start) = values.iter().position(|&v| v == v) else {
        return 0;
    };
    let (mut best, mut best_v) = (start, values[start]);
    for (i, &v) in values.iter().enumerate().skip(start + 1) {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best
}

/// Indexes 0..n sorted by score, highest first; NaN counts as the lowest score
/// and equal scores keep index order (hub order).
pub fn order_desc(scores: &[f64]) -> Vec<usize> {
    // NaN sorts last; partial_cmp (unlike total_cmp) also treats -0.0 == 0.0 as a tie.
    let key = |x: f64| if x.is_nan() { f64::NEG_INFINITY } else { x };
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    // sort_by is stable, so ties stay in index order.
    idx.sort_by(|&a, &b| key(scores[b]).partial_cmp(&key(scores[a])).expect("NaN was mapped away"));
    idx
}

#[cfg(test)]
mod tests {
    use super::first_max;

    #[test]
    fn first_max_takes_the_lowest_index_and_skips_nan() {
        assert_eq!(first_max(&[0.2, 0.9, 0.9, 0.1]), 1);
        assert_eq!(first_max(&[f64::NAN, 0.3, f64::NAN, 0.5]), 3);
        assert_eq!(first_max(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), 0);
        assert_eq!(first_max::<f64>(&[f64::NAN, f64::NAN]), 0);
        assert_eq!(first_max::<f64>(&[]), 0);
    }
}
