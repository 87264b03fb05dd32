//! MLL selection (SPEC §4.3): match a task's classes to graph nodes, score every
//! model on the matched nodes from its graph labels, mix, and pick per class.

use super::{order_desc, shape_err, MethodError, ModelLabels};
use mll_common::spec::{MethodOptions, NodeScore};
use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Image rows per block when computing S_m rows: bounds the temporary block to
/// IMAGE_BLOCK × |V_sel| floats whatever the graph size.
const IMAGE_BLOCK: usize = 2048;

/// One node of N_y: its graph index and A[y, node].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MatchedNode {
    pub node: usize,
    pub similarity: f64,
}

/// Confusion counts of one model on one selected node (SPEC §4.3c).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCounts {
    /// Images of node v predicted as v.
    pub tp: u64,
    /// Images predicted as v whose true node is not v.
    pub fp: u64,
    /// Images whose true node is v.
    pub p: u64,
}

impl NodeCounts {
    /// The node score of SPEC §4.3d; 0 whenever its denominator is 0.
    pub fn score(&self, kind: NodeScore) -> f64 {
        let (num, den) = match kind {
            NodeScore::F1 => (2 * self.tp, self.tp + self.fp + self.p),
            NodeScore::Precision => (self.tp, self.tp + self.fp),
            NodeScore::Recall => (self.tp, self.p),
        };
        if den == 0 {
            0.0
        } else {
            num as f64 / den as f64
        }
    }
}

/// Everything selection computed for one target dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// N_y per class, best match first (ties: lower node index).
    pub matched: Vec<Vec<MatchedNode>>,
    /// V_sel, ascending node indexes; columns of `node_scores` and rows of `z`.
    pub selected_nodes: Vec<usize>,
    /// Z restricted to V_sel rows: |V_sel| × C (column-normalised when the option is set).
    pub z: Array2<f64>,
    /// Per model, per selected node.
    pub node_counts: Vec<Vec<NodeCounts>>,
    /// p_{m,v}: M × |V_sel|.
    pub node_scores: Array2<f64>,
    /// p_{m,y}: M × C.
    pub class_scores: Array2<f64>,
    /// r_{m,y}: M × C.
    pub mixed_scores: Array2<f64>,
    /// For every k of the options: per class, the k models with the largest r (best first).
    pub top_k: BTreeMap<usize, Vec<Vec<usize>>>,
    /// mean_y r_{m,y} per model: the predicted ranking's scores.
    pub model_scores: Vec<f64>,
    /// Models by `model_scores`, best first.
    pub ranking: Vec<usize>,
}

