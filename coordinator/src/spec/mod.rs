//! Benchmark specs (`configs/benchmarks/*.toml`): the hub, the target datasets,
//! the semantic graph and the method options. A spec names a run; submitting it
//! again continues that run.

pub mod catalog;
mod error;

pub use error::SpecError;
pub use mll_method::options::{EnsembleWeight, MethodOptions, MethodPreset, MicroWeights, NodeScore};

use mll_common::job::{DatasetFormat, PromptProtocol};
use mll_method::outcome::ModelInfo;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

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
    /// A chat model for the ModelGPT baseline and LLM captions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSpec>,
    #[serde(default)]
    pub method: MethodOptions,
    #[serde(default)]
    pub execution: ExecutionOptions,
    /// The run's share of the workers when runs share them (1 to 100):
    /// `submit --wait` keeps `priority × coordinator.window` jobs queued.
    #[serde(default = "default_priority")]
    pub priority: u32,
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

impl HubModel {
    /// The model as the report describes it.
    pub fn info(&self) -> ModelInfo {
        ModelInfo { key: self.key.clone(), params_m: self.params_m, gflops: self.gflops, imagenet_top1: self.imagenet_top1 }
    }
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
    /// A TSV file, relative to this spec file, pairing the dataset's class
    /// names (label order) with the caption file's keys (MLL's own class
    /// names), e.g. `../catalog/class_maps/GTSRB.tsv`; a `catalog = "NAME"`
    /// dataset gets its entry's. Without it captions are looked up by the
    /// dataset's class names.
    #[serde(default)]
    pub class_map: Option<String>,
    /// A dataset catalog entry (configs/catalog/datasets.toml) that filled the
    /// keys this dataset leaves out (`catalog::resolve_references`).
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

/// The caption text embedder. `[embedder] path = "..."` is the in-process
/// sentence encoder (all-MiniLM-L6-v2); `kind = "openai"` sends the texts to
/// a hosted model over the OpenAI-compatible API from the workers' embed jobs
/// (docs/operations.md, "Hosted models").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderSpec {
    #[serde(default, skip_serializing_if = "EmbedderKind::is_minilm")]
    pub kind: EmbedderKind,
    /// `minilm`: folder with model.safetensors, tokenizer.json, config.json, relative to data_root.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Texts per embed job.
    #[serde(default = "default_embed_chunk")]
    pub chunk: usize,
    /// `openai`: the model's name, e.g. `text-embedding-3-large`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `openai`: the API root; default `https://api.openai.com/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// `openai`: a file holding the API key alone, relative to data_root (the
    /// workers read it under their data roots); none for servers without keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// `openai`: the vector length asked of models that can shorten theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// `openai`: texts per request (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// `openai`: request starts per minute from one worker (default 60; 0: unpaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderKind {
    /// The in-process MiniLM of `path`.
    #[default]
    Minilm,
    /// A hosted model over the OpenAI-compatible embeddings API.
    Openai,
}

impl EmbedderKind {
    fn is_minilm(&self) -> bool {
        *self == EmbedderKind::Minilm
    }
}

/// OpenAI's API root, where `base_url` is not given.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

impl EmbedderSpec {
    /// What embed jobs name as their embedder: the folder, or `openai:<model>`.
    pub fn name(&self) -> String {
        match self.kind {
            EmbedderKind::Minilm => self.path.clone(),
            EmbedderKind::Openai => format!("openai:{}", self.model.as_deref().unwrap_or_default()),
        }
    }

    /// The embed jobs' hosted endpoint (`None` for the in-process MiniLM).
    pub fn hosted(&self) -> Option<mll_common::job::HostedEmbed> {
        (self.kind == EmbedderKind::Openai).then(|| mll_common::job::HostedEmbed {
            base_url: self.base_url.clone().unwrap_or_else(|| OPENAI_BASE_URL.to_string()),
            model: self.model.clone().unwrap_or_default(),
            key_file: self.key_file.clone(),
            dimensions: self.dimensions,
            batch: self.batch.unwrap_or(64),
            requests_per_minute: self.requests_per_minute.unwrap_or(60),
        })
    }
}

/// A chat model over the OpenAI-compatible API (`[llm]`): the ModelGPT
/// baseline's ranker and the LLM captions' writer. Called by the
/// coordinator; answers are cached under the run (docs/method.md, "ModelGPT").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSpec {
    /// The model's name, e.g. `gpt-4o-2024-08-06`.
    pub model: String,
    /// The API root; default `https://api.openai.com/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// A file holding the API key alone, relative to data_root; none for servers without keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// Request starts per minute (default 30; 0: unpaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Longest answer asked for, in tokens (default 2048).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

