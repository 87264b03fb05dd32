//! The semantic graph (SPEC §4.1): WordNet noun synsets of the sample datasets'
//! classes plus all their hypernym ancestors, each with up to N seeded images,
//! a node text for the VLMs and captions for the text embedder. Written as
//! `graph.json` (docs/formats.md) by `coordinator graph build`.
//!
//! Rules, all deterministic (same inputs and seed → byte-identical file):
//! - Sample folders: `<samples dir>/<wnid>/**/<image>.{jpg,jpeg,png,webp}` (any
//!   case); other files and hidden entries are ignored. Folders with the same
//!   wnid in several sample datasets are pooled.
//! - Nodes: the sample wnids and every `@`/`@i` ancestor up to `entity`, sorted
//!   by synset offset; `parents` are the node indexes of a node's hypernyms.
//! - Images of a sample node: up to N drawn without replacement from its pool.
//!   A sample node that is also an ancestor of other sample nodes keeps its own
//!   images (it is a real class).
//! - Images of any other node: up to N from its descendant sample nodes' pools,
//!   split evenly: descendants are shuffled, then take one image each in turn
//!   (skipping exhausted ones) until N; so each gets ⌊N/d⌋ or ⌈N/d⌉ unless its
//!   pool is smaller, and with more than N descendants a seeded N of them give
//!   one each. An image can therefore appear under a sample node and under its
//!   ancestors; an entry's `node` is the node it is listed under.
//! - Randomness: one ChaCha8 stream per (seed, node[, descendant]), seeded by
//!   SHA-256 of those names, so adding classes leaves other leaves' picks alone;
//!   bounded draws use our own rejection sampling so rand upgrades change nothing.
//! - Images within a node are sorted by path; `images` lists nodes in index order.
//! - Node text: "{lemma}, which is {definition}" or the definition alone; lemma
//!   is the synset's first word with `_` → space.
//! - Captions: from `--captions` (JSON `{key: [caption, ...]}`, key looked up as
//!   the wnid, then each lemma with spaces, then with underscores), else
//!   generated: "a photo of a {lemma}.", "{lemma}, {definition}", one
//!   "{lemma}, a kind of {parent lemma}." per parent, and
//!   "{lemma}, also known as {other lemmas}." when the synset has synonyms.

pub mod wordnet;

use clap::Args;
use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use wordnet::{offset_to_wnid, wnid_to_offset, Synset, WordNet, WordNetError};

pub const GRAPH_FORMAT_VERSION: u32 = 1;
pub const DEFAULT_IMAGES_PER_NODE: usize = 75;
pub const DEFAULT_WORDNET_DIR: &str = "/usr/share/wordnet";
/// Extensions (lower-cased) of the files taken as images.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp"];

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error(transparent)]
    WordNet(#[from] WordNetError),
    #[error("graph build: sample folder {folder}: '{name}' is not a WordNet noun id; name class folders by ImageNet wnid (n + 8 digits, e.g. n02084071)")]
    NotAWnid { folder: String, name: String },
    #[error("graph build: sample folder {folder}: {wnid} is not a noun synset in WordNet 3.0 ({wordnet}); check the folder name (ImageNet wnids are WordNet 3.0 offsets)")]
    UnknownWnid { folder: String, wnid: String, wordnet: String },
    #[error("graph build: cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("graph build: {path} is not under the graph's folder {graph_dir}; image paths in graph.json are relative to it without '..' (docs/formats.md): place or symlink the sample datasets inside {graph_dir}")]
    OutsideGraphDir { path: String, graph_dir: String },
    #[error("graph build: {path}: file name is not UTF-8; rename it")]
    NonUtf8 { path: String },
    #[error("graph build: no class folders found in the sample datasets {dirs}; each must hold <wnid>/<images>")]
    NoSamples { dirs: String },
    #[error("graph build: --images-per-node must be >= 1")]
    ZeroImagesPerNode,
    #[error("graph build: captions file {path}: {message}; expected a JSON object {{\"n02084071\" or \"dog\": [\"caption\", ...]}}")]
    Captions { path: String, message: String },
    #[error("graph file {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("graph file {path}: cannot write it: {source}")]
    Write { path: String, source: std::io::Error },
}

