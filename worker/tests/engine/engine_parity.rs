//! The engine against Python open_clip: token ids, embeddings of exported
//! real architectures (seeded random weights), and the loader's failure modes.
//!
//! Needs the project venv (`source scripts/env.sh`). Exports are cached under
//! $MLL_CACHE_DIR/engine-tests, keyed by the export scripts' contents, so only
//! the first run pays for them (about a minute per model on 2 cores).

use mll_worker::engine::artifact::{META_FILE, MODULE_FILE, TOKENIZER_FILE};
use mll_worker::engine::{build_classifier, ClassifierProtocol, EngineError, LoadedModel, ModelCache, ModelMeta, Precision, TextTokenizer};
use mll_worker::executor::ExecError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use tch::{Device, Kind, Tensor};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn python() -> PathBuf {
    let venv = std::env::var("MLL_VENV")
        .expect("MLL_VENV is not set: run `source scripts/env.sh` before cargo test (the engine tests need open_clip)");
    PathBuf::from(venv).join("bin/python")
}

fn scripts_hash() -> String {
    let mut h = Sha256::new();
    for f in ["export/export_open_clip.py", "export/build_clip_tokenizer.py", "export/engine_test_refs.py"] {
        h.update(std::fs::read(repo().join("scripts").join(f)).unwrap());
    }
    hex::encode(&h.finalize()[..6])
}

