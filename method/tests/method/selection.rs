//! Hand-computed cases for every formula of selection (docs/method.md,
//! "Selection").
//!
//! World: 4 graph nodes, 2 classes, caption embeddings in 2-D:
//!   E_G: n0 = (1,0), n1 = (0.8,0.6), n2 = (0,1), n3 = (-1,0)
//!   E_T: c0 = (1,0), c1 = (0,1)
//!   A = [[1, 0.8, 0, -1], [0, 0.6, 1, 0]]
//! With 2 nodes per class: N_0 = {n0 (1.0), n1 (0.8)}, N_1 = {n2 (1.0), n1 (0.6)}, V_sel = {0,1,2},
//! Z = [[1,0],[0.8,0.6],[0,1]] (rows n0,n1,n2).
//!
//! Model texts are one-hot (t0,t1,t2 in 3-D; t3 = (0.6,0.8,0)), so an image's
//! predicted node is the one-hot axis it sits on.
//! Model 0 images (truth → emb): 0→t0, 0→t1, 1→t1, 2→t2, 3→t3
//!   selected images only: n0 TP1 FP0 P2 (F1 2/3), n1 TP1 FP1 P1 (2/3), n2 TP1 FP0 P1 (1)
//!   all images (3→t3 is predicted n1): n1 TP1 FP2 P1 (F1 1/2)
//! Model 1 images: 0→t2, 2→t2, 1→(s,s,0) (a tie between n0 and n1: lower index n0)
//!   n0 TP0 FP1 P1 (F1 0), n1 TP0 FP0 P1 (F1 0, precision 0/0 → 0), n2 TP1 FP1 P1 (F1 2/3)

use mll_method::options::{MethodOptions, MicroWeights, NodeScore};
use mll_method::{select, ModelLabels, NodeCounts, SplitMix64, TopNodes};
use ndarray::{arr2, Array2};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

fn assert_row(m: &Array2<f64>, row: usize, want: &[f64]) {
    let got: Vec<f64> = m.row(row).to_vec();
    assert!(got.len() == want.len() && got.iter().zip(want).all(|(a, b)| close(*a, *b)), "row {row}: got {got:?}, want {want:?}");
}

fn world() -> (Array2<f32>, Array2<f32>, Vec<ModelLabels>) {
    let e_g = arr2(&[[1.0f32, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]]);
    let e_t = arr2(&[[1.0f32, 0.0], [0.0, 1.0]]);
    let texts = arr2(&[[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.6, 0.8, 0.0]]);
    let s = std::f32::consts::FRAC_1_SQRT_2;
    let m0 = ModelLabels {
        image_embeddings: arr2(&[[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.6, 0.8, 0.0]]),
        image_nodes: vec![0, 0, 1, 2, 3],
        image_rows: None,
        node_text_embeddings: texts.clone(),
        top_nodes: None,
    };
    let m1 = ModelLabels {
        image_embeddings: arr2(&[[0.0f32, 0.0, 1.0], [0.0, 0.0, 1.0], [s, s, 0.0]]),
        image_nodes: vec![0, 2, 1],
        image_rows: None,
        node_text_embeddings: texts,
        top_nodes: None,
    };
    (e_t, e_g, vec![m0, m1])
}

fn opts() -> MethodOptions {
    MethodOptions { nodes_per_class: 2, k: vec![1, 2], ..MethodOptions::default() }
}

