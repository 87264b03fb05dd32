//! The paper's experiments (α sweep, k sweep with reuse cost, hub growth)
//! against the main report and against brute force on a seeded synthetic world.

use crate::support_world::{world, CLASSES};
use mll_method::assess::{build_report, build_report_with, select_in_memory, DatasetData};
use mll_method::experiments::{distinct_models, gpu_seconds, hub_orders, mll_k1_growth, ExperimentOptions};
use mll_method::options::EnsembleWeight;
use mll_method::report::report_json;
use mll_method::{order_desc, pick_top_k};
use ndarray::array;

fn exp() -> ExperimentOptions {
    ExperimentOptions::default()
}

#[test]
fn alpha_sweep_at_the_methods_alpha_is_the_main_report() {
    let input = world(5, 1, false);
    let main = build_report(&input).unwrap();
    let r = build_report_with(&input, Some(&exp())).unwrap();
    let mut without = r.clone();
    without.experiments = None;
    assert_eq!(report_json(&without), report_json(&main), "experiments must not change the main report");
    let a = r.experiments.as_ref().unwrap().alpha_sweep.as_ref().unwrap();
    assert_eq!(a.alphas, vec![0.5, 0.6, 0.7, 0.8, 0.9]);
    let at = a.alphas.iter().position(|&x| x == input.options.alpha).unwrap();
    for series in &a.per_dataset {
        let d = main.datasets.iter().find(|d| d.name == series.dataset).unwrap();
        let p = &series.points[at];
        for k in &input.options.k {
            let key = format!("mll_k{k}");
            assert_eq!(p.accuracy[&key], d.selections[&key].accuracy, "{} {key}", d.name);
        }
        let mll = &d.rankings["mll"];
        assert_eq!((p.ranking.r5, p.ranking.tau5, p.ranking.weighted_tau), (mll.r5, mll.tau5, mll.weighted_tau));
    }
    // Other α values really re-pick: across the sweep some accuracy differs on some dataset
    // (the world is built so that class scores disagree between classes).
    let varies = a.per_dataset.iter().any(|s| s.points.windows(2).any(|w| w[0].accuracy != w[1].accuracy));
    assert!(varies, "the α sweep never changed a pick: {a:?}");
    // The mean row is the mean of the datasets' rows.
    let mean: f64 = a.per_dataset.iter().map(|s| s.points[0].accuracy["mll_k1"].unwrap()).sum::<f64>() / a.per_dataset.len() as f64;
    assert!((a.mean[0].accuracy["mll_k1"].unwrap() - mean).abs() < 1e-12);
}

#[test]
fn k_sweep_costs_count_distinct_models_and_their_seconds() {
    // Hand-made r (3 models × 4 classes): k = 1 picks 0, 1, 0, 2; k = 2 adds 1, 2, 2, 0.
    let r = array![[0.9, 0.1, 0.8, 0.3], [0.5, 0.7, 0.1, 0.1], [0.2, 0.6, 0.7, 0.9]];
    let picks = pick_top_k(&r, &[1, 2, 3]);
    assert_eq!(picks[&1], vec![vec![0], vec![1], vec![0], vec![2]]);
    assert_eq!(picks[&2], vec![vec![0, 1], vec![1, 2], vec![0, 2], vec![2, 0]]);
    assert_eq!(distinct_models(&picks[&1]), vec![0, 1, 2]);
    assert_eq!(distinct_models(&[vec![2], vec![2]]), vec![2]);
    let seconds = [Some(1.5), Some(2.0), Some(4.0)];
    assert_eq!(gpu_seconds(&[0, 2], &seconds), Some(5.5));
    assert_eq!(gpu_seconds(&[0, 1], &[Some(1.0), None]), None, "an unknown duration makes the cost unknown");

    // In the report: each k's MLL accuracy equals the main report's at the method's k values,
    // models and GPU-seconds match the picks, fractions are of the hub.
    let input = world(5, 2, false);
    let r = build_report_with(&input, Some(&exp())).unwrap();
    let ks = r.experiments.as_ref().unwrap().k_sweep.as_ref().unwrap();
    assert_eq!(ks.ks, vec![1, 2, 3, 4, 5, 6]);
    let sels = select_in_memory(&input).unwrap();
    for (series, (d, sel)) in ks.per_dataset.iter().zip(input.datasets.iter().zip(&sels)) {
        let main = r.datasets.iter().find(|x| x.name == d.name).unwrap();
        let sel = sel.as_ref().unwrap();
        for p in &series.points {
            let used = distinct_models(&pick_top_k(&sel.mixed_scores, &[p.k])[&p.k]);
            assert_eq!(p.mll_models, used.len() as f64, "{} k={}", d.name, p.k);
            assert_eq!(p.mll_hub_fraction, used.len() as f64 / 5.0);
            assert_eq!(p.mll_gpu_seconds, Some(used.iter().map(|&m| d.evaluate_seconds[m].unwrap()).sum::<f64>()));
            assert_eq!(p.inb_models, p.k.min(5) as f64);
            if let Some(main_k) = main.selections.get(&format!("mll_k{}", p.k)) {
                assert_eq!(p.mll, main_k.accuracy, "{} k={}", d.name, p.k);
                assert_eq!(p.inb, main.selections[&format!("inb_k{}", p.k)].accuracy);
            }
        }
        // k ≥ the hub: every model, the whole hub's cost.
        let last = series.points.last().unwrap();
        assert_eq!((last.mll_models, last.mll_hub_fraction), (5.0, 1.0));
        assert_eq!(last.mll_gpu_seconds, ks.hub_gpu_seconds[&d.name]);
    }
    let total: f64 = ks.per_dataset.iter().map(|s| s.points[0].mll_gpu_seconds.unwrap()).sum();
    assert_eq!(ks.mean[0].mll_gpu_seconds, Some(total), "the mean row sums GPU-seconds");
}

