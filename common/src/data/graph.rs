//! The semantic graph file (`graph.json`, docs/formats.md): nodes with the
//! text a VLM encodes, and a fixed, seeded list of images with their true node.
//! This is the one schema the builder (`coordinator graph build`), the planner
//! and the worker's label executor read and write. Label jobs shard the image
//! list.
//!
//! Compatibility: version 1 files written before the `build` block existed read
//! as before (`build` is optional), and readers ignore fields they do not know,
//! so a newer builder's additions do not break an older worker. A change that
//! older readers would misread bumps [`GRAPH_FORMAT_VERSION`]; a file of another
//! version is refused with an error that says to rebuild it.

use super::{Confine, DataError, Sample, SampleIter, SampleSource};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

pub const GRAPH_FORMAT_VERSION: u32 = 1;

/// How the node set and its images were chosen (docs/method.md, "Semantic graph").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphConstruction {
    /// The released MLL code: every WordNet sense of every synonym of each
    /// sample class, plus one level of hyponyms.
    Released,
    /// The sample classes plus all their hypernym ancestors.
    Ancestors,
}

impl GraphConstruction {
    pub const ALL: [GraphConstruction; 2] = [GraphConstruction::Released, GraphConstruction::Ancestors];

    pub fn name(self) -> &'static str {
        match self {
            GraphConstruction::Released => "released",
            GraphConstruction::Ancestors => "ancestors",
        }
    }
}

impl std::fmt::Display for GraphConstruction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for GraphConstruction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GraphConstruction::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown graph construction '{s}'; use 'released' or 'ancestors'"))
    }
}

/// How the `released` construction caps a node's images (docs/method.md,
/// "Semantic graph"): `released`, the released code's effect (no 75 cap on a
/// sense's draws nor on a node's total; a hyponym draws from its parent's
/// images as they stand when it is reached), or `capped`, every node at most
/// `images_per_node` and a hyponym drawing from its parent's own images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphSampling {
    #[default]
    Released,
    Capped,
}

impl GraphSampling {
    pub fn name(self) -> &'static str {
        match self {
            GraphSampling::Released => "released",
            GraphSampling::Capped => "capped",
        }
    }
}

impl std::str::FromStr for GraphSampling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "released" => Ok(GraphSampling::Released),
            "capped" => Ok(GraphSampling::Capped),
            o => Err(format!("unknown sampling '{o}' (expected released or capped)")),
        }
    }
}

/// What built the file: the construction, its caps and the counts (checked
/// against the lists when read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphBuild {
    pub construction: GraphConstruction,
    /// Distinct sample classes (wnids) over all sample datasets.
    pub sample_classes: usize,
    /// Sample datasets the images came from.
    pub sample_datasets: usize,
    /// Most images a node holds.
    pub images_per_node: usize,
    /// Most images a node takes from one sample dataset (`released` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_per_dataset: Option<usize>,
    /// `released` only: the sampling rule (absent in files written before
    /// the choice existed, which were `capped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<GraphSampling>,
    pub nodes: usize,
    pub images: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    /// WordNet id: part of speech letter (`n`, `v`, `a`, `s`, `r`) and the
    /// 8-digit synset offset; for nouns the ImageNet wnid (`n02084071`).
    pub id: String,
    #[serde(default)]
    pub lemma: String,
    #[serde(default)]
    pub definition: String,
    /// Node indexes of hypernyms inside the graph, ascending.
    #[serde(default)]
    pub parents: Vec<usize>,
    /// What the VLM encodes for the node.
    pub text: String,
    /// What the text embedder encodes to match classes to the node.
    #[serde(default)]
    pub captions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphImage {
    /// Relative to the folder of graph.json, `/`-separated, without `..`.
    pub path: String,
    /// True node index.
    pub node: usize,
}

/// The content of `graph.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub format_version: u32,
    #[serde(default)]
    pub seed: u64,
    /// Absent in files written before it existed (and in the toy world's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<GraphBuild>,
    pub nodes: Vec<GraphNode>,
    pub images: Vec<GraphImage>,
}

#[derive(Debug, thiserror::Error)]
pub enum GraphFileError {
    #[error("graph file {path}: cannot read it: {source} (build it with `coordinator graph build`)")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("graph file {path} is not a valid graph.json: {message} (rebuild it with `coordinator graph build`)")]
    Parse { path: PathBuf, message: String },
    #[error(
        "graph file {path} has format_version {found}, but this program reads version {GRAPH_FORMAT_VERSION}: \
         rebuild it with this version's `coordinator graph build` (or run the matching version of the cluster)"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("graph file {path}: {message} (rebuild it with `coordinator graph build`)")]
    Invalid { path: PathBuf, message: String },
}

