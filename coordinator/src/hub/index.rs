//! The hub index: one file per hub model that lets `select` read only the
//! part of the model's graph labels a task needs.
//!
//! A model's label artifacts hold, per graph image, its embedding, true node
//! and best-node list (about 1 GB per model at the paper's scale). Selection
//! of a task reads only the images whose true node is among the task's
//! matched nodes (a few hundred of 9,000) and of those only the list heads;
//! embeddings only for an image whose list holds no matched node. The index
//! holds the lists sorted by true node with the node offsets, and where each
//! image's embedding lies, so `select` reads a few MB per model with
//! positioned reads instead of decoding every artifact whole.
//!
//! Written once per model when a hub is first opened (the label artifacts are
//! read whole and checksum-verified then), named by a digest of the artifacts
//! it indexes: a model relabelled or added later gets its own index, and an
//! index never describes other labels than its name says.
//!
//! File: safetensors, `__metadata__` {format, digest, graph_nodes, width,
//! shards, node_texts, offsets_sha256}; tensors `offsets` (U64, V+1: the slots
//! of node v are offsets[v]..offsets[v+1]), `shard` and `row` (U32, N: where
//! slot i's image is among the label artifacts), `lists` (U32, N × K, present
//! when K > 0), `node_sha256` (U8, V × 32).
//!
//! The index is derived data that nothing else checks, and a changed list
//! silently changes `select`'s picks, so it carries its own checksums
//! (docs/formats.md, "Hub index"): `offsets_sha256` over the offsets (read
//! whole on open) and, per node, the SHA-256 of its slots' shard, row and
//! list bytes, checked whenever a node's slots are read. Reads stay per node;
//! a mismatch is [`IndexError::Damaged`], which the hub answers by rebuilding
//! the file, and `coordinator verify` checks every node of every index.

use crate::aggregate::LabelSources;
use mll_common::artifact::safetensors_io::{self as st_io, Dtype, Named, TensorError};
use mll_common::artifact::tensors::{TensorFile, TensorFileError};
use mll_common::artifact::{ArtifactError, ArtifactRef, ArtifactStore};
use mll_common::ids::sha256_hex;
use mll_common::RunId;
use mll_method::{ModelLabels, SelectionReads, TopNodes};
use ndarray::Array2;
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

pub const FORMAT: &str = "mll-hub-index/2";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    File(#[from] TensorFileError),
    #[error("label artifact {sha256}: {reason}; re-run the model's label jobs")]
    Labels { sha256: String, reason: String },
    #[error("hub index {path}: {reason}; delete the file and run the command again (it is rebuilt from the label artifacts)")]
    Index { path: String, reason: String },
    /// The file's bytes do not match its own checksums: it was changed after
    /// it was written.
    #[error("hub index {path} is damaged: {reason}; it is rebuilt from the label artifacts (`coordinator verify --repair` deletes it)")]
    Damaged { path: String, reason: String },
}

/// The checksum of node `g`'s slots: their shard, row and list values, little-endian.
fn node_checksum(shard: &[u32], row: &[u32], lists: &[u32]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [shard, row, lists] {
        for v in part {
            h.update(v.to_le_bytes());
        }
    }
    h.finalize().into()
}

fn offsets_checksum(offsets: &[u64]) -> String {
    let bytes: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
    sha256_hex(&bytes)
}

/// The digest that names a model's index: the format, the graph size and
/// every artifact it is built from, in order.
pub fn digest(sources: &LabelSources, graph_nodes: usize) -> String {
    let mut text = format!("{FORMAT}\n{graph_nodes}\n{}\n", sources.node_texts.sha256);
    for s in &sources.shards {
        text.push_str(&s.sha256);
        text.push('\n');
    }
    sha256_hex(text.as_bytes())
}

/// The index's name in the artifact store (beside the run's saved spec).
pub fn name(run: &RunId, digest: &str) -> String {
    format!("runs/{run}/hub-index/{}.safetensors", &digest[..32])
}

fn labels_err(aref: &ArtifactRef, reason: impl Into<String>) -> IndexError {
    IndexError::Labels { sha256: aref.sha256.clone(), reason: reason.into() }
}

