//! CPU cost of MLL selection, reuse and the report for the paper's 49-model ×
//! 17-dataset benchmark on synthetic data of the real shapes.
//!
//!     cargo run --release -p mll-coordinator --no-default-features --example bench_select -- \
//!         [images_per_model] [max_samples] [K] [related]
//!     ... --example bench_select -- task [models] [classes] [images_per_model]
//!
//! `task`: `coordinator select` for one new task (default 100 classes) against
//! hubs of 49 models and of `models` (default 1,000) models, V = 9,000 nodes,
//! labels in memory; then what `select` reads: the label artifacts written as
//! label jobs write them (under $BENCH_DIR, default /tmp; 4 GB), one model's
//! read whole, each indexed once (the hub index), and the 49-model selection
//! read through the indexes, checked equal to the one on whole labels.
//!
//! Scale (defaults): V = 9,000 graph nodes (about the paper's count,
//! docs/method.md, "The benchmark") with 384-d caption embeddings; 300,000 graph images per model (≤ 75 per node); the 17 datasets'
//! real class counts and test-set sizes (`max_samples` caps them; 0 = real,
//! ~222k samples); 49 hub models whose labels are 4 distinct synthetic label sets
//! (D_m = 512, 768, 1024, 1280) referenced cyclically, each model counted
//! separately, as aggregation does (one model's labels at a time, images sorted
//! by true node as its loader writes them).
//!
//! Nodes come in sibling groups of 10 (WordNet's hyponym sets): captions of a
//! group are close, so a class's 5 matched nodes mostly share a group, and each
//! image's stored best-node list (K = 32) holds its group first, then the
//! neighbouring groups, with the true node first for 60% of images and missing
//! from the list for 10% (`related` = 0 instead fills lists with random nodes
//! after the true node: a worst case for the fallback). Images whose list holds no selected node are counted
//! by the fallback (their S_m row over V_sel from the embeddings); the run
//! prints how many. Evaluate outputs carry the worker's per-sample entropies.
//! Single-threaded; times are process CPU time.

use mll_common::output::ClassCounts;
use mll_coordinator::spec::MethodOptions;
use mll_method::assess::{build_dataset_report, summarise, DatasetData, DatasetInput};
use mll_method::experiments::{combine, dataset_experiments, ExperimentOptions};
use mll_method::outcome::{ModelInfo, Report};
use mll_method::report::{report_json, report_markdown};
use mll_method::{mix, Accuracy, HubSelection, ModelLabels, Predictions, SplitMix64, TopNodes};
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

