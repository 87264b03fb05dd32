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
    /// (i64, n) and `entropy` (f64, n: `mll_method::prob::entropy` of each row, the
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

/// How a job's execution went, committed next to its output: the wall
/// seconds the executor took (on a GPU worker, the job's GPU-seconds). The
/// k sweep's reuse cost sums them per (model, dataset).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub seconds: f64,
}

/// A committed result as the store holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommittedResult {
    pub output: JobOutput,
    /// None for results committed before executions were recorded.
    pub execution: Option<Execution>,
}

/// Stored results start with these 4 bytes and a u16 format version (little
/// endian), then the bincode [`CommittedResult`]. Older records are a bare
/// bincode [`JobOutput`], whose first 4 bytes are its variant index (0..=3),
/// so the two never look alike and old records stay readable. Version 2
/// encodes integers with variable length (per-class counts of a 200-class
/// shard: 0.6 KB instead of 4.8 KB); version 1 (fixed 8-byte integers) is
/// still read.
pub const RESULT_MAGIC: &[u8; 4] = b"MLLR";
pub const RESULT_FORMAT_VERSION: u16 = 2;

/// The bytes a worker commits for a job.
pub fn encode_result(output: &JobOutput, execution: Execution) -> Result<Vec<u8>, crate::wire::WireError> {
    let record = CommittedResult { output: output.clone(), execution: Some(execution) };
    let mut bytes = Vec::with_capacity(256);
    bytes.extend_from_slice(RESULT_MAGIC);
    bytes.extend_from_slice(&RESULT_FORMAT_VERSION.to_le_bytes());
    bytes.extend(crate::wire::encode_compact(&record)?);
    Ok(bytes)
}

/// Reads a committed result, current or from before executions were recorded.
pub fn decode_result(bytes: &[u8]) -> Result<CommittedResult, crate::wire::WireError> {
    use crate::wire::{decode_compact, decode_value, WireError};
    match bytes.strip_prefix(RESULT_MAGIC.as_slice()) {
        Some(rest) => match rest.get(..2).map(|v| u16::from_le_bytes([v[0], v[1]])) {
            Some(1) => decode_value(&rest[2..]),
            Some(RESULT_FORMAT_VERSION) => decode_compact(&rest[2..]),
            version => Err(WireError::Decode(format!(
                "stored result has format version {version:?}, this binary reads versions 1 and {RESULT_FORMAT_VERSION}: run coordinator and workers of the same release"
            ))),
        },
        None => Ok(CommittedResult { output: decode_value(bytes)?, execution: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_carry_their_execution_and_old_records_stay_readable() {
        let out = JobOutput::Diagnostic(DiagnosticOutput { index: 2, value: 77 });
        let bytes = encode_result(&out, Execution { seconds: 1.5 }).unwrap();
        let back = decode_result(&bytes).unwrap();
        assert_eq!(back.output, out);
        assert_eq!(back.execution, Some(Execution { seconds: 1.5 }));
        // A record committed before this format: the bare output.
        let old = crate::wire::encode_value(&out).unwrap();
        assert_eq!(decode_result(&old).unwrap(), CommittedResult { output: out.clone(), execution: None });
        // A version-1 record: fixed-width integers.
        let mut v1 = RESULT_MAGIC.to_vec();
        v1.extend_from_slice(&1u16.to_le_bytes());
        v1.extend(
            crate::wire::encode_value(&CommittedResult { output: out.clone(), execution: Some(Execution { seconds: 1.5 }) }).unwrap(),
        );
        assert_eq!(decode_result(&v1).unwrap(), back);
        let mut future = bytes.clone();
        future[4] = 9;
        assert!(decode_result(&future).unwrap_err().to_string().contains("format version"));
        // Counts of a 200-class shard of 2,000 samples stay well under a KiB.
        let mut counts = ClassCounts::zeros(200);
        for c in 0..200 {
            (counts.n[c], counts.top1[c], counts.top5[c]) = (10, 7, 9);
        }
        let eval = JobOutput::Evaluate(EvaluateOutput { counts, protocol: "clip_benchmark".into(), probabilities: None, images: 2000 });
        let size = encode_result(&eval, Execution { seconds: 3.0 }).unwrap().len();
        assert!(size < 700, "{size} bytes");
    }
}