/// Builds a model's index from its label artifacts (each read whole and
/// verified) and returns the file's bytes.
pub fn build(artifacts: &ArtifactStore, sources: &LabelSources, graph_nodes: usize) -> Result<Vec<u8>, IndexError> {
    let texts = artifacts.get(&sources.node_texts)?;
    let in_texts = |e: TensorError| labels_err(&sources.node_texts, e.to_string());
    let st = st_io::parse(&texts).map_err(in_texts)?;
    let width = st_io::check(&st, "text_embeddings", Dtype::F32, &[Some(graph_nodes), None]).map_err(in_texts)?[1];
    drop(texts);

    // Per shard: true nodes and lists (embeddings stay where they are).
    let mut nodes: Vec<(u32, u32, u32)> = Vec::new(); // (node, shard, row)
    let mut shard_lists: Vec<Option<(usize, Vec<u32>)>> = Vec::new();
    for (s, aref) in sources.shards.iter().enumerate() {
        let bytes = artifacts.get(aref)?;
        let in_shard = |e: TensorError| labels_err(aref, e.to_string());
        let st = st_io::parse(&bytes).map_err(in_shard)?;
        let n = st_io::check(&st, "image_embeddings", Dtype::F32, &[None, Some(width)]).map_err(in_shard)?[0];
        st_io::check(&st, "nodes", Dtype::I64, &[Some(n)]).map_err(in_shard)?;
        for (row, g) in st_io::values::<i64>(&st, "nodes").map_err(in_shard)?.into_iter().enumerate() {
            if g < 0 || g as usize >= graph_nodes {
                return Err(labels_err(aref, format!("an image's true node is {g} but the graph has {graph_nodes} nodes")));
            }
            nodes.push((g as u32, s as u32, row as u32));
        }
        shard_lists.push(if st_io::has(&st, "top_nodes") {
            let k = st_io::check(&st, "top_nodes", Dtype::I32, &[Some(n), None]).map_err(in_shard)?[1];
            let lists = st_io::values::<i32>(&st, "top_nodes").map_err(in_shard)?;
            if let Some(x) = lists.iter().find(|&&x| x < 0 || x as usize >= graph_nodes) {
                return Err(labels_err(aref, format!("a best-node list names node {x} but the graph has {graph_nodes} nodes")));
            }
            Some((k, lists.into_iter().map(|x| x as u32).collect()))
        } else {
            None
        });
    }
    // Lists are used only when every shard has them with the same K > 0 (as aggregation does).
    let k = shard_lists.first().and_then(|l| l.as_ref().map(|(k, _)| *k)).unwrap_or(0);
    let k = if k > 0 && shard_lists.iter().all(|l| l.as_ref().map(|(k, _)| *k) == Some(k)) { k } else { 0 };

    // Slots in true-node order, stable (shard order within a node).
    nodes.sort_by_key(|&(g, _, _)| g);
    let mut offsets = vec![0u64; graph_nodes + 1];
    for &(g, _, _) in &nodes {
        offsets[g as usize + 1] += 1;
    }
    for i in 0..graph_nodes {
        offsets[i + 1] += offsets[i];
    }
    let mut lists = Vec::with_capacity(nodes.len() * k);
    if k > 0 {
        for &(_, s, r) in &nodes {
            let (_, l) = shard_lists[s as usize].as_ref().expect("every shard has lists");
            lists.extend_from_slice(&l[r as usize * k..(r as usize + 1) * k]);
        }
    }
    let n = nodes.len();
    let shard: Vec<u32> = nodes.iter().map(|n| n.1).collect();
    let row: Vec<u32> = nodes.iter().map(|n| n.2).collect();
    let mut sums = Vec::with_capacity(graph_nodes * 32);
    for g in 0..graph_nodes {
        let (a, b) = (offsets[g] as usize, offsets[g + 1] as usize);
        sums.extend_from_slice(&node_checksum(&shard[a..b], &row[a..b], &lists[a * k..b * k]));
    }
    let mut tensors = vec![
        Named::new("offsets", vec![graph_nodes + 1], &offsets),
        Named::new("shard", vec![n], &shard),
        Named::new("row", vec![n], &row),
        Named::new("node_sha256", vec![graph_nodes, 32], &sums),
    ];
    if k > 0 {
        tensors.push(Named::new("lists", vec![n, k], &lists));
    }
    let meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("digest".to_string(), digest(sources, graph_nodes)),
        ("graph_nodes".to_string(), graph_nodes.to_string()),
        ("width".to_string(), width.to_string()),
        ("shards".to_string(), serde_json::to_string(&sources.shards).expect("refs serialise")),
        ("node_texts".to_string(), serde_json::to_string(&sources.node_texts).expect("refs serialise")),
        ("offsets_sha256".to_string(), offsets_checksum(&offsets)),
    ]);
    Ok(st_io::encode_with_metadata(&tensors, Some(meta)).expect("tensors are consistent"))
}

