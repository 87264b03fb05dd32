//! The ModelGPT baseline's questions (docs/method.md, "ModelGPT"): one chat
//! completion per target dataset, asked by the coordinator at report time
//! (temperature 0), or answers imported from a file (`report --modelgpt`).
//!
//! Every answer is kept as a named artifact `llm/<sha256>.json` in the run's
//! artifact store, keyed by the request (API model, messages, temperature,
//! max_tokens): a second report, a resumed run or another run asking the same
//! question reads it back instead of paying again. Only answers the server
//! gave are kept; a server that stayed unreachable through the client's
//! retries is asked again next time.

use crate::plan::Plan;
use mll_common::artifact::ArtifactStore;
use mll_common::hosted::{ChatAnswer, ChatMessage, HostedClient};
use mll_method::modelgpt::{parse_answer, user_prompt, ModelGptRanking, TaskInfo, SYSTEM};
use mll_method::outcome::ModelInfo;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The ModelGPT rankings for a report: per dataset name, and where they came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelGpt {
    /// e.g. `llm gpt-4o` or `answers file answers.json`; None: not run.
    pub source: Option<String>,
    pub rankings: BTreeMap<String, ModelGptRanking>,
}

impl ModelGpt {
    /// The report-level note saying where ModelGPT's rankings came from.
    pub fn note(&self) -> String {
        match &self.source {
            Some(s) => format!("ModelGPT: rankings from {s} ({} datasets; docs/method.md, \"ModelGPT\")", self.rankings.len()),
            None => "ModelGPT: not run (no [llm] in the spec and no `report --modelgpt` answers)".into(),
        }
    }
}

/// One answer as a file gives it: the model keys best first, the raw text,
/// or a chat answer with the server's finish reason and refusal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FileAnswer {
    Keys(Vec<String>),
    Text(String),
    Chat(ChatAnswer),
}

/// `report --modelgpt FILE`: `{"answers": {"DATASET": ANSWER, ...}}` with an
/// optional `"model"` (what answered); the format this module writes too
/// (`modelgpt_answers.json` beside the report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswersFile {
    #[serde(default)]
    pub model: Option<String>,
    pub answers: BTreeMap<String, FileAnswer>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelGptError {
    #[error("modelgpt: cannot read the answers file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error(
        "modelgpt: {path} is not a ModelGPT answers file: {reason} (expected {{\"answers\": {{\"DATASET\": [\"model key\", ...] or \"answer text\"}}}})"
    )]
    Parse { path: String, reason: String },
}

fn ranking_of(answer: &FileAnswer, models: &[ModelInfo]) -> ModelGptRanking {
    match answer {
        FileAnswer::Keys(keys) => parse_answer(&serde_json::to_string(keys).expect("strings serialise"), Some("stop"), None, models),
        FileAnswer::Text(t) => parse_answer(t, None, None, models),
        FileAnswer::Chat(c) => parse_answer(&c.content, c.finish_reason.as_deref(), c.refusal.as_deref(), models),
    }
}

/// Reads `report --modelgpt FILE` for the plan's datasets; a dataset the file
/// has no answer for gets an "unusable" ranking saying so.
pub fn import(path: &Path, plan: &Plan) -> Result<ModelGpt, ModelGptError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| ModelGptError::Read { path: path.display().to_string(), reason: e.to_string() })?;
    let file: AnswersFile =
        serde_json::from_str(&text).map_err(|e| ModelGptError::Parse { path: path.display().to_string(), reason: e.to_string() })?;
    let models: Vec<ModelInfo> = plan.spec.hub.iter().map(|m| m.info()).collect();
    let rankings = plan
        .datasets
        .iter()
        .map(|d| {
            let r = match file.answers.get(&d.spec.name) {
                Some(a) => ranking_of(a, &models),
                None => ModelGptRanking::Unusable(format!("{} has no answer for this dataset", path.display())),
            };
            (d.spec.name.clone(), r)
        })
        .collect();
    let by = file.model.map(|m| format!(" ({m})")).unwrap_or_default();
    Ok(ModelGpt { source: Some(format!("answers file {}{by}", path.display())), rankings })
}

