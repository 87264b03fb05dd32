//! Throughput of the caption embedder on CPU, Rust (this crate) against
//! sentence-transformers on the same texts and thread count. Ignored by
//! default (it takes tens of seconds); run it as docs/benchmarks.md says:
//!
//!   source scripts/env.sh
//!   cargo test -p mll-worker --test engine minilm_bench -- --ignored --nocapture

use mll_worker::engine::minilm::{MiniLm, MiniLmError, DEFAULT_BATCH_SIZE};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use tch::Device;

const THREADS: i32 = 2;
const N: usize = 1024;

fn python() -> PathBuf {
    match std::env::var_os("MLL_VENV") {
        Some(v) => Path::new(&v).join("bin").join("python"),
        None => PathBuf::from("python3"),
    }
}

/// Caption-like texts (8–20 word pieces), deterministic.
fn captions() -> Vec<String> {
    let adj = ["small", "red", "striped", "fluffy", "rusty", "tall", "wooden", "shiny", "old", "wet", "tiny"];
    let noun = ["bird", "cat", "truck", "flower", "bridge", "guitar", "mushroom", "boat", "lamp", "dog", "tree", "chair", "kite"];
    let place = ["on a branch", "in the snow", "next to a river", "at night", "on a wooden table", "in a busy street", "under a clear sky"];
    (0..N)
        .map(|i| {
            format!(
                "a photo of a {} {} {}, taken {}",
                adj[i % adj.len()],
                noun[(i / 3) % noun.len()],
                place[(i / 7) % place.len()],
                if i % 2 == 0 { "outdoors" } else { "with a phone camera" }
            )
        })
        .collect()
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn minilm_throughput_cpu() {
    tch::set_num_threads(THREADS);
    let out =
        Command::new(python()).arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/export/embedder_folder.py")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let folder = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let texts = captions();

    let t0 = Instant::now();
    let model = MiniLm::load(&folder, Device::Cpu).unwrap();
    let load_s = t0.elapsed().as_secs_f64();
    let _warm_up = model.embed_batch(&texts[..DEFAULT_BATCH_SIZE]).unwrap();
    let t0 = Instant::now();
    let emb = model.embed_all::<_, MiniLmError>(&texts, DEFAULT_BATCH_SIZE, |_| Ok(())).unwrap();
    let rust_s = t0.elapsed().as_secs_f64();
    assert_eq!(emb.size(), vec![N as i64, 384]);

    // Same texts, batch size and thread count in sentence-transformers.
    let py = r#"
import json, os, sys, time
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
torch.set_num_threads(int(sys.argv[2]))
from sentence_transformers import SentenceTransformer
m = SentenceTransformer(sys.argv[1], device="cpu")
texts = json.load(sys.stdin)
m.encode(texts[:64], batch_size=64, normalize_embeddings=True)
t = time.perf_counter()
m.encode(texts, batch_size=64, normalize_embeddings=True)
print(time.perf_counter() - t)
"#;
    let mut child = Command::new(python())
        .args(["-c", py, folder.to_str().unwrap(), &THREADS.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(serde_json::to_string(&texts).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let py_s: f64 = String::from_utf8(out.stdout).unwrap().trim().parse().unwrap();

    println!(
        "minilm cpu threads={THREADS} n={N} batch={DEFAULT_BATCH_SIZE}: rust {:.0} sentences/s ({rust_s:.2} s, load {load_s:.2} s), \
         sentence-transformers {:.0} sentences/s ({py_s:.2} s), ratio {:.2}",
        N as f64 / rust_s,
        N as f64 / py_s,
        py_s / rust_s
    );
}
