//! The `released` graph construction (coordinator/src/graph/released.rs):
//! node set and image assignment pinned on a hand-made WordNet, and the node
//! counts of the 1,000 ImageNet-1k classes on the real WordNet 3.0 (Debian's
//! wordnet-base; these tests fail when it is missing: run scripts/setup).

use mll_coordinator::graph::wordnet::WordNet;
use mll_coordinator::graph::{
    build_graph_file, count_nodes, read_wnid_lists, Graph, GraphBuildRequest, GraphConstruction, GraphSampling, DEFAULT_WORDNET_DIR,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One synset of the hand-made WordNet: key, ss_type, words, pointers (symbol, target key).
struct Entry {
    key: &'static str,
    ss_type: char,
    words: &'static [&'static str],
    pointers: &'static [(&'static str, &'static str)],
}

const fn e(key: &'static str, ss_type: char, words: &'static [&'static str], pointers: &'static [(&'static str, &'static str)]) -> Entry {
    Entry { key, ss_type, words, pointers }
}

/// Classes: FELINE, CAT, DOG, ORANGE, GHOST, SPECS. "cat" also names BIGCAT and
/// the verb VCAT; "orange" the colour and the satellite adjective ORANGEADJ;
/// "glasses" reduces to "glass" (NLTK's morphy). PET has two parents, MASCOT
/// three; CAT and BIGCAT are hyponyms of FELINE; GARFIELD is an instance
/// hyponym (not taken); ENTITY is only a hypernym.
const FIXTURE: &[Entry] = &[
    e("ENTITY", 'n', &["entity"], &[]),
    e("FELINE", 'n', &["feline", "felid"], &[("@", "ENTITY"), ("~", "CAT"), ("~", "BIGCAT"), ("~", "MASCOT")]),
    e("CAT", 'n', &["cat", "true_cat"], &[("@", "FELINE"), ("~", "KITTY"), ("~", "PET"), ("~i", "GARFIELD")]),
    e("BIGCAT", 'n', &["big_cat", "cat"], &[("@", "FELINE"), ("~", "LION")]),
    e("KITTY", 'n', &["kitty"], &[("@", "CAT")]),
    e("PET", 'n', &["pet"], &[("@", "CAT"), ("@", "DOG")]),
    e("MASCOT", 'n', &["mascot"], &[("@", "DOG"), ("@", "ORANGE"), ("@", "FELINE")]),
    e("LION", 'n', &["lion", "king_of_beasts"], &[("@", "BIGCAT")]),
    e("GARFIELD", 'n', &["Garfield"], &[("@i", "CAT")]),
    e("DOG", 'n', &["dog", "domestic_dog"], &[("@", "ENTITY"), ("~", "PET"), ("~", "PUPPY"), ("~", "MASCOT")]),
    e("PUPPY", 'n', &["puppy"], &[("@", "DOG")]),
    e("ORANGE", 'n', &["orange"], &[("@", "ENTITY"), ("~", "MANDARIN"), ("~", "MASCOT")]),
    e("ORANGECOLOR", 'n', &["orange", "orangeness"], &[("@", "ENTITY")]),
    e("MANDARIN", 'n', &["mandarin"], &[("@", "ORANGE")]),
    e("GHOST", 'n', &["ghost"], &[("@", "ENTITY"), ("~", "POLTERGEIST")]),
    e("POLTERGEIST", 'n', &["poltergeist"], &[("@", "GHOST")]),
    e("SPECS", 'n', &["glasses", "spectacles"], &[("@", "ENTITY")]),
    e("GLASS", 'n', &["glass"], &[("@", "ENTITY"), ("~", "GOBLET")]),
    e("GOBLET", 'n', &["goblet"], &[("@", "GLASS")]),
    e("VCAT", 'v', &["cat"], &[("~", "VRETCH")]),
    e("VRETCH", 'v', &["retch"], &[("@", "VCAT")]),
    e("CHROMATIC", 'a', &["chromatic"], &[]),
    e("ORANGEADJ", 's', &["orange"], &[("&", "CHROMATIC")]),
];

fn file_of(ss_type: char) -> &'static str {
    match ss_type {
        'n' => "noun",
        'v' => "verb",
        'a' | 's' => "adj",
        _ => "adv",
    }
}