#[test]
fn matching_z_counts_and_f1() {
    let (e_t, e_g, models) = world();
    let refs: Vec<&ModelLabels> = models.iter().collect();
    let sel = select(e_t.view(), e_g.view(), &refs, &opts()).unwrap();
    let matched: Vec<Vec<usize>> = sel.matched.iter().map(|n| n.iter().map(|m| m.node).collect()).collect();
    assert_eq!(matched, vec![vec![0, 1], vec![2, 1]]);
    assert!(close(sel.matched[0][1].similarity, 0.8) && close(sel.matched[1][1].similarity, 0.6));
    assert_eq!(sel.selected_nodes, vec![0, 1, 2]);
    assert_row(&sel.z, 0, &[1.0, 0.0]);
    assert_row(&sel.z, 1, &[0.8, 0.6]);
    assert_row(&sel.z, 2, &[0.0, 1.0]);
    let c = |tp, fp, p| NodeCounts { tp, fp, p };
    assert_eq!(sel.node_counts[0], vec![c(1, 0, 2), c(1, 1, 1), c(1, 0, 1)]);
    assert_eq!(sel.node_counts[1], vec![c(0, 1, 1), c(0, 0, 1), c(1, 1, 1)]);
    assert_row(&sel.node_scores, 0, &[2.0 / 3.0, 2.0 / 3.0, 1.0]);
    assert_row(&sel.node_scores, 1, &[0.0, 0.0, 2.0 / 3.0]);
    // p = Σ_v p_v z[v,y]
    assert_row(&sel.class_scores, 0, &[1.2, 1.4]);
    assert_row(&sel.class_scores, 1, &[0.0, 2.0 / 3.0]);
    // r = 0.7 p + 0.3 mean(p)
    assert_row(&sel.mixed_scores, 0, &[1.23, 1.37]);
    assert_row(&sel.mixed_scores, 1, &[0.1, 0.7 * 2.0 / 3.0 + 0.1]);
    assert_eq!(sel.top_k[&1], vec![vec![0], vec![0]]);
    assert_eq!(sel.top_k[&2], vec![vec![0, 1], vec![0, 1]]);
    assert!(close(sel.model_scores[0], 1.3) && close(sel.model_scores[1], (0.1 + 0.7 * 2.0 / 3.0 + 0.1) / 2.0));
    assert_eq!(sel.ranking, vec![0, 1]);
}

#[test]
fn zero_denominators_give_zero() {
    let c = NodeCounts { tp: 0, fp: 0, p: 0 };
    for kind in [NodeScore::F1, NodeScore::Precision, NodeScore::Recall] {
        assert_eq!(c.score(kind), 0.0);
    }
    let c = NodeCounts { tp: 0, fp: 0, p: 3 };
    assert_eq!(c.score(NodeScore::Precision), 0.0);
    assert_eq!(c.score(NodeScore::F1), 0.0);
    let c = NodeCounts { tp: 2, fp: 1, p: 4 };
    assert!(close(c.score(NodeScore::F1), 4.0 / 7.0));
    assert!(close(c.score(NodeScore::Precision), 2.0 / 3.0));
    assert!(close(c.score(NodeScore::Recall), 0.5));
}

#[test]
fn precision_and_recall_node_scores() {
    let (e_t, e_g, models) = world();
    let refs: Vec<&ModelLabels> = models.iter().collect();
    let p = select(e_t.view(), e_g.view(), &refs, &MethodOptions { node_score: NodeScore::Precision, ..opts() }).unwrap();
    assert_row(&p.node_scores, 0, &[1.0, 0.5, 1.0]);
    assert_row(&p.node_scores, 1, &[0.0, 0.0, 0.5]);
    assert_row(&p.class_scores, 1, &[0.0, 0.5]);
    let r = select(e_t.view(), e_g.view(), &refs, &MethodOptions { node_score: NodeScore::Recall, ..opts() }).unwrap();
    assert_row(&r.node_scores, 0, &[0.5, 1.0, 1.0]);
    assert_row(&r.node_scores, 1, &[0.0, 0.0, 1.0]);
    assert_row(&r.class_scores, 0, &[0.5 + 0.8, 0.6 + 1.0]);
}

#[test]
fn column_normalised_z() {
    let (e_t, e_g, models) = world();
    let refs: Vec<&ModelLabels> = models.iter().collect();
    let sel = select(e_t.view(), e_g.view(), &refs, &MethodOptions { normalize_z: true, ..opts() }).unwrap();
    assert_row(&sel.z, 1, &[0.8 / 1.8, 0.6 / 1.6]);
    // model 0: p0 = (1/1.8 + 0.8/1.8)·2/3 = 2/3; p1 = 0.6/1.6·2/3 + 1/1.6·1 = 0.875
    assert_row(&sel.class_scores, 0, &[2.0 / 3.0, 0.875]);
}

