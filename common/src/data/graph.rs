//! The semantic graph file (`graph.json`, docs/formats.md): nodes with the
//! text a VLM encodes, and a fixed, seeded list of images with their true node.
//! Label jobs shard the image list.

use super::{DataError, Sample, SampleIter, SampleSource};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const GRAPH_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    pub id: String,
    #[serde(default)]
    pub lemma: String,
    #[serde(default)]
    pub definition: String,
    /// Node indexes of hypernyms inside the graph.
    #[serde(default)]
    pub parents: Vec<usize>,
    /// What the VLM encodes for the node.
    pub text: String,
    #[serde(default)]
    pub captions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphImage {
    /// Relative to the folder of graph.json.
    pub path: String,
    /// True node index.
    pub node: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub format_version: u32,
    #[serde(default)]
    pub seed: u64,
    pub nodes: Vec<GraphNode>,
    pub images: Vec<GraphImage>,
}

/// A loaded graph and the folder its image paths are relative to.
#[derive(Debug, Clone)]
pub struct GraphFile {
    pub graph: Graph,
    pub dir: PathBuf,
}

impl GraphFile {
    /// Reads and checks graph.json: version, parent and image node indexes in
    /// range, image paths relative and without `..`.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let graph: Graph = serde_json::from_slice(&bytes).map_err(|e| {
            DataError::Invalid(format!("{} is not a valid graph.json: {e} (re-run `coordinator graph build`)", path.display()))
        })?;
        if graph.format_version != GRAPH_FORMAT_VERSION {
            return Err(DataError::Invalid(format!(
                "{} has format_version {} but this worker reads version {GRAPH_FORMAT_VERSION} (rebuild the graph or upgrade the worker)",
                path.display(),
                graph.format_version
            )));
        }
        let v = graph.nodes.len();
        for (i, n) in graph.nodes.iter().enumerate() {
            if let Some(p) = n.parents.iter().find(|&&p| p >= v) {
                return Err(DataError::Invalid(format!("{}: node {i} ({}) has parent {p} but the graph has {v} nodes", path.display(), n.id)));
            }
        }
        for (i, img) in graph.images.iter().enumerate() {
            if img.node >= v {
                return Err(DataError::Invalid(format!(
                    "{}: image {i} ({}) has node {} but the graph has {v} nodes",
                    path.display(),
                    img.path,
                    img.node
                )));
            }
            let p = Path::new(&img.path);
            if !p.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir)) {
                return Err(DataError::Invalid(format!(
                    "{}: image {i} path '{}' must be relative to the graph's folder without '..'",
                    path.display(),
                    img.path
                )));
            }
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(GraphFile { graph, dir })
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
            Ok(Sample { index: i, label: img.node as i64, name: img.path.clone(), source: SampleSource::File(self.dir.join(&img.path)) })
        })))
    }

    pub fn node_texts(&self) -> Vec<String> {
        self.graph.nodes.iter().map(|n| n.text.clone()).collect()
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