/// Writes the fixture as WordNet dict files; returns key → node id.
fn write_wordnet(dir: &Path) -> BTreeMap<&'static str, String> {
    const HEAD: &str = "  1 hand-made WordNet subset for tests\n";
    let line = |en: &Entry, off: &dyn Fn(&str) -> u32, own: u32| {
        let words: Vec<String> = en.words.iter().map(|w| format!("{w} 0")).collect();
        let ptrs: Vec<String> = en
            .pointers
            .iter()
            .map(|(sym, target)| {
                let t = FIXTURE.iter().find(|x| x.key == *target).unwrap();
                format!("{sym} {:08} {} 0000", off(target), t.ss_type)
            })
            .collect();
        let mut fields = vec![format!("{own:08} 03 {} {:02x}", en.ss_type, en.words.len())];
        fields.extend(words);
        fields.push(format!("{:03}", en.pointers.len()));
        fields.extend(ptrs);
        format!("{} | the {} of the fixture; \"an example\"  \n", fields.join(" "), en.key.to_lowercase())
    };
    // Offsets are byte positions; every offset is 8 digits, so line lengths do not depend on them.
    let mut offsets: BTreeMap<&str, u32> = BTreeMap::new();
    let mut sizes: BTreeMap<&str, u32> = BTreeMap::new();
    for en in FIXTURE {
        let file = file_of(en.ss_type);
        let at = *sizes.entry(file).or_insert(HEAD.len() as u32);
        offsets.insert(en.key, at);
        *sizes.get_mut(file).unwrap() += line(en, &|_| 0, 0).len() as u32;
    }
    let off = |k: &str| offsets[k];
    let mut data: BTreeMap<&str, String> = ["noun", "verb", "adj", "adv"].into_iter().map(|f| (f, HEAD.to_string())).collect();
    let mut index: BTreeMap<(&str, String), Vec<u32>> = BTreeMap::new();
    for en in FIXTURE {
        let file = file_of(en.ss_type);
        data.get_mut(file).unwrap().push_str(&line(en, &off, off(en.key)));
        for w in en.words {
            index.entry((file, w.to_lowercase())).or_default().push(off(en.key));
        }
    }
    for (file, text) in &data {
        assert_eq!(text.len() as u32, sizes.get(file).copied().unwrap_or(HEAD.len() as u32));
        std::fs::write(dir.join(format!("data.{file}")), text).unwrap();
        let mut idx = String::from("  1 index\n");
        for ((f, lemma), offs) in &index {
            if f == file {
                let pos = match *file {
                    "noun" => "n",
                    "verb" => "v",
                    "adj" => "a",
                    _ => "r",
                };
                let list: Vec<String> = offs.iter().map(|o| format!("{o:08}")).collect();
                idx.push_str(&format!("{lemma} {pos} {} 0 {} 0 {}  \n", offs.len(), offs.len(), list.join(" ")));
            }
        }
        std::fs::write(dir.join(format!("index.{file}")), idx).unwrap();
        std::fs::write(dir.join(format!("{file}.exc")), "").unwrap();
    }
    FIXTURE.iter().map(|en| (en.key, format!("{}{:08}", en.ss_type, off(en.key)))).collect()
}

/// A valid 1×1 PNG (the builder does not decode images, but keep them real).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63,
    0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60,
    0x82,
];

