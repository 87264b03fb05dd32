//! Ground truth imported from published tables in /work/shared/reference (read in
//! place, never copied): the hub is built from MLL's model_hub_info.csv.

use mll_common::job::DatasetFormat;
use mll_coordinator::aggregate::truth::{report_from_truth, TruthTable};
use mll_coordinator::spec::{BenchmarkSpec, HubModel, MethodOptions, TargetDataset};
use mll_method::report::write_report;
use std::path::PathBuf;

const DATASETS: [&str; 17] = [
    "CIFAR100",
    "Country211",
    "DTD",
    "FER2013",
    "Flowers102",
    "Food101",
    "GTSRB",
    "MNIST",
    "OxfordIIITPet",
    "PCAM",
    "RenderedSST2",
    "STL10",
    "StanfordCars",
    "UCF101",
    "clevr_closest_object_distance",
    "dmlab",
    "resisc45",
];

fn reference() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference");
    // The reference folder sits beside every checkout (and CI's clone): a
    // missing one is a broken set-up, not a reason to pass.
    assert!(
        p.join("mll/model_hub_info.csv").exists(),
        "reference data not found at {}: shared/reference must sit beside the repository",
        p.display()
    );
    Some(p)
}

fn spec(reference: &std::path::Path) -> BenchmarkSpec {
    let hub_csv = std::fs::read_to_string(reference.join("mll/model_hub_info.csv")).unwrap();
    let hub = hub_csv
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            HubModel {
                key: format!("{}/{}", f[0], f[1]),
                artifact: format!("models/{}-{}", f[0], f[1]),
                params_m: Some(f[2].parse().unwrap()),
                gflops: Some(f[3].parse().unwrap()),
                imagenet_top1: Some(f[4].parse().unwrap()),
            }
        })
        .collect();
    let datasets = DATASETS
        .iter()
        .map(|name| TargetDataset {
            name: name.to_string(),
            domain: String::new(),
            task: String::new(),
            format: DatasetFormat::WebDataset,
            path: format!("datasets/{name}"),
            split: "test".into(),
            classnames: std::fs::read_to_string(reference.join(format!("mll/classnames/{name}.txt")))
                .map(|t| t.lines().map(str::to_string).filter(|l| !l.is_empty()).collect())
                .unwrap_or_default(),
            templates: vec![],
            captions: None,
            class_map: None,
            catalog: None,
        })
        .collect();
    BenchmarkSpec {
        name: "mll-49x17".into(),
        description: String::new(),
        data_root: ".".into(),
        hub,
        datasets,
        graph: None,
        embedder: None,
        llm: None,
        method: MethodOptions::default(),
        execution: Default::default(),
        priority: 1,
        diagnostic: None,
        world: None,
    }
}