impl From<GraphFileError> for DataError {
    fn from(e: GraphFileError) -> Self {
        match e {
            GraphFileError::Io { path, source } => DataError::Io { path, source },
            other => DataError::Invalid(other.to_string()),
        }
    }
}

/// Read first, so another version gets its own error rather than a parse error
/// about whatever field changed.
#[derive(Deserialize)]
struct VersionHead {
    format_version: Option<u32>,
}

impl Graph {
    /// Parses and checks the bytes of a graph.json (`path` names it in errors).
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Graph, GraphFileError> {
        let parse = |e: serde_json::Error| GraphFileError::Parse { path: path.to_path_buf(), message: e.to_string() };
        let head: VersionHead = serde_json::from_slice(bytes).map_err(parse)?;
        match head.format_version {
            Some(GRAPH_FORMAT_VERSION) => {}
            Some(found) => return Err(GraphFileError::Version { path: path.to_path_buf(), found }),
            None => return Err(GraphFileError::Parse { path: path.to_path_buf(), message: "no format_version field".into() }),
        }
        let graph: Graph = serde_json::from_slice(bytes).map_err(parse)?;
        graph.validate().map_err(|message| GraphFileError::Invalid { path: path.to_path_buf(), message })?;
        Ok(graph)
    }

    /// Reads and checks a graph.json.
    pub fn read(path: &Path) -> Result<Graph, GraphFileError> {
        let bytes = std::fs::read(path).map_err(|source| GraphFileError::Io { path: path.to_path_buf(), source })?;
        Graph::from_json(&bytes, path)
    }

    /// Checks what serde cannot: indexes in range, parents other nodes, image
    /// paths relative without `..`, and the `build` counts.
    pub fn validate(&self) -> Result<(), String> {
        if self.format_version != GRAPH_FORMAT_VERSION {
            return Err(format!("format_version {} is not {GRAPH_FORMAT_VERSION}", self.format_version));
        }
        let n = self.nodes.len();
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(p) = node.parents.iter().find(|&&p| p >= n || p == i) {
                return Err(format!("nodes[{i}] ({}) has parent {p}, not another node below {n}", node.id));
            }
        }
        for (i, img) in self.images.iter().enumerate() {
            if img.node >= n {
                return Err(format!("images[{i}] ({}) has node {} but the graph has {n} nodes", img.path, img.node));
            }
            if !Path::new(&img.path).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
                return Err(format!("images[{i}] path '{}' must be relative to the graph's folder without '..'", img.path));
            }
        }
        if let Some(b) = &self.build {
            if (b.nodes, b.images) != (n, self.images.len()) {
                return Err(format!(
                    "build says {} nodes and {} images but the file lists {n} and {}",
                    b.nodes,
                    b.images,
                    self.images.len()
                ));
            }
        }
        Ok(())
    }

    /// The exact bytes `coordinator graph build` writes: compact JSON and a newline.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).expect("graph serialises: plain data");
        bytes.push(b'\n');
        bytes
    }

    pub fn node_texts(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.text.clone()).collect()
    }
}

/// A loaded graph and the folder its image paths are relative to.
#[derive(Debug, Clone)]
pub struct GraphFile {
    pub graph: Graph,
    pub dir: PathBuf,
    /// Where an image that is a symbolic link may point.
    confine: Confine,
}