/// (dataset, class key, images): a: cat 30, dog 30, orange 10, ghost 0 (empty
/// folder); b: cat 30, dog 15, feline 4; c: cat 30; d: cat 30, specs 3.
const SAMPLES: &[(&str, &str, usize)] = &[
    ("a", "CAT", 30),
    ("a", "DOG", 30),
    ("a", "ORANGE", 10),
    ("a", "GHOST", 0),
    ("b", "CAT", 30),
    ("b", "DOG", 15),
    ("b", "FELINE", 4),
    ("c", "CAT", 30),
    ("d", "CAT", 30),
    ("d", "SPECS", 3),
];

struct World {
    _tmp: tempfile::TempDir,
    wordnet: PathBuf,
    graph_dir: PathBuf,
    samples: Vec<PathBuf>,
    ids: BTreeMap<&'static str, String>,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let wordnet = tmp.path().join("wordnet");
    std::fs::create_dir_all(&wordnet).unwrap();
    let ids = write_wordnet(&wordnet);
    let graph_dir = tmp.path().join("graph");
    for (ds, class, n) in SAMPLES {
        let d = graph_dir.join("samples").join(ds).join(&ids[class]);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..*n {
            std::fs::write(d.join(format!("{ds}_{}_{i:02}.png", class.to_lowercase())), PNG).unwrap();
        }
    }
    let samples = ["a", "b", "c", "d"].iter().map(|d| graph_dir.join("samples").join(d)).collect();
    World { _tmp: tmp, wordnet, graph_dir, samples, ids }
}

fn args(w: &World, samples: &[PathBuf], out: &Path, seed: u64) -> GraphBuildRequest {
    args_with(w, samples, out, seed, GraphSampling::Capped)
}

fn args_with(w: &World, samples: &[PathBuf], out: &Path, seed: u64, sampling: GraphSampling) -> GraphBuildRequest {
    GraphBuildRequest {
        samples: samples.to_vec(),
        out: out.to_path_buf(),
        construction: GraphConstruction::Released,
        images_per_node: 75,
        images_per_dataset: 25,
        sampling,
        seed,
        captions: None,
        wordnet: w.wordnet.clone(),
        definition_only: false,
    }
}

/// key → the node's image paths.
fn images_by_key(g: &Graph, ids: &BTreeMap<&'static str, String>) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (key, id) in ids {
        if let Some(i) = g.nodes.iter().position(|n| &n.id == id) {
            out.insert(*key, g.images.iter().filter(|im| im.node == i).map(|im| im.path.clone()).collect());
        }
    }
    out
}

/// How many of `paths` come from class `class` (its file names) of dataset `ds` (None: any).
fn from(paths: &BTreeSet<String>, ds: Option<&str>, class: &str) -> usize {
    let class = class.to_lowercase();
    paths
        .iter()
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap();
            let mut parts = name.splitn(3, '_');
            let (d, c) = (parts.next().unwrap(), parts.next().unwrap());
            c == class && ds.is_none_or(|want| d == want)
        })
        .count()
}