#[test]
fn alpha_mix_excluding_self() {
    let (e_t, e_g, models) = world();
    let refs: Vec<&ModelLabels> = models.iter().collect();
    let sel = select(e_t.view(), e_g.view(), &refs, &MethodOptions { alpha_mean_includes_self: false, ..opts() }).unwrap();
    // r_y = 0.7 p_y + 0.3 p_{other}
    assert_row(&sel.mixed_scores, 0, &[0.7 * 1.2 + 0.3 * 1.4, 0.7 * 1.4 + 0.3 * 1.2]);
    assert_row(&sel.mixed_scores, 1, &[0.3 * 2.0 / 3.0, 0.7 * 2.0 / 3.0]);
    // α = 1 ignores the mean; α = 0 gives every class the same score.
    let a1 = select(e_t.view(), e_g.view(), &refs, &MethodOptions { alpha: 1.0, ..opts() }).unwrap();
    assert_eq!(a1.mixed_scores, a1.class_scores);
    let a0 = select(e_t.view(), e_g.view(), &refs, &MethodOptions { alpha: 0.0, ..opts() }).unwrap();
    assert_row(&a0.mixed_scores, 0, &[1.3, 1.3]);
}

#[test]
fn micro_average_pools_counts() {
    let (e_t, e_g, models) = world();
    let refs: Vec<&ModelLabels> = models.iter().collect();
    let sel = select(e_t.view(), e_g.view(), &refs, &MethodOptions { micro_average: true, ..opts() }).unwrap();
    // model 0, class 0 = {n0, n1}: TP 2 FP 1 P 3 → 4/6; class 1 = {n2, n1}: TP 2 FP 1 P 2 → 4/5
    assert_row(&sel.class_scores, 0, &[2.0 / 3.0, 0.8]);
    // model 1, class 0: TP 0 FP 1 P 2 → 0; class 1: TP 1 FP 1 P 2 → 2/4
    assert_row(&sel.class_scores, 1, &[0.0, 0.5]);
}

/// The released selection.py pools each class's node counts weighted by the
/// node's similarity to the class (then F1 on the pool).
#[test]
fn micro_average_weighted_by_similarity() {
    let (e_t, e_g, models) = world();
    let refs: Vec<&ModelLabels> = models.iter().collect();
    let sel =
        select(e_t.view(), e_g.view(), &refs, &MethodOptions { micro_average: true, micro_weights: MicroWeights::Similarity, ..opts() })
            .unwrap();
    // model 0, class 0 = {n0 ×1.0: TP1 FP0 P2, n1 ×0.8: TP1 FP1 P1}: TP 1.8 FP 0.8 P 2.8 → 3.6/5.4;
    // class 1 = {n2 ×1.0: TP1 FP0 P1, n1 ×0.6: TP1 FP1 P1}: TP 1.6 FP 0.6 P 1.6 → 3.2/3.8
    assert_row(&sel.class_scores, 0, &[3.6 / 5.4, 3.2 / 3.8]);
    // model 1, class 1 = {n2 ×1.0: TP1 FP1 P1, n1 ×0.6: TP0 FP0 P1}: TP 1 FP 1 P 1.6 → 2/3.6
    assert_row(&sel.class_scores, 1, &[0.0, 2.0 / 3.6]);
}

#[test]
fn all_images_option_counts_unselected_truths_as_false_positives() {
    let (e_t, e_g, models) = world();
    let refs: Vec<&ModelLabels> = models.iter().collect();
    let sel = select(e_t.view(), e_g.view(), &refs, &MethodOptions { selected_images_only: false, ..opts() }).unwrap();
    assert_eq!(sel.node_counts[0][1], NodeCounts { tp: 1, fp: 2, p: 1 });
    assert_row(&sel.node_scores, 0, &[2.0 / 3.0, 0.5, 1.0]);
    assert_row(&sel.class_scores, 0, &[2.0 / 3.0 + 0.4, 0.3 + 1.0]);
}

#[test]
fn ties_go_to_hub_order() {
    let (e_t, e_g, mut models) = world();
    // Model 2 is a copy of model 0, model 0 becomes the weak one: ties between 1 and 2 keep 1 first.
    models.push(models[0].clone());
    models.swap(0, 1); // [weak, strong, strong copy]
    let refs: Vec<&ModelLabels> = models.iter().collect();
    let sel = select(e_t.view(), e_g.view(), &refs, &opts()).unwrap();
    assert_eq!(sel.top_k[&1], vec![vec![1], vec![1]]);
    assert_eq!(sel.top_k[&2], vec![vec![1, 2], vec![1, 2]]);
    assert_eq!(sel.ranking, vec![1, 2, 0]);
    // k above the hub size takes every model.
    let big = select(e_t.view(), e_g.view(), &refs, &MethodOptions { k: vec![5], ..opts() }).unwrap();
    assert_eq!(big.top_k[&5][0], vec![1, 2, 0]);
}