impl LlmSpec {
    /// The client endpoint, with the key file resolved under `data_root`.
    pub fn endpoint(&self, data_root: &Path) -> mll_common::hosted::Endpoint {
        let mut e = mll_common::hosted::Endpoint::new(
            self.base_url.clone().unwrap_or_else(|| OPENAI_BASE_URL.to_string()),
            self.model.clone(),
            self.key_file.as_ref().map(|k| data_root.join(k)),
        );
        e.requests_per_minute = self.requests_per_minute.unwrap_or(30);
        e
    }

    /// The longest answer asked for, in tokens (default 2048).
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens.unwrap_or(2048)
    }
}

fn default_embed_chunk() -> usize {
    256
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionOptions {
    pub protocol: PromptProtocol,
    /// The dataset's class names or the caption keys in prompts.
    pub prompt_names: PromptNames,
    /// Samples per evaluate/label job when a job's size is not derived from
    /// its model's cost (`shard_seconds` = 0, or a model without `gflops`).
    pub shard_size: u64,
    /// Cost-aware shards: each model's jobs hold as many samples as take about
    /// this many seconds on the reference GPU (`reference_tflops`), from the
    /// model's `gflops` per image, so a big model's jobs are no longer than a
    /// small one's (no tail at many workers) and a small model's jobs are
    /// not drowned in per-job overhead. 0 turns it off; so does a spec that
    /// gives `shard_size` and not `shard_seconds`.
    pub shard_seconds: f64,
    /// Effective inference throughput of the reference GPU, TFLOP/s (what
    /// `shard_seconds` is measured against).
    pub reference_tflops: f64,
    /// Keep per-sample probabilities of evaluate jobs (reuse recombines them).
    pub keep_probabilities: bool,
}

impl ExecutionOptions {
    /// The execution options this preset stands for.
    pub fn for_preset(preset: MethodPreset) -> ExecutionOptions {
        let base = ExecutionOptions {
            protocol: PromptProtocol::ClipBenchmark,
            prompt_names: PromptNames::Dataset,
            shard_size: 2000,
            shard_seconds: 10.0,
            reference_tflops: 125.0,
            keep_probabilities: true,
        };
        match preset {
            MethodPreset::ClipBenchmark => base,
            // reuse.py tokenises the bare class names its loaders give, which
            // are MLL's own names (the caption keys).
            MethodPreset::Paper => ExecutionOptions { protocol: PromptProtocol::Bare, prompt_names: PromptNames::CaptionKeys, ..base },
        }
    }
}

/// Which class names go into the evaluate jobs' prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PromptNames {
    /// The dataset's own class names (classnames.txt, CLIP_benchmark's names).
    #[default]
    Dataset,
    /// The caption keys the dataset's `class_map` gives (MLL's own class
    /// names, as the released code prompts with); the dataset's names where
    /// it has no class map.
    CaptionKeys,
}

impl PromptNames {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptNames::Dataset => "dataset",
            PromptNames::CaptionKeys => "caption_keys",
        }
    }
}

impl Default for ExecutionOptions {
    /// The default preset's options.
    fn default() -> Self {
        ExecutionOptions::for_preset(MethodPreset::default())
    }
}