#[test]
fn released_nodes_are_senses_of_synonyms_and_one_level_of_hyponyms() {
    let w = world();
    let out = w.graph_dir.join("graph.json");
    let summary = build_graph_file(&args(&w, &w.samples, &out, 0)).unwrap();
    let g = Graph::read(&out).unwrap();

    // Node set, sorted by part of speech (nouns, verbs, adjectives) then offset.
    let keys = [
        "FELINE",
        "CAT",
        "BIGCAT",
        "KITTY",
        "PET",
        "MASCOT",
        "LION",
        "DOG",
        "PUPPY",
        "ORANGE",
        "ORANGECOLOR",
        "MANDARIN",
        "SPECS",
        "GLASS",
        "GOBLET",
        "VCAT",
        "VRETCH",
        "ORANGEADJ",
    ];
    let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
    let want: Vec<&str> = keys.iter().map(|k| w.ids[k].as_str()).collect();
    assert_eq!(ids, want, "nodes");
    assert!(w.ids["VCAT"].starts_with('v') && w.ids["ORANGEADJ"].starts_with('s'), "{:?}", w.ids);
    // GHOST (an empty class folder) and its hyponym have no images and are left out.
    assert_eq!((summary.nodes_dropped_without_images, summary.nodes_without_images), (2, 0));
    assert_eq!((summary.sample_classes, summary.sample_datasets, summary.nodes), (6, 4, 18));
    let build = g.build.as_ref().unwrap();
    assert_eq!(build.construction, GraphConstruction::Released);
    assert_eq!((build.images_per_node, build.images_per_dataset, build.sample_classes), (75, Some(25), 6));
    assert_eq!(build.sampling, Some(GraphSampling::Capped));

    // Parents: WordNet hypernyms that are nodes (ENTITY is none).
    let node = |k: &str| g.nodes.iter().position(|n| n.id == w.ids[k]).unwrap();
    let parents = |k: &str| g.nodes[node(k)].parents.iter().map(|&p| g.nodes[p].id.clone()).collect::<Vec<_>>();
    let ids_of = |ks: &[&str]| ks.iter().map(|k| w.ids[k].clone()).collect::<Vec<_>>();
    assert_eq!(parents("PET"), ids_of(&["CAT", "DOG"]));
    assert_eq!(parents("MASCOT"), ids_of(&["FELINE", "DOG", "ORANGE"]));
    assert_eq!(parents("CAT"), ids_of(&["FELINE"]));
    assert_eq!(parents("VRETCH"), ids_of(&["VCAT"]));
    assert!(parents("DOG").is_empty() && parents("ORANGEADJ").is_empty());
    let vcat = &g.nodes[node("VCAT")];
    assert_eq!(vcat.lemma, "cat");
    assert_eq!(vcat.text, "cat, which is the vcat of the fixture");
    assert_eq!(g.nodes[node("LION")].captions.last().unwrap(), "lion, also known as king of beasts.");

    // Images, by the capped rule (`--sampling capped`; the released rule has its own test).
    let im = images_by_key(&g, &w.ids);
    let count = |k: &str| im[k].len();
    // Own images: ≤ 25 per (node, sample dataset), ≤ 75 in all.
    for k in ["CAT", "BIGCAT", "VCAT"] {
        assert_eq!(count(k), 75, "{k}: 4 datasets × 25 = 100, capped at 75");
        for ds in ["a", "b", "c", "d"] {
            assert!(from(&im[k], Some(ds), "CAT") <= 25, "{k} takes at most 25 from dataset {ds}");
        }
    }
    assert_eq!(from(&im["VCAT"], None, "CAT"), 75);
    assert_eq!((from(&im["DOG"], Some("a"), "DOG"), from(&im["DOG"], Some("b"), "DOG")), (25, 15), "25 of a's 30, all of b's 15");
    for (k, n) in [("ORANGE", 10), ("ORANGECOLOR", 10), ("ORANGEADJ", 10), ("FELINE", 4), ("SPECS", 3), ("GLASS", 3)] {
        assert_eq!(count(k), n, "{k}");
    }
    // One parent: ⌊75/1⌋ = 75, i.e. all of the parent's own images (not what it inherited).
    assert_eq!(from(&im["KITTY"], None, "CAT"), 75);
    assert_eq!(count("KITTY"), 75);
    assert_eq!(im["LION"].len(), 75);
    assert_eq!(im["VRETCH"], im["VCAT"]);
    assert_eq!(im["PUPPY"], im["DOG"]);
    assert_eq!(im["GOBLET"], im["GLASS"]);
    assert_eq!(im["MANDARIN"], im["ORANGE"]);
    // CAT is a sense and a hyponym of FELINE: its own 75 plus FELINE's 4, capped at 75.
    assert_eq!(count("CAT"), 75);
    assert!(im["CAT"].iter().all(|p| im["KITTY"].contains(p) || im["FELINE"].contains(p)));
    assert!(from(&im["KITTY"], None, "FELINE") == 0, "a parent passes on its own images only");
    // Two parents: ⌊75/2⌋ = 37 from each.
    assert_eq!((from(&im["PET"], None, "CAT"), from(&im["PET"], None, "DOG")), (37, 37));
    assert!(im["PET"].iter().filter(|p| p.contains("_cat_")).all(|p| im["KITTY"].contains(p)), "from CAT's own images");
    assert!(im["PET"].iter().filter(|p| p.contains("_dog_")).all(|p| im["DOG"].contains(p)));
    // Three parents: ⌊75/3⌋ = 25 from each, all of a parent with fewer.
    assert_eq!((from(&im["MASCOT"], None, "DOG"), from(&im["MASCOT"], None, "ORANGE"), from(&im["MASCOT"], None, "FELINE")), (25, 10, 4));
    assert_eq!(g.images.len(), 696);
    for img in &g.images {
        assert!(w.graph_dir.join(&img.path).is_file(), "{} is not relative to the graph's folder", img.path);
    }
}