#[test]
fn node_matching_ties_take_the_lower_node() {
    // Nodes 1 and 2 are identical; with one node per class the lower index wins.
    let e_g = arr2(&[[0.0f32, 1.0], [1.0, 0.0], [1.0, 0.0]]);
    let e_t = arr2(&[[1.0f32, 0.0]]);
    let m = ModelLabels {
        image_embeddings: arr2(&[[1.0f32, 0.0]]),
        image_nodes: vec![1],
        image_rows: None,
        node_text_embeddings: arr2(&[[0.0f32, 1.0], [1.0, 0.0], [1.0, 0.0]]),
        top_nodes: None,
    };
    let sel = select(e_t.view(), e_g.view(), &[&m], &MethodOptions { nodes_per_class: 1, ..opts() }).unwrap();
    assert_eq!(sel.selected_nodes, vec![1]);
    assert_eq!(sel.node_counts[0], vec![NodeCounts { tp: 1, fp: 0, p: 1 }]);
}

#[test]
fn mismatched_inputs_are_errors_not_panics() {
    let (e_t, e_g, mut models) = world();
    models[1].image_nodes.pop();
    let refs: Vec<&ModelLabels> = models.iter().collect();
    let err = select(e_t.view(), e_g.view(), &refs, &opts()).unwrap_err().to_string();
    assert!(err.contains("model 1") && err.contains("true nodes"), "{err}");
    let (e_t, _, models) = world();
    let refs: Vec<&ModelLabels> = models.iter().collect();
    let short = arr2(&[[1.0f32, 0.0], [0.0, 1.0]]);
    let err = select(e_t.view(), short.view(), &refs, &opts()).unwrap_err().to_string();
    assert!(err.contains("graph nodes"), "{err}");
}

#[test]
fn blocks_do_not_change_counts() {
    // More images than one block (2048): the counts must equal a direct count.
    let v = 6;
    let texts = Array2::<f32>::eye(v);
    let n = 5000;
    let mut emb = Array2::<f32>::zeros((n, v));
    let mut nodes = Vec::new();
    for i in 0..n {
        let truth = i % v;
        let pred = if i % 7 == 0 { (truth + 1) % v } else { truth };
        emb[[i, pred]] = 1.0;
        nodes.push(truth);
    }
    let m = ModelLabels {
        image_embeddings: emb,
        image_nodes: nodes.clone(),
        image_rows: None,
        node_text_embeddings: texts.clone(),
        top_nodes: None,
    };
    let sel = select(texts.view(), texts.view(), &[&m], &MethodOptions { nodes_per_class: 1, k: vec![1], ..opts() }).unwrap();
    for node in 0..v {
        let tp = (0..n).filter(|&i| i % v == node && i % 7 != 0).count() as u64;
        let p = (0..n).filter(|&i| i % v == node).count() as u64;
        let fp = (0..n).filter(|&i| i % 7 == 0 && (i % v + 1) % v == node).count() as u64;
        assert_eq!(sel.node_counts[0][node], NodeCounts { tp, fp, p }, "node {node}");
    }
}

/// Each image's K best nodes, best first, equal scores by lower node index:
/// what label jobs store, computed here from the same embeddings.
fn with_lists(labels: &ModelLabels, k: usize) -> ModelLabels {
    let sims = labels.image_embeddings.dot(&labels.node_text_embeddings.t());
    let v = sims.ncols();
    let k = k.min(v);
    let mut top = Array2::<u32>::zeros((sims.nrows(), k));
    for (i, row) in sims.rows().into_iter().enumerate() {
        let mut order: Vec<usize> = (0..v).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        for j in 0..k {
            top[[i, j]] = order[j] as u32;
        }
    }
    ModelLabels { top_nodes: Some(TopNodes::new(top, v).unwrap()), ..labels.clone() }
}

