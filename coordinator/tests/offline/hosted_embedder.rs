//! A toy run whose caption embeddings come from a real OpenAI-compatible
//! embedding server (`[embedder] kind = "openai"`, infinity-emb serving the
//! same all-MiniLM-L6-v2 folder) selects what the in-process MiniLM's run
//! selects: the same matched nodes and per-class picks for every class, the
//! same MLL reuse accuracies.
//!
//! Ignored in a plain `cargo test`: `scripts/check-hosted-embedder` starts the
//! server and runs it with MLL_TEST_EMBEDDING_URL and MLL_TEST_EMBEDDING_MODEL.

use crate::adapt::hub;
use crate::modelgpt::{dataset, toy_spec_text};
use serde_json::Value;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/check-hosted-embedder"))
}

#[test]
#[ignore = "needs an OpenAI-compatible embedding server: scripts/check-hosted-embedder"]
fn a_toy_run_through_the_embedding_server_selects_the_same_models() {
    let (h, _guard) = hub();
    let (url, model) = (env("MLL_TEST_EMBEDDING_URL"), env("MLL_TEST_EMBEDDING_MODEL"));
    let spec_text = toy_spec_text(|t| {
        t.replace(
            "[embedder]\npath = \"models/all-MiniLM-L6-v2\"\n",
            &format!("[embedder]\nkind = \"openai\"\nbase_url = \"{url}\"\nmodel = \"{model}\"\nrequests_per_minute = 0\n"),
        )
    });
    assert!(spec_text.contains("kind = \"openai\""), "the toy spec's [embedder] changed; update this test");
    let spec = h.env.write_spec("toy-hosted.toml", &spec_text);
    let out = h.env.path("hosted-run");
    let t0 = std::time::Instant::now();
    h.env.coordinator_ok(&["run", "--local", "--benchmark", spec.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    eprintln!("toy run through the embedding server: {:.1} s", t0.elapsed().as_secs_f64());
    let hosted: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let local: Value = serde_json::from_slice(&std::fs::read(h.dir().join("report.json")).unwrap()).unwrap();
    let mut classes = 0;
    for d in local["datasets"].as_array().unwrap() {
        let name = d["name"].as_str().unwrap();
        let other = dataset(&hosted, name);
        let (a, b) = (d["class_selections"].as_array().unwrap(), other["class_selections"].as_array().unwrap());
        assert_eq!(a.len(), b.len(), "{name}");
        assert!(!a.is_empty(), "{name}: MLL did not run");
        for (x, y) in a.iter().zip(b) {
            let ids = |v: &Value| v["matched_nodes"].as_array().unwrap().iter().map(|n| n["id"].clone()).collect::<Vec<_>>();
            assert_eq!(ids(x), ids(y), "{name} {}: matched nodes differ", x["class"]);
            assert_eq!(x["picks"], y["picks"], "{name} {}: picks differ", x["class"]);
            classes += 1;
        }
        for k in ["mll_k1", "mll_k3"] {
            assert_eq!(d["selections"][k]["accuracy"], other["selections"][k]["accuracy"], "{name} {k}");
        }
    }
    eprintln!("toy run through the embedding server: the same selections for all {classes} classes");
}
