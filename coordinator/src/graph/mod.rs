//! The semantic graph (docs/method.md, "Semantic graph"): WordNet synsets
//! chosen from the sample datasets' classes by one of two constructions, each
//! node with up to N seeded images, a node text for the VLMs and captions for
//! the text embedder.
//! Written as `graph.json` (`mll_common::data::graph`, docs/formats.md) by
//! `coordinator graph build`; `coordinator graph count` gives the node counts
//! of a wnid list without images.
//!
//! - `released` (default; `released.rs`): every WordNet sense of every synonym
//!   of each class plus one level of hyponyms, as the released MLL code.
//! - `ancestors` (`ancestors.rs`): the classes plus all hypernym ancestors.
//!
//! Rules both share, all deterministic (same inputs and seed → byte-identical file):
//! - Sample folders: `<samples dir>/<wnid>/**/<image>.{jpg,jpeg,png,webp}` (any
//!   case); other files and hidden entries are ignored. Each `--samples`
//!   folder is one sample dataset, named by its path relative to the graph's
//!   folder; their order on the command line does not matter.
//! - Nodes sorted by synset (part of speech, then offset); `parents` are the
//!   node indexes of a node's WordNet hypernyms that are nodes too.
//! - Images within a node are sorted by path; `images` lists nodes in index order.
//! - Node text: "{lemma}, which is {definition}" or the definition alone; lemma
//!   is the synset's first word with `_` → space.
//! - Captions: from `--captions` (JSON `{key: [caption, ...]}`, key looked up as
//!   the node id, then each lemma with spaces, then with underscores), else
//!   generated: "a photo of a {lemma}.", "{lemma}, {definition}", one
//!   "{lemma}, a kind of {parent lemma}." per parent, and
//!   "{lemma}, also known as {other lemmas}." when the synset has synonyms.

pub mod ancestors;
pub mod draw;
pub mod released;
pub mod wordnet;

pub use mll_common::data::graph::{Graph, GraphBuild, GraphConstruction, GraphImage, GraphNode, GraphSampling, GRAPH_FORMAT_VERSION};
use serde::Serialize;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use wordnet::{wnid_to_offset, Synset, SynsetRef, WordNet, WordNetError};

pub const DEFAULT_IMAGES_PER_NODE: usize = 75;
/// The released code's cap per (node, sample dataset).
pub const DEFAULT_IMAGES_PER_DATASET: usize = 25;
pub const DEFAULT_WORDNET_DIR: &str = "/usr/share/wordnet";
/// The node count the paper reports for its graph.
pub const PAPER_NODE_COUNT: usize = 9055;

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error(transparent)]
    WordNet(#[from] WordNetError),
    #[error("graph build: sample folder {folder}: '{name}' is not a WordNet noun id; name class folders by ImageNet wnid (n + 8 digits, e.g. n02084071)")]
    NotAWnid { folder: String, name: String },
    #[error("graph build: {folder}: {wnid} is not a noun synset in WordNet 3.0 ({wordnet}); check the name (ImageNet wnids are WordNet 3.0 offsets)")]
    UnknownWnid { folder: String, wnid: String, wordnet: String },
    #[error(
        "graph: wnid list {path} line {line}: '{text}' is not a wnid (n + 8 digits, e.g. n02084071); one per line, '#' starts a comment"
    )]
    WnidList { path: String, line: usize, text: String },
    #[error("graph: wnid list {path} names no wnid; give one per line")]
    EmptyWnidList { path: String },
    #[error("graph build: cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("graph build: {path} is not under the graph's folder {graph_dir}; image paths in graph.json are relative to it without '..' (docs/formats.md): place or symlink the sample datasets inside {graph_dir}")]
    OutsideGraphDir { path: String, graph_dir: String },
    #[error("graph build: {path}: file name is not UTF-8; rename it")]
    NonUtf8 { path: String },
    #[error("graph build: no class folders found in the sample datasets {dirs}; each must hold <wnid>/<images>")]
    NoSamples { dirs: String },
    #[error("graph build: --{flag} must be >= 1")]
    ZeroCap { flag: &'static str },
    #[error("graph build: captions file {path}: {message}; expected a JSON object {{\"n02084071\" or \"dog\": [\"caption\", ...]}}")]
    Captions { path: String, message: String },
    #[error("graph file {path}: cannot write it: {source}")]
    Write { path: String, source: std::io::Error },
}