impl GraphFile {
    /// Reads and checks graph.json ([`Graph::read`]); an image that is a
    /// symbolic link must resolve inside the graph's folder.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::load_confined(path, Confine::within(&dir))
    }

    /// As [`GraphFile::load`], for a graph of the data root at `data_root`:
    /// an image that is a symbolic link may point anywhere under the data
    /// root or the graph's folder ([`Confine`]).
    pub fn load_under(data_root: &Path, path: &Path) -> Result<Self, DataError> {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::load_confined(path, Confine::new(data_root, &dir))
    }

    fn load_confined(path: &Path, confine: Confine) -> Result<Self, DataError> {
        let graph = Graph::read(path)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(GraphFile { graph, dir, confine })
    }

    pub fn image_count(&self) -> u64 {
        self.graph.images.len() as u64
    }

    /// Images `start..end` of the graph's list as samples labelled with their node.
    pub fn samples(&self, start: u64, end: u64) -> Result<SampleIter<'_>, DataError> {
        let count = self.image_count();
        if start > end || end > count {
            return Err(DataError::OutOfRange { path: self.dir.join("graph.json"), start, end, count });
        }
        Ok(Box::new((start..end).map(move |i| {
            let img = &self.graph.images[i as usize];
            let file = self.dir.join(&img.path);
            self.confine.check(&file)?;
            Ok(Sample { index: i, label: img.node as i64, name: img.path.clone(), source: SampleSource::File(file) })
        })))
    }

    pub fn node_texts(&self) -> Vec<String> {
        self.graph.node_texts()
    }

    /// What a label job encodes per node: its `text`, or with
    /// `definition_only` its definition alone (the released label.py encodes
    /// `wn.synset(node).definition()`); a node without a definition is an error.
    pub fn node_texts_for(&self, definition_only: bool) -> Result<Vec<String>, DataError> {
        if !definition_only {
            return Ok(self.node_texts());
        }
        self.graph
            .nodes
            .iter()
            .map(|n| {
                if n.definition.trim().is_empty() {
                    Err(DataError::Invalid(format!(
                        "{}: node {} has no definition, but the job encodes definitions only \
                         (method.node_text_definition_only); rebuild the graph with definitions or set it to false",
                        self.dir.join("graph.json").display(),
                        n.id
                    )))
                } else {
                    Ok(n.definition.clone())
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> Graph {
        Graph {
            format_version: 1,
            seed: 3,
            build: Some(GraphBuild {
                construction: GraphConstruction::Released,
                sample_classes: 1,
                sample_datasets: 1,
                images_per_node: 75,
                images_per_dataset: Some(25),
                sampling: Some(GraphSampling::Released),
                nodes: 2,
                images: 1,
            }),
            nodes: vec![
                GraphNode {
                    id: "n00000001".into(),
                    lemma: "a".into(),
                    definition: "d".into(),
                    parents: vec![],
                    text: "a, which is d".into(),
                    captions: vec![],
                },
                GraphNode {
                    id: "v00000002".into(),
                    lemma: "b".into(),
                    definition: "e".into(),
                    parents: vec![0],
                    text: "b, which is e".into(),
                    captions: vec!["x".into()],
                },
            ],
            images: vec![GraphImage { path: "s/n00000001/x.png".into(), node: 1 }],
        }
    }

    #[test]
    fn round_trips_and_checks_counts() {
        let g = graph();
        let bytes = g.to_json_bytes();
        assert!(bytes.ends_with(b"}\n"));
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"format_version":1,"seed":3,"build":{"construction":"released","#), "{text}");
        assert_eq!(Graph::from_json(&bytes, Path::new("g.json")).unwrap(), g);

        let mut bad = g.clone();
        bad.build.as_mut().unwrap().images = 2;
        let err = Graph::from_json(&bad.to_json_bytes(), Path::new("g.json")).unwrap_err().to_string();
        assert!(err.contains("build says 2 nodes and 2 images") && err.contains("g.json"), "{err}");
        let mut bad = g;
        bad.nodes[1].parents = vec![1];
        assert!(bad.validate().unwrap_err().contains("nodes[1]"));
    }

    #[test]
    fn old_files_read_new_fields_are_ignored_and_other_versions_refused() {
        // A version 1 file from before `build`, with only the required fields.
        let old = br#"{"format_version":1,"nodes":[{"id":"n1","text":"t"}],"images":[{"path":"a.png","node":0}]}"#;
        let g = Graph::from_json(old, Path::new("old.json")).unwrap();
        assert_eq!((g.seed, g.build.as_ref(), g.nodes[0].lemma.as_str()), (0, None, ""));
        assert_eq!(g.to_json_bytes().iter().filter(|&&b| b == b'{').count(), 3, "no build block written when absent");
        let newer = br#"{"format_version":1,"later":{"x":1},"nodes":[],"images":[]}"#;
        assert!(Graph::from_json(newer, Path::new("n.json")).is_ok(), "unknown fields are ignored");

        let v2 = br#"{"format_version":2,"nodes":"changed"}"#;
        let err = Graph::from_json(v2, Path::new("v2.json")).unwrap_err();
        assert!(matches!(err, GraphFileError::Version { found: 2, .. }), "{err}");
        assert!(err.to_string().contains("rebuild it"), "{err}");
        let err = Graph::from_json(b"{}", Path::new("e.json")).unwrap_err().to_string();
        assert!(err.contains("format_version"), "{err}");
        let err = DataError::from(Graph::read(Path::new("/nonexistent/graph.json")).unwrap_err());
        assert!(matches!(err, DataError::Io { .. }), "{err}");
        assert_eq!("ancestors".parse::<GraphConstruction>().unwrap(), GraphConstruction::Ancestors);
        assert!("both".parse::<GraphConstruction>().unwrap_err().contains("released"));
    }
}