/// The released code's sampling (`--sampling released`, the default): a
/// sense keeps every dataset's draw of up to 25 (no 75 cap), a hyponym draws
/// ⌊75/k⌋ from each parent's images as they stand when it is reached (synset
/// order: CAT, a hyponym of FELINE, is reached before KITTY and PET), and no
/// total is capped.
#[test]
fn released_sampling_follows_the_released_code() {
    let w = world();
    let out = w.graph_dir.join("graph.json");
    build_graph_file(&args_with(&w, &w.samples, &out, 0, GraphSampling::Released)).unwrap();
    let g = Graph::read(&out).unwrap();
    assert_eq!(g.build.as_ref().unwrap().sampling, Some(GraphSampling::Released));
    let im = images_by_key(&g, &w.ids);
    let count = |k: &str| im[k].len();
    // Senses of "cat": 25 from each of the 4 datasets' 30, uncapped.
    for k in ["BIGCAT", "VCAT"] {
        for ds in ["a", "b", "c", "d"] {
            assert_eq!(from(&im[k], Some(ds), "CAT"), 25, "{k} from {ds}");
        }
    }
    assert_eq!(count("VCAT"), 100);
    // CAT and BIGCAT are also hyponyms of FELINE (4 images): 100 + 4, no cap.
    assert_eq!((count("CAT"), from(&im["CAT"], None, "FELINE")), (104, 4));
    assert_eq!(count("BIGCAT"), 104);
    // One parent: 75 of what it holds when reached, FELINE's passed-on images included.
    for (h, p) in [("KITTY", "CAT"), ("LION", "BIGCAT"), ("VRETCH", "VCAT")] {
        assert_eq!(count(h), 75, "{h}");
        assert!(im[h].is_subset(&im[p]), "{h} draws from {p}");
    }
    // Two parents: 37 from each; three: 25 from each, all of a parent with fewer.
    assert_eq!((from(&im["PET"], None, "CAT") + from(&im["PET"], None, "FELINE"), from(&im["PET"], None, "DOG")), (37, 37));
    assert_eq!((from(&im["MASCOT"], None, "DOG"), from(&im["MASCOT"], None, "ORANGE"), from(&im["MASCOT"], None, "FELINE")), (25, 10, 4));
    assert_eq!(count("DOG"), 40);
    // Deterministic: the same seed gives the same file.
    let again = w.graph_dir.join("again.json");
    build_graph_file(&args_with(&w, &w.samples, &again, 0, GraphSampling::Released)).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn released_builds_are_deterministic_and_seeded() {
    let w = world();
    let (a, b, c) = (w.graph_dir.join("a.json"), w.graph_dir.join("b.json"), w.graph_dir.join("c.json"));
    build_graph_file(&args(&w, &w.samples, &a, 7)).unwrap();
    let reversed: Vec<PathBuf> = w.samples.iter().rev().cloned().collect();
    build_graph_file(&args(&w, &reversed, &b, 7)).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "sample folder order changes nothing");
    build_graph_file(&args(&w, &w.samples, &c, 8)).unwrap();
    let (ga, gc) = (Graph::read(&a).unwrap(), Graph::read(&c).unwrap());
    assert_eq!(ga.nodes, gc.nodes, "the seed only moves images");
    assert_ne!(ga.images, gc.images, "another seed draws other images");
    assert_eq!(ga.images.len(), gc.images.len(), "the caps do not depend on the seed");
}