fn cache_root() -> PathBuf {
    let base = std::env::var("MLL_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
    let dir = base.join("engine-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_py(args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = Command::new(python());
    cmd.args(args).current_dir(repo()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
    if let Some(s) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Builds `key` once (into a temporary sibling, then renamed) across test
/// threads and test processes.
fn cached_dir(key: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let dir = cache_root().join(key);
    if dir.join(".done").exists() {
        return dir;
    }
    let tmp = cache_root().join(format!("{key}.tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    build(&tmp);
    std::fs::write(tmp.join(".done"), b"").unwrap();
    if std::fs::rename(&tmp, &dir).is_err() {
        // Someone else finished first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(dir.join(".done").exists());
    dir
}

fn clip_tokenizer() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = cached_dir(&format!("clip-tokenizer-77-{}", scripts_hash()), |d| {
            let out = d.join(TOKENIZER_FILE);
            run_py(&["scripts/export/engine_test_refs.py", "clip-tokenizer", out.to_str().unwrap()], None);
        });
        dir.join(TOKENIZER_FILE)
    })
    .clone()
}

fn clip_meta(image_size: u32, embed_dim: usize, ctx: usize) -> ModelMeta {
    let json = serde_json::json!({
        "format_version": 1, "model_key": "test/tiny", "image_size": image_size,
        "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
        "resize_mode": "shortest", "interpolation": "bicubic", "context_length": ctx, "pad_id": 0,
        "tokenizer": "clip_bpe", "logit_scale": 100.0, "embed_dim": embed_dim,
        "exporter": {"random_weights": true}
    });
    serde_json::from_value(json).unwrap()
}

// ---------------------------------------------------------------- tokenizer

const TRICKY: &[&str] = &[
    "a photo of a dog.",
    "",
    "   ",
    "A PHOTO of   a CAT!!!   ",
    "it's a bird's nest, isn't it? They'll've GONE; I'M here & you'd know",
    "naïve café résumé Ærøskøbing straße",
    "e\u{301}cole (decomposed accent)",
    "日本語のテキスト 中文 한국어 العربية ไทย",
    "emoji 🐶🐱 and 👩\u{200d}👩\u{200d}👧 family 👍🏽",
    "numbers 123 4.56 7,890 1st 2nd ½ ²",
    "html &amp; &lt;tag&gt; &quot;quoted&quot; &#39;apos&#39; &#x1F600; &nbsp;space &copy;",
    "double escaped &amp;amp; and &amp;lt;b&amp;gt;",
    "no semicolon &amp &lt 3 and this&not that",
    "refs &notit; &EACUTE;TAT &#128; &#0; &#xD800; &#1114112; &#65535; &bogus; &#x;",
    "terminal \u{1b}[1;31mred\u{1b}[0m and bell\u{7} and c1\u{85}ellipsis \u{92}quote",
    "a <b>bold</b> &amp; tag",
    "\u{201c}curly\u{201d} \u{2018}quotes\u{2019} \u{2014} dashes \u{2013} \u{2026}",
    "ligatures \u{fb01}sh \u{fb02}ower, full-width \u{ff21}\u{ff22}\u{ff23} \u{ff11}\u{ff12}",
    "tabs\tand\nnewlines\r\nand\u{a0}nbsp\u{3000}ideographic\u{1c}sep",
    "ΟΔΟΣ Σ İstanbul ǅ",
    "hello <start_of_text> world <end_of_text>",
    "zero\u{200b}width and soft\u{ad}hyphen",
    "punctuation!?.,;:()[]{}<>@#$%^&*-_=+|\\/~`'\"",
    "C++ C# .NET node.js e-mail u.s.a. o'clock",
    "a very long prompt that keeps going and going with many words so that it is certainly \
     longer than the seventy seven tokens of the context window of a CLIP text tower, \
     because long class descriptions happen in the graph nodes' definitions of WordNet \
     synsets, and we must truncate them exactly like open_clip does, forcing the last id \
     to be the end of text token instead of dropping it on the floor like a naive cut",
];

#[test]
fn token_ids_match_open_clip_on_tricky_strings() {
    let input = serde_json::json!({ "texts": TRICKY }).to_string();
    let out = run_py(&["scripts/export/engine_test_refs.py", "tokens", "ViT-B-32"], Some(&input));
    let refs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ctx = refs["context_length"].as_u64().unwrap() as usize;
    assert_eq!(ctx, 77);
    let tok = TextTokenizer::from_file(&clip_tokenizer(), &clip_meta(224, 512, ctx)).unwrap();
    let mut bad = vec![];
    for (i, text) in TRICKY.iter().enumerate() {
        let want: Vec<i64> = serde_json::from_value(refs["ids"][i].clone()).unwrap();
        let got = tok.encode(text).unwrap();
        assert_eq!(got.len(), ctx);
        if got != want {
            let cleaned_py = refs["cleaned"][i].as_str().unwrap();
            let cleaned_rs = mll_worker::engine::text_clean::clean_text(text, mll_worker::engine::TextClean::Lower);
            bad.push(format!(
                "{text:?}\n  python clean {cleaned_py:?}\n  rust   clean {cleaned_rs:?}\n  python {want:?}\n  rust   {got:?}"
            ));
        }
    }
    assert!(bad.is_empty(), "{} of {} strings differ:\n{}", bad.len(), TRICKY.len(), bad.join("\n"));
    // The long text really was truncated with <end_of_text> last.
    let long = tok.encode(TRICKY[TRICKY.len() - 1]).unwrap();
    assert_eq!(long[ctx - 1], 49407);
}

#[test]
fn truncation_honours_a_shorter_context() {
    // CoCa towers use 76: the same rule with another length.
    let tok = TextTokenizer::from_file(&clip_tokenizer(), &clip_meta(224, 512, 76)).unwrap();
    let ids = tok.encode(&"word ".repeat(200)).unwrap();
    assert_eq!(ids.len(), 76);
    assert_eq!((ids[0], ids[75]), (49406, 49407));
    let ids = tok.encode("dog").unwrap();
    assert_eq!(&ids[..4], &[49406, 1929, 49407, 0]);
}

// ---------------------------------------------------------------- embeddings

fn exported(model: &str, tag: &str) -> PathBuf {
    let key = format!("{model}-{tag}-seed0-{}", scripts_hash());
    cached_dir(&key, |d| {
        let parity = d.join("parity.safetensors");
        run_py(
            &[
                "scripts/export/export_open_clip.py",
                model,
                tag,
                d.to_str().unwrap(),
                "--random-weights",
                "--seed",
                "0",
                "--parity-out",
                parity.to_str().unwrap(),
            ],
            None,
        );
    })
}

fn min_row_cosine(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    Tensor::cosine_similarity(&a.to_kind(Kind::Double), &b.to_kind(Kind::Double), 1, 1e-12).min().double_value(&[])
}

fn check_parity(model: &str, tag: &str) {
    let dir = exported(model, tag);
    let parity = dir.join("parity.safetensors");
    let tensors: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&parity).unwrap().into_iter().collect();
    let bytes = std::fs::read(&parity).unwrap();
    let (_, st_meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let texts: Vec<String> = serde_json::from_str(&st_meta.metadata().as_ref().unwrap()["texts"]).unwrap();

    let m = LoadedModel::load(&dir, Device::Cpu, Precision::Fp32).unwrap();
    let img = m.encode_images(&tensors["images"]).unwrap();
    let cos_img = min_row_cosine(&img, &tensors["image_embeddings"]);
    let txt = m.encode_tokens(&tensors["tokens"]).unwrap();
    let cos_txt = min_row_cosine(&txt, &tensors["text_embeddings"]);
    // The whole text path: Rust cleaning + tokenizer + module.
    let tokens = m.tokenizer().tokenize(&texts).unwrap();
    assert!(tokens.equal(&tensors["tokens"]), "{model}: Rust token ids differ from open_clip's");
    let txt2 = m.encode_texts(&texts).unwrap();
    let cos_txt2 = min_row_cosine(&txt2, &tensors["text_embeddings"]);
    println!("{model}/{tag}: min cosine image {cos_img:.7}, text {cos_txt:.7}, text from strings {cos_txt2:.7}");
    assert!(cos_img >= 0.9999, "{model}: image cosine {cos_img}");
    assert!(cos_txt >= 0.9999, "{model}: text cosine {cos_txt}");
    assert!(cos_txt2 >= 0.9999, "{model}: text-from-strings cosine {cos_txt2}");
    assert_eq!(img.size()[1] as usize, m.embed_dim());
}

#[test]
fn vit_b_32_embeddings_match_open_clip() {
    check_parity("ViT-B-32", "openai");
}

#[test]
fn rn50_embeddings_match_open_clip() {
    check_parity("RN50", "openai");
}

// ---------------------------------------------------------------- loader, cache, classifier

fn tiny_modules() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        cached_dir(&format!("tiny-module-{}", scripts_hash()), |d| {
            run_py(&["scripts/export/engine_test_refs.py", "tiny-module", d.to_str().unwrap()], None);
        })
    })
    .clone()
}

/// An artifact folder around the tiny traced module (8×8 images, D = 16).
fn tiny_artifact(module: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MODULE_FILE), module).unwrap();
    std::fs::write(dir.path().join(META_FILE), serde_json::to_string(&clip_meta(8, 16, 77)).unwrap()).unwrap();
    std::fs::copy(clip_tokenizer(), dir.path().join(TOKENIZER_FILE)).unwrap();
    dir
}