/// Runs MLL selection. `class_embeddings` is E_T (C × D_e) and `node_embeddings`
/// E_G (V × D_e), both with L2-normalised rows; `models` in hub order.
pub fn select(
    class_embeddings: ArrayView2<f32>,
    node_embeddings: ArrayView2<f32>,
    models: &[&ModelLabels],
    options: &MethodOptions,
) -> Result<Selection, MethodError> {
    let (c, de) = class_embeddings.dim();
    let (v, de_g) = node_embeddings.dim();
    if c == 0 || v == 0 || models.is_empty() {
        return Err(MethodError::Input(format!(
            "selection needs at least one class, node and model (got {c} classes, {v} nodes, {} models)",
            models.len()
        )));
    }
    if de != de_g {
        return Err(shape_err(
            "caption embedding width of classes vs nodes",
            de,
            de_g,
        ));
    }
    if options.nodes_per_class == 0 {
        return Err(MethodError::Input(
            "method.nodes_per_class must be >= 1".into(),
        ));
    }

    // a–b: A = E_T · E_Gᵀ, N_y, V_sel and Z.
    let a = class_embeddings.dot(&node_embeddings.t());
    let n_nodes = options.nodes_per_class.min(v);
    let matched: Vec<Vec<MatchedNode>> = (0..c)
        .map(|y| {
            let row: Vec<f64> = a.row(y).iter().map(|&s| s as f64).collect();
            order_desc(&row)[..n_nodes]
                .iter()
                .map(|&node| MatchedNode {
                    node,
                    similarity: row[node],
                })
                .collect()
        })
        .collect();
    let mut selected_nodes: Vec<usize> = matched.iter().flatten().map(|m| m.node).collect();
    selected_nodes.sort_unstable();
    selected_nodes.dedup();
    let mut position = vec![usize::MAX; v];
    for (j, &node) in selected_nodes.iter().enumerate() {
        position[node] = j;
    }
    let mut z = Array2::<f64>::zeros((selected_nodes.len(), c));
    for (y, nodes) in matched.iter().enumerate() {
        for m in nodes {
            z[[position[m.node], y]] = m.similarity;
        }
    }
    if options.normalize_z {
        for mut col in z.columns_mut() {
            let sum: f64 = col.sum();
            // An all-zero column (or one whose similarities cancel) stays as it is
            // rather than becoming inf/NaN.
            if sum != 0.0 {
                col.mapv_inplace(|x| x / sum);
            }
        }
    }

    // c–d: per model, argmax over V_sel and the node counts.
    let node_counts: Vec<Vec<NodeCounts>> = models
        .iter()
        .enumerate()
        .map(|(m, labels)| {
            model_node_counts(
                m,
                labels,
                v,
                &selected_nodes,
                &position,
                options.selected_images_only,
            )
        })
        .collect::<Result<_, _>>()?;
    let mm = models.len();
    let mut node_scores = Array2::<f64>::zeros((mm, selected_nodes.len()));
    for (m, counts) in node_counts.iter().enumerate() {
        for (j, cnt) in counts.iter().enumerate() {
            node_scores[[m, j]] = cnt.score(options.node_score);
        }
    }

    // e: class scores.
    let mut class_scores = Array2::<f64>::zeros((mm, c));
    for m in 0..mm {
        for (y, nodes) in matched.iter().enumerate() {
            class_scores[[m, y]] = if options.micro_average {
                // Pool the counts of the class's matched nodes, unweighted, and score the pool.
                let mut pooled = NodeCounts::default();
                for n in nodes {
                    let cnt = node_counts[m][position[n.node]];
                    pooled.tp += cnt.tp;
                    pooled.fp += cnt.fp;
                    pooled.p += cnt.p;
                }
                pooled.score(options.node_score)
            } else {
                nodes
                    .iter()
                    .map(|n| node_scores[[m, position[n.node]]] * z[[position[n.node], y]])
                    .sum()
            };
        }
    }

    // f: r = α p_y + (1 − α) mean_{y'} p_{y'}.
    let alpha = options.alpha;
    let mut mixed_scores = Array2::<f64>::zeros((mm, c));
    for m in 0..mm {
        let row = class_scores.row(m);
        let total: f64 = row.sum();
        for y in 0..c {
            let mean = if options.alpha_mean_includes_self || c == 1 {
                // With one class there is no y' != y; the mean over all classes is p_y itself.
                total / c as f64
            } else {
                (total - row[y]) / (c - 1) as f64
            };
            mixed_scores[[m, y]] = alpha * row[y] + (1.0 - alpha) * mean;
        }
    }

    // g: top-k per class.
    let mut top_k = BTreeMap::new();
    for &k in &options.k {
        let per_class: Vec<Vec<usize>> = (0..c)
            .map(|y| {
                let col: Vec<f64> = mixed_scores.column(y).to_vec();
                order_desc(&col).into_iter().take(k.min(mm)).collect()
            })
            .collect();
        top_k.insert(k, per_class);
    }

    // h: predicted ranking.
    let model_scores: Vec<f64> = mixed_scores
        .rows()
        .into_iter()
        .map(|r| r.sum() / c as f64)
        .collect();
    let ranking = order_desc(&model_scores);

    Ok(Selection {
        matched,
        selected_nodes,
        z,
        node_counts,
        node_scores,
        class_scores,
        mixed_scores,
        top_k,
        model_scores,
        ranking,
    })
}

/// TP/FP/P per selected node for one model. S_m rows are computed block by block
/// over the selected nodes' columns only.
fn model_node_counts(
    m: usize,
    labels: &ModelLabels,
    v: usize,
    selected_nodes: &[usize],
    position: &[usize],
    selected_images_only: bool,
) -> Result<Vec<NodeCounts>, MethodError> {
    let (n_img, d) = labels.image_embeddings.dim();
    let (v_m, d_t) = labels.node_text_embeddings.dim();
    if v_m != v {
        return Err(shape_err(
            format!("model {m}: node text embeddings rows (graph nodes)"),
            v,
            v_m,
        ));
    }
    if d != d_t {
        return Err(shape_err(
            format!("model {m}: image vs node text embedding width"),
            d,
            d_t,
        ));
    }
    if labels.image_nodes.len() != n_img {
        return Err(shape_err(
            format!("model {m}: true nodes per image"),
            n_img,
            labels.image_nodes.len(),
        ));
    }
    if let Some(&bad) = labels.image_nodes.iter().find(|&&g| g >= v) {
        return Err(MethodError::Input(format!(
            "model {m}: an image's true node is {bad} but the graph has {v} nodes; the label artifacts do not belong to this graph"
        )));
    }
    let texts = labels.node_text_embeddings.select(Axis(0), selected_nodes);
    let images: Vec<usize> = (0..n_img)
        .filter(|&i| !selected_images_only || position[labels.image_nodes[i]] != usize::MAX)
        .collect();
    let mut counts = vec![NodeCounts::default(); selected_nodes.len()];
    for block in images.chunks(IMAGE_BLOCK) {
        let emb = labels.image_embeddings.select(Axis(0), block);
        // The factor 100 of S_m does not change the argmax.
        let sims = emb.dot(&texts.t());
        for (row, &i) in sims.rows().into_iter().zip(block) {
            let mut best = 0;
            let mut best_s = f32::NEG_INFINITY;
            for (j, &s) in row.iter().enumerate() {
                // Strict '>' keeps the lowest node index on ties.
                if s > best_s {
                    best_s = s;
                    best = j;
                }
            }
            let truth = position[labels.image_nodes[i]];
            if truth == best {
                counts[best].tp += 1;
            } else {
                counts[best].fp += 1;
            }
            if truth != usize::MAX {
                counts[truth].p += 1;
            }
        }
    }
    Ok(counts)
}