#[test]
fn gt_open_clip_table() {
    let Some(r) = reference() else { return };
    let spec = spec(&r);
    assert_eq!(spec.hub.len(), 49);
    let csv = r.join("open_clip/gt_open_clip.csv");
    let report = report_from_truth(&csv, &spec).unwrap();
    // Acceptance: the INB pick is the hub's best ImageNet model.
    let cifar = &report.datasets[0];
    assert_eq!(cifar.selections["inb_k1"].models.as_deref(), Some(&["ViT-H-14-378-quickgelu/dfn5b".to_string()][..]));
    // Gaps in the published table make these datasets incomplete, not silently averaged.
    assert_eq!(report.summary.incomplete, vec!["FER2013", "UCF101", "dmlab"]);
    assert_eq!(report.summary.complete, 14);
    let ucf = report.datasets.iter().find(|d| d.name == "UCF101").unwrap();
    assert_eq!(ucf.missing_models.len(), 49);
    assert!(ucf.gt_ranking.is_empty());
    assert_eq!(report.datasets.iter().find(|d| d.name == "FER2013").unwrap().missing_models.len(), 29);

    // GT ranking of CIFAR100 against an independent scan of the file.
    let table = TruthTable::parse(&std::fs::read_to_string(&csv).unwrap(), "gt").unwrap();
    let col = table.column_for("CIFAR100").unwrap();
    let mut best = (String::new(), -1.0);
    for m in &spec.hub {
        let v = table.value(&m.key, col).unwrap().unwrap();
        if v > best.1 {
            best = (m.key.clone(), v);
        }
    }
    assert_eq!(cifar.gt_ranking[0], best.0);
    assert_eq!(cifar.selections["oracle"].accuracy, Some(best.1));
    // Ranking methods available without a GPU: INB, params, GFLOPs (no MLL).
    for m in ["inb", "params", "gflops"] {
        let s = &report.summary.rankings[m];
        assert_eq!(s.datasets, 14, "{m}");
        assert!(s.r5 >= 0.0 && s.r5 <= 1.0 && s.weighted_tau.is_finite(), "{m}: {s:?}");
    }
    assert!(!report.summary.rankings.contains_key("mll"));
    assert_eq!(report.summary.selections["mll_k1"].datasets, 0);
    assert!(report.summary.selections["inb_k3"].accuracy.is_nan(), "k=3 reuse needs probabilities");
    assert_eq!(report.summary.selections["inb_k1"].datasets, 14);

    // The written accuracy matrix reads back as the same ground truth.
    let dir = tempfile::tempdir().unwrap();
    write_report(&report, dir.path()).unwrap();
    let again = report_from_truth(&dir.path().join("accuracy_matrix.csv"), &spec).unwrap();
    for (a, b) in report.datasets.iter().zip(&again.datasets).filter(|(a, _)| a.complete) {
        assert_eq!(a.gt_ranking, b.gt_ranking, "{}", a.name);
        assert_eq!(a.rankings, b.rankings, "{}", a.name);
    }
}

#[test]
fn open_clip_results_table_with_display_names() {
    let Some(r) = reference() else { return };
    let spec = spec(&r);
    let full = report_from_truth(&r.join("open_clip/openclip_classification_results.csv"), &spec).unwrap();
    let gt = report_from_truth(&r.join("open_clip/gt_open_clip.csv"), &spec).unwrap();
    // open_clip has no FER2013, UCF101 or DMLab columns; everything else matches MLL's table.
    assert_eq!(full.summary.incomplete, vec!["FER2013", "UCF101", "dmlab"]);
    assert!(full.notes.iter().any(|n| n.contains("no column for dataset FER2013")), "{:?}", full.notes);
    for (a, b) in full.datasets.iter().zip(&gt.datasets).filter(|(a, _)| a.complete) {
        let top1 = |d: &mll_method::outcome::DatasetReport| d.accuracy.iter().map(|x| x.top1).collect::<Vec<_>>();
        assert_eq!(top1(a), top1(b), "{}", a.name);
    }
}

#[test]
fn malformed_tables_are_explained() {
    let err = TruthTable::parse("foo,bar\n1,2\n", "t.csv").unwrap_err().to_string();
    assert!(err.contains("t.csv") && err.contains("model column"), "{err}");
    let err = TruthTable::parse("model,pretrained,CIFAR100\nRN50,openai\n", "t.csv").unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("2 fields"), "{err}");
    let t = TruthTable::parse("model,pretrained,CIFAR100\nRN50,openai,40.3\n", "t.csv").unwrap();
    let err = t.value("RN50/openai", 0).unwrap_err().to_string();
    assert!(err.contains("fractions") && err.contains("line 2"), "{err}");
    let t = TruthTable::parse("key,\"Oxford-IIIT Pet\"\n\"RN50/openai\",0.85\nRN50/openai,0.1\n", "t.csv").unwrap();
    assert_eq!(t.column_for("OxfordIIITPet"), Some(0));
    assert_eq!(t.value("RN50/openai", 0).unwrap(), Some(0.85));
    assert_eq!(t.duplicates, vec!["RN50/openai"]);
}