fn default_priority() -> u32 {
    1
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
    /// The spec's digest (report.json `spec_digest`): SHA-256 of its canonical JSON form.
    pub fn digest(&self) -> String {
        let json = serde_json::to_vec(self).expect("a spec serialises");
        hex::encode(Sha256::digest(&json))
    }

    /// Parses a spec and resolves its preset: `[method]` and `[execution]`
    /// keys the text leaves out take the preset's values.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, SpecError> {
        let parse = |message: String| SpecError::Parse { path: origin.to_string(), message };
        let mut table: toml::Table = match catalog::resolve_references(text, origin)? {
            Some(resolved) => {
                let _: BenchmarkSpec = resolved.clone().try_into().map_err(|e: toml::de::Error| parse(e.to_string()))?;
                match resolved {
                    toml::Value::Table(t) => t,
                    _ => return Err(parse("the spec is not a TOML table".into())),
                }
            }
            None => {
                // A first typed parse for error messages with line numbers.
                let _: BenchmarkSpec = toml::from_str(text).map_err(|e| parse(e.to_string()))?;
                toml::from_str(text).map_err(|e| parse(e.to_string()))?
            }
        };
        let preset: MethodPreset = match table.get("method").and_then(|m| m.get("preset")) {
            Some(v) => v.clone().try_into().map_err(|e| parse(format!("method.preset: {e}")))?,
            None => MethodPreset::default(),
        };
        fill_missing(&mut table, "method", &preset.method()).map_err(parse)?;
        let mut execution = ExecutionOptions::for_preset(preset);
        // A spec that sets `shard_size` and not `shard_seconds` asked for
        // fixed shards of that size.
        let given = |key: &str| table.get("execution").and_then(|e| e.get(key)).is_some();
        if given("shard_size") && !given("shard_seconds") {
            execution.shard_seconds = 0.0;
        }
        fill_missing(&mut table, "execution", &execution).map_err(parse)?;
        let spec: BenchmarkSpec = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| parse(e.to_string()))?;
        spec.validate(origin)?;
        Ok(spec)
    }

    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read { path: path.display().to_string(), source })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    fn validate(&self, origin: &str) -> Result<(), SpecError> {
        let invalid = |key: &str, message: String| SpecError::Invalid { path: origin.to_string(), key: key.to_string(), message };
        mll_common::ids::RunId::new(&self.name).map_err(|m| invalid("name", m))?;
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
        if !(1..=100).contains(&self.priority) {
            return Err(invalid("priority", format!("{} is outside 1..=100", self.priority)));
        }
        if self.execution.shard_size == 0 {
            return Err(invalid("execution.shard_size", "must be >= 1".into()));
        }
        if !(self.execution.shard_seconds.is_finite() && (0.0..=86_400.0).contains(&self.execution.shard_seconds)) {
            return Err(invalid(
                "execution.shard_seconds",
                format!("{} is outside 0..=86400 (0 turns cost-aware shards off)", self.execution.shard_seconds),
            ));
        }
        if !(self.execution.reference_tflops.is_finite() && self.execution.reference_tflops > 0.0) {
            return Err(invalid("execution.reference_tflops", format!("{} must be a positive number", self.execution.reference_tflops)));
        }
        if let Some(e) = &self.embedder {
            match e.kind {
                EmbedderKind::Minilm => {
                    if e.path.is_empty() {
                        return Err(invalid("embedder.path", "give the text embedder's folder (or kind = \"openai\" and model)".into()));
                    }
                    let hosted_key = [
                        ("model", e.model.is_some()),
                        ("base_url", e.base_url.is_some()),
                        ("key_file", e.key_file.is_some()),
                        ("dimensions", e.dimensions.is_some()),
                        ("batch", e.batch.is_some()),
                        ("requests_per_minute", e.requests_per_minute.is_some()),
                    ]
                    .into_iter()
                    .find(|(_, given)| *given);
                    if let Some((key, _)) = hosted_key {
                        return Err(invalid(&format!("embedder.{key}"), "is for kind = \"openai\"; add that or drop the key".into()));
                    }
                }
                EmbedderKind::Openai => {
                    if e.model.as_deref().is_none_or(str::is_empty) {
                        return Err(invalid(
                            "embedder.model",
                            "kind = \"openai\" needs the model's name, e.g. text-embedding-3-large".into(),
                        ));
                    }
                    if !e.path.is_empty() {
                        return Err(invalid("embedder.path", "a hosted embedder has no folder; drop path or use kind = \"minilm\"".into()));
                    }
                    if e.batch == Some(0) {
                        return Err(invalid("embedder.batch", "must be >= 1".into()));
                    }
                }
            }
            if e.chunk == 0 {
                return Err(invalid("embedder.chunk", "must be >= 1".into()));
            }
        }
        if let Some(l) = &self.llm {
            if l.model.is_empty() {
                return Err(invalid("llm.model", "give the chat model's name".into()));
            }
        }
        if let Some(d) = &self.diagnostic {
            if let Some(bad) = d.poison.iter().chain(&d.permanent_failures).find(|&&i| i >= d.jobs) {
                return Err(invalid("diagnostic", format!("job index {bad} is not below jobs = {}", d.jobs)));
            }
        }
        Ok(())
    }
}