/// A seeded stream of floats in [-1, 1), for worlds too big to write by hand.
struct Stream(SplitMix64);
impl Stream {
    fn next(&mut self) -> f32 {
        (self.0.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn unit_rows(&mut self, n: usize, d: usize) -> Array2<f32> {
        let mut m = Array2::from_shape_fn((n, d), |_| self.next());
        for mut r in m.rows_mut() {
            let norm = r.dot(&r).sqrt();
            r.mapv_inplace(|x| x / norm);
        }
        m
    }
}

#[test]
fn best_node_lists_give_the_same_selection_on_the_hand_world() {
    // Includes model 1's exact tie between n0 and n1 (lower index wins both ways).
    let (e_t, e_g, models) = world();
    for k in [1, 2, 4] {
        let listed: Vec<ModelLabels> = models.iter().map(|m| with_lists(m, k)).collect();
        for selected_images_only in [true, false] {
            let o = MethodOptions { selected_images_only, ..opts() };
            let plain: Vec<&ModelLabels> = models.iter().collect();
            let fast: Vec<&ModelLabels> = listed.iter().collect();
            assert_eq!(
                select(e_t.view(), e_g.view(), &fast, &o).unwrap(),
                select(e_t.view(), e_g.view(), &plain, &o).unwrap(),
                "K = {k}, selected images only = {selected_images_only}"
            );
        }
    }
}

#[test]
fn best_node_lists_give_the_same_selection_on_random_worlds() {
    // K = 1 sends most images down the fallback path, K = V never; both must
    // count exactly what recomputing S_m rows counts.
    let mut rng = Stream(SplitMix64::new(42));
    let (v, d, de, n, c) = (40, 8, 6, 600, 5);
    let e_g = rng.unit_rows(v, de);
    let e_t = rng.unit_rows(c, de);
    let models: Vec<ModelLabels> = (0..3)
        .map(|_| {
            let texts = rng.unit_rows(v, d);
            let nodes: Vec<usize> = (0..n).map(|i| (i * 7 + i / 3) % v).collect();
            let noise = rng.unit_rows(n, d);
            let mut emb = Array2::from_shape_fn((n, d), |(i, j)| texts[[nodes[i], j]] + 0.9 * noise[[i, j]]);
            for mut r in emb.rows_mut() {
                let norm = r.dot(&r).sqrt();
                r.mapv_inplace(|x| x / norm);
            }
            ModelLabels { image_embeddings: emb, image_nodes: nodes, image_rows: None, node_text_embeddings: texts, top_nodes: None }
        })
        .collect();
    let plain: Vec<&ModelLabels> = models.iter().collect();
    let mut fallbacks_seen = false;
    for k in [1, 3, v] {
        let listed: Vec<ModelLabels> = models.iter().map(|m| with_lists(m, k)).collect();
        let fast: Vec<&ModelLabels> = listed.iter().collect();
        for (nodes_per_class, selected_images_only) in [(2, true), (5, true), (5, false)] {
            let o = MethodOptions { nodes_per_class, selected_images_only, k: vec![1, 3], ..opts() };
            let want = select(e_t.view(), e_g.view(), &plain, &o).unwrap();
            assert_eq!(
                select(e_t.view(), e_g.view(), &fast, &o).unwrap(),
                want,
                "K = {k}, {nodes_per_class} nodes per class, selected images only = {selected_images_only}"
            );
            // With K = 1 some images' single best node is outside V_sel.
            let selected = &want.selected_nodes;
            fallbacks_seen |= k == 1 && listed[0].top_nodes.as_ref().unwrap().lists().iter().any(|t| !selected.contains(&(*t as usize)));
        }
    }
    assert!(fallbacks_seen, "the world must exercise the fallback path");
}

#[test]
fn a_best_node_list_outside_the_graph_is_an_error() {
    let (e_t, e_g, models) = world();
    let mut bad = with_lists(&models[0], 2);
    let mut lists = bad.top_nodes.as_ref().unwrap().lists().clone();
    lists[[0, 1]] = 9;
    let err = TopNodes::new(lists.clone(), 4).unwrap_err().to_string();
    assert!(err.contains("node 9") && err.contains("4 nodes"), "{err}");
    // Lists made for another graph size are refused by selection.
    lists[[0, 1]] = 1;
    bad.top_nodes = Some(TopNodes::new(lists, 10).unwrap());
    let err = select(e_t.view(), e_g.view(), &[&bad, &models[1]], &opts()).unwrap_err().to_string();
    assert!(err.contains("model 0") && err.contains("best-node lists"), "{err}");
}
