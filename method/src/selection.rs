//! MLL selection (docs/method.md, "Selection"): match a task's classes to
//! graph nodes, score every model on the matched nodes from its graph labels,
//! mix, and pick per class.
//!
//! Three phases, so a caller can stream models instead of holding every
//! model's labels at once: [`match_classes`] (steps a–b, per dataset),
//! [`model_node_counts`] (step c, per model and dataset) and [`score`]
//! (steps d–h). [`select`] runs all three.
//!
//! Step c needs, for each image, the argmax of its S_m row over V_sel. When the
//! label artifacts carry each image's best nodes (`top_nodes`), the argmax is
//! the first listed node that is in V_sel; only images whose list holds no
//! selected node fall back to computing their row from the embeddings. Both
//! ways give the same argmax (up to the rounding of S_m in the worker for
//! scores within ~1e-7 of each other).

use super::{first_max, order_desc, shape_err, MethodError, ModelLabels};
use crate::options::{MethodOptions, MicroWeights, NodeScore};
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

/// Confusion counts of one model on one selected node (docs/method.md,
/// "Selection", step c).
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
    /// The node score of step d (docs/method.md, "Selection"); 0 whenever its
    /// denominator is 0.
    pub fn score(&self, kind: NodeScore) -> f64 {
        score_of(kind, self.tp as f64, self.fp as f64, self.p as f64)
    }
}

