//! Jobs: what a worker is asked to do. Payloads are self-contained (class names,
//! templates, texts travel with the job) so a worker needs only the shared data
//! roots, never the benchmark spec.

use crate::ids::{sha256_hex, JobId, RunId};
use crate::stage::Stage;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub run: RunId,
    pub payload: JobPayload,
}

impl Job {
    /// The job of `run` doing `payload`, under its deterministic id ([`JobPayload::id_in`]).
    pub fn new(run: RunId, payload: JobPayload) -> Job {
        Job { id: payload.id_in(&run), run, payload }
    }

    pub fn stage(&self) -> Stage {
        self.payload.stage()
    }

    /// The model the job loads (label and evaluate jobs), which decides its
    /// lane (`queue::lanes`).
    pub fn model(&self) -> Option<&ModelRef> {
        match &self.payload {
            JobPayload::Label(j) => Some(&j.model),
            JobPayload::Evaluate(j) => Some(&j.model),
            JobPayload::Embed(_) | JobPayload::Diagnostic(_) => None,
        }
    }

    /// `Err` with the id the job should have when its id is not the
    /// deterministic id of its run and payload: a message altered on the way
    /// (another run written in, another shard) or built by hand. Workers
    /// refuse such jobs: a result is only ever committed under the id of the
    /// work that made it.
    pub fn check_id(&self) -> Result<(), JobId> {
        let expected = self.payload.id_in(&self.run);
        if expected == self.id {
            Ok(())
        } else {
            Err(expected)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobPayload {
    Embed(EmbedJob),
    Label(LabelJob),
    Evaluate(EvaluateJob),
    Diagnostic(DiagnosticJob),
}

impl JobPayload {
    pub fn stage(&self) -> Stage {
        match self {
            JobPayload::Embed(_) => Stage::Embed,
            JobPayload::Label(_) => Stage::Label,
            JobPayload::Evaluate(_) => Stage::Evaluate,
            JobPayload::Diagnostic(_) => Stage::Diagnostic,
        }
    }

    /// Every filesystem path the payload names, so the worker can refuse a job
    /// that reaches outside its configured data roots before touching disk.
    pub fn paths(&self) -> Vec<&str> {
        match self {
            JobPayload::Embed(j) => match &j.hosted {
                // A hosted embedder reads no folder; only its key file, if any.
                Some(h) => h.key_file.iter().map(String::as_str).collect(),
                None => vec![j.embedder.as_str()],
            },
            JobPayload::Label(j) => vec![j.model.artifact.as_str(), j.graph.as_str()],
            JobPayload::Evaluate(j) => vec![j.model.artifact.as_str(), j.dataset.path.as_str()],
            JobPayload::Diagnostic(_) => vec![],
        }
    }

    /// The job's deterministic id in `run`: the first 128 bits of SHA-256 over
    /// the run and what makes the result (stage, model, inputs and their
    /// digests, shard, options that change it). The one derivation the
    /// planner uses and the worker checks, so the same spec always plans the
    /// same ids and a message cannot carry one job's id with another's work.
    pub fn id_in(&self, run: &RunId) -> JobId {
        match self {
            JobPayload::Embed(j) => {
                let digest = sha256_hex(j.texts.join("\u{1f}").as_bytes());
                let mut parts: Vec<String> = vec!["embed".into(), j.embedder.clone(), j.source.clone(), j.start.to_string(), digest];
                // Only what changes the vectors: the model (in `embedder`) and
                // its dimensions, not the URL, key or limits, so moving to
                // another server of the same model costs nothing twice.
                if let Some(d) = j.hosted.as_ref().and_then(|h| h.dimensions) {
                    parts.push(format!("dim{d}"));
                }
                let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
                JobId::derive(run, &parts)
            }
            JobPayload::Label(j) => {
                let range = format!("{}..{}", j.shard.start, j.shard.end);
                let top = format!("top{}", j.top_nodes);
                let mut parts: Vec<&str> = vec!["label", &j.model.key, &j.model.artifact, &j.graph, &j.graph_digest, &range, &top];
                // Only when set, so ids of runs planned before the option existed stay.
                if j.definition_only {
                    parts.push("definition_only");
                }
                JobId::derive(run, &parts)
            }
            JobPayload::Evaluate(j) => j.id_with_classifier(run, &classifier_digest(&j.classnames, &j.templates)),
            JobPayload::Diagnostic(j) => JobId::derive(run, &["diagnostic", &j.index.to_string(), &j.work_ms.to_string()]),
        }
    }

    /// Short human label for logs and progress lines.
    pub fn describe(&self) -> String {
        match self {
            JobPayload::Embed(j) => format!("embed {} texts {}..{}", j.source, j.start, j.start + j.texts.len() as u64),
            JobPayload::Label(j) => format!("label {} shard {}/{}", j.model.key, j.shard.index + 1, j.shard.count),
            JobPayload::Evaluate(j) => {
                format!("evaluate {} on {} shard {}/{}", j.model.key, j.dataset.name, j.shard.index + 1, j.shard.count)
            }
            JobPayload::Diagnostic(j) => format!("diagnostic #{}", j.index),
        }
    }
}

/// A model of the hub: its key (`<architecture>/<pretrained>`) and the folder of
/// its exported artifact (module.pt, model.json, tokenizer.json), as a path under
/// the data roots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    pub key: String,
    pub artifact: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetFormat {
    /// `root/<class folder>/<image>`; class index = position of the folder in
    /// the class list.
    ImageFolder,
    /// CLIP_benchmark's WebDataset layout: `nshards.txt`, `{i}.tar` with
    /// jpg/png/webp + cls members.
    WebDataset,
    /// Unlabelled: images directly in `root`, `classnames.txt` beside them
    /// (every sample has label 0; see `data::flat`).
    Flat,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRef {
    pub name: String,
    pub format: DatasetFormat,
    /// Path of the split's folder under the data roots.
    pub path: String,
}

/// A contiguous, deterministic slice of samples: samples `start..end` in the
/// dataset's canonical order (sorted paths for ImageFolder, tar order for
/// WebDataset), `index` of `count` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
    pub start: u64,
    pub end: u64,
}

/// How text classifiers are built from class names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PromptProtocol {
    /// Per class: encode every template, L2-normalise, mean, re-normalise.
    #[default]
    ClipBenchmark,
    /// One prompt per class: the first template.
    Mll,
    /// The class name alone, no template: what the released MLL reuse.py
    /// tokenises (it fills "a photo of {c}" and then encodes the bare names).
    Bare,
}

impl PromptProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptProtocol::ClipBenchmark => "clip_benchmark",
            PromptProtocol::Mll => "mll",
            PromptProtocol::Bare => "bare",
        }
    }
}

