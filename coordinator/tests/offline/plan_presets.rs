//! Planning under the method presets: captions through class maps, prompt
//! names, strict captions, definition-only node texts, and `coordinator plan`'s
//! dry run on the paper's spec, with a fake data root whose class names and
//! captions come from the reference folder (../shared/reference or
//! $MLL_REFERENCE; the tests that need it fail without it).

use mll_common::job::{JobPayload, PromptProtocol};
use mll_common::Stage;
use mll_coordinator::captions::ClassMap;
use mll_coordinator::dry_run::{dry_run, render};
use mll_coordinator::plan::{plan_with, PlanError, PlanOptions};
use mll_coordinator::spec::BenchmarkSpec;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn reference() -> PathBuf {
    let p = std::env::var_os("MLL_REFERENCE").map(PathBuf::from).unwrap_or_else(|| repo().join("../shared/reference"));
    assert!(p.join("mll/captions").is_dir(), "reference data not found at {}: set MLL_REFERENCE", p.display());
    p
}

fn mll_spec() -> (PathBuf, BenchmarkSpec) {
    let path = repo().join("configs/benchmarks/mll-49x17.toml");
    let spec = BenchmarkSpec::load(&path).unwrap();
    (path, spec)
}

/// A one-sample WebDataset shard (planning reads headers only).
fn write_shard(dir: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(dir.join("0.tar")).unwrap());
    for (name, data) in [("s0.png", &b"x"[..]), ("s0.cls", &b"0"[..])] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    b.finish().unwrap();
    std::fs::write(dir.join("nshards.txt"), "1\n").unwrap();
}

/// The paper's data root, faked: every dataset folder with its classnames.txt
/// (the class maps' dataset side), MLL's caption files, a 3-node graph, the
/// model folders (empty module.pt and model.json), the embedder's folder and
/// the manifest `scripts/prepare-data` writes.
fn fake_mll_root(root: &Path, spec_path: &Path, spec: &BenchmarkSpec) {
    let reference = reference();
    for m in &spec.hub {
        let dir = root.join(&m.artifact);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("module.pt"), b"").unwrap();
        std::fs::write(dir.join("model.json"), b"{}").unwrap();
    }
    std::fs::create_dir_all(root.join(&spec.embedder.as_ref().unwrap().path)).unwrap();
    let mut manifest = serde_json::Map::new();
    for d in &spec.datasets {
        let folder = root.join(&d.path);
        std::fs::create_dir_all(&folder).unwrap();
        write_shard(&folder);
        let map = ClassMap::read(&spec_path.parent().unwrap().join(d.class_map.as_ref().unwrap())).unwrap();
        let names: Vec<&str> = map.rows.iter().map(|r| r.class.as_str()).collect();
        std::fs::write(folder.join("classnames.txt"), names.join("\n") + "\n").unwrap();
        let caps = root.join(d.captions.as_ref().unwrap());
        std::fs::create_dir_all(caps.parent().unwrap()).unwrap();
        std::fs::copy(reference.join(format!("mll/captions/{}.json", d.name)), caps).unwrap();
        let listing = mll_coordinator::inputs::listing_sha256(&folder).unwrap();
        manifest.insert(d.catalog.clone().unwrap(), serde_json::json!({"path": d.path, "listing_sha256": listing}));
    }
    std::fs::write(root.join("manifest.json"), serde_json::json!({ "datasets": manifest }).to_string()).unwrap();
    let g = root.join(&spec.graph.as_ref().unwrap().path);
    std::fs::create_dir_all(g.parent().unwrap()).unwrap();
    let nodes: Vec<_> = ["dog", "cat", "digit"]
        .iter()
        .map(|n| serde_json::json!({"id": n, "lemma": n, "definition": format!("a {n}"), "parents": [], "text": format!("{n}, which is a {n}")}))
        .collect();
    let images: Vec<_> = (0..6).map(|i| serde_json::json!({"path": format!("{i}.png"), "node": i % 3})).collect();
    std::fs::write(
        &g,
        serde_json::json!({
            "format_version": 1, "seed": 0,
            "build": {"construction": "released", "sample_classes": 3, "sample_datasets": 1, "images_per_node": 75, "nodes": 3, "images": 6},
            "nodes": nodes, "images": images
        })
        .to_string(),
    )
    .unwrap();
}