fn tiny_bytes() -> Vec<u8> {
    std::fs::read(tiny_modules().join("module.pt")).unwrap()
}

#[test]
fn a_tiny_artifact_loads_and_encodes() {
    let a = tiny_artifact(&tiny_bytes());
    let m = LoadedModel::load(a.path(), Device::Cpu, Precision::Fp16).unwrap();
    assert_eq!(m.precision(), Precision::Fp32, "no autocast on the CPU");
    let img = m.encode_images(&Tensor::randn([3, 3, 8, 8], (Kind::Float, Device::Cpu))).unwrap();
    assert_eq!(img.size(), vec![3, 16]);
    let norms = img.norm_scalaropt_dim(2, 1, false);
    assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5);
    let txt = m.encode_texts(&["a dog", "a cat"]).unwrap();
    assert_eq!(txt.size(), vec![2, 16]);
    let empty = m.encode_images(&Tensor::zeros([0, 3, 8, 8], (Kind::Float, Device::Cpu))).unwrap();
    assert_eq!(empty.size(), vec![0, 16]);
    let e = m.encode_images(&Tensor::zeros([1, 3, 9, 9], (Kind::Float, Device::Cpu))).unwrap_err();
    assert!(matches!(e, EngineError::InvalidInput(_)), "{e}");
    let e = m.encode_tokens(&Tensor::zeros([1, 10], (Kind::Int64, Device::Cpu))).unwrap_err();
    assert!(e.to_string().contains("[B, 77]"), "{e}");
}

