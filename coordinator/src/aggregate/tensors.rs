//! Decoding the tensors of safetensors artifacts, every shape and dtype
//! checked, every failure naming the artifact.

use super::AggregateError;
use mll_common::artifact::{ArtifactRef, ArtifactStore};
use ndarray::{Array2, Axis};
use safetensors::SafeTensors;

/// Reads one tensor of a safetensors artifact as f32 or i64 (converted).
pub(super) fn tensor_f32(st: &SafeTensors, name: &str, sha: &str) -> Result<(Vec<usize>, Vec<f32>), AggregateError> {
    let t = st.tensor(name).map_err(|e| AggregateError::Artifact { sha256: sha.into(), reason: format!("tensor '{name}': {e}") })?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(AggregateError::Artifact { sha256: sha.into(), reason: format!("tensor '{name}' is {:?}, expected F32", t.dtype()) });
    }
    let v = t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    Ok((t.shape().to_vec(), v))
}

pub(super) fn tensor_i64(st: &SafeTensors, name: &str, sha: &str) -> Result<Vec<i64>, AggregateError> {
    let t = st.tensor(name).map_err(|e| AggregateError::Artifact { sha256: sha.into(), reason: format!("tensor '{name}': {e}") })?;
    if t.dtype() != safetensors::Dtype::I64 {
        return Err(AggregateError::Artifact { sha256: sha.into(), reason: format!("tensor '{name}' is {:?}, expected I64", t.dtype()) });
    }
    Ok(t.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect())
}

/// An optional tensor: None when the artifact does not have it (older workers).
pub(super) fn has_tensor(st: &SafeTensors, name: &str) -> bool {
    st.names().iter().any(|n| *n == name)
}

pub(super) fn tensor_f64(st: &SafeTensors, name: &str, sha: &str) -> Result<Vec<f64>, AggregateError> {
    let t = st.tensor(name).map_err(|e| AggregateError::Artifact { sha256: sha.into(), reason: format!("tensor '{name}': {e}") })?;
    if t.dtype() != safetensors::Dtype::F64 {
        return Err(AggregateError::Artifact { sha256: sha.into(), reason: format!("tensor '{name}' is {:?}, expected F64", t.dtype()) });
    }
    Ok(t.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect())
}

/// `top_nodes` (i32, n × K) as u32 lists, each checked to be a graph node, and
/// their heads ([`crate::method::TopNodes`]), split in the same pass.
pub(super) fn top_nodes(st: &SafeTensors, sha: &str, graph_nodes: usize) -> Result<(Array2<u32>, Vec<u32>), AggregateError> {
    let bad = |reason: String| AggregateError::Artifact { sha256: sha.into(), reason };
    let t = st.tensor("top_nodes").map_err(|e| bad(format!("tensor 'top_nodes': {e}")))?;
    if t.dtype() != safetensors::Dtype::I32 {
        return Err(bad(format!("tensor 'top_nodes' is {:?}, expected I32", t.dtype())));
    }
    let [n, k] = t.shape() else { return Err(bad(format!("tensor 'top_nodes' has shape {:?}, expected 2-D", t.shape()))) };
    let (n, k) = (*n, *k);
    let mut lists = Vec::with_capacity(n * k);
    let mut head = Vec::with_capacity(n * crate::method::TopNodes::head_width(k));
    for (j, b) in t.data().chunks_exact(4).enumerate() {
        let x = i32::from_le_bytes(b.try_into().unwrap());
        if x < 0 || x as usize >= graph_nodes {
            return Err(bad(format!(
                "tensor 'top_nodes' names node {x} but the graph has {graph_nodes} nodes; the label artifacts do not belong to this graph"
            )));
        }
        let x = x as u32;
        if j % k < crate::method::TopNodes::head_width(k) {
            head.push(x);
        }
        lists.push(x);
    }
    Ok((Array2::from_shape_vec((n, k), lists).expect("shape checked"), head))
}

pub(super) fn safetensors_of<'a>(bytes: &'a [u8], aref: &ArtifactRef) -> Result<SafeTensors<'a>, AggregateError> {
    SafeTensors::deserialize(bytes).map_err(|e| AggregateError::Artifact { sha256: aref.sha256.clone(), reason: e.to_string() })
}

pub(super) fn read(store: &ArtifactStore, aref: &ArtifactRef) -> Result<Vec<u8>, AggregateError> {
    store.get(aref).map_err(|e| AggregateError::Artifact { sha256: aref.sha256.clone(), reason: e.to_string() })
}

pub(super) fn matrix(store: &ArtifactStore, aref: &ArtifactRef, name: &str) -> Result<Array2<f32>, AggregateError> {
    let bytes = read(store, aref)?;
    matrix_of(&safetensors_of(&bytes, aref)?, name, &aref.sha256)
}

pub(super) fn matrix_of(st: &SafeTensors, name: &str, sha: &str) -> Result<Array2<f32>, AggregateError> {
    let (shape, v) = tensor_f32(st, name, sha)?;
    let (r, c) = match shape.as_slice() {
        [r, c] => (*r, *c),
        _ => return Err(AggregateError::Artifact { sha256: sha.into(), reason: format!("tensor '{name}' has shape {shape:?}, expected 2-D") }),
    };
    Ok(Array2::from_shape_vec((r, c), v).expect("shape checked"))
}

pub(super) fn vstack(parts: Vec<Array2<f32>>) -> Array2<f32> {
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(Axis(0), &views).expect("same column count")
}

