//! Benchmark specs (`configs/benchmarks/*.toml`): the hub, the target datasets,
//! the semantic graph and the method options. A spec names a run; submitting it
//! again continues that run.

use crate::job::{DatasetFormat, PromptProtocol};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("benchmark spec {path}: cannot read it: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("benchmark spec {path}: {message}")]
    Parse { path: String, message: String },
    #[error("benchmark spec {path}: {key}: {message}")]
    Invalid { path: String, key: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkSpec {
    /// Run name: 1 to 64 characters of a-z, 0-9, '.', '_', '-'.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Folder that relative paths in this spec start from; relative to the spec
    /// file itself. Workers see the same layout under their data roots.
    #[serde(default = "default_root")]
    pub data_root: String,
    #[serde(default)]
    pub hub: Vec<HubModel>,
    #[serde(default)]
    pub datasets: Vec<TargetDataset>,
    #[serde(default)]
    pub graph: Option<GraphSpec>,
    #[serde(default)]
    pub embedder: Option<EmbedderSpec>,
    #[serde(default)]
    pub method: MethodOptions,
    #[serde(default)]
    pub execution: ExecutionOptions,
    /// Queue-only diagnostic jobs (smoke tests, fault tests, queue benchmark).
    #[serde(default)]
    pub diagnostic: Option<DiagnosticSpec>,
    /// A generator that writes the data root (e.g. the toy world); run by
    /// `coordinator run` before planning.
    #[serde(default)]
    pub world: Option<WorldSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldSpec {
    /// Script path relative to the spec file; called as `python SCRIPT --out DATA_ROOT --seed SEED`.
    pub generator: String,
    #[serde(default)]
    pub seed: u64,
}

fn default_root() -> String {
    ".".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubModel {
    /// `<architecture>/<pretrained>`, e.g. `ViT-B-32/laion2b_e16`.
    pub key: String,
    /// Folder of the exported artifact, relative to data_root.
    pub artifact: String,
    #[serde(default)]
    pub params_m: Option<f64>,
    #[serde(default)]
    pub gflops: Option<f64>,
    /// ImageNet-1k zero-shot top-1 (0..1), used by the INB baseline.
    #[serde(default)]
    pub imagenet_top1: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDataset {
    pub name: String,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub task: String,
    pub format: DatasetFormat,
    /// Folder of the test split, relative to data_root.
    pub path: String,
    #[serde(default)]
    pub split: String,
    /// Class names in label order; when empty they are read from
    /// `<path>/classnames.txt` (CLIP_benchmark layout).
    #[serde(default)]
    pub classnames: Vec<String>,
    /// Prompt templates with `{c}`; when empty, read from
    /// `<path>/zeroshot_classification_templates.txt`, else `a photo of a {c}.`.
    #[serde(default)]
    pub templates: Vec<String>,
    /// Captions per class for matching classes to graph nodes: a JSON file
    /// `{class name: [caption, ...]}` relative to data_root; when absent the class
    /// name itself is the caption.
    #[serde(default)]
    pub captions: Option<String>,
    /// A dataset catalog entry (configs/catalog/datasets.toml) that filled the
    /// keys this dataset leaves out (`crate::catalog::resolve_references`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSpec {
    /// graph.json written by `coordinator graph build`, relative to data_root.
    pub path: String,
    /// Label jobs also store each image's `label_top_nodes` best nodes by
    /// S_m (its row of the model label, best first), so selection looks the
    /// argmax over V_sel up instead of recomputing S_m rows; images whose list
    /// holds no selected node fall back to the embeddings. 0 turns the lists off.
    #[serde(default = "default_label_top_nodes")]
    pub label_top_nodes: u32,
}

fn default_label_top_nodes() -> u32 {
    32
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderSpec {
    /// Folder with model.safetensors, tokenizer.json, config.json, relative to data_root.
    pub path: String,
    #[serde(default = "default_embed_chunk")]
    pub chunk: usize,
}

fn default_embed_chunk() -> usize {
    256
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NodeScore {
    #[default]
    F1,
    Precision,
    Recall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EnsembleWeight {
    /// w = H(P_m(·|x)), as written in the paper.
    #[default]
    Entropy,
    /// w = 1 / H(P_m(·|x)), as in the released code.
    InverseEntropy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MethodOptions {
    pub alpha: f64,
    /// Values of k to report (models per class).
    pub k: Vec<usize>,
    pub nodes_per_class: usize,
    pub node_score: NodeScore,
    /// Mix over all classes (true, the paper) or over y' != y.
    pub alpha_mean_includes_self: bool,
    /// Column-normalise Z before the class score.
    pub normalize_z: bool,
    /// Micro-average node counts per class instead of weighting node scores.
    pub micro_average: bool,
    /// Restrict the argmax to images whose true node is selected (true, the
    /// paper), or use all images.
    pub selected_images_only: bool,
    pub ensemble_weight: EnsembleWeight,
    /// Node text given to the VLM: "{lemma}, which is {definition}" or definition only.
    pub node_text_definition_only: bool,
    /// Seed for everything random in selection and baselines.
    pub seed: u64,
}

impl Default for MethodOptions {
    fn default() -> Self {
        MethodOptions {
            alpha: 0.7,
            k: vec![1, 3],
            nodes_per_class: 5,
            node_score: NodeScore::F1,
            alpha_mean_includes_self: true,
            normalize_z: false,
            micro_average: false,
            selected_images_only: true,
            ensemble_weight: EnsembleWeight::Entropy,
            node_text_definition_only: false,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionOptions {
    pub protocol: PromptProtocol,
    /// Samples per evaluate/label job; sized so a job ends well inside
    /// RabbitMQ's consumer_timeout on the slowest model.
    pub shard_size: u64,
    /// Keep per-sample probabilities of evaluate jobs (reuse recombines them).
    pub keep_probabilities: bool,
}

impl Default for ExecutionOptions {
    fn default() -> Self {
        ExecutionOptions { protocol: PromptProtocol::ClipBenchmark, shard_size: 2000, keep_probabilities: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticSpec {
    pub jobs: u32,
    #[serde(default)]
    pub work_ms: u64,
    /// Indexes of jobs that fail on every attempt (poison jobs).
    #[serde(default)]
    pub poison: Vec<u32>,
    /// Indexes of jobs that fail permanently at once.
    #[serde(default)]
    pub permanent_failures: Vec<u32>,
}

impl BenchmarkSpec {
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, SpecError> {
        let parse_err = |e: toml::de::Error| SpecError::Parse { path: origin.to_string(), message: e.to_string() };
        let spec: BenchmarkSpec = match crate::catalog::resolve_references(text, origin)? {
            Some(resolved) => resolved.try_into().map_err(parse_err)?,
            None => toml::from_str(text).map_err(parse_err)?,
        };
        spec.validate(origin)?;
        Ok(spec)
    }

    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SpecError::Read { path: path.display().to_string(), source })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    fn validate(&self, origin: &str) -> Result<(), SpecError> {
        let invalid = |key: &str, message: String| SpecError::Invalid {
            path: origin.to_string(),
            key: key.to_string(),
            message,
        };
        crate::ids::RunId::new(&self.name).map_err(|m| invalid("name", m))?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, m) in self.hub.iter().enumerate() {
            if !m.key.contains('/') {
                return Err(invalid(&format!("hub[{i}].key"), format!("'{}' is not <architecture>/<pretrained>", m.key)));
            }
            if !seen.insert(&m.key) {
                return Err(invalid(&format!("hub[{i}].key"), format!("model '{}' is listed twice", m.key)));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, d) in self.datasets.iter().enumerate() {
            if !seen.insert(&d.name) {
                return Err(invalid(&format!("datasets[{i}].name"), format!("dataset '{}' is listed twice", d.name)));
            }
        }
        if !(0.0..=1.0).contains(&self.method.alpha) {
            return Err(invalid("method.alpha", format!("{} is outside 0..=1", self.method.alpha)));
        }
        if self.method.k.is_empty() || self.method.k.contains(&0) {
            return Err(invalid("method.k", "give at least one k, each >= 1".into()));
        }
        if self.method.nodes_per_class == 0 {
            return Err(invalid("method.nodes_per_class", "must be >= 1".into()));
        }
        if self.execution.shard_size == 0 {
            return Err(invalid("execution.shard_size", "must be >= 1".into()));
        }
        if let Some(d) = &self.diagnostic {
            if let Some(bad) = d.poison.iter().chain(&d.permanent_failures).find(|&&i| i >= d.jobs) {
                return Err(invalid("diagnostic", format!("job index {bad} is not below jobs = {}", d.jobs)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let err = BenchmarkSpec::from_toml("name = \"x\"\nbogus = 1\n", "t.toml").unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
        let err = BenchmarkSpec::from_toml("name = \"x\"\n[method]\nalpha = 2.0\n", "t.toml").unwrap_err().to_string();
        assert!(err.contains("method.alpha"), "{err}");
    }
}