#[test]
fn corrupt_or_missing_modules_are_errors_not_crashes() {
    let good = tiny_bytes();
    for (what, bytes) in
        [("truncated", good[..good.len() / 2].to_vec()), ("garbage", b"PK\x03\x04 this is not a torchscript archive".to_vec())]
    {
        let a = tiny_artifact(&bytes);
        let e = LoadedModel::load(a.path(), Device::Cpu, Precision::Fp32).unwrap_err();
        assert!(matches!(e, EngineError::Load { .. }), "{what}: {e}");
        let msg = e.to_string();
        assert!(msg.contains("module.pt") && msg.contains("re-export"), "{what}: {msg}");
        // The executor turns it into a permanent job failure.
        assert!(ExecError::from(e).is_permanent(), "{what}");
    }
    let a = tiny_artifact(&std::fs::read(tiny_modules().join("no_text.pt")).unwrap());
    let e = LoadedModel::load(a.path(), Device::Cpu, Precision::Fp32).unwrap_err();
    assert!(e.to_string().contains("encode_text"), "{e}");

    let a = tiny_artifact(&good);
    std::fs::remove_file(a.path().join(MODULE_FILE)).unwrap();
    let e = LoadedModel::load(a.path(), Device::Cpu, Precision::Fp32).unwrap_err();
    assert!(matches!(e, EngineError::ArtifactRead { .. }) && e.to_string().contains("module.pt"), "{e}");
}

#[test]
fn the_cache_hits_and_evicts_by_size() {
    let good = tiny_bytes();
    let (a, b) = (tiny_artifact(&good), tiny_artifact(&good));
    let size = good.len() as u64;
    let hits = || mll_common::telemetry::metrics().worker_model_cache.with_label_values(&["hit"]).get();
    let cache = ModelCache::new(Device::Cpu, Precision::Fp32, size + size / 2);
    let m1 = cache.get(a.path()).unwrap();
    let h0 = hits();
    let m2 = cache.get(a.path()).unwrap();
    assert!(Arc::ptr_eq(&m1, &m2));
    assert!(hits() > h0);
    cache.get(b.path()).unwrap();
    assert_eq!(cache.contents().len(), 1, "only one model fits the budget");
    assert_eq!(cache.resident_bytes(), size);
    let m3 = cache.get(a.path()).unwrap();
    assert!(!Arc::ptr_eq(&m1, &m3), "a was evicted and reloaded");
    // A corrupt artifact fails without poisoning the cache.
    let bad = tiny_artifact(&good[..100]);
    assert!(cache.get(bad.path()).is_err());
    assert!(cache.get(a.path()).is_ok());
}

#[test]
fn classifiers_follow_every_protocol() {
    let a = tiny_artifact(&tiny_bytes());
    let m = LoadedModel::load(a.path(), Device::Cpu, Precision::Fp32).unwrap();
    let classes = ["dog", "cat", "golden retriever"];
    let templates = ["a photo of a {c}.", "itap of the {c}.", "a {c} in the wild"];
    let cb = build_classifier(&m, &classes, &templates, ClassifierProtocol::ClipBenchmark).unwrap();
    assert_eq!(cb.size(), vec![3, 16]);
    // By hand: per class, normalised prompt embeddings, mean, re-normalise.
    for (i, c) in classes.iter().enumerate() {
        let prompts: Vec<String> = templates.iter().map(|t| t.replace("{c}", c)).collect();
        let e = m.encode_texts(&prompts).unwrap().mean_dim(0, false, Kind::Float);
        let e = &e / e.norm();
        assert!((cb.get(i as i64) - e).abs().max().double_value(&[]) < 1e-6);
    }
    let mll = build_classifier(&m, &classes, &templates, ClassifierProtocol::Mll).unwrap();
    let first: Vec<String> = classes.iter().map(|c| format!("a photo of a {c}.")).collect();
    let want = m.encode_texts(&first).unwrap();
    assert!((mll - want).abs().max().double_value(&[]) < 1e-6);
    let none: [&str; 0] = [];
    assert!(build_classifier(&m, &classes, &none, ClassifierProtocol::Mll).is_err());
    // Bare: the class names alone, templates ignored (and not needed).
    let bare = build_classifier(&m, &classes, &none, ClassifierProtocol::Bare).unwrap();
    let want = m.encode_texts(&classes).unwrap();
    assert!((&bare - want).abs().max().double_value(&[]) < 1e-6);
    let with_templates = build_classifier(&m, &classes, &templates, ClassifierProtocol::Bare).unwrap();
    assert!((bare - with_templates).abs().max().double_value(&[]) < 1e-9);
}