/// An opened index: its header and node offsets (the rest is read per task).
#[derive(Debug)]
pub struct HubIndex {
    file: TensorFile,
    offsets: Vec<u64>,
    graph_nodes: usize,
    width: usize,
    k: usize,
    shards: Vec<ArtifactRef>,
    node_texts: ArtifactRef,
}

impl HubIndex {
    /// Opens the index at `path`; it must be of this format, for `digest` and
    /// a graph of `graph_nodes` nodes, with consistent offsets and shapes.
    pub fn open(path: &Path, digest: &str, graph_nodes: usize) -> Result<HubIndex, IndexError> {
        let file = TensorFile::open(path)?;
        let bad = |reason: String| IndexError::Index { path: path.display().to_string(), reason };
        let meta = |key: &str| file.meta(key).ok_or_else(|| bad(format!("no '{key}' in its metadata")));
        if meta("format")? != FORMAT {
            return Err(bad(format!("format {}, expected {FORMAT}", meta("format")?)));
        }
        if meta("digest")? != digest {
            return Err(bad("it indexes other label artifacts than the hub's".into()));
        }
        let number = |key: &str| meta(key)?.parse::<usize>().map_err(|e| bad(format!("'{key}': {e}")));
        if number("graph_nodes")? != graph_nodes {
            return Err(bad(format!("made for a graph of {} nodes, the hub's has {graph_nodes}", number("graph_nodes")?)));
        }
        let width = number("width")?;
        let shards: Vec<ArtifactRef> = serde_json::from_str(meta("shards")?).map_err(|e| bad(format!("'shards': {e}")))?;
        let node_texts: ArtifactRef = serde_json::from_str(meta("node_texts")?).map_err(|e| bad(format!("'node_texts': {e}")))?;
        let offsets = file.u64_rows("offsets", 0..graph_nodes + 1)?;
        if offsets_checksum(&offsets) != meta("offsets_sha256")? {
            return Err(IndexError::Damaged {
                path: path.display().to_string(),
                reason: "its node offsets do not match their checksum".into(),
            });
        }
        if file.shape("node_sha256", Dtype::U8)? != [graph_nodes, 32] {
            return Err(bad(format!("'node_sha256' is not {graph_nodes} × 32")));
        }
        let n = *file.shape("shard", Dtype::U32)?.first().unwrap_or(&0);
        if offsets.first() != Some(&0) || offsets.windows(2).any(|w| w[0] > w[1]) || offsets.last() != Some(&(n as u64)) {
            return Err(bad(format!("its node offsets do not cover its {n} images in order")));
        }
        if file.shape("row", Dtype::U32)? != [n] {
            return Err(bad("'row' and 'shard' differ in length".into()));
        }
        let k = match file.shape("lists", Dtype::U32) {
            Ok(&[n2, k]) if n2 == n => k,
            Ok(shape) => return Err(bad(format!("'lists' has shape {shape:?} for {n} images"))),
            Err(_) => 0,
        };
        Ok(HubIndex { file, offsets, graph_nodes, width, k, shards, node_texts })
    }

    /// Images the index covers.
    pub fn images(&self) -> usize {
        *self.offsets.last().expect("V + 1 offsets") as usize
    }