/// What `coordinator graph build` asks for (the CLI's flags, `cli/graph.rs`).
#[derive(Debug, Clone)]
pub struct GraphBuildRequest {
    /// Sample dataset folders, one sub-folder per class named by wnid.
    pub samples: Vec<PathBuf>,
    /// graph.json to write; image paths in it are relative to its folder.
    pub out: PathBuf,
    pub construction: GraphConstruction,
    /// Maximum images per node.
    pub images_per_node: usize,
    /// `released`: maximum images a node takes from one sample dataset.
    pub images_per_dataset: usize,
    /// `released`: the sampling rule.
    pub sampling: GraphSampling,
    pub seed: u64,
    /// JSON {node id or lemma: [caption, ...]} of node captions; otherwise generated.
    pub captions: Option<PathBuf>,
    /// WordNet 3.0 dict folder.
    pub wordnet: PathBuf,
    /// Node text is the definition alone.
    pub definition_only: bool,
}

/// Options of [`build_graph`].
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOptions {
    pub construction: GraphConstruction,
    pub images_per_node: usize,
    pub images_per_dataset: usize,
    pub sampling: GraphSampling,
    pub seed: u64,
    pub definition_only: bool,
    /// Captions by node id or lemma (see the module docs for the lookup order).
    pub captions: Option<BTreeMap<String, Vec<String>>>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            construction: GraphConstruction::Released,
            images_per_node: DEFAULT_IMAGES_PER_NODE,
            images_per_dataset: DEFAULT_IMAGES_PER_DATASET,
            sampling: GraphSampling::Released,
            seed: 0,
            definition_only: false,
            captions: None,
        }
    }
}

/// One class across the sample datasets (the `ancestors` input).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleClass {
    /// The folders it was found in (for error messages), in dataset order.
    pub folders: Vec<String>,
    /// Image paths relative to the graph's folder, sorted, unique.
    pub images: Vec<String>,
}

/// One sample dataset (one `--samples` folder).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleDataset {
    /// Its path relative to the graph's folder (`.` for the folder itself):
    /// names it in the random streams, independent of the command line.
    pub key: String,
    /// Its path as given (for error messages).
    pub folder: String,
    /// wnid → image paths relative to the graph's folder, sorted, unique.
    pub classes: BTreeMap<String, Vec<String>>,
}

/// A node before it is written: its synset and its images (sorted, unique).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDraft {
    pub synset: Synset,
    pub images: Vec<String>,
}

/// What a build did, printed by `coordinator graph build`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphSummary {
    pub out: String,
    pub construction: GraphConstruction,
    pub seed: u64,
    pub nodes: usize,
    pub sample_classes: usize,
    pub sample_datasets: usize,
    pub images: usize,
    /// Nodes listed without images (`ancestors` keeps them).
    pub nodes_without_images: usize,
    /// Nodes left out for having no image (`released`).
    pub nodes_dropped_without_images: usize,
    pub nodes_with_file_captions: usize,
    pub sha256: String,
}

/// Node text given to the VLMs.
pub fn node_text(lemma: &str, definition: &str, definition_only: bool) -> String {
    if definition_only {
        definition.to_string()
    } else {
        format!("{lemma}, which is {definition}")
    }
}

/// Lexically absolute path (no symlink resolution, so a symlinked sample folder
/// inside the graph folder stays inside it).
fn lexical_absolute(path: &Path) -> Result<PathBuf, GraphError> {
    let abs = std::path::absolute(path).map_err(|source| GraphError::Io { path: path.display().to_string(), source })?;
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    Ok(out)
}

fn utf8_name(path: &Path, name: &std::ffi::OsStr) -> Result<String, GraphError> {
    name.to_str().map(str::to_string).ok_or_else(|| GraphError::NonUtf8 { path: path.display().to_string() })
}

fn is_image(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(_, ext)| mll_common::data::IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// Sorted (name, path, is_dir) of a folder's visible entries; symlinks followed.
fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>, GraphError> {
    let io = |source| GraphError::Io { path: dir.display().to_string(), source };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let name = utf8_name(&path, &entry.file_name())?;
        if name.starts_with('.') {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|source| GraphError::Io { path: path.display().to_string(), source })?;
        out.push((name, path, meta.is_dir()));
    }
    out.sort();
    Ok(out)
}

fn collect_images(dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), GraphError> {
    for (name, path, is_dir) in list_dir(dir)? {
        let rel_child = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        if is_dir {
            collect_images(&path, &rel_child, out)?;
        } else if is_image(&name) {
            out.push(rel_child);
        }
    }
    Ok(())
}

