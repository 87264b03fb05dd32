//! The hosted embedder (`[embedder] kind = "openai"`) against a real,
//! maintained OpenAI-compatible embedding server (infinity-emb) serving the
//! same all-MiniLM-L6-v2 folder: the embed executor's hosted path must give
//! the in-process MiniLM's embeddings (cosine >= 0.9999 per text).
//!
//! Ignored in a plain `cargo test`: `scripts/check-hosted-embedder` installs
//! and starts the server, then runs it with MLL_TEST_EMBEDDING_URL (the API
//! root), MLL_TEST_EMBEDDING_MODEL (the served name) and
//! MLL_TEST_EMBEDDING_FOLDER (the folder it serves).

use mll_common::artifact::ArtifactStore;
use mll_common::job::{EmbedJob, HostedEmbed};
use mll_common::{Job, JobOutput, JobPayload, RunId};
use mll_worker::engine::minilm::MiniLm;
use mll_worker::executor::{ExecContext, Executor};
use mll_worker::executors::embed::EmbedExecutor;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/check-hosted-embedder"))
}

/// Texts like the run's: the toy world's class captions when present, and
/// some edge cases (empty, non-Latin, long).
fn texts() -> Vec<String> {
    let mut t: Vec<String> = ["", "a dog on grass", "東京の夜景", "a photo of the number: \"7\"."].iter().map(|s| s.to_string()).collect();
    t.push("a long description of a freight train, ".repeat(40));
    let captions = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../out/toy-world/captions");
    if let Ok(dir) = std::fs::read_dir(&captions) {
        let mut files: Vec<PathBuf> = dir.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
        files.sort();
        for f in files {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
            for caps in v.as_object().unwrap().values() {
                t.extend(caps.as_array().unwrap().iter().filter_map(|c| c.as_str().map(str::to_string)));
            }
        }
    }
    t
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
#[ignore = "needs an OpenAI-compatible embedding server: scripts/check-hosted-embedder"]
fn hosted_embeddings_equal_the_in_process_minilm() {
    tch::set_num_threads(2);
    let folder = PathBuf::from(env("MLL_TEST_EMBEDDING_FOLDER"));
    let texts = texts();
    let data = tempfile::tempdir().unwrap();
    let artifacts = tempfile::tempdir().unwrap();
    let ctx = ExecContext::new(ArtifactStore::new(artifacts.path()), data.path().to_path_buf());
    let hosted = HostedEmbed {
        base_url: env("MLL_TEST_EMBEDDING_URL"),
        model: env("MLL_TEST_EMBEDDING_MODEL"),
        key_file: None,
        dimensions: None,
        batch: 16,
        requests_per_minute: 0,
    };
    let payload = JobPayload::Embed(EmbedJob {
        embedder: format!("openai:{}", hosted.model),
        source: "test".into(),
        start: 0,
        texts: texts.clone(),
        hosted: Some(hosted),
    });
    let job = Job::new(RunId::new("hosted-test").unwrap(), payload);
    let t0 = std::time::Instant::now();
    let JobOutput::Embed(out) = EmbedExecutor::new(Device::Cpu).execute(&job, &ctx).unwrap() else { panic!("not an embed output") };
    let hosted_seconds = t0.elapsed().as_secs_f64();
    assert_eq!(out.count as usize, texts.len());
    let bytes = ctx.artifacts.get(&out.embeddings).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("embeddings").unwrap();
    assert_eq!(view.shape(), &[texts.len(), 384]);
    let got: Vec<f32> = view.data().chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();

    let local: Tensor = MiniLm::load(&folder, Device::Cpu).unwrap().embed_batch(&texts).unwrap().to_kind(Kind::Float).contiguous();
    let mut flat = vec![0f32; texts.len() * 384];
    local.copy_data(&mut flat, texts.len() * 384);
    let local = flat;
    let mut worst = f64::INFINITY;
    for (i, t) in texts.iter().enumerate() {
        let c = cosine(&got[i * 384..(i + 1) * 384], &local[i * 384..(i + 1) * 384]);
        assert!(
            c >= 0.9999,
            "text {i} ({:?}): cosine {c} < 0.9999 between the server's and the in-process embedding",
            &t[..t.len().min(40)]
        );
        worst = worst.min(c);
    }
    eprintln!(
        "hosted embedder: lowest cosine against the in-process MiniLM {worst:.7} over {} texts ({hosted_seconds:.2} s hosted)",
        texts.len()
    );
    // Different texts stay different (a server answering one vector for all would fail here).
    assert!(cosine(&got[384..768], &got[2 * 384..3 * 384]) < 0.9);
}