/// `graph.json` (docs/formats.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphFile {
    pub format_version: u32,
    pub seed: u64,
    pub nodes: Vec<GraphNode>,
    pub images: Vec<GraphImage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphNode {
    /// WordNet id, `n` + 8-digit offset.
    pub id: String,
    pub lemma: String,
    pub definition: String,
    /// Node indexes of the hypernyms, ascending.
    pub parents: Vec<usize>,
    /// What the VLM encodes for the node.
    pub text: String,
    /// What the text embedder encodes to match classes to the node.
    pub captions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphImage {
    /// Relative to the folder of graph.json, `/`-separated.
    pub path: String,
    /// True node index.
    pub node: usize,
}

impl GraphFile {
    pub fn load(path: &Path) -> Result<Self, GraphError> {
        let text =
            std::fs::read(path).map_err(|source| GraphError::Io { path: path.display().to_string(), source })?;
        let graph: GraphFile = serde_json::from_slice(&text)
            .map_err(|e| GraphError::Invalid { path: path.display().to_string(), message: e.to_string() })?;
        graph.validate().map_err(|message| GraphError::Invalid { path: path.display().to_string(), message })?;
        Ok(graph)
    }

    /// Checks indexes and the format version.
    pub fn validate(&self) -> Result<(), String> {
        if self.format_version != GRAPH_FORMAT_VERSION {
            return Err(format!(
                "format_version {} is not {GRAPH_FORMAT_VERSION}; rebuild it with `coordinator graph build`",
                self.format_version
            ));
        }
        let n = self.nodes.len();
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(p) = node.parents.iter().find(|&&p| p >= n || p == i) {
                return Err(format!("nodes[{i}] ({}) has parent index {p}, not another node below {n}", node.id));
            }
        }
        if let Some((i, img)) = self.images.iter().enumerate().find(|(_, img)| img.node >= n) {
            return Err(format!("images[{i}] ({}) has node {}, not below {n}", img.path, img.node));
        }
        if let Some((i, img)) =
            self.images.iter().enumerate().find(|(_, img)| Path::new(&img.path).components().any(|c| !matches!(c, Component::Normal(_))))
        {
            return Err(format!("images[{i}] path '{}' must be relative without '..'", img.path));
        }
        Ok(())
    }

    /// The exact bytes `coordinator graph build` writes: compact JSON and a newline.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).expect("graph serialises: plain data");
        bytes.push(b'\n');
        bytes
    }

    /// Writes the file atomically (temporary file in the same folder, then rename).
    pub fn write_atomic(&self, path: &Path) -> Result<(), GraphError> {
        write_atomic(path, &self.to_json_bytes())
    }
}

/// `coordinator graph build` arguments.
#[derive(Debug, Clone, Args)]
pub struct GraphBuildArgs {
    /// Sample dataset folder with one sub-folder per class named by wnid (e.g.
    /// n01440764/), images inside; repeat for several datasets (pooled per wnid).
    #[arg(long = "samples", value_name = "DIR", required = true)]
    pub samples: Vec<PathBuf>,
    /// graph.json to write; image paths in it are relative to its folder.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Maximum images per node.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_IMAGES_PER_NODE)]
    pub images_per_node: usize,
    /// Seed of every random choice (recorded in the file).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// JSON {wnid or lemma: [caption, ...]} of node captions; otherwise generated.
    #[arg(long, value_name = "FILE")]
    pub captions: Option<PathBuf>,
    /// WordNet 3.0 dict folder (holding data.noun).
    #[arg(long, value_name = "DIR", env = "MLL_WORDNET_DIR", default_value = DEFAULT_WORDNET_DIR)]
    pub wordnet: PathBuf,
    /// Node text is the definition alone instead of "{lemma}, which is {definition}".
    #[arg(long)]
    pub definition_only: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of [`build_graph`].
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOptions {
    pub images_per_node: usize,
    pub seed: u64,
    pub definition_only: bool,
    /// Captions by wnid or lemma (see the module docs for the lookup order).
    pub captions: Option<BTreeMap<String, Vec<String>>>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions { images_per_node: DEFAULT_IMAGES_PER_NODE, seed: 0, definition_only: false, captions: None }
    }
}