/// F1 = 2TP/(TP+FP+P), precision TP/(TP+FP), recall TP/P, on (possibly
/// weighted) counts; 0 when the denominator is not positive. F1 is the
/// corrected form: the released selection.py divides by 2TP+FP+P.
fn score_of(kind: NodeScore, tp: f64, fp: f64, p: f64) -> f64 {
    let (num, den) = match kind {
        NodeScore::F1 => (2.0 * tp, tp + fp + p),
        NodeScore::Precision => (tp, tp + fp),
        NodeScore::Recall => (tp, p),
    };
    if den > 0.0 {
        num / den
    } else {
        0.0
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

/// Steps a–b for one dataset: N_y per class, V_sel and Z.
#[derive(Debug, Clone, PartialEq)]
pub struct Matching {
    /// N_y per class, best match first (ties: lower node index).
    pub matched: Vec<Vec<MatchedNode>>,
    /// V_sel, ascending node indexes.
    pub selected_nodes: Vec<usize>,
    /// Graph node → its position in `selected_nodes`, usize::MAX when not selected.
    position: Vec<usize>,
    /// |V_sel| × C (column-normalised when the option is set).
    pub z: Array2<f64>,
}

impl Matching {
    /// Number of graph nodes the matching was made on.
    pub fn graph_nodes(&self) -> usize {
        self.position.len()
    }
}

/// A model's graph images grouped by true node (CSR), built once per model
/// and shared by every dataset's selection, so step c visits only the images
/// of selected nodes. Aggregation hands over labels already sorted by true
/// node; then the groups are plain ranges and every lookup walks memory in
/// order. Unsorted labels get a slot → image index.
#[derive(Debug, Clone)]
pub struct ImagesByNode {
    offsets: Vec<usize>,
    /// Slot → image; None when the labels are sorted by node (slot = image).
    images: Option<Vec<u32>>,
}

impl ImagesByNode {
    /// `labels` must have passed [`check_labels`] for a graph of `nodes` nodes.
    pub fn new(labels: &ModelLabels, nodes: usize) -> Self {
        let image_nodes = &labels.image_nodes;
        let mut offsets = vec![0usize; nodes + 1];
        for &g in image_nodes {
            offsets[g + 1] += 1;
        }
        for v in 0..nodes {
            offsets[v + 1] += offsets[v];
        }
        if image_nodes.is_sorted() {
            return ImagesByNode { offsets, images: None };
        }
        let mut fill = offsets[..nodes].to_vec();
        let mut images = vec![0u32; image_nodes.len()];
        for (i, &g) in image_nodes.iter().enumerate() {
            images[fill[g]] = i as u32;
            fill[g] += 1;
        }
        ImagesByNode { offsets, images: Some(images) }
    }

    fn range(&self, node: usize) -> std::ops::Range<usize> {
        self.offsets[node]..self.offsets[node + 1]
    }

    fn image(&self, slot: usize) -> usize {
        self.images.as_ref().map_or(slot, |im| im[slot] as usize)
    }

    #[cfg(test)]
    fn of(&self, node: usize) -> Vec<usize> {
        self.range(node).map(|slot| self.image(slot)).collect()
    }
}

/// Runs MLL selection. `class_embeddings` is E_T (C × D_e) and `node_embeddings`
/// E_G (V × D_e), both with L2-normalised rows; `models` in hub order.
pub fn select(
    class_embeddings: ArrayView2<f32>,
    node_embeddings: ArrayView2<f32>,
    models: &[&ModelLabels],
    options: &MethodOptions,
) -> Result<Selection, MethodError> {
    if models.is_empty() {
        return Err(MethodError::Input("selection needs at least one model (got 0)".into()));
    }
    let matching = match_classes(class_embeddings, node_embeddings, options)?;
    let counts = models
        .iter()
        .enumerate()
        .map(|(m, labels)| {
            check_labels(m, labels, matching.graph_nodes())?;
            let by_node = ImagesByNode::new(labels, matching.graph_nodes());
            model_node_counts(&matching, m, labels, &by_node, options)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(score(matching, counts, options))
}

/// Selection for every dataset of a run with one model's labels in memory at a
/// time: the matchings (steps a–b) first, then each model's labels counted
/// against every matching and dropped, then steps d–h per dataset. The one
/// path to a [`Selection`] for aggregation and for in-memory inputs alike.
pub struct HubSelection<'o> {
    matchings: Vec<Option<Matching>>,
    counts: Vec<Vec<Vec<NodeCounts>>>,
    graph_nodes: usize,
    models: usize,
    options: &'o MethodOptions,
}

impl<'o> HubSelection<'o> {
    /// `class_embeddings[d]`: E_T of dataset d, None where it has none (its
    /// selection stays None). Err: the dataset whose matching failed.
    pub fn new(
        class_embeddings: &[Option<ArrayView2<f32>>],
        node_embeddings: ArrayView2<f32>,
        options: &'o MethodOptions,
    ) -> Result<Self, (usize, MethodError)> {
        let matchings = class_embeddings
            .iter()
            .enumerate()
            .map(|(d, e_t)| match e_t {
                Some(e_t) => match_classes(e_t.view(), node_embeddings, options).map(Some).map_err(|e| (d, e)),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HubSelection { counts: vec![Vec::new(); matchings.len()], matchings, graph_nodes: node_embeddings.nrows(), models: 0, options })
    }

    /// V_sel of every matching, ascending: with `selected_images_only`, the
    /// nodes whose images step c reads (a hub index reads only those).
    pub fn selected_node_sets(&self) -> Vec<&[usize]> {
        self.matchings.iter().flatten().map(|m| m.selected_nodes.as_slice()).collect()
    }

    /// Counts the next hub model's labels (hub order) against every matching.
    pub fn add_model(&mut self, labels: &ModelLabels) -> Result<(), (Option<usize>, MethodError)> {
        let m = self.models;
        check_labels(m, labels, self.graph_nodes).map_err(|e| (None, e))?;
        let by_node = ImagesByNode::new(labels, self.graph_nodes);
        for (d, matching) in self.matchings.iter().enumerate() {
            if let Some(matching) = matching {
                let c = model_node_counts(matching, m, labels, &by_node, self.options).map_err(|e| (Some(d), e))?;
                self.counts[d].push(c);
            }
        }
        self.models += 1;
        Ok(())
    }

    /// Steps d–h for every dataset that has a matching.
    pub fn finish(self) -> Vec<Option<Selection>> {
        let options = self.options;
        self.matchings.into_iter().zip(self.counts).map(|(matching, c)| matching.map(|matching| score(matching, c, options))).collect()
    }
}

/// Steps a–b: A = E_T · E_Gᵀ, N_y, V_sel and Z.
pub fn match_classes(
    class_embeddings: ArrayView2<f32>,
    node_embeddings: ArrayView2<f32>,
    options: &MethodOptions,
) -> Result<Matching, MethodError> {
    let (c, de) = class_embeddings.dim();
    let (v, de_g) = node_embeddings.dim();
    if c == 0 || v == 0 {
        return Err(MethodError::Input(format!("selection needs at least one class and node (got {c} classes, {v} nodes)")));
    }
    if de != de_g {
        return Err(shape_err("caption embedding width of classes vs nodes", de, de_g));
    }
    if options.nodes_per_class == 0 {
        return Err(MethodError::Input("method.nodes_per_class must be >= 1".into()));
    }
    let a = class_embeddings.dot(&node_embeddings.t());
    let n_nodes = options.nodes_per_class.min(v);
    let matched: Vec<Vec<MatchedNode>> = (0..c)
        .map(|y| {
            let row: Vec<f64> = a.row(y).iter().map(|&s| s as f64).collect();
            best_n(&row, n_nodes).into_iter().map(|node| MatchedNode { node, similarity: row[node] }).collect()
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
    Ok(Matching { matched, selected_nodes, position, z })
}

/// The `n` highest scores' indexes, best first, in exactly [`order_desc`]'s
/// order (NaN lowest, ties by lower index), in one pass with an n-slot buffer
/// instead of sorting the whole row (n is 5 against thousands of nodes).
fn best_n(scores: &[f64], n: usize) -> Vec<usize> {
    let key = |x: f64| if x.is_nan() { f64::NEG_INFINITY } else { x };
    let mut best: Vec<(f64, usize)> = Vec::with_capacity(n + 1);
    for (i, &s) in scores.iter().enumerate() {
        let s = key(s);
        // Strict '>': an equal score seen later has the higher index and stays behind.
        if best.len() == n && !best.last().is_some_and(|&(worst, _)| s > worst) {
            continue;
        }
        let at = best.partition_point(|&(b, _)| b >= s);
        best.insert(at, (s, i));
        best.truncate(n);
    }
    best.into_iter().map(|(_, i)| i).collect()
}

/// Checks one model's labels against the graph before counting.
pub fn check_labels(m: usize, labels: &ModelLabels, v: usize) -> Result<(), MethodError> {
    let n_img = labels.image_nodes.len();
    let (rows, d) = labels.image_embeddings.dim();
    let (v_m, d_t) = labels.node_text_embeddings.dim();
    // Partial labels (image_rows) may leave the node texts out when no image row is loaded.
    let texts_left_out = v_m == 0 && labels.image_rows.as_ref().is_some_and(|r| r.iter().all(|&x| x == u32::MAX));
    if v_m != v && !texts_left_out {
        return Err(shape_err(format!("model {m}: node text embeddings rows (graph nodes)"), v, v_m));
    }
    if d != d_t {
        return Err(shape_err(format!("model {m}: image vs node text embedding width"), d, d_t));
    }
    match &labels.image_rows {
        None if rows != n_img => return Err(shape_err(format!("model {m}: true nodes per image"), rows, n_img)),
        Some(r) if r.len() != n_img => return Err(shape_err(format!("model {m}: embedding rows per image"), n_img, r.len())),
        Some(r) if r.iter().any(|&x| x != u32::MAX && x as usize >= rows) => {
            return Err(MethodError::Input(format!("model {m}: an image's embedding row is beyond the {rows} rows loaded")))
        }
        _ => {}
    }
    if let Some(&bad) = labels.image_nodes.iter().find(|&&g| g >= v) {
        return Err(MethodError::Input(format!(
            "model {m}: an image's true node is {bad} but the graph has {v} nodes; the label artifacts do not belong to this graph"
        )));
    }
    if let Some(top) = &labels.top_nodes {
        if top.lists().nrows() != n_img {
            return Err(shape_err(format!("model {m}: rows of the per-image best-node lists"), n_img, top.lists().nrows()));
        }
        if top.graph_nodes() != v {
            return Err(shape_err(format!("model {m}: graph nodes of the per-image best-node lists"), v, top.graph_nodes()));
        }
    }
    Ok(())
}

/// What [`model_node_counts`] reads of a model's labels for matchings whose
/// V_sel are `node_sets`: the images it visits, and those of them whose S_m
/// row it computes (the others are decided by their best-node lists). The
/// loaders that keep only this (`aggregate::load`, the hub index) ask here,
/// so the rule lives beside the loop it mirrors.
pub struct SelectionReads {
    /// Per V_sel, each graph node's position in it (usize::MAX: not in it).
    positions: Vec<Vec<usize>>,
    selected_images_only: bool,
}

impl SelectionReads {
    /// Nodes of `node_sets` outside the graph are ignored (callers check them).
    pub fn new(node_sets: &[&[usize]], graph_nodes: usize, selected_images_only: bool) -> Self {
        let positions = node_sets
            .iter()
            .map(|set| {
                let mut p = vec![usize::MAX; graph_nodes];
                for (j, &g) in set.iter().enumerate() {
                    if let Some(x) = p.get_mut(g) {
                        *x = j;
                    }
                }
                p
            })
            .collect();
        SelectionReads { positions, selected_images_only }
    }

    /// Whether images of true node `node` are visited: with selected images
    /// only, those of a node in some V_sel; else every image.
    pub fn visits(&self, node: usize) -> bool {
        !self.selected_images_only || self.positions.iter().any(|p| p[node] != usize::MAX)
    }

    /// Whether a visited image of true node `node` with best-node list `list`
    /// (None: no lists) has its S_m row computed: its list holds no node of a
    /// V_sel that visits it (with selected images only, one holding its true
    /// node, whose list then rarely misses; else every V_sel).
    pub fn computes_row(&self, node: usize, list: Option<&[u32]>) -> bool {
        let Some(list) = list else { return true };
        self.positions
            .iter()
            .any(|p| (!self.selected_images_only || p[node] != usize::MAX) && list.iter().all(|&x| p[x as usize] == usize::MAX))
    }
}

/// Step c for one model: TP/FP/P per selected node. `labels` must have passed
/// [`check_labels`] and `by_node` be built from its `image_nodes`.
pub fn model_node_counts(
    matching: &Matching,
    m: usize,
    labels: &ModelLabels,
    by_node: &ImagesByNode,
    options: &MethodOptions,
) -> Result<Vec<NodeCounts>, MethodError> {
    let v = matching.graph_nodes();
    // Node texts are V rows, or none when partial labels load no image row (check_labels).
    let texts = labels.node_text_embeddings.nrows();
    if (texts != v && texts != 0) || by_node.offsets.len() != v + 1 {
        return Err(shape_err(format!("model {m}: graph nodes of its labels"), v, texts));
    }
    let position = &matching.position;
    let mut counts = vec![NodeCounts::default(); matching.selected_nodes.len()];
    // P is counted as images are visited; TP/FP once the prediction is known
    // (`predicted` and `truth` are positions in V_sel, truth usize::MAX if not selected).
    fn predicted_as(counts: &mut [NodeCounts], truth: usize, predicted: usize) {
        if truth == predicted {
            counts[predicted].tp += 1;
        } else {
            counts[predicted].fp += 1;
        }
    }
    // (image, truth) whose argmax must be computed from the embeddings.
    let mut fallback: Vec<(usize, usize)> = Vec::new();
    match (&labels.top_nodes, options.selected_images_only) {
        (Some(top), true) => {
            // The hot loop: each selected node's images, list heads read in order.
            for (j, &node) in matching.selected_nodes.iter().enumerate() {
                let range = by_node.range(node);
                counts[j].p += range.len() as u64;
                for slot in range {
                    let image = by_node.image(slot);
                    match top.first_selected(image, position) {
                        Some(p) => predicted_as(&mut counts, j, p),
                        None => fallback.push((image, j)),
                    }
                }
            }
        }
        (None, true) => {
            for (j, &node) in matching.selected_nodes.iter().enumerate() {
                let range = by_node.range(node);
                counts[j].p += range.len() as u64;
                fallback.extend(range.map(|slot| (by_node.image(slot), j)));
            }
        }
        (top, false) => {
            for (image, &g) in labels.image_nodes.iter().enumerate() {
                let truth = position[g];
                if truth != usize::MAX {
                    counts[truth].p += 1;
                }
                match top.as_ref().and_then(|top| top.first_selected(image, position)) {
                    Some(p) => predicted_as(&mut counts, truth, p),
                    None => fallback.push((image, truth)),
                }
            }
        }
    }
    if !fallback.is_empty() {
        // Fallback order does not change counts; sort for a cache-friendly walk.
        fallback.sort_unstable();
        let texts = labels.node_text_embeddings.select(Axis(0), &matching.selected_nodes);
        for block in fallback.chunks(IMAGE_BLOCK) {
            let rows: Vec<usize> = match &labels.image_rows {
                None => block.iter().map(|&(i, _)| i).collect(),
                Some(loaded) => block
                    .iter()
                    .map(|&(i, _)| match loaded[i] {
                        u32::MAX => Err(MethodError::Input(format!(
                            "model {m}: image {i}'s S_m row must be computed but its embedding was not loaded; \
                             load the labels for every node set the selection uses"
                        ))),
                        r => Ok(r as usize),
                    })
                    .collect::<Result<_, _>>()?,
            };
            let emb = labels.image_embeddings.select(Axis(0), &rows);
            // The factor 100 of S_m does not change the argmax.
            let sims = emb.dot(&texts.t());
            for (row, &(_, truth)) in sims.rows().into_iter().zip(block) {
                // Ties go to the lowest node index, as the lists order them.
                let row = row.as_slice().expect("a fresh product is row-major");
                predicted_as(&mut counts, truth, first_max(row));
            }
        }
    }
    Ok(counts)
}

/// Steps d–h from the matching and every model's node counts (hub order).
pub fn score(matching: Matching, node_counts: Vec<Vec<NodeCounts>>, options: &MethodOptions) -> Selection {
    let Matching { matched, selected_nodes, position, z } = matching;
    let c = matched.len();
    let mm = node_counts.len();
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
                // Pool the counts of the class's matched nodes (each once, or
                // weighted by A[y, v] as the released code) and score the pool.
                let (mut tp, mut fp, mut p) = (0.0, 0.0, 0.0);
                for n in nodes {
                    let cnt = node_counts[m][position[n.node]];
                    let w = match options.micro_weights {
                        MicroWeights::Uniform => 1.0,
                        MicroWeights::Similarity => n.similarity,
                    };
                    tp += w * cnt.tp as f64;
                    fp += w * cnt.fp as f64;
                    p += w * cnt.p as f64;
                }
                score_of(options.node_score, tp, fp, p)
            } else {
                nodes.iter().map(|n| node_scores[[m, position[n.node]]] * z[[position[n.node], y]]).sum()
            };
        }
    }

    let Mixed { mixed_scores, top_k, model_scores, ranking } = mix(&class_scores, options);
    Selection { matched, selected_nodes, z, node_counts, node_scores, class_scores, mixed_scores, top_k, model_scores, ranking }
}

/// Steps f–h of one dataset: what depends on α and k given the class scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Mixed {
    /// r_{m,y}: M × C.
    pub mixed_scores: Array2<f64>,
    /// For every k of the options: per class, the k models with the largest r (best first).
    pub top_k: BTreeMap<usize, Vec<Vec<usize>>>,
    /// mean_y r_{m,y} per model.
    pub model_scores: Vec<f64>,
    /// Models by `model_scores`, best first.
    pub ranking: Vec<usize>,
}

/// Steps f–h from p_{m,y} (M × C) with the options' α and k: the α and k
/// sweeps call this with other values and get exactly the main run's numbers
/// at the main run's values.
pub fn mix(class_scores: &Array2<f64>, options: &MethodOptions) -> Mixed {
    let (mm, c) = class_scores.dim();
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
    let top_k = pick_top_k(&mixed_scores, &options.k);
    // h: predicted ranking.
    let model_scores: Vec<f64> = mixed_scores.rows().into_iter().map(|r| r.sum() / c as f64).collect();
    let ranking = order_desc(&model_scores);
    Mixed { mixed_scores, top_k, model_scores, ranking }
}

/// Step g: per class, the k models with the largest r (ties by hub order), for every k.
pub fn pick_top_k(mixed_scores: &Array2<f64>, ks: &[usize]) -> BTreeMap<usize, Vec<Vec<usize>>> {
    let (mm, c) = mixed_scores.dim();
    let orders: Vec<Vec<usize>> = (0..c).map(|y| order_desc(&mixed_scores.column(y).to_vec())).collect();
    ks.iter().map(|&k| (k, orders.iter().map(|o| o.iter().copied().take(k.min(mm)).collect()).collect())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_n_is_the_head_of_order_desc() {
        // Ties, NaN, -0.0 vs 0.0 and every n from 0 to beyond the length.
        let rows: [&[f64]; 4] = [
            &[0.3, 0.9, 0.3, f64::NAN, 0.9, -0.0, 0.0, 0.1],
            &[1.0; 6],
            &[f64::NAN, f64::NAN, 0.5],
            &[0.5, -1.0, 2.0, 2.0, 0.7, 0.7, 0.7, -3.0, 9.0, 0.0],
        ];
        for row in rows {
            let full = order_desc(row);
            for n in 0..=row.len() + 1 {
                assert_eq!(best_n(row, n), full[..n.min(row.len())], "{row:?}, n = {n}");
            }
        }
    }

    #[test]
    fn images_by_node_groups_every_image_once() {
        let labels = ModelLabels {
            image_embeddings: Array2::zeros((5, 1)),
            image_nodes: vec![2, 0, 2, 1, 2],
            image_rows: None,
            node_text_embeddings: Array2::zeros((4, 1)),
            top_nodes: None,
        };
        let g = ImagesByNode::new(&labels, 4);
        assert_eq!(g.of(0), [1]);
        assert_eq!(g.of(1), [3]);
        assert_eq!(g.of(2), [0, 2, 4]);
        assert!(g.of(3).is_empty());
        // Sorted labels need no index: slots are the images themselves.
        let sorted = ModelLabels { image_nodes: vec![0, 1, 2, 2, 2], ..labels };
        let g = ImagesByNode::new(&sorted, 4);
        assert!(g.images.is_none());
        assert_eq!(g.of(2), [2, 3, 4]);
        assert!(g.of(3).is_empty());
    }
}
