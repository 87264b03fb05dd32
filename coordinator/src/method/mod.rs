//! The MLL method (SPEC §4) and the metrics and baselines of SPEC §5, as pure
//! functions over in-memory matrices. Nothing here reads the store or the
//! artifact files: aggregation loads them and calls in.
//!
//! Conventions shared by every function:
//! - models are indexed in hub order (the order of the benchmark spec); every tie
//!   between models is broken towards the lower index;
//! - embeddings are `f32`, scores and accuracies `f64`;
//! - "higher is better" for every score that ranks models.

pub mod baselines;
pub mod metrics;
pub mod reuse;
pub mod selection;

use ndarray::Array2;

pub use baselines::{
    hub_average, imagenet_ranking, inb_models, oracle, random_selection, RandomSelection,
};
pub use metrics::{
    gt_ranking, kendall_tau_b, rank_by_score, ranking_metrics, recall_at_5, tau_at_5, weighted_tau,
    Accuracy, RankingMetrics,
};
pub use reuse::{
    ensemble_accuracy, ensemble_predict, entropy, same_models_for_all_classes, ReusePool,
};
pub use selection::{select, MatchedNode, NodeCounts, Selection};

/// What labeling one model on the semantic graph produced (SPEC §4.2): its
/// L2-normalised image embeddings of the graph images, the true node of each
/// image, and its L2-normalised embeddings of every node's text. The label
/// matrix S_m = 100 · images · textsᵀ is never materialised.
#[derive(Debug, Clone)]
pub struct ModelLabels {
    /// N_G × D_m, rows L2-normalised.
    pub image_embeddings: Array2<f32>,
    /// N_G true node indexes, one per image row.
    pub image_nodes: Vec<usize>,
    /// V × D_m, rows L2-normalised.
    pub node_text_embeddings: Array2<f32>,
}

/// Per-sample class probabilities of one model on one target dataset (an
/// evaluate artifact): `probs` n × C (softmax already applied), `labels` n.
#[derive(Debug, Clone)]
pub struct Predictions {
    pub probs: Array2<f32>,
    pub labels: Vec<usize>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MethodError {
    #[error("{what}: expected {expected}, got {got}; check that every input comes from the same graph, dataset and hub")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    #[error("{0}")]
    Input(String),
    #[error("model {model} is selected for some class but its probabilities are missing; run its evaluate jobs (with keep_probabilities) first")]
    MissingProbabilities { model: usize },
}

pub(crate) fn shape_err(
    what: impl Into<String>,
    expected: impl ToString,
    got: impl ToString,
) -> MethodError {
    MethodError::Shape {
        what: what.into(),
        expected: expected.to_string(),
        got: got.to_string(),
    }
}

/// Indexes 0..n sorted by score, highest first; NaN counts as the lowest score
/// and equal scores keep index order (hub order).
pub fn order_desc(scores: &[f64]) -> Vec<usize> {
    // NaN sorts last; partial_cmp (unlike total_cmp) also treats -0.0 == 0.0 as a tie.
    let key = |x: f64| if x.is_nan() { f64::NEG_INFINITY } else { x };
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    // sort_by is stable, so ties stay in index order.
    idx.sort_by(|&a, &b| {
        key(scores[b])
            .partial_cmp(&key(scores[a]))
            .expect("NaN was mapped away")
    });
    idx
}
