//! What a worker commits for a job: small numbers inline, large tensors as
//! references into the artifact store.

use crate::artifact::ArtifactRef;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobOutput {
    Embed(EmbedOutput),
    Label(LabelOutput),
    Evaluate(EvaluateOutput),
    Diagnostic(DiagnosticOutput),
}

/// Per-class counts of one evaluate shard; shards of a (model, dataset) pair add up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounts {
    /// Samples whose true class is this one.
    pub n: Vec<u64>,
    /// ... of which the top-1 prediction was right.
    pub top1: Vec<u64>,
    /// ... of which the true class was among the top 5 (all of them when C < 5).
    pub top5: Vec<u64>,
}

impl ClassCounts {
    pub fn zeros(classes: usize) -> Self {
        ClassCounts { n: vec![0; classes], top1: vec![0; classes], top5: vec![0; classes] }
    }

    pub fn add(&mut self, other: &ClassCounts) {
        for (a, b) in self.n.iter_mut().zip(&other.n) {
            *a += b;
        }
        for (a, b) in self.top1.iter_mut().zip(&other.top1) {
            *a += b;
        }
        for (a, b) in self.top5.iter_mut().zip(&other.top5) {
            *a += b;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluateOutput {
    pub counts: ClassCounts,
    /// Protocol the text classifier was built with (recorded in every result).
    pub protocol: String,
    /// safetensors with `probs` (f32, n × C, softmax of 100·cos), `labels`
    /// (i64, n) and `entropy` (f64, n: [`crate::prob::entropy`] of each row, the
    /// reuse weight's input) for the shard's samples in order.
    pub probabilities: Option<ArtifactRef>,
    pub images: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelOutput {
    /// safetensors with `image_embeddings` (f32, n × D, L2-normalised),
    /// `nodes` (i64, n: the true graph node index of each image) and, when the
    /// job asked for K > 0, `top_nodes` (i32, n × K: each image's K best nodes
    /// by cosine, best first, equal scores by lower node index).
    pub images: ArtifactRef,
    /// safetensors with `text_embeddings` (f32, V × D, L2-normalised); shard 0 only.
    pub node_texts: Option<ArtifactRef>,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedOutput {
    /// safetensors with `embeddings` (f32, n × D_e, L2-normalised).
    pub embeddings: ArtifactRef,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticOutput {
    pub index: u32,
    /// A value derived from the job id, so aggregation can check every result.
    pub value: u64,
}