/// Scans sample datasets (image paths relative to `graph_dir`), sorted by
/// their path relative to it; a folder given twice counts once. Every
/// sub-folder must be named by a wnid; files at the top level are ignored.
pub fn scan_sample_datasets(dirs: &[PathBuf], graph_dir: &Path) -> Result<Vec<SampleDataset>, GraphError> {
    let graph_abs = lexical_absolute(graph_dir)?;
    let mut datasets: BTreeMap<String, SampleDataset> = BTreeMap::new();
    for dir in dirs {
        let abs = lexical_absolute(dir)?;
        let rel = abs
            .strip_prefix(&graph_abs)
            .map_err(|_| GraphError::OutsideGraphDir { path: dir.display().to_string(), graph_dir: graph_abs.display().to_string() })?;
        let mut rel_parts = Vec::new();
        for c in rel.components() {
            rel_parts.push(utf8_name(dir, c.as_os_str())?);
        }
        let key = if rel_parts.is_empty() { ".".to_string() } else { rel_parts.join("/") };
        if datasets.contains_key(&key) {
            continue; // the same dataset given twice adds nothing
        }
        let mut dataset = SampleDataset { key: key.clone(), folder: dir.display().to_string(), classes: BTreeMap::new() };
        for (name, path, is_dir) in list_dir(dir)? {
            if !is_dir {
                continue;
            }
            if wnid_to_offset(&name).is_none() {
                return Err(GraphError::NotAWnid { folder: path.display().to_string(), name });
            }
            let mut rel_class = rel_parts.clone();
            rel_class.push(name.clone());
            let mut images = Vec::new();
            collect_images(&path, &rel_class.join("/"), &mut images)?;
            images.sort();
            images.dedup();
            dataset.classes.insert(name, images);
        }
        datasets.insert(key, dataset);
    }
    if datasets.values().all(|d| d.classes.is_empty()) {
        let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(GraphError::NoSamples { dirs: dirs.join(", ") });
    }
    Ok(datasets.into_values().collect())
}

/// Each wnid's images pooled over the datasets (the `ancestors` input).
pub fn pool_classes(datasets: &[SampleDataset]) -> BTreeMap<String, SampleClass> {
    let mut classes: BTreeMap<String, SampleClass> = BTreeMap::new();
    for d in datasets {
        for (wnid, images) in &d.classes {
            let class = classes.entry(wnid.clone()).or_default();
            class.folders.push(format!("{}/{wnid}", d.folder));
            class.images.extend(images.iter().cloned());
        }
    }
    for class in classes.values_mut() {
        class.images.sort();
        class.images.dedup();
    }
    classes
}

/// Reads wnid lists: one wnid per line, blank lines and `#` comments skipped;
/// returns wnid → "file:line" of its first mention (for errors), sorted.
pub fn read_wnid_lists(paths: &[PathBuf]) -> Result<BTreeMap<String, Vec<String>>, GraphError> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| GraphError::Io { path: path.display().to_string(), source })?;
        let mut named = 0;
        for (i, line) in text.lines().enumerate() {
            let wnid = line.split('#').next().unwrap_or("").trim();
            if wnid.is_empty() {
                continue;
            }
            if wnid_to_offset(wnid).is_none() {
                return Err(GraphError::WnidList { path: path.display().to_string(), line: i + 1, text: wnid.to_string() });
            }
            named += 1;
            out.entry(wnid.to_string()).or_insert_with(|| vec![format!("{}:{}", path.display(), i + 1)]);
        }
        if named == 0 {
            return Err(GraphError::EmptyWnidList { path: path.display().to_string() });
        }
    }
    Ok(out)
}

/// A class's noun synset, or an error naming where the wnid came from.
pub(crate) fn class_synset(wn: &WordNet, wnid: &str, sources: &[String]) -> Result<Synset, GraphError> {
    let unknown =
        || GraphError::UnknownWnid { folder: sources.join(", "), wnid: wnid.to_string(), wordnet: wn.dir().display().to_string() };
    let offset = wnid_to_offset(wnid).ok_or_else(unknown)?;
    wn.synset(SynsetRef::noun(offset)).map_err(|e| match e {
        WordNetError::NoSynset { .. } => unknown(),
        other => GraphError::WordNet(other),
    })
}

