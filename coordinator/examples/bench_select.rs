//! CPU cost of MLL selection and of the report for a 49-model × 17-dataset
//! benchmark on synthetic data of realistic shape.
//!
//!     cargo run --release -p mll-coordinator --example bench_select -- [images_per_model] [max_samples]
//!
//! Scale (defaults): V = 9,000 graph nodes with 384-d caption embeddings; the 17
//! datasets' real class counts (2..211) and test-set sizes capped at
//! `max_samples` (default 4,000; pass 0 for the real ~200k); 49 hub models whose
//! labels are 4 distinct synthetic label sets (D_m = 512, 640, 768, 1024) with
//! `images_per_model` graph images each (default 4,000), referenced cyclically
//! so memory stays small while every model is computed separately. Evaluate
//! probabilities: 4 distinct matrices per dataset, cloned per model (what
//! aggregation would load). Single-threaded; times are process CPU time.

use mll_common::output::ClassCounts;
use mll_common::spec::MethodOptions;
use mll_coordinator::method::{select, Accuracy, ModelLabels, Predictions};
use mll_coordinator::report::{
    build_dataset_report, report_json, report_markdown, summarise, DatasetInput, GraphInput,
    ModelInfo, Report,
};
use ndarray::Array2;
use std::time::Instant;

/// (name, classes, test samples)
const DATASETS: [(&str, usize, usize); 17] = [
    ("CIFAR100", 100, 10_000),
    ("Country211", 211, 21_100),
    ("DTD", 47, 1_880),
    ("FER2013", 7, 7_178),
    ("Flowers102", 102, 6_149),
    ("Food101", 101, 25_250),
    ("GTSRB", 43, 12_630),
    ("MNIST", 10, 10_000),
    ("OxfordIIITPet", 37, 3_669),
    ("PCAM", 2, 32_768),
    ("RenderedSST2", 2, 1_821),
    ("STL10", 10, 8_000),
    ("StanfordCars", 196, 8_041),
    ("UCF101", 101, 3_783),
    ("clevr_closest_object_distance", 6, 15_000),
    ("dmlab", 6, 22_735),
    ("resisc45", 45, 31_500),
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        // Sum of uniforms: close enough to Gaussian for synthetic embeddings.
        (0..4).map(|_| self.unit()).sum::<f32>() - 2.0
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
}

fn normalise(m: &mut Array2<f32>) {
    for mut r in m.rows_mut() {
        let n = r.dot(&r).sqrt().max(1e-12);
        r.mapv_inplace(|x| x / n);
    }
}

