//! configs/benchmarks/mll-49x17.toml: the paper's benchmark parses, has the
//! paper's hub and targets, and its INB baseline picks the paper's model.

use mll_common::job::DatasetFormat;
use mll_coordinator::spec::BenchmarkSpec;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn spec() -> BenchmarkSpec {
    BenchmarkSpec::load(&repo().join("configs/benchmarks/mll-49x17.toml")).unwrap()
}

#[test]
fn spec_has_the_papers_hub_and_targets() {
    let s = spec();
    assert_eq!(s.name, "mll-49x17");
    assert_eq!(s.hub.len(), 49);
    assert_eq!(s.datasets.len(), 17);
    for m in &s.hub {
        let (arch, tag) = m.key.split_once('/').unwrap();
        assert_eq!(m.artifact, format!("models/{arch}__{tag}"));
        let top1 = m.imagenet_top1.unwrap_or_else(|| panic!("{} has no imagenet_top1", m.key));
        assert!(top1 > 0.2 && top1 < 0.9, "{}: imagenet_top1 {top1} is not a fraction", m.key);
        assert!(m.params_m.unwrap() >= 100.0 && m.params_m.unwrap() < 5000.0, "{}", m.key);
        assert!(m.gflops.unwrap() > 10.0, "{}", m.key);
    }
    // Sizes from ~100M to 4.7B parameters; Σ GFLOPs ≈ 11,500 (docs/method.md, "The benchmark").
    let gflops: f64 = s.hub.iter().map(|m| m.gflops.unwrap()).sum();
    assert!((11_000.0..12_000.0).contains(&gflops), "sum of GFLOPs {gflops}");
    let eva_e = s.hub.iter().find(|m| m.key == "EVA02-E-14/laion2b_s4b_b115k").unwrap();
    assert_eq!(eva_e.params_m, Some(4704.59));

    let names: BTreeSet<&str> = s.datasets.iter().map(|d| d.name.as_str()).collect();
    let expected: BTreeSet<&str> = [
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
    ]
    .into();
    assert_eq!(names, expected);
    for d in &s.datasets {
        assert_eq!(d.format, DatasetFormat::WebDataset);
        let split = match d.name.as_str() {
            "Country211" => "valid",
            "DTD" => "val",
            // The released loader reads UCF101's whole midframes folder (docs/method.md).
            "resisc45" | "UCF101" => "all",
            _ => "test",
        };
        assert_eq!(d.split, split, "{}", d.name);
        assert!(d.path.starts_with("datasets/wds_") && d.path.ends_with(&format!("/{split}")), "{}", d.path);
        // Everything but domain and task comes from the dataset catalog entry.
        assert_eq!(d.catalog.as_deref(), Some(d.name.as_str()));
        assert!(!d.classnames.is_empty() && !d.templates.is_empty(), "{}: class names and templates from the catalog", d.name);
        assert_eq!(d.captions.as_deref(), Some(format!("captions/{}.json", d.name).as_str()));
        assert_eq!(d.class_map.as_deref(), Some(format!("../catalog/class_maps/{}.tsv", d.name).as_str()));
        assert!(!d.domain.is_empty() && !d.task.is_empty() && !d.domain.contains("natrual"), "{}", d.name);
    }
    assert_eq!(s.graph.as_ref().unwrap().path, "graph/graph.json");
    assert_eq!(s.embedder.as_ref().unwrap().path, "models/all-MiniLM-L6-v2");
    // The `paper` preset, with only the job length overridden (5-s cost-aware shards).
    assert_eq!(s.method, mll_coordinator::spec::MethodPreset::Paper.method());
    let preset = mll_coordinator::spec::ExecutionOptions::for_preset(mll_coordinator::spec::MethodPreset::Paper);
    assert_eq!(s.execution, mll_coordinator::spec::ExecutionOptions { shard_seconds: 5.0, ..preset });
}

#[test]
fn inb_picks_vit_h_14_378_dfn5b() {
    let s = spec();
    let top1: Vec<Option<f64>> = s.hub.iter().map(|m| m.imagenet_top1).collect();
    // The baseline's own code path ...
    let picks = mll_method::inb_models(&top1, 3).unwrap();
    assert_eq!(s.hub[picks[0]].key, "ViT-H-14-378-quickgelu/dfn5b");
    // ... and a direct check: highest imagenet_top1, ties by hub order.
    let mut best = 0;
    for (i, v) in top1.iter().enumerate() {
        if v.unwrap() > top1[best].unwrap() {
            best = i;
        }
    }
    assert_eq!(s.hub[best].key, "ViT-H-14-378-quickgelu/dfn5b");
    // k = 3: the next two by ImageNet top-1.
    let keys: Vec<&str> = picks.iter().map(|&i| s.hub[i].key.as_str()).collect();
    assert_eq!(keys, ["ViT-H-14-378-quickgelu/dfn5b", "EVA02-E-14/laion2b_s4b_b115k", "ViT-L-14-quickgelu/dfn2b"]);
}

/// The committed spec is what scripts/write-mll-spec writes from the
/// reference files (shared/reference beside the checkout; a missing one fails).
#[test]
fn spec_is_up_to_date_with_its_generator() {
    let reference = repo().join("../shared/reference/mll");
    assert!(
        reference.join("pretrained.json").is_file(),
        "{} is absent: shared/reference must sit beside the repository",
        reference.display()
    );
    let out = std::process::Command::new("python3")
        .arg(repo().join("scripts/configs/write_mll_spec.py"))
        .arg("--reference")
        .arg(&reference)
        .arg("--check")
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