/// Zero-shot evaluation of one model on one shard of a target dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluateJob {
    pub model: ModelRef,
    pub dataset: DatasetRef,
    pub shard: Shard,
    /// Shared by every job of the dataset in a plan (a hub of 10^5 jobs would
    /// otherwise hold 10^5 copies); on the wire, a plain list.
    pub classnames: Arc<Vec<String>>,
    /// Templates with `{c}` standing for the class name.
    pub templates: Arc<Vec<String>>,
    pub protocol: PromptProtocol,
    /// Keep per-sample class probabilities as an artifact (needed for reuse).
    pub keep_probabilities: bool,
    /// The dataset's sample count when the job was planned (part of its id).
    pub dataset_samples: u64,
}

impl EvaluateJob {
    /// [`JobPayload::id_in`] for an evaluate job whose [`classifier_digest`]
    /// is known already (the planner computes it once per dataset, not once
    /// per job: a dataset's prompts can be 10^5 characters).
    pub fn id_with_classifier(&self, run: &RunId, classifier: &str) -> JobId {
        JobId::derive(
            run,
            &[
                "evaluate",
                &self.model.key,
                &self.model.artifact,
                &self.dataset.name,
                &self.dataset.path,
                self.protocol.as_str(),
                classifier,
                // The dataset's size: a dataset regenerated in place with
                // more or fewer samples must not reuse old shard results.
                &format!("of{}", self.dataset_samples),
                &format!("{}..{}", self.shard.start, self.shard.end),
                if self.keep_probabilities { "probs" } else { "counts" },
            ],
        )
    }
}