/// Puts every key of `defaults` that `table[section]` lacks into it.
fn fill_missing<T: Serialize>(table: &mut toml::Table, section: &str, defaults: &T) -> Result<(), String> {
    let toml::Value::Table(defaults) = toml::Value::try_from(defaults).map_err(|e| format!("{section}: {e}"))? else {
        return Err(format!("{section}: preset values are not a table"));
    };
    let entry = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let toml::Value::Table(given) = entry else {
        return Err(format!("{section} must be a table ([{section}])"));
    };
    for (k, v) in defaults {
        given.entry(k).or_insert(v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_fill_what_the_spec_leaves_out() {
        // No preset: the clip_benchmark protocol, as before presets existed.
        let s = BenchmarkSpec::from_toml("name = \"x\"\n", "t.toml").unwrap();
        assert_eq!(s.method, MethodPreset::ClipBenchmark.method());
        assert_eq!(s.method.ensemble_weight, EnsembleWeight::Entropy);
        assert_eq!(s.execution.protocol, PromptProtocol::ClipBenchmark);
        // paper: the released code's choices.
        let s = BenchmarkSpec::from_toml("name = \"x\"\n[method]\npreset = \"paper\"\n", "t.toml").unwrap();
        assert_eq!(s.method.preset, MethodPreset::Paper);
        assert_eq!(s.method.ensemble_weight, EnsembleWeight::InverseEntropy);
        assert!(!s.method.alpha_mean_includes_self && s.method.node_text_definition_only && s.method.strict_captions);
        assert!(s.method.micro_average && s.method.micro_weights == MicroWeights::Similarity);
        assert_eq!(s.execution.protocol, PromptProtocol::Bare);
        assert_eq!(s.execution.prompt_names, PromptNames::CaptionKeys);
        assert_eq!(s.execution.shard_size, 2000);
        // Explicit keys win, in either section.
        let s = BenchmarkSpec::from_toml(
            "name = \"x\"\n[method]\npreset = \"paper\"\nensemble_weight = \"entropy\"\nalpha = 0.5\n\
             [execution]\nprotocol = \"clip_benchmark\"\nshard_size = 10\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(s.method.ensemble_weight, EnsembleWeight::Entropy);
        assert_eq!(s.method.alpha, 0.5);
        assert!(s.method.node_text_definition_only, "keys not given still come from the preset");
        assert_eq!(s.execution.protocol, PromptProtocol::ClipBenchmark);
        assert_eq!(s.execution.prompt_names, PromptNames::CaptionKeys);
        assert_eq!(s.execution.shard_size, 10);
        assert_eq!(s.execution.shard_seconds, 0.0, "a spec giving shard_size alone asked for fixed shards");
        let t = BenchmarkSpec::from_toml("name = \"x\"\n[execution]\nshard_size = 10\nshard_seconds = 30\n", "t.toml").unwrap();
        assert_eq!((t.execution.shard_size, t.execution.shard_seconds), (10, 30.0));
        let t = BenchmarkSpec::from_toml("name = \"x\"\n", "t.toml").unwrap();
        assert_eq!(t.execution.shard_seconds, 10.0, "cost-aware shards by default");
        let err = BenchmarkSpec::from_toml("name = \"x\"\n[execution]\nshard_seconds = -1\n", "t.toml").unwrap_err();
        assert!(err.to_string().contains("execution.shard_seconds"), "{err}");
        // The resolved options serialise with the preset's name (report.json's `method`).
        let json = serde_json::to_value(&s.method).unwrap();
        assert_eq!(json["preset"], "paper");
        assert_eq!(json["ensemble_weight"], "entropy");
        let err = BenchmarkSpec::from_toml("name = \"x\"\n[method]\npreset = \"papr\"\n", "t.toml").unwrap_err();
        assert!(err.to_string().contains("papr"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = BenchmarkSpec::from_toml("name = \"x\"\nbogus = 1\n", "t.toml").unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
        let err = BenchmarkSpec::from_toml("name = \"x\"\n[method]\nalpha = 2.0\n", "t.toml").unwrap_err().to_string();
        assert!(err.contains("method.alpha"), "{err}");
    }

    #[test]
    fn embedder_kinds_parse_and_are_checked() {
        let s = BenchmarkSpec::from_toml("name = \"x\"\n[embedder]\npath = \"models/m\"\n", "t.toml").unwrap();
        let e = s.embedder.as_ref().unwrap();
        assert_eq!((e.kind, e.name(), e.hosted()), (EmbedderKind::Minilm, "models/m".to_string(), None));
        // The old form serialises as before, so existing runs keep their spec digest.
        assert_eq!(serde_json::to_value(e).unwrap(), serde_json::json!({"path": "models/m", "chunk": 256}));
        let s = BenchmarkSpec::from_toml(
            "name = \"x\"\n[embedder]\nkind = \"openai\"\nmodel = \"text-embedding-3-large\"\nkey_file = \"keys/k\"\n",
            "t.toml",
        )
        .unwrap();
        let e = s.embedder.as_ref().unwrap();
        assert_eq!(e.name(), "openai:text-embedding-3-large");
        let h = e.hosted().unwrap();
        assert_eq!((h.base_url.as_str(), h.batch, h.requests_per_minute), (OPENAI_BASE_URL, 64, 60));
        for (text, key) in [
            ("[embedder]\nkind = \"openai\"\n", "embedder.model"),
            ("[embedder]\nkind = \"openai\"\nmodel = \"m\"\npath = \"p\"\n", "embedder.path"),
            ("[embedder]\npath = \"p\"\nmodel = \"m\"\n", "embedder.model"),
            ("[embedder]\nchunk = 3\n", "embedder.path"),
            ("[embedder]\nkind = \"cohere\"\n", "cohere"),
            ("[llm]\nmodel = \"\"\n", "llm.model"),
        ] {
            let err = BenchmarkSpec::from_toml(&format!("name = \"x\"\n{text}"), "t.toml").unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