/// One class across the sample datasets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleClass {
    /// The folders it was found in (for error messages), in scan order.
    pub folders: Vec<String>,
    /// Image paths relative to the graph's folder, sorted, unique.
    pub images: Vec<String>,
}

/// What a build did, printed by `coordinator graph build`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphSummary {
    pub out: String,
    pub seed: u64,
    pub nodes: usize,
    pub sample_nodes: usize,
    pub ancestor_nodes: usize,
    pub images: usize,
    pub nodes_without_images: usize,
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
    name.rsplit_once('.').is_some_and(|(_, ext)| IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
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
        let rel_child = format!("{rel}/{name}");
        if is_dir {
            collect_images(&path, &rel_child, out)?;
        } else if is_image(&name) {
            out.push(rel_child);
        }
    }
    Ok(())
}

/// Scans sample datasets: wnid → folders and images (paths relative to `graph_dir`).
/// Every sub-folder must be named by a wnid; files at the top level are ignored.
pub fn scan_samples(dirs: &[PathBuf], graph_dir: &Path) -> Result<BTreeMap<String, SampleClass>, GraphError> {
    let graph_abs = lexical_absolute(graph_dir)?;
    let mut seen_dirs = BTreeSet::new();
    let mut classes: BTreeMap<String, SampleClass> = BTreeMap::new();
    for dir in dirs {
        let abs = lexical_absolute(dir)?;
        if !seen_dirs.insert(abs.clone()) {
            continue; // the same dataset given twice pools nothing new
        }
        let rel = abs.strip_prefix(&graph_abs).map_err(|_| GraphError::OutsideGraphDir {
            path: dir.display().to_string(),
            graph_dir: graph_abs.display().to_string(),
        })?;
        let mut rel_parts = Vec::new();
        for c in rel.components() {
            rel_parts.push(utf8_name(dir, c.as_os_str())?);
        }
        for (name, path, is_dir) in list_dir(dir)? {
            if !is_dir {
                continue;
            }
            if wnid_to_offset(&name).is_none() {
                return Err(GraphError::NotAWnid { folder: path.display().to_string(), name });
            }
            let mut rel_class = rel_parts.clone();
            rel_class.push(name.clone());
            let class = classes.entry(name).or_default();
            class.folders.push(path.display().to_string());
            collect_images(&path, &rel_class.join("/"), &mut class.images)?;
        }
    }
    if classes.is_empty() {
        let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(GraphError::NoSamples { dirs: dirs.join(", ") });
    }
    for class in classes.values_mut() {
        class.images.sort();
        class.images.dedup();
    }
    Ok(classes)
}

/// Reads a captions file `{key: [caption, ...]}`.
pub fn load_captions(path: &Path) -> Result<BTreeMap<String, Vec<String>>, GraphError> {
    let err = |message: String| GraphError::Captions { path: path.display().to_string(), message };
    let text = std::fs::read(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    serde_json::from_slice(&text).map_err(|e| err(e.to_string()))
}

/// A ChaCha8 stream for one purpose, independent of every other node's.
fn stream(seed: u64, parts: &[&str]) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(b"mll-graph\0");
    h.update(seed.to_le_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    ChaCha8Rng::from_seed(h.finalize().into())
}

/// Uniform in 0..n (n >= 1) by rejection, independent of rand's own algorithms.
fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    let n = n as u64;
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let x = rng.next_u64();
        if x < zone {
            return (x % n) as usize;
        }
    }
}

/// The first `k` positions of a Fisher–Yates shuffle of `items`.
fn sample_prefix<T: Clone>(rng: &mut ChaCha8Rng, items: &[T], k: usize) -> Vec<T> {
    let mut v = items.to_vec();
    let k = k.min(v.len());
    for i in 0..k {
        let j = i + below(rng, v.len() - i);
        v.swap(i, j);
    }
    v.truncate(k);
    v
}

