//! Label and evaluate executors on real jobs with the random-weights ViT-B-32
//! export: artifact layouts (docs/formats.md), shard slicing, and the errors a
//! missing model gives.

use crate::support;

use mll_common::artifact::ArtifactStore;
use mll_common::job::{DatasetFormat, DatasetRef, EvaluateJob, LabelJob, ModelRef, PromptProtocol, Shard};
use mll_common::{Job, JobId, JobOutput, JobPayload, RunId};
use mll_worker::engine::{ModelCache, Precision};
use mll_worker::executor::{ExecContext, Executor};
use mll_worker::executors::evaluate::EvaluateExecutor;
use mll_worker::executors::label::LabelExecutor;
use std::path::Path;
use std::sync::Arc;

fn model_dir() -> std::path::PathBuf {
    let cache = std::env::var("MLL_CACHE_DIR").expect("source scripts/env.sh");
    let dir = Path::new(&cache).join("test-models/ViT-B-32-random-s0");
    if !dir.join("model.json").exists() {
        let script = support::repo_root().join("scripts/export/export_open_clip.py");
        let tmp =
            Path::new(&cache).join(format!("test-models/ViT-B-32-random-s0.tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
        support::run_python(&[script.to_str().unwrap(), "ViT-B-32", "openai", tmp.to_str().unwrap(), "--random-weights", "--seed", "0"]);
        let _ = std::fs::rename(&tmp, &dir);
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

fn job(payload: JobPayload) -> Job {
    let run = RunId::new("test").unwrap();
    Job { id: JobId::derive(&run, &["x"]), run, payload }
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn i64s(b: &[u8]) -> Vec<i64> {
    b.chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn definition(node: &str) -> String {
    format!("the definition of a {node}, a thing unlike the others")
}

/// Data root with the model linked in, a 3-node graph with 5 images, and a
/// 3-class ImageFolder.
fn data_root(root: &Path) {
    std::os::unix::fs::symlink(model_dir(), root.join("model")).unwrap();
    let g = root.join("graph");
    let mut images = Vec::new();
    for i in 0..5u32 {
        let p = format!("images/{i}.png");
        std::fs::create_dir_all(g.join("images")).unwrap();
        image::RgbImage::from_fn(64 + i * 13, 48, |x, y| image::Rgb([(x * 3 + i * 40) as u8, (y * 5) as u8, 90])).save(g.join(&p)).unwrap();
        images.push(serde_json::json!({"path": p, "node": (i % 3)}));
    }
    let nodes: Vec<_> = ["animal", "dog", "cat"]
        .iter()
        .map(|n| serde_json::json!({"id": n, "lemma": n, "definition": definition(n), "parents": [], "text": format!("{n}, which is a thing"), "captions": []}))
        .collect();
    std::fs::write(g.join("graph.json"), serde_json::json!({"format_version": 1, "seed": 0, "nodes": nodes, "images": images}).to_string())
        .unwrap();
    for (c, name) in ["ant", "bee", "cow"].iter().enumerate() {
        std::fs::create_dir_all(root.join("ds").join(name)).unwrap();
        for i in 0..2u32 {
            image::RgbImage::from_fn(50, 40 + i, |x, _| image::Rgb([(x * 5) as u8, (c * 80) as u8, 10]))
                .save(root.join("ds").join(name).join(format!("{i}.png")))
                .unwrap();
        }
    }
}

#[test]
fn label_and_evaluate_jobs_write_the_documented_artifacts() {
    let root = tempfile::tempdir().unwrap();
    let arts = tempfile::tempdir().unwrap();
    data_root(root.path());
    let ctx = ExecContext::new(ArtifactStore::new(arts.path()), root.path().to_path_buf());
    // scripts/gpu-check runs this test on the GPU (MLL_TEST_DEVICE=cuda, fp16 autocast).
    let (device, precision) = match std::env::var("MLL_TEST_DEVICE").as_deref() {
        Ok("cuda") => (tch::Device::Cuda(0), Precision::Fp16),
        _ => (tch::Device::Cpu, Precision::Fp32),
    };
    let models = Arc::new(ModelCache::new(device, precision, u64::MAX));
    let model = ModelRef { key: "ViT-B-32/random".into(), artifact: "model".into() };

    let label = LabelExecutor::new(models.clone(), 2, 2).unwrap();
    let lj = LabelJob {
        model: model.clone(),
        graph: "graph/graph.json".into(),
        graph_digest: String::new(),
        shard: Shard { index: 0, count: 2, start: 1, end: 4 },
        encode_node_texts: true,
        top_nodes: 2,
        definition_only: false,
    };
    let JobOutput::Label(out) = label.execute(&job(JobPayload::Label(lj.clone())), &ctx).unwrap() else { panic!() };
    assert_eq!(out.count, 3);
    let bytes = ctx.artifacts.get(&out.images).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("image_embeddings").unwrap().shape(), &[3, 512]);
    assert_eq!(i64s(st.tensor("nodes").unwrap().data()), vec![1, 2, 0]);
    for row in f32s(st.tensor("image_embeddings").unwrap().data()).chunks(512) {
        let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "row norm {norm}");
    }
    let texts = ctx.artifacts.get(out.node_texts.as_ref().unwrap()).unwrap();
    let st = safetensors::SafeTensors::deserialize(&texts).unwrap();
    assert_eq!(st.tensor("text_embeddings").unwrap().shape(), &[3, 512]);

    // Each image's 2 best nodes, best first, are the order of its cosines with the node texts.
    let node_texts = f32s(st.tensor("text_embeddings").unwrap().data());
    let st_images = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let top = st_images.tensor("top_nodes").unwrap();
    assert_eq!(top.shape(), &[3, 2]);
    assert_eq!(top.dtype(), safetensors::Dtype::I32);
    let top: Vec<i32> = top.data().chunks(4).map(|b| i32::from_le_bytes(b.try_into().unwrap())).collect();
    let embeddings = f32s(st_images.tensor("image_embeddings").unwrap().data());
    for (i, img) in embeddings.chunks(512).enumerate() {
        let cos: Vec<f32> = node_texts.chunks(512).map(|t| t.iter().zip(img).map(|(a, b)| a * b).sum()).collect();
        let mut order: Vec<usize> = (0..3).collect();
        order.sort_by(|&a, &b| cos[b].total_cmp(&cos[a]).then(a.cmp(&b)));
        assert_eq!(&top[i * 2..i * 2 + 2], &[order[0] as i32, order[1] as i32], "image {i}: cosines {cos:?}");
    }

    // Labelling the same images one shard at a time gives the same embeddings.
    let single = LabelJob { shard: Shard { index: 1, count: 2, start: 2, end: 3 }, encode_node_texts: false, ..lj };
    let JobOutput::Label(one) = label.execute(&job(JobPayload::Label(single)), &ctx).unwrap() else { panic!() };
    assert!(one.node_texts.is_none());
    let a = f32s(safetensors::SafeTensors::deserialize(&bytes).unwrap().tensor("image_embeddings").unwrap().data())[512..1024].to_vec();
    let ob = ctx.artifacts.get(&one.images).unwrap();
    let b = f32s(safetensors::SafeTensors::deserialize(&ob).unwrap().tensor("image_embeddings").unwrap().data());
    let cos: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    assert!(cos > 0.9999, "cosine {cos}");
    // A shard that does not store the node texts still encodes them for its lists.
    let one_top = safetensors::SafeTensors::deserialize(&ob).unwrap().tensor("top_nodes").unwrap().data().to_vec();
    assert_eq!(one_top, safetensors::SafeTensors::deserialize(&bytes).unwrap().tensor("top_nodes").unwrap().data()[8..16].to_vec());

    let eval = EvaluateExecutor::new(models, 4, 2).unwrap();
    let ej = EvaluateJob {
        model: model.clone(),
        dataset: DatasetRef { name: "toy".into(), format: DatasetFormat::ImageFolder, path: "ds".into() },
        shard: Shard { index: 0, count: 1, start: 0, end: 6 },
        classnames: vec!["ant".into(), "bee".into(), "cow".into()].into(),
        templates: vec!["a photo of a {c}.".into()].into(),
        protocol: PromptProtocol::Mll,
        keep_probabilities: true,
        dataset_samples: 6,
    };
    let JobOutput::Evaluate(ev) = eval.execute(&job(JobPayload::Evaluate(ej.clone())), &ctx).unwrap() else { panic!() };
    assert_eq!(ev.counts.n, vec![2, 2, 2]);
    assert_eq!(ev.counts.top5, vec![2, 2, 2], "fewer than 5 classes: every sample is a top-5 hit");
    assert_eq!(ev.protocol, "mll");
    let pb = ctx.artifacts.get(ev.probabilities.as_ref().unwrap()).unwrap();
    let st = safetensors::SafeTensors::deserialize(&pb).unwrap();
    assert_eq!(st.tensor("probs").unwrap().shape(), &[6, 3]);
    assert_eq!(i64s(st.tensor("labels").unwrap().data()), vec![0, 0, 1, 1, 2, 2]);

    // A missing model is permanent and names the path.
    let bad = EvaluateJob { model: ModelRef { key: "x".into(), artifact: "nope".into() }, ..ej };
    match eval.execute(&job(JobPayload::Evaluate(bad)), &ctx) {
        Err(e) if e.is_permanent() => assert!(e.to_string().contains("nope"), "{e}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

/// `definition_only` (method.node_text_definition_only) changes what the
/// label job encodes per node: the definitions alone, not the node texts.
#[test]
fn label_jobs_encode_definitions_only_when_asked() {
    let root = tempfile::tempdir().unwrap();
    let arts = tempfile::tempdir().unwrap();
    data_root(root.path());
    let ctx = ExecContext::new(ArtifactStore::new(arts.path()), root.path().to_path_buf());
    let models = Arc::new(ModelCache::new(tch::Device::Cpu, Precision::Fp32, u64::MAX));
    let label = LabelExecutor::new(models.clone(), 2, 2).unwrap();
    let model = ModelRef { key: "ViT-B-32/random".into(), artifact: "model".into() };
    let node_texts = |definition_only: bool| -> Vec<f32> {
        let lj = LabelJob {
            model: model.clone(),
            graph: "graph/graph.json".into(),
            graph_digest: String::new(),
            shard: Shard { index: 0, count: 1, start: 0, end: 2 },
            encode_node_texts: true,
            top_nodes: 0,
            definition_only,
        };
        let JobOutput::Label(out) = label.execute(&job(JobPayload::Label(lj)), &ctx).unwrap() else { panic!() };
        let bytes = ctx.artifacts.get(out.node_texts.as_ref().unwrap()).unwrap();
        f32s(safetensors::SafeTensors::deserialize(&bytes).unwrap().tensor("text_embeddings").unwrap().data())
    };
    let m = models.get(model_dir()).unwrap();
    let encode = |texts: Vec<String>| -> Vec<f32> {
        Vec::<f32>::try_from(m.encode_texts(&texts).unwrap().to_kind(tch::Kind::Float).flatten(0, -1)).unwrap()
    };
    let names = ["animal", "dog", "cat"];
    let want_defs = encode(names.iter().map(|n| definition(n)).collect());
    let want_texts = encode(names.iter().map(|n| format!("{n}, which is a thing")).collect());
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
    let defs = node_texts(true);
    let texts = node_texts(false);
    assert!(close(&defs, &want_defs), "definition_only must encode the definitions");
    assert!(close(&texts, &want_texts), "by default the node texts are encoded");
    assert!(!close(&defs, &texts), "the two node texts must differ for this test to mean anything");
}
