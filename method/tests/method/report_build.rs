//! The report on a tiny synthetic world: values by hand, completeness, and
//! byte-identical output across builds.

use mll_method::assess::{build_report, DatasetInput, GraphInput, ReportInput};
use mll_method::options::MethodOptions;
use mll_method::outcome::ModelInfo;
use mll_method::report::{report_json, write_report};
use mll_method::{Accuracy, ModelLabels, Predictions};
use ndarray::Array2;

// Counts as an evaluate job would produce them (shared with the experiment tests).
use crate::support_world::counts;

fn onehot_probs(preds: &[usize], c: usize, conf: f32) -> Array2<f32> {
    let mut p = Array2::from_elem((preds.len(), c), (1.0 - conf) / (c - 1) as f32);
    for (i, &y) in preds.iter().enumerate() {
        p[[i, y]] = conf;
    }
    p
}

/// 3 models, 6 graph nodes (one-hot caption embeddings), 2 datasets of 3 classes.
/// Dataset A's class y matches node 2y. Model 0 labels every node right, model 1
/// only nodes 0 and 1, model 2 none; so MLL picks model 0 for every class.
fn input() -> ReportInput {
    let v = 6;
    let texts = Array2::<f32>::eye(v);
    let labels_for = |right: &dyn Fn(usize) -> bool| {
        let mut emb = Array2::<f32>::zeros((2 * v, v));
        let mut nodes = Vec::new();
        for i in 0..2 * v {
            let node = i / 2;
            emb[[i, if right(node) { node } else { (node + 2) % v }]] = 1.0;
            nodes.push(node);
        }
        ModelLabels { image_embeddings: emb, image_nodes: nodes, image_rows: None, node_text_embeddings: texts.clone(), top_nodes: None }
    };
    let graph = GraphInput {
        node_ids: (0..v).map(|i| format!("n{i:08}")).collect(),
        node_embeddings: texts.clone(),
        models: vec![Some(labels_for(&|_| true)), Some(labels_for(&|n| n < 2)), Some(labels_for(&|_| false))],
    };
    let labels = vec![0, 1, 2, 0, 1, 2];
    let preds_a = [vec![0, 1, 2, 0, 1, 0], vec![0, 1, 2, 0, 0, 0], vec![1, 1, 1, 1, 1, 1]];
    let preds: Vec<Predictions> =
        preds_a.iter().map(|p| Predictions { probs: onehot_probs(p, 3, 0.8), labels: labels.clone(), entropy: None }).collect();
    let mut e_t = Array2::<f32>::zeros((3, v));
    for y in 0..3 {
        e_t[[y, 2 * y]] = 1.0;
    }
    let a = DatasetInput {
        name: "A".into(),
        domain: "toy".into(),
        task: "classification".into(),
        class_names: vec!["x".into(), "y".into(), "z".into()],
        accuracy: preds.iter().map(|p| Some(counts(p).accuracy())).collect(),
        predictions: preds.into_iter().map(Some).collect(),
        class_embeddings: Some(e_t.clone()),
        evaluate_seconds: Vec::new(),
        modelgpt: None,
    };
    let b = DatasetInput {
        name: "B".into(),
        class_names: vec!["x".into(), "y".into(), "z".into()],
        accuracy: vec![Some(Accuracy::top1_only(0.5)), Some(Accuracy::top1_only(0.6)), None],
        class_embeddings: Some(e_t),
        ..Default::default()
    };
    let model =
        |key: &str, inet: f64, params: f64| ModelInfo { key: key.into(), params_m: Some(params), gflops: None, imagenet_top1: Some(inet) };
    ReportInput {
        run: "toy".into(),
        spec_digest: "abc".into(),
        source: "evaluate".into(),
        options: MethodOptions { nodes_per_class: 1, ..MethodOptions::default() },
        models: vec![model("m/zero", 0.5, 100.0), model("m/one", 0.7, 200.0), model("m/two", 0.6, 300.0)],
        datasets: vec![a, b],
        graph: Some(graph),
    }
}

