//! The toy world end to end (docs/toy-world.md): real TorchScript models, real image
//! files, the real CLIP tokenizer and the real MiniLM embedder, through local
//! mode twice (byte-identical reports) and through RabbitMQ and Redis with two
//! worker processes (the same report as local mode). The world's structure
//! must make selection matter: MLL beats INB and the hub average on reuse
//! accuracy, and INB on τ5.

use crate::support;

use std::path::PathBuf;
use support::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn summary_value(report: &serde_json::Value, path: &[&str]) -> f64 {
    let mut v = &report["summary"];
    for p in path {
        v = &v[*p];
    }
    v.as_f64().unwrap_or_else(|| panic!("summary.{} missing in {}", path.join("."), report["summary"]))
}

#[test]
fn toy_world_local_twice_and_cluster_give_one_report_where_mll_beats_inb() {
    let spec = repo().join("configs/benchmarks/toy.toml");
    let c = Cluster::new("toy");
    let (a, b) = (c.path("local-a"), c.path("local-b"));
    c.coordinator_ok(&["run", "--local", "--benchmark", spec.to_str().unwrap(), "--out", a.to_str().unwrap(), "--workers", "2"]);
    c.coordinator_ok(&["run", "--local", "--benchmark", spec.to_str().unwrap(), "--out", b.to_str().unwrap()]);
    let ra = std::fs::read(a.join("report.json")).unwrap();
    assert_eq!(ra, std::fs::read(b.join("report.json")).unwrap(), "two local runs differ");
    assert!(std::fs::read_to_string(a.join("report.md")).unwrap().contains("MLL"));

    let report: serde_json::Value = serde_json::from_slice(&ra).unwrap();
    let acc = |m: &str| summary_value(&report, &["selections", m, "accuracy"]);
    let (mll, inb, avg) = (acc("mll_k1"), acc("inb_k1"), acc("hub_average"));
    eprintln!("toy: mll_k1 {mll:.4}, inb_k1 {inb:.4}, hub_average {avg:.4}, mll_k3 {:.4}", acc("mll_k3"));
    assert!(mll > inb, "MLL {mll} should beat INB {inb} on the toy world");
    assert!(mll > avg, "MLL {mll} should beat the hub average {avg}");
    let rank = |m: &str, f: &str| summary_value(&report, &["rankings", m, f]);
    eprintln!(
        "toy: R5 mll {:.4} vs inb {:.4}, tau5 mll {:.4} vs inb {:.4}",
        rank("mll", "r5"),
        rank("inb", "r5"),
        rank("mll", "tau5"),
        rank("inb", "tau5")
    );
    assert!(rank("mll", "tau5") > rank("inb", "tau5"), "MLL's tau5 should beat INB's");
    assert!(rank("mll", "r5") > rank("inb", "r5"), "MLL's R5 should beat INB's");

    // Cluster mode: the same spec through RabbitMQ and Redis with two worker processes.
    let mut env_c = Cluster::new("toyc");
    let data_root = repo().join("out/toy-world");
    env_c.env.insert("MLL__DATA__ROOT".into(), data_root.display().to_string());
    let mut w1 = env_c.spawn_worker("1");
    let mut w2 = env_c.spawn_worker("2");
    let out = env_c.path("cluster");
    env_c.coordinator_ok(&["submit", "--benchmark", spec.to_str().unwrap(), "--wait", "--out", out.to_str().unwrap()]);
    kill9(&mut w1);
    kill9(&mut w2);
    assert_eq!(std::fs::read(out.join("report.json")).unwrap(), ra, "cluster and local reports differ");
}