/// The two messages asked for one dataset.
pub fn messages(plan: &Plan, dataset: usize, models: &[ModelInfo]) -> Vec<ChatMessage> {
    let d = &plan.datasets[dataset];
    let task = TaskInfo { name: &d.spec.name, domain: &d.spec.domain, task: &d.spec.task, class_names: &d.classnames };
    vec![ChatMessage::system(SYSTEM), ChatMessage::user(user_prompt(&task, models))]
}

/// Asks the spec's `[llm]` for every dataset's ranking (cached answers
/// first). A dataset whose question failed gets an "unusable" ranking naming
/// the error, never an abort: the rest of the report stands.
pub async fn ask(plan: &Plan, artifacts: &ArtifactStore) -> anyhow::Result<(ModelGpt, AnswersFile)> {
    let Some(llm) = &plan.spec.llm else { return Ok((ModelGpt::default(), AnswersFile { model: None, answers: BTreeMap::new() })) };
    let models: Vec<ModelInfo> = plan.spec.hub.iter().map(|m| m.info()).collect();
    let source = Some(format!("llm {}", llm.model));
    // A bad key file or URL leaves ModelGPT's cells empty with the reason; the
    // rest of the report (often after hours of GPU work) still gets written.
    let client = match HostedClient::new(llm.endpoint(&plan.data_root)) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::warn!(error = %e, "ModelGPT: the LLM client cannot be set up");
            let why = ModelGptRanking::Unusable(format!("the LLM client cannot be set up: {e}"));
            let rankings = plan.datasets.iter().map(|d| (d.spec.name.clone(), why.clone())).collect();
            return Ok((ModelGpt { source, rankings }, AnswersFile { model: Some(llm.model.clone()), answers: BTreeMap::new() }));
        }
    };
    let max_tokens = Some(llm.max_tokens());
    let mut rankings = BTreeMap::new();
    let mut answers = BTreeMap::new();
    for (i, d) in plan.datasets.iter().enumerate() {
        let ranking = match crate::llm_cache::chat(artifacts, &client, messages(plan, i, &models), max_tokens, |_| true).await {
            Ok(a) => {
                let r = parse_answer(&a.content, a.finish_reason.as_deref(), a.refusal.as_deref(), &models);
                answers.insert(d.spec.name.clone(), FileAnswer::Chat(a));
                r
            }
            Err(e) => {
                tracing::warn!(dataset = %d.spec.name, error = %e, "ModelGPT: the LLM could not be asked");
                ModelGptRanking::Unusable(format!("the LLM could not be asked: {e:#}"))
            }
        };
        rankings.insert(d.spec.name.clone(), ranking);
    }
    let file = AnswersFile { model: Some(llm.model.clone()), answers };
    Ok((ModelGpt { source, rankings }, file))
}

/// Writes the answers asked for this report beside it (`modelgpt_answers.json`,
/// importable with `report --modelgpt`); nothing when none were asked.
pub fn write_answers(answers: &AnswersFile, out: &Path) -> anyhow::Result<()> {
    if answers.answers.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(out)?;
    let path = out.join("modelgpt_answers.json");
    let mut bytes = serde_json::to_vec_pretty(answers)?;
    bytes.push(b'\n');
    mll_method::report::write_atomically(&path, &bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_files_take_keys_text_or_chat_answers() {
        let f: AnswersFile = serde_json::from_str(
            r#"{"model": "m", "answers": {"A": ["x/1"], "B": "[\"x/1\"]", "C": {"content": "", "finish_reason": "stop", "refusal": "no"}}}"#,
        )
        .unwrap();
        assert!(matches!(f.answers["A"], FileAnswer::Keys(_)));
        assert!(matches!(f.answers["B"], FileAnswer::Text(_)));
        let models = vec![ModelInfo { key: "x/1".into(), params_m: None, gflops: None, imagenet_top1: None }];
        assert!(matches!(ranking_of(&f.answers["A"], &models), ModelGptRanking::Ranked { .. }));
        assert!(matches!(ranking_of(&f.answers["B"], &models), ModelGptRanking::Ranked { .. }));
        assert!(matches!(ranking_of(&f.answers["C"], &models), ModelGptRanking::Unusable(w) if w.contains("refused")));
    }
}