fn captions_for(synset: &Synset, lemma: &str, parents: &[String], file: Option<&BTreeMap<String, Vec<String>>>) -> (Vec<String>, bool) {
    if let Some(map) = file {
        let mut keys = vec![synset.wnid()];
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

/// Builds the graph of `samples` (from [`scan_samples`]). Returns the graph and
/// how many nodes took their captions from the captions file.
pub fn build_graph(
    wn: &WordNet,
    samples: &BTreeMap<String, SampleClass>,
    opts: &BuildOptions,
) -> Result<(GraphFile, usize), GraphError> {
    if opts.images_per_node == 0 {
        return Err(GraphError::ZeroImagesPerNode);
    }
    // Synsets of the samples and, breadth-first, of all their ancestors.
    let mut synsets: HashMap<u32, Synset> = HashMap::new();
    let mut queue = VecDeque::new();
    for (wnid, class) in samples {
        let offset = wnid_to_offset(wnid).ok_or_else(|| GraphError::NotAWnid {
            folder: class.folders.first().cloned().unwrap_or_default(),
            name: wnid.clone(),
        })?;
        let synset = wn.synset(offset).map_err(|e| match e {
            WordNetError::NoSynset { .. } => GraphError::UnknownWnid {
                folder: class.folders.join(", "),
                wnid: wnid.clone(),
                wordnet: wn.path().display().to_string(),
            },
            other => GraphError::WordNet(other),
        })?;
        queue.extend(synset.hypernyms.iter().copied());
        synsets.insert(offset, synset);
    }
    while let Some(offset) = queue.pop_front() {
        if synsets.contains_key(&offset) {
            continue;
        }
        let synset = wn.synset(offset)?;
        queue.extend(synset.hypernyms.iter().copied());
        synsets.insert(offset, synset);
    }

    let mut offsets: Vec<u32> = synsets.keys().copied().collect();
    offsets.sort_unstable();
    let index: HashMap<u32, usize> = offsets.iter().enumerate().map(|(i, &o)| (o, i)).collect();
    let nodes_syn: Vec<&Synset> = offsets.iter().map(|o| &synsets[o]).collect();
    let parents: Vec<Vec<usize>> = nodes_syn
        .iter()
        .map(|s| {
            let mut p: Vec<usize> = s.hypernyms.iter().map(|h| index[h]).collect();
            p.sort_unstable();
            p.dedup();
            p
        })
        .collect();
    let n = offsets.len();
    let wnids: Vec<String> = offsets.iter().map(|&o| offset_to_wnid(o)).collect();
    let pools: Vec<Option<&SampleClass>> = wnids.iter().map(|w| samples.get(w)).collect();

    // Sample descendants of every node (each sample node walks up its ancestors).
    let mut descendants: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (s, pool) in pools.iter().enumerate() {
        if pool.is_none() {
            continue;
        }
        let mut stack: Vec<usize> = parents[s].clone();
        let mut seen = BTreeSet::new();
        while let Some(a) = stack.pop() {
            if seen.insert(a) {
                descendants[a].insert(s);
                stack.extend(parents[a].iter().copied());
            }
        }
    }

    let cap = opts.images_per_node;
    let mut node_images: Vec<Vec<String>> = Vec::with_capacity(n);
    for i in 0..n {
        let mut chosen = if let Some(class) = pools[i] {
            let mut rng = stream(opts.seed, &["own", wnids[i].as_str()]);
            sample_prefix(&mut rng, &class.images, cap)
        } else {
            let mut rng = stream(opts.seed, &["split", wnids[i].as_str()]);
            let desc: Vec<usize> = descendants[i].iter().copied().collect();
            let order = sample_prefix(&mut rng, &desc, desc.len());
            let sizes: Vec<usize> = order.iter().map(|&d| pools[d].map_or(0, |c| c.images.len())).collect();
            let mut quota = vec![0usize; order.len()];
            let mut left = cap.min(sizes.iter().sum());
            while left > 0 {
                for (q, &size) in quota.iter_mut().zip(&sizes) {
                    if left > 0 && *q < size {
                        *q += 1;
                        left -= 1;
                    }
                }
            }
            let mut chosen = Vec::new();
            for (&d, &q) in order.iter().zip(&quota) {
                if q > 0 {
                    let mut rng = stream(opts.seed, &["from", wnids[i].as_str(), wnids[d].as_str()]);
                    chosen.extend(sample_prefix(&mut rng, &pools[d].expect("descendants are sample nodes").images, q));
                }
            }
            chosen
        };
        chosen.sort();
        chosen.dedup();
        node_images.push(chosen);
    }

    let lemmas: Vec<String> = nodes_syn.iter().map(|s| s.display_lemma()).collect();
    let mut from_file = 0;
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let s = nodes_syn[i];
        let parent_lemmas: Vec<String> = parents[i].iter().map(|&p| lemmas[p].clone()).collect();
        let (captions, used_file) = captions_for(s, &lemmas[i], &parent_lemmas, opts.captions.as_ref());
        from_file += used_file as usize;
        nodes.push(GraphNode {
            id: wnids[i].clone(),
            lemma: lemmas[i].clone(),
            definition: s.definition.clone(),
            parents: parents[i].clone(),
            text: node_text(&lemmas[i], &s.definition, opts.definition_only),
            captions,
        });
    }
    let images = node_images
        .into_iter()
        .enumerate()
        .flat_map(|(node, paths)| paths.into_iter().map(move |path| GraphImage { path, node }))
        .collect();
    Ok((GraphFile { format_version: GRAPH_FORMAT_VERSION, seed: opts.seed, nodes, images }, from_file))
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
pub fn build_graph_file(args: &GraphBuildArgs) -> Result<GraphSummary, GraphError> {
    if args.images_per_node == 0 {
        return Err(GraphError::ZeroImagesPerNode);
    }
    let graph_dir = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let samples = scan_samples(&args.samples, &graph_dir)?;
    let captions = args.captions.as_deref().map(load_captions).transpose()?;
    let wn = WordNet::open(&args.wordnet)?;
    let opts = BuildOptions {
        images_per_node: args.images_per_node,
        seed: args.seed,
        definition_only: args.definition_only,
        captions,
    };
    let (graph, from_file) = build_graph(&wn, &samples, &opts)?;
    let bytes = graph.to_json_bytes();
    write_atomic(&args.out, &bytes)?;
    let with_images: BTreeSet<usize> = graph.images.iter().map(|i| i.node).collect();
    Ok(GraphSummary {
        out: args.out.display().to_string(),
        seed: graph.seed,
        nodes: graph.nodes.len(),
        sample_nodes: samples.len(),
        ancestor_nodes: graph.nodes.len() - samples.len(),
        images: graph.images.len(),
        nodes_without_images: graph.nodes.len() - with_images.len(),
        nodes_with_file_captions: from_file,
        sha256: hex_digest(&bytes),
    })
}

fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `coordinator graph build`.
pub fn run_graph_build(args: &GraphBuildArgs) -> anyhow::Result<()> {
    let summary = build_graph_file(args)?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "wrote {}: {} nodes ({} sample classes, {} ancestors), {} images, {} nodes without images, seed {}, sha256 {}",
            summary.out,
            summary.nodes,
            summary.sample_nodes,
            summary.ancestor_nodes,
            summary.images,
            summary.nodes_without_images,
            summary.seed,
            summary.sha256
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_draws_and_prefix_sampling_are_deterministic_and_in_range() {
        let items: Vec<u32> = (0..10).collect();
        let a = sample_prefix(&mut stream(0, &["x"]), &items, 4);
        let b = sample_prefix(&mut stream(0, &["x"]), &items, 4);
        let c = sample_prefix(&mut stream(1, &["x"]), &items, 4);
        assert_eq!(a, b);
        assert_ne!(a, c, "a different seed gives a different draw");
        assert_eq!(a.len(), 4);
        assert_eq!(a.iter().collect::<BTreeSet<_>>().len(), 4, "without replacement");
        assert_eq!(sample_prefix(&mut stream(0, &["x"]), &items, 50).len(), 10);
        let mut rng = stream(0, &["below"]);
        assert!((0..1000).all(|_| below(&mut rng, 3) < 3));
    }

    #[test]
    fn node_text_options() {
        assert_eq!(node_text("dog", "a canine", false), "dog, which is a canine");
        assert_eq!(node_text("dog", "a canine", true), "a canine");
    }
}