#[test]
fn values_and_completeness() {
    let r = build_report(&input()).unwrap();
    let a = &r.datasets[0];
    assert!(a.complete && !r.datasets[1].complete);
    assert_eq!(r.datasets[1].missing_models, vec!["m/two"]);
    assert_eq!(r.summary.incomplete, vec!["B"]);
    assert_eq!(r.summary.complete, 1);
    // Accuracies: model 0 5/6, model 1 4/6, model 2 2/6 (mean per-class recall: (1 + 1 + 1/2)/3 for model 0).
    assert!((a.accuracy[0].top1 - 5.0 / 6.0).abs() < 1e-12);
    assert!((a.accuracy[0].mean_per_class_recall - 2.5 / 3.0).abs() < 1e-12);
    assert!(a.accuracy[0].top5.is_nan());
    assert_eq!(a.gt_ranking, vec!["m/zero", "m/one", "m/two"]);
    // MLL picks model 0 everywhere; with k = 1 that is model 0's own zero-shot accuracy.
    for cls in &a.class_selections {
        assert_eq!(cls.picks[0].models, vec!["m/zero"]);
    }
    assert_eq!(a.class_selections[1].matched_nodes[0].id, "n00000002");
    assert!((a.selections["mll_k1"].accuracy.unwrap() - 5.0 / 6.0).abs() < 1e-12);
    assert_eq!(a.rankings["mll"].predicted, vec!["m/zero", "m/one", "m/two"]);
    assert!((a.rankings["mll"].kendall_tau_b - 1.0).abs() < 1e-12, "{:?}", a.rankings["mll"]);
    // INB = model 1 (ImageNet 0.7); its ranking is 1, 2, 0.
    assert_eq!(a.selections["inb_k1"].models.as_deref(), Some(&["m/one".to_string()][..]));
    assert!((a.selections["inb_k1"].accuracy.unwrap() - 4.0 / 6.0).abs() < 1e-12);
    assert_eq!(a.rankings["inb"].predicted, vec!["m/one", "m/two", "m/zero"]);
    assert!((a.rankings["inb"].kendall_tau_b - -1.0 / 3.0).abs() < 1e-12);
    // params ranks 2, 1, 0: exactly reversed.
    assert!((a.rankings["params"].kendall_tau_b + 1.0).abs() < 1e-12);
    assert!(!a.rankings.contains_key("gflops"), "gflops are missing for the hub");
    assert!((a.selections["oracle"].accuracy.unwrap() - 5.0 / 6.0).abs() < 1e-12);
    assert!((a.selections["hub_average"].accuracy.unwrap() - 11.0 / 18.0).abs() < 1e-12);
    assert_eq!(a.selections["random_k1"].accuracy, a.selections["hub_average"].accuracy);
    // k = 3 with 3 models: all of them for every class, the one subset; MLL k=3 and INB k=3 use the same set.
    let all3 = a.selections["mll_k3"].accuracy.unwrap();
    assert_eq!(a.selections["inb_k3"].accuracy, Some(all3));
    assert_eq!(a.selections["random_k3"].accuracy, Some(all3));
    assert!(a.selections["random_k3"].how.contains("all 1"), "{}", a.selections["random_k3"].how);
    // Summary over the complete dataset only.
    assert_eq!(r.summary.selections["oracle"].datasets, 1);
    assert!((r.summary.selections["oracle"].accuracy - 5.0 / 6.0).abs() < 1e-12);
    assert_eq!(r.summary.rankings["mll"].r5, 1.0);
    // Dataset B has no probabilities: reuse-based entries are null with a note, not guessed.
    let b = &r.datasets[1];
    assert_eq!(b.selections["mll_k1"].accuracy, None);
    assert!(b.notes.iter().any(|n| n.contains("mll_k1")), "{:?}", b.notes);
    assert_eq!(b.selections["inb_k1"].accuracy, Some(0.6));
}

#[test]
fn json_is_byte_identical_and_rounded() {
    let one = report_json(&build_report(&input()).unwrap());
    let two = report_json(&build_report(&input()).unwrap());
    assert_eq!(one, two);
    assert!(one.contains("\"top1\": 0.833333"), "floats are rounded to 6 decimals");
    assert!(one.contains("\"top5\": null"), "NaN is written as null");
    for key in ["r5", "tau5", "kendall_tau_b", "weighted_tau", "mll_k3", "random_k3", "incomplete"] {
        assert!(one.contains(&format!("\"{key}\"")), "{key} missing");
    }
}

#[test]
fn files_are_written_and_reproducible() {
    let r = build_report(&input()).unwrap();
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let f1 = write_report(&r, d1.path()).unwrap();
    let f2 = write_report(&build_report(&input()).unwrap(), d2.path()).unwrap();
    let names: Vec<String> = f1.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["report.json", "report.md", "accuracy_matrix.csv", "accuracy_by_method.svg", "rank_mll.svg", "rank_inb.svg"]);
    for (a, b) in f1.iter().zip(&f2) {
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap(), "{}", a.display());
    }
    let csv = std::fs::read_to_string(d1.path().join("accuracy_matrix.csv")).unwrap();
    assert_eq!(csv.lines().next().unwrap(), "model,pretrained,a,b");
    assert_eq!(csv.lines().nth(3).unwrap(), "m,two,0.333333,");
    let md = std::fs::read_to_string(d1.path().join("report.md")).unwrap();
    assert!(md.contains("| B (incomplete) |") && md.contains("MLL k=1"), "{md}");
    let svg = std::fs::read_to_string(d1.path().join("rank_mll.svg")).unwrap();
    // Three models on the one complete dataset, plus its legend dot.
    assert!(svg.starts_with("<svg") && svg.matches("<circle").count() == 3 + 1);
}

#[test]
fn inconsistent_inputs_are_named() {
    let mut i = input();
    if let Some(p) = i.datasets[0].predictions[2].as_mut() {
        p.labels[0] = 2;
    }
    let err = build_report(&i).unwrap_err().to_string();
    assert!(err.contains("dataset A") && err.contains("m/two") && err.contains("same samples"), "{err}");
    let mut i = input();
    i.datasets[0].accuracy.pop();
    let err = build_report(&i).unwrap_err().to_string();
    assert!(err.contains("hub has 3 models"), "{err}");
}
