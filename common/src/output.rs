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

    /// Adds another shard's counts. Saturating: counts read back from a
    /// store are checked ([`ClassCounts::check`]) before they are added, and a
    /// damaged record must never become a panic.
    pub fn add(&mut self, other: &ClassCounts) {
        for (a, b) in self.n.iter_mut().zip(&other.n) {
            *a = a.saturating_add(*b);
        }
        for (a, b) in self.top1.iter_mut().zip(&other.top1) {
            *a = a.saturating_add(*b);
        }
        for (a, b) in self.top5.iter_mut().zip(&other.top5) {
            *a = a.saturating_add(*b);
        }
    }

    /// Checks counts read back from a store against what the job was: one
    /// entry per class, `top1 <= top5 <= n` per class, and `samples` in all.
    pub fn check(&self, classes: usize, samples: u64) -> Result<(), String> {
        if self.n.len() != classes || self.top1.len() != classes || self.top5.len() != classes {
            return Err(format!(
                "counts for {}/{}/{} classes (n/top1/top5), the dataset has {classes}",
                self.n.len(),
                self.top1.len(),
                self.top5.len()
            ));
        }
        for c in 0..classes {
            let (n, t1, t5) = (self.n[c], self.top1[c], self.top5[c]);
            if t1 > t5 || t5 > n {
                return Err(format!("class {c} has top1 {t1}, top5 {t5}, n {n}: not top1 <= top5 <= n"));
            }
        }
        let total = self.n.iter().try_fold(0u64, |a, b| a.checked_add(*b));
        if total != Some(samples) {
            return Err(format!(
                "the counts cover {} samples, the job had {samples}",
                total.map_or("more than 2^64".into(), |t| t.to_string())
            ));
        }
        Ok(())
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