    /// The labels selection reads for matchings whose V_sel are `node_sets`
    /// (each ascending): with `selected_images_only` the images whose true
    /// node is in some V_sel, else every image, sorted by node, with their
    /// lists. Embeddings are read (from the label artifacts, by position) only
    /// for the rows selection computes (`image_rows` says which): images whose
    /// list holds no node of a V_sel that reads them (with selected images
    /// only, a V_sel holding their true node; else every V_sel); the node
    /// texts only when there is such a row.
    pub fn labels_for(
        &self,
        node_sets: &[&[usize]],
        selected_images_only: bool,
        artifacts: &ArtifactStore,
    ) -> Result<ModelLabels, IndexError> {
        let v = self.graph_nodes;
        if let Some(&bad) = node_sets.iter().flat_map(|s| s.iter()).find(|&&g| g >= v) {
            return Err(IndexError::Index {
                path: self.file.path().display().to_string(),
                reason: format!("node {bad} asked of a graph of {v} nodes"),
            });
        }
        let reads = SelectionReads::new(node_sets, v, selected_images_only);
        let union: Vec<usize> = (0..v).filter(|&g| reads.visits(g)).collect();
        // Slot ranges of the union's nodes, adjacent nodes merged into one read.
        let mut ranges: Vec<Range<usize>> = Vec::new();
        let mut image_nodes = Vec::new();
        for &g in &union {
            let r = self.offsets[g] as usize..self.offsets[g + 1] as usize;
            image_nodes.extend(std::iter::repeat_n(g, r.len()));
            match ranges.last_mut() {
                Some(last) if last.end == r.start => last.end = r.end,
                _ if r.is_empty() => {}
                _ => ranges.push(r),
            }
        }
        let n = image_nodes.len();
        // Every slot's shard, row and list, checked node by node against the
        // node's checksum before anything is used.
        let (mut shard, mut row, mut lists) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n * self.k));
        for r in &ranges {
            shard.extend(self.file.u32_rows("shard", r.clone())?);
            row.extend(self.file.u32_rows("row", r.clone())?);
            if self.k > 0 {
                lists.extend(self.file.u32_rows("lists", r.clone())?);
            }
        }
        let mut at = 0;
        for &g in &union {
            let len = (self.offsets[g + 1] - self.offsets[g]) as usize;
            self.check_node(g, &shard[at..at + len], &row[at..at + len], &lists[at * self.k..(at + len) * self.k])?;
            at += len;
        }
        let top_nodes = if self.k > 0 {
            let lists = Array2::from_shape_vec((n, self.k), lists).expect("rows × K");
            Some(
                TopNodes::new(lists, v)
                    .map_err(|e| IndexError::Index { path: self.file.path().display().to_string(), reason: e.to_string() })?,
            )
        } else {
            None
        };
        // The rows selection will compute.
        let fallback: Vec<usize> = (0..n)
            .filter(|&i| {
                let list = top_nodes.as_ref().map(|t| t.lists().row(i).to_slice().expect("a row of a standard-layout array"));
                reads.computes_row(image_nodes[i], list)
            })
            .collect();
        let mut image_rows = vec![u32::MAX; n];
        for (r, &i) in fallback.iter().enumerate() {
            image_rows[i] = r as u32;
        }
        let (image_embeddings, node_text_embeddings) = if fallback.is_empty() {
            (Array2::zeros((0, self.width)), Array2::zeros((0, self.width)))
        } else {
            let at: Vec<(usize, usize)> = fallback.iter().map(|&i| (shard[i] as usize, row[i] as usize)).collect();
            (self.read_embeddings(&at, artifacts)?, self.node_texts(artifacts)?)
        };
        Ok(ModelLabels { image_embeddings, image_nodes, image_rows: Some(image_rows), node_text_embeddings, top_nodes })
    }

    /// The embeddings of the images at (shard, row) `at`, one row each in
    /// that order, read from the label artifacts.
    fn read_embeddings(&self, at: &[(usize, usize)], artifacts: &ArtifactStore) -> Result<Array2<f32>, IndexError> {
        let mut out = Array2::<f32>::zeros((at.len(), self.width));
        let mut by_shard: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.shards.len()];
        for (out_row, &(s, row)) in at.iter().enumerate() {
            let bad = || IndexError::Index { path: self.file.path().display().to_string(), reason: format!("an image names shard {s}") };
            by_shard.get_mut(s).ok_or_else(bad)?.push((out_row, row));
        }
        for (s, rows) in by_shard.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            let aref = &self.shards[s];
            let file = TensorFile::open(&artifacts.path_of(&aref.sha256))?;
            let shape = file.shape("image_embeddings", Dtype::F32)?;
            if shape.get(1) != Some(&self.width) {
                return Err(labels_err(aref, format!("image embeddings of shape {shape:?}, the index says width {}", self.width)));
            }
            for &(i, row) in rows {
                let e = file.f32_rows("image_embeddings", row..row + 1)?;
                out.row_mut(i).assign(&ndarray::ArrayView1::from(&e));
            }
        }
        Ok(out)
    }

    /// Checks node `g`'s slots against its stored checksum.
    fn check_node(&self, g: usize, shard: &[u32], row: &[u32], lists: &[u32]) -> Result<(), IndexError> {
        let stored = self.file.rows("node_sha256", Dtype::U8, g..g + 1)?;
        if stored[..] != node_checksum(shard, row, lists) {
            return Err(IndexError::Damaged {
                path: self.file.path().display().to_string(),
                reason: format!("node {g}'s images and lists do not match their checksum"),
            });
        }
        Ok(())
    }

    /// Checks every node's slots against its checksum (`coordinator verify`):
    /// reads the whole file, one node at a time.
    pub fn check_all(&self) -> Result<(), IndexError> {
        for g in 0..self.graph_nodes {
            let r = self.offsets[g] as usize..self.offsets[g + 1] as usize;
            let lists = if self.k > 0 { self.file.u32_rows("lists", r.clone())? } else { Vec::new() };
            self.check_node(g, &self.file.u32_rows("shard", r.clone())?, &self.file.u32_rows("row", r)?, &lists)?;
        }
        Ok(())
    }

    /// The node text embeddings (V × D), read by position (their checksum
    /// was verified when the index was built).
    fn node_texts(&self, artifacts: &ArtifactStore) -> Result<Array2<f32>, IndexError> {
        let file = TensorFile::open(&artifacts.path_of(&self.node_texts.sha256))?;
        let shape = file.shape("text_embeddings", Dtype::F32)?;
        if shape != [self.graph_nodes, self.width] {
            return Err(labels_err(&self.node_texts, format!("'text_embeddings' has shape {shape:?}")));
        }
        let v = file.f32_rows("text_embeddings", 0..self.graph_nodes)?;
        Ok(Array2::from_shape_vec((self.graph_nodes, self.width), v).expect("shape checked"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::spec::MethodOptions;
    use mll_method::{HubSelection, SplitMix64};

    pub(crate) const V: usize = 40;
    const D: usize = 8;

    pub(crate) fn unit_rows(rng: &mut SplitMix64, n: usize, d: usize) -> Array2<f32> {
        let mut m = Array2::from_shape_fn((n, d), |_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5);
        for mut r in m.rows_mut() {
            let norm = r.dot(&r).sqrt();
            r.mapv_inplace(|x| x / norm);
        }
        m
    }

    /// One model's label artifacts in `shards` shards (true nodes unsorted),
    /// with the true K best nodes per image when `k` > 0; and the same labels
    /// whole, sorted by node, as aggregation hands them to selection.
    pub(crate) fn model(rng: &mut SplitMix64, store: &ArtifactStore, shards: &[usize], k: usize) -> (LabelSources, ModelLabels) {
        let texts = unit_rows(rng, V, D);
        let node_texts =
            store.put(&st_io::encode(&[Named::new("text_embeddings", vec![V, D], texts.as_slice().unwrap())]).unwrap()).unwrap();
        let mut all: Vec<(usize, Vec<f32>, Vec<u32>)> = Vec::new();
        let mut refs = Vec::new();
        for &n in shards {
            let emb = unit_rows(rng, n, D);
            let nodes: Vec<i64> = (0..n).map(|_| rng.below(V) as i64).collect();
            let mut lists = Vec::new();
            for r in emb.rows() {
                let scores: Vec<f64> = texts.rows().into_iter().map(|t| t.dot(&r) as f64).collect();
                let order = mll_method::order_desc(&scores);
                lists.extend(order.iter().take(k).map(|&g| g as u32));
            }
            let signed: Vec<i32> = lists.iter().map(|&x| x as i32).collect();
            let mut t = vec![Named::new("image_embeddings", vec![n, D], emb.as_slice().unwrap()), Named::new("nodes", vec![n], &nodes)];
            if k > 0 {
                t.push(Named::new("top_nodes", vec![n, k], &signed));
            }
            refs.push(store.put(&st_io::encode(&t).unwrap()).unwrap());
            for (i, r) in emb.rows().into_iter().enumerate() {
                all.push((nodes[i] as usize, r.to_vec(), lists[i * k..(i + 1) * k].to_vec()));
            }
        }
        all.sort_by_key(|a| a.0);
        let n = all.len();
        let labels = ModelLabels {
            image_embeddings: Array2::from_shape_vec((n, D), all.iter().flat_map(|a| a.1.clone()).collect()).unwrap(),
            image_nodes: all.iter().map(|a| a.0).collect(),
            image_rows: None,
            node_text_embeddings: texts,
            top_nodes: (k > 0).then(|| {
                TopNodes::new(Array2::from_shape_vec((n, k), all.iter().flat_map(|a| a.2.clone()).collect()).unwrap(), V).unwrap()
            }),
        };
        (LabelSources { shards: refs, node_texts }, labels)
    }

    /// Four models' label artifacts and two tasks over a graph of V nodes.
    /// Short lists (K = 2, 3) leave many images with no matched node listed:
    /// the fallback is exercised. Complete lists (K = V) never fall back: that
    /// model's node texts are not read. One model has no lists.
    pub(crate) struct Fixture {
        pub _dir: tempfile::TempDir,
        pub store: ArtifactStore,
        pub models: Vec<(LabelSources, ModelLabels)>,
        pub node_emb: Array2<f32>,
        pub tasks: Vec<Array2<f32>>,
    }

    pub(crate) fn fixture(seed: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path());
        let mut rng = SplitMix64::new(seed);
        let models = vec![
            model(&mut rng, &store, &[60, 45, 30], 3),
            model(&mut rng, &store, &[50], 0),
            model(&mut rng, &store, &[40, 40], 2),
            model(&mut rng, &store, &[35, 25], V),
        ];
        let node_emb = unit_rows(&mut rng, V, 6);
        let tasks = vec![unit_rows(&mut rng, 3, 6), unit_rows(&mut rng, 2, 6)];
        Fixture { _dir: dir, store, models, node_emb, tasks }
    }

    /// With and without `selected_images_only`: the index reads what
    /// selection needs (an embedding row it must compute but was not read
    /// fails `add_model`) and selections equal those on whole labels.
    #[test]
    fn selection_through_the_index_equals_selection_on_whole_labels() {
        for selected_images_only in [true, false] {
            let Fixture { _dir: dir, store, models, node_emb, tasks } = fixture(7);
            let options = MethodOptions { k: vec![2], nodes_per_class: 3, selected_images_only, ..MethodOptions::default() };
            let e_t: Vec<_> = tasks.iter().map(|t| Some(t.view())).collect();

            let mut whole = HubSelection::new(&e_t, node_emb.view(), &options).unwrap();
            let mut indexed = HubSelection::new(&e_t, node_emb.view(), &options).unwrap();
            let run = RunId::new("hub-index-test").unwrap();
            let mut read = 0;
            for (sources, labels) in &models {
                whole.add_model(labels).unwrap();
                let digest = digest(sources, V);
                let path = dir.path().join(name(&run, &digest));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, build(&store, sources, V).unwrap()).unwrap();
                let index = HubIndex::open(&path, &digest, V).unwrap();
                assert_eq!(index.images(), labels.image_nodes.len());
                let part = index.labels_for(&indexed.selected_node_sets(), selected_images_only, &store).unwrap();
                read += part.image_nodes.len();
                // Embeddings were read for the rows selection computes, and only for those.
                let rows_read = part.image_rows.as_ref().unwrap().iter().filter(|&&r| r != u32::MAX).count();
                assert_eq!(rows_read, part.image_embeddings.nrows());
                let complete = part.top_nodes.as_ref().is_some_and(|t| t.lists().ncols() == V);
                if complete {
                    assert_eq!((rows_read, part.node_text_embeddings.nrows()), (0, 0));
                } else {
                    // Short random lists: most matched images fall back here.
                    assert!(rows_read > 0, "no embedding row read");
                }
                indexed.add_model(&part).unwrap();
                // The index names what it indexes: another digest or graph size is refused.
                assert!(matches!(HubIndex::open(&path, &"0".repeat(64), V), Err(IndexError::Index { .. })));
                assert!(matches!(HubIndex::open(&path, &digest, V + 1), Err(IndexError::Index { .. })));
            }
            let total: usize = models.iter().map(|m| m.1.image_nodes.len()).sum();
            match selected_images_only {
                true => assert!(read < total, "the index read {read} of {total} images"),
                false => assert_eq!(read, total, "every image is counted"),
            }
            let (whole, indexed) = (whole.finish(), indexed.finish());
            assert!(whole.iter().all(Option::is_some));
            assert_eq!(whole, indexed, "selected_images_only = {selected_images_only}");
        }
    }

    #[test]
    fn labels_that_do_not_fit_the_graph_are_refused_when_indexing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path());
        let (sources, _) = model(&mut SplitMix64::new(1), &store, &[10], 2);
        let err = build(&store, &sources, V - 1).unwrap_err().to_string();
        assert!(err.contains("re-run the model's label jobs"), "{err}");
        // A corrupt artifact is caught by its checksum.
        std::fs::write(store.path_of(&sources.shards[0].sha256), b"garbage").unwrap();
        assert!(matches!(build(&store, &sources, V), Err(IndexError::Artifact(_))));
    }

    /// Where tensor `name`'s data starts in the file's bytes.
    fn data_offset(bytes: &[u8], name: &str) -> usize {
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
        8 + header_len + header[name]["data_offsets"][0].as_u64().unwrap() as usize
    }

    /// A changed list, slot or offset is caught by the file's own checksums:
    /// on the read of the node it belongs to, by `check_all`, and on open
    /// for the offsets; an undamaged file passes `check_all`.
    #[test]
    fn a_changed_index_fails_its_checksums() {
        let Fixture { _dir: dir, store, models, .. } = fixture(11);
        let (sources, labels) = &models[0];
        let digest = digest(sources, V);
        let path = dir.path().join("index.safetensors");
        let good = build(&store, sources, V).unwrap();
        std::fs::write(&path, &good).unwrap();
        HubIndex::open(&path, &digest, V).unwrap().check_all().unwrap();
        let all: Vec<usize> = (0..V).collect();
        for tensor in ["lists", "shard", "row"] {
            let mut bytes = good.clone();
            // The first slot's first value, plus one: still a valid node, shard or row.
            let at = data_offset(&bytes, tensor);
            bytes[at] ^= 1;
            std::fs::write(&path, &bytes).unwrap();
            let index = HubIndex::open(&path, &digest, V).unwrap();
            let first = labels.image_nodes.iter().min().copied().unwrap();
            let err = index.labels_for(&[all.as_slice()], true, &store).unwrap_err();
            assert!(matches!(err, IndexError::Damaged { .. }), "{tensor}: {err}");
            assert!(err.to_string().contains(&format!("node {first}'s images and lists do not match")), "{tensor}: {err}");
            assert!(matches!(index.check_all(), Err(IndexError::Damaged { .. })), "{tensor}");
        }
        let mut bytes = good.clone();
        let at = data_offset(&bytes, "offsets") + 8 * 5;
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = HubIndex::open(&path, &digest, V).unwrap_err();
        assert!(matches!(err, IndexError::Damaged { .. }) && err.to_string().contains("offsets"), "{err}");
    }
}