/// The digest of the text classifier an evaluate job builds from its class
/// names and templates (part of its id).
pub fn classifier_digest(classnames: &[String], templates: &[String]) -> String {
    sha256_hex(format!("{classnames:?}|{templates:?}").as_bytes())
}

/// Labeling of one model on one shard of the semantic graph's images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelJob {
    pub model: ModelRef,
    /// Path of the graph file (graph.json) under the data roots; image paths in
    /// it are relative to its folder.
    pub graph: String,
    /// SHA-256 of graph.json when the job was planned (part of its id: a graph
    /// rebuilt in place gets new label jobs).
    pub graph_digest: String,
    /// Slice of the graph's image list.
    pub shard: Shard,
    /// Shard 0 also stores the node texts' embeddings.
    pub encode_node_texts: bool,
    /// How many best nodes per image to store (the spec's
    /// `graph.label_top_nodes`); 0 stores none.
    pub top_nodes: u32,
    /// Encode each node's WordNet definition alone (the released label.py)
    /// instead of its `text` ("{lemma}, which is {definition}"); the spec's
    /// `method.node_text_definition_only`.
    #[serde(default)]
    pub definition_only: bool,
}

/// Caption embedding of one chunk of texts with the text embedder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedJob {
    /// Folder of the sentence-embedding model (model.safetensors,
    /// tokenizer.json, config.json); for a hosted embedder `openai:<model>`.
    pub embedder: String,
    /// What the texts are, e.g. `graph` or `dataset:CIFAR100`.
    pub source: String,
    /// Position of the first text in the source's full list.
    pub start: u64,
    pub texts: Vec<String>,
    /// Set when the texts go to a hosted model over the OpenAI-compatible
    /// API (`[embedder] kind = "openai"`) instead of the folder's encoder.
    #[serde(default)]
    pub hosted: Option<HostedEmbed>,
}

/// How an embed job reaches a hosted embedding model (`crate::hosted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostedEmbed {
    pub base_url: String,
    pub model: String,
    /// API key file under the data roots; `None` for servers without keys.
    pub key_file: Option<String>,
    /// Vector length asked of models that can shorten theirs.
    pub dimensions: Option<u32>,
    /// Texts per request.
    pub batch: u32,
    /// Request starts per minute from one worker.
    pub requests_per_minute: u32,
}

/// A job that touches no model: for smoke tests, fault tests and the queue
/// benchmark. Its result is a value derived from its id, so any duplicate or
/// lost result shows in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticJob {
    pub index: u32,
    /// Work to simulate, in milliseconds.
    pub work_ms: u64,
    pub behavior: DiagnosticBehavior,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticBehavior {
    Succeed,
    /// Fails with a transient error on every attempt (a poison job).
    FailAlways,
    /// Fails with a permanent error (dead-lettered at once).
    FailPermanently,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embed(hosted: Option<HostedEmbed>) -> JobPayload {
        let embedder = if hosted.is_some() { "openai:m" } else { "models/minilm" };
        JobPayload::Embed(EmbedJob { embedder: embedder.into(), source: "graph".into(), start: 0, texts: vec!["a".into()], hosted })
    }

    #[test]
    fn hosted_embed_ids_follow_the_model_not_the_server() {
        let run = RunId::new("r").unwrap();
        let h = HostedEmbed {
            base_url: "http://a/v1".into(),
            model: "m".into(),
            key_file: Some("keys/k".into()),
            dimensions: None,
            batch: 64,
            requests_per_minute: 60,
        };
        let id = embed(Some(h.clone())).id_in(&run);
        assert_ne!(id, embed(None).id_in(&run));
        let moved = HostedEmbed { base_url: "http://b/v1".into(), key_file: None, batch: 8, requests_per_minute: 0, ..h.clone() };
        assert_eq!(embed(Some(moved)).id_in(&run), id, "another server of the same model reuses the results");
        assert_ne!(embed(Some(HostedEmbed { dimensions: Some(256), ..h.clone() })).id_in(&run), id);
        assert_eq!(embed(Some(h)).paths(), vec!["keys/k"], "a hosted embedder reads its key file only");
        assert_eq!(embed(None).paths(), vec!["models/minilm"]);
    }
}