/// Reads a captions file `{key: [caption, ...]}`.
pub fn load_captions(path: &Path) -> Result<BTreeMap<String, Vec<String>>, GraphError> {
    let err = |message: String| GraphError::Captions { path: path.display().to_string(), message };
    let text = std::fs::read(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    serde_json::from_slice(&text).map_err(|e| err(e.to_string()))
}

fn captions_for(synset: &Synset, lemma: &str, parents: &[String], file: Option<&BTreeMap<String, Vec<String>>>) -> (Vec<String>, bool) {
    if let Some(map) = file {
        let mut keys = vec![synset.id()];
        for l in &synset.lemmas {
            keys.push(l.replace('_', " "));
            keys.push(l.clone());
        }
        if let Some(found) = keys.iter().find_map(|k| map.get(k).filter(|c| !c.is_empty())) {
            return (found.clone(), true);
        }
    }
    let mut out = vec![format!("a photo of a {lemma}."), format!("{lemma}, {}", synset.definition)];
    for p in parents {
        out.push(format!("{lemma}, a kind of {p}."));
    }
    let others: Vec<String> = synset.lemmas.iter().skip(1).map(|l| l.replace('_', " ")).collect();
    if !others.is_empty() {
        out.push(format!("{lemma}, also known as {}.", others.join(", ")));
    }
    (out, false)
}

/// Nodes (sorted by synset) with texts, captions and parents, and the image
/// list. Returns the graph without its `build` block and how many nodes took
/// their captions from the captions file.
fn assemble(drafts: Vec<NodeDraft>, opts: &BuildOptions) -> (Graph, usize) {
    let index: BTreeMap<SynsetRef, usize> = drafts.iter().enumerate().map(|(i, d)| (d.synset.reference(), i)).collect();
    let lemmas: Vec<String> = drafts.iter().map(|d| d.synset.display_lemma()).collect();
    let mut from_file = 0;
    let mut nodes = Vec::with_capacity(drafts.len());
    let mut images = Vec::new();
    for (i, d) in drafts.into_iter().enumerate() {
        let s = &d.synset;
        let parents: Vec<usize> =
            s.hypernyms.iter().filter_map(|h| index.get(h).copied()).collect::<BTreeSet<usize>>().into_iter().collect();
        let parent_lemmas: Vec<String> = parents.iter().map(|&p| lemmas[p].clone()).collect();
        let (captions, used_file) = captions_for(s, &lemmas[i], &parent_lemmas, opts.captions.as_ref());
        from_file += used_file as usize;
        nodes.push(GraphNode {
            id: s.id(),
            lemma: lemmas[i].clone(),
            definition: s.definition.clone(),
            parents,
            text: node_text(&lemmas[i], &s.definition, opts.definition_only),
            captions,
        });
        images.extend(d.images.into_iter().map(|path| GraphImage { path, node: i }));
    }
    (Graph { format_version: GRAPH_FORMAT_VERSION, seed: opts.seed, build: None, nodes, images }, from_file)
}

/// A built graph and what the summary reports beyond it.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub graph: Graph,
    pub nodes_with_file_captions: usize,
    pub nodes_dropped_without_images: usize,
}

fn check_caps(opts: &BuildOptions) -> Result<(), GraphError> {
    if opts.images_per_node == 0 {
        return Err(GraphError::ZeroCap { flag: "images-per-node" });
    }
    if opts.images_per_dataset == 0 {
        return Err(GraphError::ZeroCap { flag: "images-per-dataset" });
    }
    Ok(())
}

