//! Model placement on the real cluster: the toy hub (10 models) through
//! RabbitMQ and Redis with 3 worker processes. Each worker logs every model it
//! loads ("model loaded", with its bytes); the run must load each model on
//! few workers (at most M + W loads in all, where placement that ignores
//! models gives about W × M) and give local mode's report byte for byte.
//! (Its own test binary: the load count depends on timing, and the cluster
//! binary's other tests, run side by side, would crowd its three workers.)

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use support::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The text without its ANSI colour sequences.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// (loads, bytes) per model key from one worker's log.
fn loads_in(log: &str) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in plain(log).lines().filter(|l| l.contains("model loaded")) {
        let field =
            |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))).map(|v| v.trim_matches('"').to_string());
        let model = field("model").unwrap_or_else(|| panic!("a 'model loaded' line without model=: {line}"));
        let bytes: u64 = field("bytes").and_then(|b| b.parse().ok()).unwrap_or(0);
        let e = out.entry(model).or_default();
        e.0 += 1;
        e.1 += bytes;
    }
    out
}

#[test]
fn toy_hub_on_three_workers_loads_each_model_on_few_workers() {
    let spec = repo().join("configs/benchmarks/toy.toml");
    let reference = Cluster::new("placement-local");
    let local = reference.path("local");
    reference.coordinator_ok(&["run", "--local", "--benchmark", spec.to_str().unwrap(), "--out", local.to_str().unwrap()]);

    let mut c = Cluster::new("placement");
    c.env.insert("MLL__DATA__ROOT".into(), repo().join("out/toy-world").display().to_string());
    const W: usize = 3;
    let mut workers: Vec<_> = (0..W).map(|i| c.spawn_worker(&i.to_string())).collect();
    let out = c.path("cluster");
    c.coordinator_ok(&["submit", "--benchmark", spec.to_str().unwrap(), "--wait", "--out", out.to_str().unwrap()]);
    for w in &mut workers {
        kill9(w);
    }
    assert_eq!(
        std::fs::read(out.join("report.json")).unwrap(),
        std::fs::read(local.join("report.json")).unwrap(),
        "cluster and local reports differ"
    );

    let models = 10;
    let (mut loads, mut bytes) = (0u64, 0u64);
    for i in 0..W {
        let log = std::fs::read_to_string(c.path(&format!("worker-{i}.log"))).unwrap();
        let per = loads_in(&log);
        let (l, b): (u64, u64) = per.values().fold((0, 0), |(l, b), (x, y)| (l + x, b + y));
        eprintln!("placement: worker {i}: {l} loads, {b} bytes, models {:?}", per.keys().collect::<Vec<_>>());
        loads += l;
        bytes += b;
    }
    eprintln!("placement: {W} workers, {models} models: {loads} loads, {bytes} bytes loaded in all");
    assert!(loads as usize <= models + W, "{loads} model loads for {models} models on {W} workers (want <= M + W)\n{}", c.logs());
}