/// Synthetic data from the project's seeded stream.
struct Rng(SplitMix64);
impl Rng {
    fn unit(&mut self) -> f32 {
        (self.0.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        // Sum of uniforms: close enough to Gaussian for synthetic embeddings.
        (0..4).map(|_| self.unit()).sum::<f32>() - 2.0
    }
    fn centred(&mut self) -> f32 {
        self.unit() - 0.5
    }
    fn below(&mut self, n: usize) -> usize {
        self.0.below(n)
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
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let t = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (t(11) + t(12)) / 100.0
}

/// Sibling group size of the synthetic graph.
const GROUP: usize = 10;

fn main() {
    if std::env::args().nth(1).as_deref() == Some("task") {
        return new_task();
    }
    let args: Vec<usize> =
        std::env::args().skip(1).map(|a| a.parse().expect("numeric arguments: images_per_model max_samples K")).collect();
    let images = args.first().copied().unwrap_or(300_000);
    let max_samples = args.get(1).copied().unwrap_or(0);
    let k_list = args.get(2).copied().unwrap_or(32);
    let related = args.get(3).copied().unwrap_or(1) != 0;
    let (v, de, hub) = (9000, 384, 49);
    let mut rng = Rng(SplitMix64::new(0));
    let node_emb = node_embeddings(&mut rng, v, de);
    let t_gen = Instant::now();
    let distinct = synthetic_labels(&mut rng, v, images, k_list, related);
    // Class captions near a random node each, so matching behaves like real data.
    let class_emb: Vec<Array2<f32>> = DATASETS.iter().map(|&(_, c, _)| class_embeddings(&mut rng, &node_emb, c)).collect();
    let options = MethodOptions::default();
    eprintln!("synthetic world generated in {:.1} s", t_gen.elapsed().as_secs_f64());

    // 1. Selection, 49 models x 17 datasets, streamed one model at a time as aggregation does.
    let (c0, w0) = (cpu_seconds(), Instant::now());
    let e_t: Vec<Option<ndarray::ArrayView2<f32>>> = class_emb.iter().map(|e| Some(e.view())).collect();
    let mut hub_sel = HubSelection::new(&e_t, node_emb.view(), &options).expect("matching");
    let match_cpu = cpu_seconds() - c0;
    for m in 0..hub {
        hub_sel.add_model(&distinct[m % distinct.len()]).expect("counts");
    }
    let selections: Vec<_> = hub_sel.finish().into_iter().map(|s| s.expect("selection")).collect();
    let (sel_cpu, sel_wall) = (cpu_seconds() - c0, w0.elapsed().as_secs_f64());
    // What the fallback had to compute (outside the timing).
    let (mut visited, mut fallback) = (0usize, 0usize);
    for sel in &selections {
        let selected: std::collections::HashSet<u32> = sel.selected_nodes.iter().map(|&x| x as u32).collect();
        for (q, l) in distinct.iter().enumerate() {
            let copies = (0..hub).filter(|m| m % distinct.len() == q).count();
            for (i, &g) in l.image_nodes.iter().enumerate() {
                if selected.contains(&(g as u32)) {
                    visited += copies;
                    let listed = l.top_nodes.as_ref().map(|t| t.lists().row(i).iter().any(|x| selected.contains(x)));
                    fallback += copies * (!listed.unwrap_or(false)) as usize;
                }
            }
        }
    }

    // 2. Per dataset: reuse (MLL k=1,3, INB k=3, random k=3 over 32 subsets), metrics, baselines.
    let models: Vec<ModelInfo> = (0..hub)
        .map(|m| ModelInfo {
            key: format!("arch{m}/tag"),
            params_m: Some(100.0 + m as f64),
            gflops: Some(10.0 + (m * 7 % 13) as f64),
            imagenet_top1: Some(0.5 + (m * 31 % 49) as f64 / 200.0),
        })
        .collect();
    let node_ids: Vec<String> = (0..v).map(|i| format!("n{i:08}")).collect();
    let mut report_cpu = 0.0;
    let mut report_wall = 0.0;
    let mut samples_total = 0usize;
    let mut reports = Vec::new();
    let mut exp_cpu = [0.0f64; 3];
    let mut exp_all_cpu = 0.0;
    let (mut growth_parts, mut full_parts) = (Vec::new(), Vec::new());
    for (((name, c, n_real), e), sel) in DATASETS.iter().zip(&class_emb).zip(selections) {
        let n = if max_samples == 0 { *n_real } else { (*n_real).min(max_samples) };
        samples_total += n;
        let labels_y: Vec<usize> = (0..n).map(|_| rng.below(*c)).collect();
        let distinct_probs: Vec<(Array2<f32>, Vec<f64>)> = (0..4)
            .map(|q| {
                let mut p = Array2::from_shape_fn((n, *c), |(i, j)| {
                    let hit = if j == labels_y[i] { 2.0 + q as f32 * 0.3 } else { 0.0 };
                    (hit + 1.5 * rng.normal()).exp()
                });
                for mut r in p.rows_mut() {
                    let s = r.sum();
                    r.mapv_inplace(|x| x / s);
                }
                // What the evaluate job stores next to the probabilities.
                let h = p.rows().into_iter().map(|r| mll_method::prob::entropy(r.iter().copied())).collect();
                (p, h)
            })
            .collect();
        let preds: Vec<Predictions> = (0..hub)
            .map(|m| Predictions {
                probs: distinct_probs[m % 4].0.clone(),
                labels: labels_y.clone(),
                entropy: Some(distinct_probs[m % 4].1.clone()),
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
                Some(Accuracy::from_counts(&k.n, &k.top1, &k.top5))
            })
            .collect();
        let d = DatasetInput {
            name: name.to_string(),
            class_names: (0..*c).map(|y| format!("class {y}")).collect(),
            accuracy,
            predictions: preds.into_iter().map(Some).collect(),
            class_embeddings: Some(e.clone()),
            // Synthetic evaluate durations, seconds per 1,000 samples growing with the model.
            evaluate_seconds: (0..hub).map(|m| Some(n as f64 / 1000.0 * (1.0 + m as f64 / 10.0))).collect(),
            ..Default::default()
        };
        let (c0, w0) = (cpu_seconds(), Instant::now());
        reports.push(build_dataset_report(&models, &options, Some(&node_ids), &d, Some(&sel)).expect("dataset report"));
        report_cpu += cpu_seconds() - c0;
        report_wall += w0.elapsed().as_secs_f64();

        // 3. The experiments, each timed alone. The 49 synthetic models share 4 label
        // sets, so their scores tie; a 0.1% seeded perturbation of p_{m,y} makes all 49
        // distinct, as real models are (ties would make hub growth look cheaper).
        let mut sel_exp = sel.clone();
        sel_exp.class_scores.mapv_inplace(|x| x * (1.0 + 1e-3 * rng.normal() as f64));
        let mixed = mix(&sel_exp.class_scores, &options);
        sel_exp.mixed_scores = mixed.mixed_scores;
        let data = DatasetData::new(&models, &d).expect("dataset data");
        let all = ExperimentOptions::default();
        let only = [
            ExperimentOptions { ks: vec![], orders: 0, ..all.clone() },
            ExperimentOptions { alphas: vec![], orders: 0, ..all.clone() },
            ExperimentOptions { alphas: vec![], ks: vec![], ..all.clone() },
        ];
        for (slot, exp) in only.iter().enumerate() {
            let c0 = cpu_seconds();
            let e = dataset_experiments(&data, &options, Some(&sel_exp), &d.evaluate_seconds, exp).expect("experiments");
            exp_cpu[slot] += cpu_seconds() - c0;
            if slot == 2 {
                growth_parts.push(e);
            }
        }
        let c0 = cpu_seconds();
        full_parts.push(dataset_experiments(&data, &options, Some(&sel_exp), &d.evaluate_seconds, &all).expect("experiments"));
        exp_all_cpu += cpu_seconds() - c0;
    }
    let c0 = cpu_seconds();
    let experiments = combine(full_parts, &options, &ExperimentOptions::default(), hub, Vec::new());
    exp_all_cpu += cpu_seconds() - c0;
    let growth_only = ExperimentOptions { alphas: vec![], ks: vec![], ..ExperimentOptions::default() };
    let growth = combine(growth_parts, &options, &growth_only, hub, Vec::new());
    let curve = &growth.hub_growth.as_ref().expect("hub growth").curves["mll_k1"].mean;
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
        experiments: Some(experiments),
    };
    let json = report_json(&report);
    let md = report_markdown(&report);
    let (out_cpu, out_wall) = (cpu_seconds() - c0, w0.elapsed().as_secs_f64());

    println!("scale: {hub} models x {} datasets, V = {v} nodes (D_e = {de}), {images} graph images per model (D_m 512..1280), K = {k_list}, {} lists", DATASETS.len(), if related { "sibling-structured" } else { "random" });
    println!("       {visited} (model, image) visits with a selected true node, {fallback} by fallback ({:.2}%); {samples_total} test samples (cap {max_samples}), k = {:?}", 100.0 * fallback as f64 / visited.max(1) as f64, options.k);
    println!("selection (49 x 17):                   cpu {sel_cpu:.3} s (matching {match_cpu:.3} s), wall {sel_wall:.3} s");
    println!("dataset reports (reuse + metrics + baselines): cpu {report_cpu:.3} s, wall {report_wall:.3} s");
    println!("summary + report.json + report.md:     cpu {out_cpu:.3} s, wall {out_wall:.3} s ({} + {} bytes)", json.len(), md.len());
    println!("total:                                 cpu {:.3} s", sel_cpu + report_cpu + out_cpu);
    println!("experiments (--experiments), each alone over the 17 datasets:");
    println!("  alpha sweep (5 values x k = {:?}):    cpu {:.3} s", options.k, exp_cpu[0]);
    println!("  k sweep (k = 1..6, MLL + INB + cost): cpu {:.3} s", exp_cpu[1]);
    println!(
        "  hub growth (30 orders x 49 sizes):    cpu {:.3} s (mean MLL k=1 at 1 / 49 models: {:.4} / {:.4})",
        exp_cpu[2],
        curve[0],
        curve[curve.len() - 1]
    );
    println!("  all three + combine:                  cpu {exp_all_cpu:.3} s");
}

/// Node captions: a shared direction per sibling group plus a little noise.
fn node_embeddings(rng: &mut Rng, v: usize, de: usize) -> Array2<f32> {
    let groups = random_unit(rng, v / GROUP, de);
    let mut node_emb = Array2::from_shape_fn((v, de), |(n, j)| groups[[n / GROUP, j]] + 0.25 * rng.normal() / (de as f32).sqrt());
    normalise(&mut node_emb);
    node_emb
}

/// Class captions near a random node each, so matching behaves like real data.
fn class_embeddings(rng: &mut Rng, node_emb: &Array2<f32>, c: usize) -> Array2<f32> {
    let (v, de) = node_emb.dim();
    let mut e = Array2::from_shape_fn((c, de), |_| 0.3 * rng.normal() / (de as f32).sqrt());
    for y in 0..c {
        let n = rng.below(v);
        for j in 0..de {
            e[[y, j]] += node_emb[[n, j]];
        }
    }
    normalise(&mut e);
    e
}

/// Four distinct label sets (D_m = 512, 768, 1024, 1280) that the hub's models share cyclically.
fn synthetic_labels(rng: &mut Rng, v: usize, images: usize, k_list: usize, related: bool) -> Vec<ModelLabels> {
    [512, 768, 1024, 1280]
        .iter()
        .map(|&d| {
            let texts = random_unit(rng, v, d);
            // Sorted by true node, as aggregation hands labels to selection.
            let mut nodes: Vec<usize> = (0..images).map(|_| rng.below(v)).collect();
            nodes.sort_unstable();
            // Only fallback images' rows are read; their values just have to be unit vectors.
            let mut emb = Array2::from_shape_fn((images, d), |_| rng.centred());
            normalise(&mut emb);
            let mut top = Array2::<u32>::zeros((images, k_list));
            for (i, &g) in nodes.iter().enumerate() {
                let group = g / GROUP;
                let mut list: Vec<u32> = Vec::with_capacity(3 * GROUP);
                let neighbours =
                    if related { vec![group, (group + 1) % (v / GROUP), (group + v / GROUP - 1) % (v / GROUP)] } else { Vec::new() };
                for h in neighbours {
                    let mut members: Vec<u32> = (h * GROUP..(h + 1) * GROUP).map(|x| x as u32).collect();
                    for a in (1..members.len()).rev() {
                        members.swap(a, rng.below(a + 1));
                    }
                    list.extend(members);
                }
                let roll = rng.below(10);
                list.retain(|&x| x as usize != g);
                if roll < 6 {
                    list.insert(0, g as u32);
                } else if roll < 9 {
                    let at = 1 + rng.below(k_list.max(2) - 1);
                    list.insert(at.min(list.len()), g as u32);
                } // else: the true node is not among the K best
                while list.len() < k_list {
                    list.push(rng.below(v) as u32);
                }
                for (j, &x) in list.iter().take(k_list).enumerate() {
                    top[[i, j]] = x;
                }
            }
            ModelLabels {
                image_embeddings: emb,
                image_nodes: nodes,
                image_rows: None,
                node_text_embeddings: texts,
                top_nodes: (k_list > 0).then(|| TopNodes::new(top, v).expect("lists within the graph")),
            }
        })
        .collect()
}

/// `bench_select task`: one new task against hubs of 49 and `models` models,
/// as `coordinator select` computes it once the labels are in memory, plus the
/// cost of decoding one model's label artifact of the real size.
fn new_task() {
    let args: Vec<usize> =
        std::env::args().skip(2).map(|a| a.parse().expect("numeric arguments: models classes images_per_model")).collect();
    let models = args.first().copied().unwrap_or(1000);
    let classes = args.get(1).copied().unwrap_or(100);
    let images = args.get(2).copied().unwrap_or(300_000);
    let (v, de, k_list) = (9000, 384, 32);
    let mut rng = Rng(SplitMix64::new(0));
    let node_emb = node_embeddings(&mut rng, v, de);
    let distinct = synthetic_labels(&mut rng, v, images, k_list, true);
    let task = class_embeddings(&mut rng, &node_emb, classes);
    let options = MethodOptions { k: vec![3], ..MethodOptions::default() };
    println!("new task: {classes} classes, V = {v} nodes, {images} graph images per model, K = {k_list}, k = 3");
    for hub in [49, models] {
        let (c0, w0) = (cpu_seconds(), Instant::now());
        let e_t = [Some(task.view())];
        let mut sel = HubSelection::new(&e_t, node_emb.view(), &options).expect("matching");
        let match_cpu = cpu_seconds() - c0;
        for m in 0..hub {
            sel.add_model(&distinct[m % distinct.len()]).expect("counts");
        }
        let s = sel.finish().pop().flatten().expect("selection");
        let picked: std::collections::BTreeSet<usize> = s.top_k[&3].iter().flatten().copied().collect();
        println!(
            "  hub of {hub:>5} models: cpu {:.3} s (matching {match_cpu:.3} s), wall {:.3} s; {} models picked",
            cpu_seconds() - c0,
            w0.elapsed().as_secs_f64(),
            picked.len()
        );
    }
    // What `select` reads at that scale: the 4 distinct label sets written as
    // label jobs write them (10 shards each: embeddings, true nodes, lists; the
    // node texts), each decoded whole once (what select did before the index),
    // indexed once, then the 49-model selection read through the indexes.
    use mll_common::artifact::safetensors_io::{self as st_io, Named};
    use mll_common::artifact::ArtifactStore;
    use mll_coordinator::aggregate::LabelSources;
    use mll_coordinator::hub::index::{self, HubIndex};
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp".into())).expect("a temporary folder");
    let store = ArtifactStore::new(dir.path());
    let shards = 10;
    let mut sources = Vec::new();
    for l in &distinct {
        let (n, d) = l.image_embeddings.dim();
        // Label shards cover image ranges in graph order; here, the sorted images dealt in turn.
        let mut refs = Vec::new();
        for s in 0..shards {
            let rows: Vec<usize> = (s..n).step_by(shards).collect();
            let emb: Vec<f32> = rows.iter().flat_map(|&i| l.image_embeddings.row(i).to_vec()).collect();
            let nodes: Vec<i64> = rows.iter().map(|&i| l.image_nodes[i] as i64).collect();
            let lists = l.top_nodes.as_ref().expect("lists").lists();
            let top: Vec<i32> = rows.iter().flat_map(|&i| lists.row(i).to_vec()).map(|x| x as i32).collect();
            let tensors = [
                Named::new("image_embeddings", vec![rows.len(), d], &emb),
                Named::new("nodes", vec![rows.len()], &nodes),
                Named::new("top_nodes", vec![rows.len(), k_list], &top),
            ];
            refs.push(store.put(&st_io::encode(&tensors).unwrap()).unwrap());
        }
        let texts: Vec<f32> = l.node_text_embeddings.iter().copied().collect();
        let node_texts = store.put(&st_io::encode(&[Named::new("text_embeddings", vec![v, d], &texts)]).unwrap()).unwrap();
        sources.push(LabelSources { shards: refs, node_texts });
    }
    let bytes: u64 =
        sources.iter().flat_map(|s| s.shards.iter().chain([&s.node_texts])).map(|a| a.size).sum::<u64>() / sources.len() as u64;
    // The old way: one model's artifacts read, verified and decoded whole.
    let (c0, w0) = (cpu_seconds(), Instant::now());
    let mut sum = 0.0f64;
    for a in sources[1].shards.iter().chain([&sources[1].node_texts]) {
        let b = store.get(a).unwrap();
        let st = st_io::parse(&b).unwrap();
        for name in ["image_embeddings", "text_embeddings"].into_iter().filter(|n| st_io::has(&st, n)) {
            sum += st_io::values::<f32>(&st, name).unwrap()[0] as f64;
        }
        if st_io::has(&st, "nodes") {
            sum += st_io::values::<i64>(&st, "nodes").unwrap()[0] as f64 + st_io::values::<i32>(&st, "top_nodes").unwrap()[0] as f64;
        }
    }
    println!(
        "  reading one model's label artifacts whole ({:.0} MB, checksums verified): cpu {:.3} s, wall {:.3} s ({})",
        bytes as f64 / 1e6,
        cpu_seconds() - c0,
        w0.elapsed().as_secs_f64(),
        sum.is_finite()
    );
    let run = mll_common::RunId::new("bench-hub").unwrap();
    let mut paths = Vec::new();
    let (c0, w0) = (cpu_seconds(), Instant::now());
    for src in &sources {
        let digest = index::digest(src, v);
        let name = index::name(&run, &digest);
        store.put_named(&name, &index::build(&store, src, v).unwrap()).unwrap();
        paths.push((dir.path().join(name), digest));
    }
    let size = std::fs::metadata(&paths[0].0).map(|m| m.len()).unwrap_or(0);
    println!(
        "  indexing (once per model): cpu {:.3} s, wall {:.3} s per model; index {:.0} MB",
        (cpu_seconds() - c0) / sources.len() as f64,
        w0.elapsed().as_secs_f64() / sources.len() as f64,
        size as f64 / 1e6
    );
    let mut references = Vec::new();
    for hub in [49, models] {
        let mut reference = HubSelection::new(&[Some(task.view())], node_emb.view(), &options).expect("matching");
        for m in 0..hub {
            reference.add_model(&distinct[m % distinct.len()]).expect("counts");
        }
        references.push(reference.finish());
    }
    drop(distinct);
    for (round, hub, reference) in [("first read", 49, &references[0]), ("again", 49, &references[0]), ("", models, &references[1])] {
        let (c0, w0) = (cpu_seconds(), Instant::now());
        let e_t = [Some(task.view())];
        let mut sel = HubSelection::new(&e_t, node_emb.view(), &options).expect("matching");
        let mut images = 0;
        let mut reading = 0.0;
        for m in 0..hub {
            let (path, digest) = &paths[m % paths.len()];
            let w1 = Instant::now();
            let labels = HubIndex::open(path, digest, v)
                .unwrap()
                .labels_for(&sel.selected_node_sets(), options.selected_images_only, &store)
                .unwrap();
            reading += w1.elapsed().as_secs_f64();
            images += labels.image_nodes.len();
            sel.add_model(&labels).expect("counts");
        }
        let s = sel.finish();
        println!(
            "  select through the indexes, hub of {hub:>4} {round:>10}: cpu {:.3} s, wall {:.3} s (reading the indexes {reading:.3} s); {:.0} images read per model; {}",
            cpu_seconds() - c0,
            w0.elapsed().as_secs_f64(),
            images as f64 / hub as f64,
            if s == *reference { "same selection as whole labels" } else { "DIFFERENT selection from whole labels" }
        );
    }
}
