//! `coordinator graph build --construction ancestors` on a tiny sample tree
//! against the real WordNet 3.0 (Debian's wordnet-base, installed by
//! scripts/setup; or MLL_WORDNET_DIR), and the CLI's flags. The `released`
//! construction is tested in graph_released.rs.

use mll_coordinator::graph::{build_graph_file, Graph, GraphBuildRequest, GraphConstruction, GraphError, DEFAULT_WORDNET_DIR};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const DOG: &str = "n02084071";
const CAT: &str = "n02121808";
const CAR: &str = "n02958343";
const MOTORCYCLE: &str = "n03790512";

/// A valid 1×1 PNG (the builder does not decode images, but keep them real).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63,
    0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60,
    0x82,
];

fn wordnet_dir() -> PathBuf {
    let dir = std::env::var_os("MLL_WORDNET_DIR").map(PathBuf::from).unwrap_or_else(|| DEFAULT_WORDNET_DIR.into());
    assert!(
        dir.join("data.noun").is_file(),
        "WordNet 3.0 is missing at {}: run scripts/setup (installs Debian's wordnet-base) or set MLL_WORDNET_DIR",
        dir.display()
    );
    dir
}

fn images(dir: &Path, wnid: &str, n: usize, prefix: &str) {
    let d = dir.join(wnid);
    std::fs::create_dir_all(&d).unwrap();
    for i in 0..n {
        std::fs::write(d.join(format!("{prefix}{i:02}.png")), PNG).unwrap();
    }
}

/// graph/samples/a: dog 4, cat 5, car 6 (+ non-image files);
/// graph/samples/b: dog 3 (pooled with a's), motorcycle 2.
fn sample_tree() -> (tempfile::TempDir, PathBuf, Vec<PathBuf>) {
    let tmp = tempfile::tempdir().unwrap();
    let graph_dir = tmp.path().join("graph");
    let a = graph_dir.join("samples/a");
    let b = graph_dir.join("samples/b");
    images(&a, DOG, 4, "a");
    images(&a, CAT, 5, "a");
    images(&a, CAR, 6, "a");
    images(&b, DOG, 3, "b");
    images(&b, MOTORCYCLE, 2, "b");
    std::fs::write(a.join("README.txt"), "top-level files are ignored").unwrap();
    std::fs::write(a.join(CAR).join("notes.txt"), "not an image").unwrap();
    (tmp, graph_dir, vec![a, b])
}

fn args(samples: &[PathBuf], out: &Path, n: usize, seed: u64) -> GraphBuildRequest {
    GraphBuildRequest {
        samples: samples.to_vec(),
        out: out.to_path_buf(),
        construction: GraphConstruction::Ancestors,
        images_per_node: n,
        images_per_dataset: 25,
        sampling: Default::default(),
        seed,
        captions: None,
        wordnet: wordnet_dir(),
        definition_only: false,
    }
}

fn node(g: &Graph, id: &str) -> usize {
    g.nodes.iter().position(|n| n.id == id).unwrap_or_else(|| panic!("node {id} missing"))
}

fn by_lemma(g: &Graph, lemma: &str) -> usize {
    g.nodes.iter().position(|n| n.lemma == lemma).unwrap_or_else(|| panic!("no node with lemma '{lemma}'"))
}

/// node index → images listed under it, as the wnid folder each came from.
fn sources(g: &Graph) -> BTreeMap<usize, Vec<String>> {
    let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for img in &g.images {
        let wnid = img.path.split('/').find(|p| p.starts_with('n') && p.len() == 9).unwrap().to_string();
        out.entry(img.node).or_default().push(wnid);
    }
    out
}

fn ancestors(g: &Graph, i: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack = g.nodes[i].parents.clone();
    while let Some(p) = stack.pop() {
        if seen.insert(p) {
            stack.extend(g.nodes[p].parents.iter().copied());
        }
    }
    seen
}