#[test]
fn hub_growth_incremental_equals_brute_force_reuse_for_every_prefix() {
    let mut input = world(6, 3, false);
    // Models 0 and 4 get the same labels: equal r everywhere, so ties go to hub order.
    let g = input.graph.as_mut().unwrap();
    g.models[4] = g.models[0].clone();
    let sels = select_in_memory(&input).unwrap();
    for weighting in [EnsembleWeight::InverseEntropy, EnsembleWeight::Entropy] {
        for (d, sel) in input.datasets.iter().zip(&sels) {
            let sel = sel.as_ref().unwrap();
            let data = DatasetData::new(&input.models, d).unwrap();
            let pool = data.pool(weighting).unwrap();
            let tables: Vec<_> = (0..6).map(|m| pool.table(m).unwrap()).collect();
            let tables: Vec<(&[f32], &[f64])> = tables.iter().map(|(p, w)| (p.as_ref(), *w)).collect();
            let labels = data.labels.unwrap();
            for order in hub_orders(6, 12, 9) {
                let curve = mll_k1_growth(&order, &sel.mixed_scores, &tables, labels, CLASSES);
                for n in 1..=6 {
                    let prefix = &order[..n];
                    let picks: Vec<Vec<usize>> = (0..CLASSES)
                        .map(|y| {
                            let col: Vec<f64> =
                                (0..6).map(|m| if prefix.contains(&m) { sel.mixed_scores[[m, y]] } else { f64::NAN }).collect();
                            vec![order_desc(&col)[0]]
                        })
                        .collect();
                    let brute = pool.accuracy(labels, &picks).unwrap();
                    assert_eq!(curve[n - 1], brute, "{} order {order:?} prefix {n}", d.name);
                }
            }
        }
    }
}

#[test]
fn hub_growth_ends_at_the_main_report_and_starts_at_single_models() {
    let input = world(5, 4, true);
    let main = build_report(&input).unwrap();
    let r = build_report_with(&input, Some(&exp())).unwrap();
    let e = r.experiments.as_ref().unwrap();
    let g = e.hub_growth.as_ref().unwrap();
    assert_eq!((g.orders, g.sizes.len()), (30, 5));
    // The incomplete dataset is left out, and said so.
    assert_eq!(g.curves["mll_k1"].datasets, vec!["set0", "set1"]);
    assert!(e.notes.iter().any(|n| n.contains("set2")), "{:?}", e.notes);
    let complete: Vec<_> = main.datasets.iter().filter(|d| d.complete).collect();
    let mean = |key: &str| complete.iter().map(|d| d.selections[key].accuracy.unwrap()).sum::<f64>() / complete.len() as f64;
    // The whole hub: exactly the main report, in every order (so no spread).
    let last = g.sizes.len() - 1;
    for (curve, key) in [("mll_k1", "mll_k1"), ("inb_k1", "inb_k1"), ("oracle", "oracle")] {
        assert!((g.curves[curve].mean[last] - mean(key)).abs() < 1e-12, "{curve}");
        assert!(g.curves[curve].std[last].abs() < 1e-12, "{curve}");
    }
    // One model: each order's first model's own accuracy, averaged.
    let orders = hub_orders(5, 30, input.options.seed);
    let first: f64 =
        orders.iter().map(|o| complete.iter().map(|d| d.accuracy[o[0]].top1).sum::<f64>() / complete.len() as f64).sum::<f64>() / 30.0;
    for curve in ["mll_k1", "inb_k1", "oracle"] {
        assert!((g.curves[curve].mean[0] - first).abs() < 1e-12, "{curve}: {} vs {first}", g.curves[curve].mean[0]);
    }
    // The oracle never loses as the hub grows.
    assert!(g.curves["oracle"].mean.windows(2).all(|w| w[1] >= w[0] - 1e-12));
}

#[test]
fn a_hub_of_one_model_grows_to_that_models_accuracy() {
    let input = world(1, 5, false);
    let r = build_report_with(&input, Some(&exp())).unwrap();
    let g = r.experiments.as_ref().unwrap().hub_growth.as_ref().unwrap();
    let acc = r.datasets.iter().map(|d| d.accuracy[0].top1).sum::<f64>() / 3.0;
    for curve in ["mll_k1", "inb_k1", "oracle"] {
        assert_eq!(g.curves[curve].mean.len(), 1);
        assert!((g.curves[curve].mean[0] - acc).abs() < 1e-12, "{curve}");
    }
}

#[test]
fn experiments_are_deterministic_and_only_in_reports_that_ask() {
    let input = world(4, 6, true);
    let one = report_json(&build_report_with(&input, Some(&exp())).unwrap());
    let two = report_json(&build_report_with(&input, Some(&exp())).unwrap());
    assert_eq!(one, two);
    assert!(one.contains("\"alpha_sweep\"") && one.contains("\"hub_growth\"") && one.contains("\"k_sweep\""));
    assert!(!report_json(&build_report(&input).unwrap()).contains("\"experiments\""));
    // Another seed draws other orders.
    let mut other = input.clone();
    other.options.seed = 99;
    assert_ne!(hub_orders(4, 30, 0), hub_orders(4, 30, 99));
}