#[test]
fn counts_without_images_on_the_fixture() {
    let w = world();
    let wn = WordNet::open(&w.wordnet).unwrap();
    let classes: BTreeMap<String, Vec<String>> =
        ["FELINE", "CAT", "DOG", "ORANGE", "GHOST", "SPECS"].iter().map(|k| (w.ids[k].clone(), vec![k.to_string()])).collect();
    let c = count_nodes(&wn, &classes).unwrap();
    // Senses: FELINE CAT BIGCAT VCAT DOG ORANGE ORANGECOLOR ORANGEADJ GHOST SPECS GLASS;
    // further hyponyms: KITTY PET MASCOT LION PUPPY MANDARIN POLTERGEIST GOBLET VRETCH.
    assert_eq!((c.released, c.released_senses, c.released_hyponyms), (20, 11, 9));
    assert_eq!((c.ancestors, c.ancestors_hypernyms), (7, 1), "the classes and ENTITY");
    assert_eq!(c.closer_to_paper, GraphConstruction::Released);
}

fn real_wordnet() -> WordNet {
    let dir = std::env::var_os("MLL_WORDNET_DIR").map(PathBuf::from).unwrap_or_else(|| DEFAULT_WORDNET_DIR.into());
    WordNet::open(&dir).unwrap_or_else(|e| panic!("WordNet 3.0 is needed (run scripts/setup): {e}"))
}

fn imagenet1k() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/imagenet/imagenet1k_wnids.txt")
}

/// The counts docs/formats.md reports; cross-checked against NLTK 3.9.1 (the
/// released code's pin) reading the same WordNet files: 2,712 senses and 5,664
/// nodes (4,777 nouns, 800 verbs, 85 adjectives, 2 adverbs); 1,860 ancestors.
#[test]
fn imagenet1k_node_counts_on_wordnet_3_0() {
    let wn = real_wordnet();
    let classes = read_wnid_lists(&[imagenet1k()]).unwrap();
    assert_eq!(classes.len(), 1000);
    let c = count_nodes(&wn, &classes).unwrap();
    assert_eq!((c.released, c.released_senses, c.released_hyponyms), (5664, 2712, 2952));
    assert_eq!((c.ancestors, c.ancestors_hypernyms), (1860, 860));
    assert_eq!(c.closer_to_paper, GraphConstruction::Released, "the default construction is the closer one");

    // The same through the command line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["graph", "count", "--json", "--wnids"])
        .arg(imagenet1k())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["released"].as_u64(), v["ancestors"].as_u64(), v["paper"].as_u64()), (Some(5664), Some(1860), Some(9055)));
}

/// Spot checks of the lemma lookup on the real WordNet: the tench's senses,
/// and a class whose name is also a verb.
#[test]
fn released_senses_on_wordnet_3_0() {
    let wn = real_wordnet();
    let names = |lemma: &str| -> BTreeSet<String> { wn.synsets_of(lemma).into_iter().map(|r| wn.synset(r).unwrap().id()).collect() };
    assert_eq!(names("tench"), BTreeSet::from(["n01440764".to_string()]));
    // crane: two nouns of ImageNet (bird, machine), a constellation, a person... and the verb "to crane".
    let crane = names("crane");
    assert!(crane.contains("n02012849") && crane.contains("n03126707"), "{crane:?}");
    assert!(crane.iter().any(|id| id.starts_with('v')), "{crane:?}");
}
