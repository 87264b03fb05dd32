//! The smoke-test dataset end to end: scikit-learn's digits (real images)
//! prepared by scripts/prepare-data into CLIP_benchmark WebDataset shards, then
//! `worker eval` (the binary) on them with a tiny random model: the worker reads
//! every shard, all 1,797 samples, with the labels scikit-learn gives.

use crate::support;

use std::path::Path;
use std::process::Command;

#[test]
fn worker_eval_reads_the_prepared_digits() {
    let dir = tempfile::tempdir().unwrap();
    let root = support::repo_root();
    support::run_python(&[
        root.join("scripts/data/prepare.py").to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
        "--only",
        "digits",
        "--offline",
        "--no-progress",
        "--shard-size",
        "500",
    ]);
    let model = dir.path().join("models/tiny");
    support::run_python(&[root.join("scripts/export/tests/tiny_model.py").to_str().unwrap(), model.to_str().unwrap()]);
    let dataset = dir.path().join("datasets/digits/all");
    assert_eq!(std::fs::read_to_string(dataset.join("nshards.txt")).unwrap().trim(), "4");

    let out = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["eval", "--model", model.to_str().unwrap(), "--dataset", dataset.to_str().unwrap()])
        .args(["--json", "--device", "cpu", "--decode-threads", "2", "--batch-size", "128"])
        .env_remove("MLL_CONFIG")
        .output()
        .expect("run worker eval");
    assert!(out.status.success(), "worker eval failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("worker eval --json prints JSON");
    assert_eq!(report["images"], 1797);
    let names: Vec<&str> = report["classes"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    let per_class: Vec<u64> = report["classes"].as_array().unwrap().iter().map(|c| c["n"].as_u64().unwrap()).collect();
    let want = support::run_python(&[
        "-c",
        "from sklearn.datasets import load_digits; import numpy; print(' '.join(map(str, numpy.bincount(load_digits().target))))",
    ]);
    let want: Vec<u64> = want.split_whitespace().map(|v| v.parse().unwrap()).collect();
    assert_eq!(per_class, want);
    assert!(Path::new(&dataset.join("classnames.txt")).is_file());
}
