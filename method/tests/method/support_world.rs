//! A small seeded synthetic world with a graph, for report, experiment and
//! chart tests: `models` models of different skills, 12 graph nodes, three
//! datasets of 4 classes (the third missing one model's result when asked).

use mll_method::assess::{DatasetInput, GraphInput, ReportInput};
use mll_method::options::MethodOptions;
use mll_method::outcome::ModelInfo;
use mll_method::{Accuracy, ModelLabels, Predictions, SplitMix64};
use ndarray::Array2;

pub const NODES: usize = 12;
pub const CLASSES: usize = 4;
pub const SAMPLES: usize = 60;

fn unit(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Per-class counts as an evaluate job commits them.
pub struct ClassCounts {
    pub n: Vec<u64>,
    pub top1: Vec<u64>,
    pub top5: Vec<u64>,
}

impl ClassCounts {
    fn zeros(c: usize) -> Self {
        ClassCounts { n: vec![0; c], top1: vec![0; c], top5: vec![0; c] }
    }

    pub fn accuracy(&self) -> Accuracy {
        Accuracy::from_counts(&self.n, &self.top1, &self.top5)
    }
}

/// Counts as an evaluate job would produce them from these probabilities (first max wins).
pub fn counts(p: &Predictions) -> ClassCounts {
    let c = p.probs.ncols();
    let mut k = ClassCounts::zeros(c);
    for (row, &l) in p.probs.rows().into_iter().zip(&p.labels) {
        let mut best = 0;
        for j in 1..c {
            if row[j] > row[best] {
                best = j;
            }
        }
        let rank = (0..c).filter(|&j| row[j] > row[l]).count();
        k.n[l] += 1;
        k.top1[l] += (best == l) as u64;
        k.top5[l] += (rank < 5) as u64;
    }
    k
}

/// The world; `incomplete`: the third dataset lacks the last model's result.
pub fn world(models: usize, seed: u64, incomplete: bool) -> ReportInput {
    let mut rng = SplitMix64::new(seed);
    let eye = Array2::<f32>::eye(NODES);
    // Model m labels node g right with a skill that depends on both.
    let skill: Vec<Vec<f64>> = (0..models).map(|_| (0..NODES).map(|_| 0.2 + 0.8 * unit(&mut rng)).collect()).collect();
    let labels: Vec<Option<ModelLabels>> = (0..models)
        .map(|m| {
            let mut emb = Array2::<f32>::zeros((3 * NODES, NODES));
            let mut nodes = Vec::new();
            for i in 0..3 * NODES {
                let g = i / 3;
                let guess = if unit(&mut rng) < skill[m][g] { g } else { rng.below(NODES) };
                emb[[i, guess]] = 1.0;
                nodes.push(g);
            }
            Some(ModelLabels {
                image_embeddings: emb,
                image_nodes: nodes,
                image_rows: None,
                node_text_embeddings: eye.clone(),
                top_nodes: None,
            })
        })
        .collect();
    let mut datasets = Vec::new();
    for d in 0..3 {
        // Class y of dataset d is close to node 4d + y.
        let mut e_t = Array2::<f32>::zeros((CLASSES, NODES));
        for y in 0..CLASSES {
            e_t[[y, 4 * d + y]] = 0.9;
            e_t[[y, (4 * d + y + 1) % NODES]] = 0.4;
            let norm = (0.81f32 + 0.16).sqrt();
            e_t.row_mut(y).mapv_inplace(|x| x / norm);
        }
        let sample_labels: Vec<usize> = (0..SAMPLES).map(|_| rng.below(CLASSES)).collect();
        let preds: Vec<Option<Predictions>> = (0..models)
            .map(|m| {
                let mut p = Array2::<f32>::zeros((SAMPLES, CLASSES));
                for (x, &l) in sample_labels.iter().enumerate() {
                    let mut row: Vec<f64> = (0..CLASSES)
                        .map(|y| {
                            let bonus = if y == l { 3.0 * skill[m][4 * d + y] } else { 0.0 };
                            (bonus + 2.0 * unit(&mut rng)).exp()
                        })
                        .collect();
                    let s: f64 = row.iter().sum();
                    row.iter_mut().for_each(|v| *v /= s);
                    for y in 0..CLASSES {
                        p[[x, y]] = row[y] as f32;
                    }
                }
                Some(Predictions { probs: p, labels: sample_labels.clone(), entropy: None })
            })
            .collect();
        let mut accuracy: Vec<Option<Accuracy>> = preds.iter().map(|p| p.as_ref().map(|p| counts(p).accuracy())).collect();
        let mut predictions = preds;
        if incomplete && d == 2 {
            accuracy[models - 1] = None;
            predictions[models - 1] = None;
        }
        datasets.push(DatasetInput {
            name: format!("set{d}"),
            domain: "synthetic".into(),
            task: "classification".into(),
            class_names: (0..CLASSES).map(|y| format!("class {y}")).collect(),
            accuracy,
            predictions,
            class_embeddings: Some(e_t),
            evaluate_seconds: (0..models).map(|m| Some(10.0 * (m + 1) as f64 + d as f64)).collect(),
            modelgpt: None,
        });
    }
    ReportInput {
        run: "synthetic".into(),
        spec_digest: "digest".into(),
        source: "evaluate".into(),
        options: MethodOptions { nodes_per_class: 2, ..MethodOptions::default() },
        models: (0..models)
            .map(|m| ModelInfo {
                key: format!("arch{m}/tag"),
                params_m: Some(100.0 + 10.0 * m as f64),
                gflops: Some(5.0 + m as f64),
                imagenet_top1: Some(0.5 + 0.4 * unit(&mut rng)),
            })
            .collect(),
        datasets,
        graph: Some(GraphInput { node_ids: (0..NODES).map(|i| format!("n{i:08}")).collect(), node_embeddings: eye, models: labels }),
    }
}
