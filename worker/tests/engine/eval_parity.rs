//! `worker eval` against the same computation in Python (torch.jit-loaded
//! module.pt + open_clip's transform and tokenizer + CLIP_benchmark's
//! classifier): per-class n / top-1 / top-5 must be equal.
//!
//! Images are generated at exactly the model's input size, as PNG, so both
//! sides feed bit-identical tensors (the resize path is covered, to its 5/255
//! tolerance, by preprocess_parity.rs); what this checks is everything else:
//! dataset order, labels, tokenisation, classifier, batching and counting.

use crate::support;

use mll_common::job::PromptProtocol;
use mll_worker::debug_cmds_eval::{report, EvalArgs};
use std::path::{Path, PathBuf};

const CLASSES: [&str; 7] = ["apple", "bicycle", "castle", "dolphin", "elephant", "forest", "guitar"];
const PER_CLASS: usize = 4;

/// A random-weights ViT-B-32 export, cached across test runs.
fn vit_b_32() -> PathBuf {
    let cache = std::env::var("MLL_CACHE_DIR").expect("MLL_CACHE_DIR is not set: source scripts/env.sh");
    let dir = Path::new(&cache).join("test-models/ViT-B-32-random-s0");
    if dir.join("model.json").exists() {
        return dir;
    }
    let tmp =
        Path::new(&cache).join(format!("test-models/ViT-B-32-random-s0.tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
    let script = support::repo_root().join("scripts/export/export_open_clip.py");
    support::run_python(&[script.to_str().unwrap(), "ViT-B-32", "openai", tmp.to_str().unwrap(), "--random-weights", "--seed", "0"]);
    // Another test may have raced us; either copy is the same export.
    let _ = std::fs::rename(&tmp, &dir);
    let _ = std::fs::remove_dir_all(&tmp);
    dir
}

fn make_dataset_of(dir: &Path, size: u32, classes: &[&str]) {
    for (c, name) in classes.iter().enumerate() {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        for i in 0..PER_CLASS {
            // Class-dependent colour and frequency, sample-dependent phase.
            let (fc, fi) = (c as f32 + 1.0, i as f32);
            let img = image::RgbImage::from_fn(size, size, |x, y| {
                let (x, y) = (x as f32, y as f32);
                image::Rgb([
                    (127.0 + 120.0 * (x * fc / 23.0 + fi).sin()) as u8,
                    (127.0 + 120.0 * (y * fc / 17.0 - fi).cos()) as u8,
                    ((x + y) * fc + 40.0 * fi) as u32 as u8,
                ])
            });
            img.save(dir.join(name).join(format!("{i:02}.png"))).unwrap();
        }
    }
    std::fs::write(dir.join("zeroshot_classification_templates.txt"), "a photo of a {c}.\na blurry photo of the {c}.\n").unwrap();
}

#[test]
fn worker_eval_matches_python_per_class_counts() {
    check_against_python(PromptProtocol::ClipBenchmark, &CLASSES);
}

/// MLL's own class names (its caption keys) as the released reuse.py prompts
/// with them: the bare name, no template.
#[test]
fn bare_protocol_matches_the_released_reuse_code() {
    const MLL_NAMES: [&str; 7] =
        ["0 - zero", "100kph Speed limit", "Apply_Eye_Makeup", "Côte d'Ivoire", "aquarium_fish", "lotus lotus", "pink-yellow dahlia"];
    check_against_python(PromptProtocol::Bare, &MLL_NAMES);
}

fn check_against_python(protocol: PromptProtocol, classes: &[&str]) {
    let model = vit_b_32();
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(model.join("model.json")).unwrap()).unwrap();
    let data = tempfile::tempdir().unwrap();
    make_dataset_of(data.path(), meta["image_size"].as_u64().unwrap() as u32, classes);

    let args = EvalArgs {
        model: model.clone(),
        dataset: data.path().to_path_buf(),
        format: None,
        protocol,
        // Not a divisor of the sample count: the last batch is short.
        batch_size: 5,
        decode_threads: 2,
        device: "cpu".into(),
        precision: "fp32".into(),
        json: true,
        predictions: None,
    };
    let rust = report(&args).unwrap();
    let mut sorted = classes.to_vec();
    sorted.sort();
    assert_eq!(rust.images, (classes.len() * PER_CLASS) as u64);
    assert_eq!(rust.classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), sorted);
    assert_eq!(rust.protocol, protocol.as_str());

    let mode = if protocol == PromptProtocol::Bare { "bare" } else { "templates" };
    let out = support::run_python(&[&support::py_script("eval_ref.py"), model.to_str().unwrap(), data.path().to_str().unwrap(), mode]);
    let py: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    let col = |f: fn(&mll_worker::debug_cmds_eval::ClassReport) -> u64| rust.classes.iter().map(f).collect::<Vec<u64>>();
    let pyv = |k: &str| py[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect::<Vec<u64>>();
    let margin = py["min_margin"].as_f64().unwrap();
    eprintln!("rust top1 {:?} top5 {:?}; python min top-1 margin {margin:.2e}", col(|c| c.top1), col(|c| c.top5));
    assert_eq!(col(|c| c.n), pyv("n"));
    assert_eq!(col(|c| c.top1), pyv("top1"), "top-1 counts differ (python's smallest top-1/top-2 logit gap: {margin:.2e})");
    assert_eq!(col(|c| c.top5), pyv("top5"), "top-5 counts differ");
}