fn random_unit(rng: &mut Rng, n: usize, d: usize) -> Array2<f32> {
    let mut m = Array2::from_shape_fn((n, d), |_| rng.normal());
    normalise(&mut m);
    m
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 Hz on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let t = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (t(11) + t(12)) / 100.0
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric arguments"))
        .collect();
    let images = args.first().copied().unwrap_or(4000);
    let max_samples = args.get(1).copied().unwrap_or(4000);
    let (v, de, hub) = (9000, 384, 49);
    let mut rng = Rng(0);
    let node_emb = random_unit(&mut rng, v, de);
    let distinct: Vec<ModelLabels> = [512, 640, 768, 1024]
        .iter()
        .map(|&d| {
            let texts = random_unit(&mut rng, v, d);
            let nodes: Vec<usize> = (0..images).map(|_| rng.below(v)).collect();
            let mut emb = Array2::from_shape_fn((images, d), |(i, j)| {
                texts[[nodes[i], j]] + 0.08 * rng.normal()
            });
            normalise(&mut emb);
            ModelLabels {
                image_embeddings: emb,
                image_nodes: nodes,
                node_text_embeddings: texts,
            }
        })
        .collect();
    let labels: Vec<&ModelLabels> = (0..hub).map(|m| &distinct[m % distinct.len()]).collect();
    // Class captions near random nodes, so matching behaves like real data.
    let class_emb: Vec<Array2<f32>> = DATASETS
        .iter()
        .map(|&(_, c, _)| {
            let mut e = Array2::from_shape_fn((c, de), |_| 0.3 * rng.normal());
            for y in 0..c {
                let n = rng.below(v);
                for j in 0..de {
                    e[[y, j]] += node_emb[[n, j]];
                }
            }
            normalise(&mut e);
            e
        })
        .collect();
    let options = MethodOptions::default();

    // 1. Selection alone, 49 models × 17 datasets.
    let (c0, w0) = (cpu_seconds(), Instant::now());
    let mut selected_images = 0usize;
    for e in &class_emb {
        let sel = select(e.view(), node_emb.view(), &labels, &options).expect("selection");
        let vsel: std::collections::HashSet<usize> = sel.selected_nodes.iter().copied().collect();
        selected_images += labels
            .iter()
            .map(|l| l.image_nodes.iter().filter(|n| vsel.contains(n)).count())
            .sum::<usize>();
        std::hint::black_box(&sel);
    }
    let (sel_cpu, sel_wall) = (cpu_seconds() - c0, w0.elapsed().as_secs_f64());

    // 2. The report: per dataset, selection + reuse (MLL k=1,3, INB k=3, random k=3) + metrics, then summary and files.
    let models: Vec<ModelInfo> = (0..hub)
        .map(|m| ModelInfo {
            key: format!("arch{m}/tag"),
            params_m: Some(100.0 + m as f64),
            gflops: Some(10.0 + (m * 7 % 13) as f64),
            imagenet_top1: Some(0.5 + (m * 31 % 49) as f64 / 200.0),
        })
        .collect();
    // GraphInput owns its labels; clone the 4 distinct sets into 49 slots only once.
    let graph = GraphInput {
        node_ids: (0..v).map(|i| format!("n{i:08}")).collect(),
        node_embeddings: node_emb.clone(),
        models: (0..hub)
            .map(|m| Some(distinct[m % distinct.len()].clone()))
            .collect(),
    };
    let mut report_cpu = 0.0;
    let mut report_wall = 0.0;
    let mut samples_total = 0usize;
    let mut reports = Vec::new();
    for ((name, c, n_real), e) in DATASETS.iter().zip(&class_emb) {
        let n = if max_samples == 0 {
            *n_real
        } else {
            (*n_real).min(max_samples)
        };
        samples_total += n;
        let labels_y: Vec<usize> = (0..n).map(|_| rng.below(*c)).collect();
        let distinct_probs: Vec<Array2<f32>> = (0..4)
            .map(|q| {
                let mut p = Array2::from_shape_fn((n, *c), |(i, j)| {
                    let hit = if j == labels_y[i] {
                        2.0 + q as f32 * 0.3
                    } else {
                        0.0
                    };
                    (hit + 1.5 * rng.normal()).exp()
                });
                for mut r in p.rows_mut() {
                    let s = r.sum();
                    r.mapv_inplace(|x| x / s);
                }
                p
            })
            .collect();
        let preds: Vec<Predictions> = (0..hub)
            .map(|m| Predictions {
                probs: distinct_probs[m % 4].clone(),
                labels: labels_y.clone(),
            })
            .collect();
        let accuracy = preds
            .iter()
            .map(|p| {
                let mut k = ClassCounts::zeros(*c);
                for (r, &l) in p.probs.rows().into_iter().zip(&p.labels) {
                    let best = (0..*c).fold(0, |b, j| if r[j] > r[b] { j } else { b });
                    k.n[l] += 1;
                    k.top1[l] += (best == l) as u64;
                    k.top5[l] += ((0..*c).filter(|&j| r[j] > r[l]).count() < 5) as u64;
                }
                Some(Accuracy::from_counts(&k))
            })
            .collect();
        let d = DatasetInput {
            name: name.to_string(),
            class_names: (0..*c).map(|y| format!("class {y}")).collect(),
            accuracy,
            predictions: preds.into_iter().map(Some).collect(),
            class_embeddings: Some(e.clone()),
            ..Default::default()
        };
        let (c0, w0) = (cpu_seconds(), Instant::now());
        reports.push(
            build_dataset_report(&models, &options, Some(&graph), &d).expect("dataset report"),
        );
        report_cpu += cpu_seconds() - c0;
        report_wall += w0.elapsed().as_secs_f64();
    }
    let (c0, w0) = (cpu_seconds(), Instant::now());
    let summary = summarise(&reports);
    let report = Report {
        format_version: 1,
        run: "bench".into(),
        spec_digest: "bench".into(),
        source: "synthetic".into(),
        method: options.clone(),
        models,
        datasets: reports,
        summary,
        notes: vec![],
        diagnostic: None,
    };
    let json = report_json(&report);
    let md = report_markdown(&report);
    let (out_cpu, out_wall) = (cpu_seconds() - c0, w0.elapsed().as_secs_f64());

    println!("scale: {hub} models x {} datasets, V = {v} nodes (D_e = {de}), {images} graph images per model (D_m 512..1024),", DATASETS.len());
    println!("       {selected_images} (model, image) pairs with a selected true node in all, {samples_total} test samples (cap {max_samples}), k = {:?}", options.k);
    println!("selection only (49 x 17):              cpu {sel_cpu:.3} s, wall {sel_wall:.3} s");
    println!("dataset reports (selection + reuse + metrics + baselines): cpu {report_cpu:.3} s, wall {report_wall:.3} s");
    println!("summary + report.json + report.md:     cpu {out_cpu:.3} s, wall {out_wall:.3} s ({} + {} bytes)", json.len(), md.len());
}