#[test]
fn builds_nodes_ancestors_parents_and_texts() {
    let (_tmp, graph_dir, samples) = sample_tree();
    let out = graph_dir.join("graph.json");
    let summary = build_graph_file(&args(&samples, &out, 4, 0)).unwrap();
    let g = Graph::read(&out).unwrap();
    assert_eq!(g.format_version, 1);
    assert_eq!(g.seed, 0);
    assert_eq!(summary.nodes, g.nodes.len());
    assert_eq!((summary.sample_classes, summary.sample_datasets), (4, 2));
    let build = g.build.as_ref().unwrap();
    assert_eq!(build.construction, GraphConstruction::Ancestors);
    assert_eq!((build.nodes, build.images, build.images_per_node, build.images_per_dataset), (g.nodes.len(), g.images.len(), 4, None));
    assert_eq!(build.sampling, None, "the sampling rule is the released construction's");
    assert_eq!(summary.images, g.images.len());

    let (dog, cat, car, moto) = (node(&g, DOG), node(&g, CAT), node(&g, CAR), node(&g, MOTORCYCLE));
    for lemma in ["carnivore", "animal", "entity", "canine", "feline", "motor vehicle", "wheeled vehicle"] {
        by_lemma(&g, lemma);
    }
    let entity = node(&g, "n00001740");
    assert_eq!(g.nodes[entity].lemma, "entity");
    assert!(g.nodes[entity].parents.is_empty());
    // Every node reaches entity, and only sample nodes and their ancestors exist.
    let mut expected = BTreeSet::from([dog, cat, car, moto]);
    for s in [dog, cat, car, moto] {
        let a = ancestors(&g, s);
        assert!(a.contains(&entity), "{} does not reach entity", g.nodes[s].id);
        expected.extend(a);
    }
    assert_eq!(expected.len(), g.nodes.len(), "graph has nodes that are neither samples nor their ancestors");
    // Sorted by synset offset.
    assert!(g.nodes.windows(2).all(|w| w[0].id < w[1].id));

    // Parents are the WordNet hypernyms: dog → canine + domestic animal; car → motor vehicle.
    let ids = |i: usize| g.nodes[i].parents.iter().map(|&p| g.nodes[p].id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(dog), ["n01317541", "n02083346"]);
    assert_eq!(g.nodes[g.nodes[car].parents[0]].lemma, "motor vehicle");
    assert_eq!(ids(car), ["n03791235"]);
    assert!(ids(by_lemma(&g, "carnivore")).contains(&"n01886756".to_string()), "carnivore's parent is placental");

    let d = &g.nodes[dog];
    assert_eq!(d.lemma, "dog");
    assert!(d.definition.starts_with("a member of the genus Canis"), "{}", d.definition);
    assert!(!d.definition.contains('"'), "examples are stripped: {}", d.definition);
    assert_eq!(d.text, format!("dog, which is {}", d.definition));
    assert_eq!(g.nodes[cat].lemma, "domestic cat", "underscores become spaces");
    // Generated captions.
    let c = &g.nodes[car].captions;
    assert_eq!(c[0], "a photo of a car.");
    assert!(c.contains(&format!("car, {}", g.nodes[car].definition)));
    assert!(c.contains(&"car, a kind of motor vehicle.".to_string()));
    assert!(c.iter().any(|x| x.starts_with("car, also known as auto, automobile")), "{c:?}");
}

#[test]
fn images_are_capped_pooled_and_split_evenly_over_descendants() {
    let (_tmp, graph_dir, samples) = sample_tree();
    let out = graph_dir.join("graph.json");
    build_graph_file(&args(&samples, &out, 4, 0)).unwrap();
    let g = Graph::read(&out).unwrap();
    let src = sources(&g);
    let (dog, cat, car, moto) = (node(&g, DOG), node(&g, CAT), node(&g, CAR), node(&g, MOTORCYCLE));

    for img in &g.images {
        assert!(graph_dir.join(&img.path).is_file(), "{} is not relative to the graph's folder", img.path);
        assert!(img.path.ends_with(".png"), "non-images are skipped: {}", img.path);
    }
    for (i, _) in g.nodes.iter().enumerate() {
        let n = src.get(&i).map_or(0, Vec::len);
        assert!(n <= 4, "{} has {n} images > 4", g.nodes[i].id);
        assert!(n > 0, "{} has no images", g.nodes[i].id);
    }
    // Leaves: their own images; dog is pooled over both sample datasets (7 → 4).
    assert_eq!(src[&dog], vec![DOG; 4]);
    assert_eq!(src[&moto], vec![MOTORCYCLE; 2], "fewer than N: all of them");
    let dog_paths: BTreeSet<&str> = g.images.iter().filter(|i| i.node == dog).map(|i| i.path.as_str()).collect();
    assert_eq!(dog_paths.len(), 4, "no duplicates");
    // Every ancestor image comes from one of its descendant sample nodes.
    let sample_of: BTreeMap<&str, usize> = [(DOG, dog), (CAT, cat), (CAR, car), (MOTORCYCLE, moto)].into();
    for (&i, wnids) in &src {
        if sample_of.values().any(|&s| s == i) {
            continue;
        }
        for w in wnids {
            assert!(ancestors(&g, sample_of[w.as_str()]).contains(&i), "{} got an image of {w}", g.nodes[i].id);
        }
    }
    let count = |i: usize, w: &str| src[&i].iter().filter(|x| *x == w).count();
    let carnivore = by_lemma(&g, "carnivore");
    assert_eq!((count(carnivore, DOG), count(carnivore, CAT)), (2, 2), "split evenly");
    let entity = node(&g, "n00001740");
    for w in [DOG, CAT, CAR, MOTORCYCLE] {
        assert_eq!(count(entity, w), 1, "entity: one image per descendant");
    }
    let canine = by_lemma(&g, "canine");
    assert_eq!(src[&canine], vec![DOG; 4]);

    // N = 6: motor vehicle wants 3 + 3 but motorcycle has 2, so car gives 4.
    build_graph_file(&args(&samples, &out, 6, 0)).unwrap();
    let g = Graph::read(&out).unwrap();
    let src = sources(&g);
    let mv = by_lemma(&g, "motor vehicle");
    let count = |w: &str| src[&mv].iter().filter(|x| *x == w).count();
    assert_eq!((count(CAR), count(MOTORCYCLE)), (4, 2));
}