/// Builds the graph of the sample datasets with `opts.construction`.
pub fn build_graph(wn: &WordNet, datasets: &[SampleDataset], opts: &BuildOptions) -> Result<Built, GraphError> {
    check_caps(opts)?;
    let classes = pool_classes(datasets);
    let (drafts, dropped) = match opts.construction {
        GraphConstruction::Released => {
            released::build(wn, datasets, opts.seed, opts.images_per_node, opts.images_per_dataset, opts.sampling)?
        }
        GraphConstruction::Ancestors => (ancestors::build(wn, &classes, opts.seed, opts.images_per_node)?, 0),
    };
    let (mut graph, from_file) = assemble(drafts, opts);
    graph.build = Some(GraphBuild {
        construction: opts.construction,
        sample_classes: classes.len(),
        sample_datasets: datasets.len(),
        images_per_node: opts.images_per_node,
        images_per_dataset: (opts.construction == GraphConstruction::Released).then_some(opts.images_per_dataset),
        sampling: (opts.construction == GraphConstruction::Released).then_some(opts.sampling),
        nodes: graph.nodes.len(),
        images: graph.images.len(),
    });
    Ok(Built { graph, nodes_with_file_captions: from_file, nodes_dropped_without_images: dropped })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), GraphError> {
    let err = |source| GraphError::Write { path: path.display().to_string(), source };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// The whole build: scan, read WordNet, build, write atomically.
pub fn build_graph_file(args: &GraphBuildRequest) -> Result<GraphSummary, GraphError> {
    let opts = BuildOptions {
        construction: args.construction,
        images_per_node: args.images_per_node,
        images_per_dataset: args.images_per_dataset,
        sampling: args.sampling,
        seed: args.seed,
        definition_only: args.definition_only,
        captions: None,
    };
    check_caps(&opts)?; // before any reading, so a bad flag is reported first
    let graph_dir = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let datasets = scan_sample_datasets(&args.samples, &graph_dir)?;
    let captions = args.captions.as_deref().map(load_captions).transpose()?;
    let wn = WordNet::open(&args.wordnet)?;
    let built = build_graph(&wn, &datasets, &BuildOptions { captions, ..opts })?;
    let bytes = built.graph.to_json_bytes();
    write_atomic(&args.out, &bytes)?;
    let g = &built.graph;
    let with_images: BTreeSet<usize> = g.images.iter().map(|i| i.node).collect();
    Ok(GraphSummary {
        out: args.out.display().to_string(),
        construction: args.construction,
        seed: g.seed,
        nodes: g.nodes.len(),
        sample_classes: pool_classes(&datasets).len(),
        sample_datasets: datasets.len(),
        images: g.images.len(),
        nodes_without_images: g.nodes.len() - with_images.len(),
        nodes_dropped_without_images: built.nodes_dropped_without_images,
        nodes_with_file_captions: built.nodes_with_file_captions,
        sha256: mll_common::ids::sha256_hex(&bytes),
    })
}

/// Node counts of a list of classes under each construction, every class
/// taken to have images (what `coordinator graph count` prints).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphCounts {
    pub classes: usize,
    /// `released`: all nodes, the senses of the classes' synonyms, and the
    /// hyponyms that are not senses themselves.
    pub released: usize,
    pub released_senses: usize,
    pub released_hyponyms: usize,
    /// `ancestors`: all nodes, and the hypernym ancestors that are not classes.
    pub ancestors: usize,
    pub ancestors_hypernyms: usize,
    pub paper: usize,
    /// The construction whose count is closer to the paper's.
    pub closer_to_paper: GraphConstruction,
}

/// Counts the nodes each construction gives `classes` (wnid → where it was named).
pub fn count_nodes(wn: &WordNet, classes: &BTreeMap<String, Vec<String>>) -> Result<GraphCounts, GraphError> {
    let rel = released::node_set(wn, classes)?;
    let released = rel.all().len();
    let ancestors = ancestors::node_synsets(wn, classes)?.len();
    let closer_to_paper = if released.abs_diff(PAPER_NODE_COUNT) <= ancestors.abs_diff(PAPER_NODE_COUNT) {
        GraphConstruction::Released
    } else {
        GraphConstruction::Ancestors
    };
    Ok(GraphCounts {
        classes: classes.len(),
        released,
        released_senses: rel.senses.len(),
        released_hyponyms: released - rel.senses.len(),
        ancestors,
        ancestors_hypernyms: ancestors - classes.len(),
        paper: PAPER_NODE_COUNT,
        closer_to_paper,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_text_options() {
        assert_eq!(node_text("dog", "a canine", false), "dog, which is a canine");
        assert_eq!(node_text("dog", "a canine", true), "a canine");
    }

    #[test]
    fn wnid_lists_skip_comments_and_name_bad_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a.txt");
        std::fs::write(&a, "# source: somewhere\nn01440764\n\n n01443537  # goldfish\nn01440764\n").unwrap();
        let got = read_wnid_lists(std::slice::from_ref(&a)).unwrap();
        assert_eq!(got.keys().collect::<Vec<_>>(), ["n01440764", "n01443537"]);
        assert!(got["n01443537"][0].ends_with("a.txt:4"), "{:?}", got);
        std::fs::write(&a, "n01440764\ntench\n").unwrap();
        let err = read_wnid_lists(std::slice::from_ref(&a)).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("'tench'"), "{err}");
        std::fs::write(&a, "# nothing\n").unwrap();
        assert!(read_wnid_lists(&[a]).unwrap_err().to_string().contains("names no wnid"));
    }
}