#[test]
fn the_paper_spec_plans_with_every_caption_and_reports_the_graph() {
    let (path, spec) = mll_spec();
    let root = tempfile::tempdir().unwrap();
    fake_mll_root(root.path(), &path, &spec);
    let opts = PlanOptions::for_spec_file(&path, true);
    let d = dry_run(&spec, root.path(), &opts).unwrap();
    assert!(d.complete, "{:?}", d.missing);
    assert_eq!(d.caption_fallbacks, 0);
    let g = d.graph.as_ref().unwrap();
    assert_eq!((g.nodes, g.images, g.construction.as_deref()), (Some(3), Some(6), Some("released")));
    assert_eq!(d.jobs["evaluate"], 49 * 17);
    assert_eq!(d.jobs["label"], 49);
    let text = render(&d);
    assert!(text.contains("caption fallbacks: 0 class(es)"), "{text}");
    assert!(text.contains("graph/graph.json: 3 nodes, 6 images, construction released"), "{text}");
    assert!(text.contains("method.preset = \"paper\""), "{text}");
    // One sample per faked dataset: each differs from the catalog's count, which the plan notes without failing.
    let ucf = d.datasets.iter().find(|x| x.name == "UCF101").unwrap();
    assert_eq!((ucf.samples, ucf.expected_samples), (Some(1), Some(13_320)));
    assert_eq!(d.notes.len(), 17, "{:?}", d.notes);
    assert!(text.contains("UCF101: 1 samples in datasets/wds_ucf101/all, the catalog expects 13320 (split all"), "{text}");

    // The jobs themselves: bare prompts of MLL's class names, definitions as node texts.
    let p = plan_with(&spec, root.path(), &opts).unwrap();
    let mnist = p
        .jobs_of(Stage::Evaluate)
        .find_map(|j| match &j.payload {
            JobPayload::Evaluate(e) if e.dataset.name == "MNIST" => Some(e.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(mnist.protocol, PromptProtocol::Bare);
    assert_eq!(mnist.classnames[0], "0 - zero");
    let mnist_plan = p.datasets.iter().find(|d| d.spec.name == "MNIST").unwrap();
    assert_eq!(mnist_plan.classnames[0], "0", "the report keeps the dataset's names");
    assert!(p.jobs_of(Stage::Label).all(|j| matches!(&j.payload, JobPayload::Label(l) if l.definition_only)));
    // clevr's class 3 is named '' by CLIP_benchmark: it keeps its label.
    let clevr = p.datasets.iter().find(|d| d.spec.name == "clevr_closest_object_distance").unwrap();
    assert_eq!(clevr.classnames.len(), 6);
    assert_eq!(clevr.prompt_names[3], "nearby and very distant shapes");

    // A caption key missing from a caption file: the paper preset refuses to plan.
    let file = root.path().join("captions/PCAM.json");
    std::fs::write(&file, serde_json::json!({"negative": ["1. A clean scan."]}).to_string()).unwrap();
    let err = plan_with(&spec, root.path(), &opts).unwrap_err();
    assert!(
        matches!(&err, PlanError::MissingCaptions(m) if m.contains("PCAM") && m.contains("lymph node containing metastatic tumor tissue")),
        "{err}"
    );
    assert!(matches!(dry_run(&spec, root.path(), &opts), Err(PlanError::MissingCaptions(_))));
}

#[test]
fn the_paper_spec_without_data_reports_class_map_coverage_and_what_is_missing() {
    let (path, spec) = mll_spec();
    let empty = tempfile::tempdir().unwrap();
    let d = dry_run(&spec, empty.path(), &PlanOptions::for_spec_file(&path, false)).unwrap();
    assert!(!d.complete);
    assert_eq!(d.datasets.len(), 17);
    for x in &d.datasets {
        assert_eq!(x.class_names_from.as_deref(), Some("catalog"), "{}", x.name);
        assert_eq!(x.mapped_classes, x.classes, "{}: every class has a caption key", x.name);
        assert!(x.problems.iter().any(|p| p.contains("dataset folder")), "{}: {:?}", x.name, x.problems);
    }
    assert_eq!(d.datasets.iter().map(|x| x.classes.unwrap()).sum::<usize>(), 1026);
    assert!(d.graph.as_ref().unwrap().nodes.is_none());
    assert_eq!(d.missing_models.len(), 49, "the models are checked as submit checks them");
    let text = render(&d);
    assert!(text.contains("plan incomplete") && text.contains("graph/graph.json: missing"), "{text}");
    // One message per problem: each dataset once (its folder and caption file together), the graph, the embedder, the models.
    for x in &d.datasets {
        assert_eq!(d.missing.iter().filter(|m| m.starts_with(&format!("{}: ", x.name))).count(), 1, "{}: {:?}", x.name, d.missing);
    }
    assert_eq!(d.missing.len(), 17 + 3, "{:#?}", d.missing);
}

/// A small ImageFolder world with captions for some classes only.
fn small_world(root: &Path, extra_method: &str) -> BenchmarkSpec {
    for class in ["ant", "bee"] {
        std::fs::create_dir_all(root.join("ds").join(class)).unwrap();
        std::fs::write(root.join("ds").join(class).join("0.png"), b"").unwrap();
    }
    std::fs::write(root.join("caps.json"), r#"{"ant": ["1. An ant.\n2. A small ant."]}"#).unwrap();
    std::fs::write(
        root.join("graph.json"),
        r#"{"format_version": 1, "nodes": [{"id": "n1", "lemma": "ant", "definition": "an insect", "text": "ant, which is an insect"}], "images": [{"path": "g.png", "node": 0}]}"#,
    )
    .unwrap();
    BenchmarkSpec::from_toml(
        &format!(
            "name = \"small\"\n[[hub]]\nkey = \"m/v1\"\nartifact = \"m\"\n[[datasets]]\nname = \"ds\"\nformat = \"imagefolder\"\n\
             path = \"ds\"\ncaptions = \"caps.json\"\n[graph]\npath = \"graph.json\"\n[embedder]\npath = \"e\"\n[method]\nk = [1]\n{extra_method}"
        ),
        "t.toml",
    )
    .unwrap()
}

#[test]
fn a_class_without_captions_is_a_warning_or_an_error() {
    let root = tempfile::tempdir().unwrap();
    let spec = small_world(root.path(), "");
    let p = plan_with(&spec, root.path(), &PlanOptions::default()).unwrap();
    assert_eq!(p.caption_fallbacks(), vec![("ds".to_string(), vec!["bee".to_string()])]);
    // The numbered descriptions of 'ant' were embedded one by one; 'bee' is its name.
    assert_eq!(p.texts.sources["dataset:ds"], vec![0..2, 2..3]);
    let strict = PlanOptions { strict_captions: true, ..Default::default() };
    assert!(matches!(plan_with(&spec, root.path(), &strict), Err(PlanError::MissingCaptions(m)) if m.contains("'bee'")));
    let paper = small_world(root.path(), "preset = \"paper\"\n");
    assert!(matches!(plan_with(&paper, root.path(), &PlanOptions::default()), Err(PlanError::MissingCaptions(_))));
    let paper_lenient = small_world(root.path(), "preset = \"paper\"\nstrict_captions = false\n");
    assert!(plan_with(&paper_lenient, root.path(), &PlanOptions::default()).is_ok());
}

#[test]
fn node_text_definition_only_reaches_the_label_jobs() {
    let root = tempfile::tempdir().unwrap();
    let plain = small_world(root.path(), "");
    let defs = small_world(root.path(), "node_text_definition_only = true\n");
    let label = |spec: &BenchmarkSpec| -> Vec<(mll_common::JobId, bool)> {
        plan_with(spec, root.path(), &PlanOptions::default())
            .unwrap()
            .jobs_of(Stage::Label)
            .map(|j| match &j.payload {
                JobPayload::Label(l) => (j.id.clone(), l.definition_only),
                _ => unreachable!(),
            })
            .collect()
    };
    let (a, b) = (label(&plain), label(&defs));
    assert!(a.iter().all(|(_, d)| !d) && b.iter().all(|(_, d)| *d));
    assert!(a.iter().all(|(id, _)| b.iter().all(|(other, _)| id != other)), "other node texts, other label jobs");
}