#[test]
fn builds_are_deterministic_and_seeded() {
    let (_tmp, graph_dir, samples) = sample_tree();
    let a = graph_dir.join("a.json");
    let b = graph_dir.join("b.json");
    let c = graph_dir.join("c.json");
    let sa = build_graph_file(&args(&samples, &a, 3, 7)).unwrap();
    // Sample folders given in another order change nothing.
    let reversed: Vec<PathBuf> = samples.iter().rev().cloned().collect();
    let sb = build_graph_file(&args(&reversed, &b, 3, 7)).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(sa.sha256, sb.sha256);
    build_graph_file(&args(&samples, &c, 3, 8)).unwrap();
    let gc = Graph::read(&c).unwrap();
    assert_eq!(gc.seed, 8);
    let ga = Graph::read(&a).unwrap();
    assert_eq!(ga.nodes, gc.nodes, "the seed only moves images");
    assert_ne!(ga.images, gc.images, "another seed draws other images");
    // No temporary files left next to the output.
    let left: Vec<_> = std::fs::read_dir(&graph_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 4, "{left:?}"); // samples, a.json, b.json, c.json
}

#[test]
fn options_definition_only_and_captions_file() {
    let (tmp, graph_dir, samples) = sample_tree();
    let captions = tmp.path().join("captions.json");
    std::fs::write(&captions, r#"{"n02084071": ["a loyal dog"], "domestic cat": ["a cat indoors", "a house cat"], "dog": ["unused"]}"#)
        .unwrap();
    let out = graph_dir.join("graph.json");
    let mut a = args(&samples, &out, 4, 0);
    a.definition_only = true;
    a.captions = Some(captions);
    let summary = build_graph_file(&a).unwrap();
    assert_eq!(summary.nodes_with_file_captions, 2);
    let g = Graph::read(&out).unwrap();
    let dog = &g.nodes[node(&g, DOG)];
    assert_eq!(dog.text, dog.definition);
    assert_eq!(dog.captions, ["a loyal dog"], "wnid keys win over lemma keys");
    assert_eq!(g.nodes[node(&g, CAT)].captions, ["a cat indoors", "a house cat"]);
    assert_eq!(g.nodes[node(&g, CAR)].captions[0], "a photo of a car.", "others fall back to generated");

    std::fs::write(tmp.path().join("bad.json"), "[1, 2]").unwrap();
    a.captions = Some(tmp.path().join("bad.json"));
    let err = build_graph_file(&a).unwrap_err().to_string();
    assert!(err.contains("bad.json") && err.contains("JSON object"), "{err}");
}

#[test]
fn bad_folders_are_named_in_errors() {
    let (_tmp, graph_dir, samples) = sample_tree();
    let out = graph_dir.join("graph.json");

    // A wnid-shaped name that is no WordNet 3.0 synset.
    images(&samples[1], "n02084072", 1, "x");
    let err = build_graph_file(&args(&samples, &out, 4, 0)).unwrap_err();
    assert!(matches!(err, GraphError::UnknownWnid { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("n02084072") && msg.contains("samples/b"), "{msg}");
    assert!(!out.exists(), "nothing written on error");
    std::fs::remove_dir_all(samples[1].join("n02084072")).unwrap();

    // A folder not named by wnid.
    images(&samples[0], "golden_retriever", 1, "x");
    let msg = build_graph_file(&args(&samples, &out, 4, 0)).unwrap_err().to_string();
    assert!(msg.contains("golden_retriever") && msg.contains("wnid"), "{msg}");
    std::fs::remove_dir_all(samples[0].join("golden_retriever")).unwrap();

    // Samples outside the graph's folder cannot be named without '..'.
    let msg = build_graph_file(&args(&samples, &graph_dir.join("sub/graph.json"), 4, 0)).unwrap_err().to_string();
    assert!(msg.contains("not under the graph's folder"), "{msg}");

    // A missing WordNet says how to install it.
    let mut a = args(&samples, &out, 4, 0);
    a.wordnet = graph_dir.join("no-wordnet");
    let msg = build_graph_file(&a).unwrap_err().to_string();
    assert!(msg.contains("data.noun") && msg.contains("wordnet-base"), "{msg}");

    let msg = build_graph_file(&args(&samples, &out, 0, 0)).unwrap_err().to_string();
    assert!(msg.contains("--images-per-node"), "{msg}");
}
