//! The ModelGPT baseline (docs/method.md, "ModelGPT"): an LLM ranks the hub
//! from a target task's general information (its domain, task and class
//! names) and the hub's model cards (architecture, pretraining data, size).
//! This module writes the prompt and reads the answer; asking the LLM (or
//! importing answers made elsewhere) is the coordinator's.

use crate::outcome::ModelInfo;

/// The system message (fixed: part of every answer's cache key).
pub const SYSTEM: &str = "You are an expert in vision-language models (CLIP-style). Given a downstream zero-shot image \
classification task and a hub of pretrained models described by their model cards, you rank the models by how accurate \
you expect each to be on that task, best first. Answer with a JSON array of the model keys exactly as given, every key \
once, best first, and nothing else.";

/// At most this many class names go into a prompt (ImageNet-scale tasks would
/// otherwise fill the context); the prompt says how many there are.
pub const MAX_CLASS_NAMES: usize = 200;

/// A target task as the prompt describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInfo<'a> {
    pub name: &'a str,
    pub domain: &'a str,
    pub task: &'a str,
    pub class_names: &'a [String],
}

/// A hub model's card: its key split into architecture and pretraining data
/// (`<architecture>/<pretrained>`), and its size.
pub fn model_card(m: &ModelInfo) -> String {
    let (arch, data) = m.key.split_once('/').unwrap_or((m.key.as_str(), "unknown"));
    let mut card = format!("- key: {}; architecture: {arch}; pretraining data: {data}", m.key);
    if let Some(p) = m.params_m {
        card.push_str(&format!("; parameters: {p}M"));
    }
    if let Some(g) = m.gflops {
        card.push_str(&format!("; GFLOPs per image: {g}"));
    }
    card
}

/// The user message for one task.
pub fn user_prompt(task: &TaskInfo, models: &[ModelInfo]) -> String {
    let shown = &task.class_names[..task.class_names.len().min(MAX_CLASS_NAMES)];
    let mut s = format!(
        "Task: {}\nDomain: {}\nTask type: {}\nClasses ({}{}): {}\n\nModels ({}):\n",
        task.name,
        if task.domain.is_empty() { "unknown" } else { task.domain },
        if task.task.is_empty() { "classification" } else { task.task },
        task.class_names.len(),
        if shown.len() < task.class_names.len() { format!(", the first {}", shown.len()) } else { String::new() },
        shown.join(", "),
        models.len()
    );
    for m in models {
        s.push_str(&model_card(m));
        s.push('\n');
    }
    s.push_str("\nRank all models for this task, best first, as a JSON array of their keys.");
    s
}

/// What became of one task's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelGptRanking {
    /// Hub indexes, best first; models the answer left out follow in `left_out` (hub order).
    Ranked { order: Vec<usize>, left_out: Vec<usize>, unknown: Vec<String> },
    /// The answer could not be used: why (refused, truncated, malformed).
    Unusable(String),
}

impl ModelGptRanking {
    /// Scores for the ranking metrics: higher is better; models the answer
    /// left out are NaN (ranked last).
    pub fn scores(&self, models: usize) -> Option<Vec<f64>> {
        let ModelGptRanking::Ranked { order, .. } = self else { return None };
        let mut s = vec![f64::NAN; models];
        for (pos, &i) in order.iter().enumerate() {
            s[i] = (order.len() - pos) as f64;
        }
        Some(s)
    }

    /// The top `k` models of the ranking (answered ones first, then the left-out ones).
    pub fn top(&self, k: usize) -> Option<Vec<usize>> {
        let ModelGptRanking::Ranked { order, left_out, .. } = self else { return None };
        Some(order.iter().chain(left_out).copied().take(k).collect())
    }
}

/// Reads an answer: `content` as the LLM wrote it, `finish_reason` and
/// `refusal` as the server reported them. The ranking is the first JSON array
/// of strings in the text (code fences and prose around it are tolerated).
pub fn parse_answer(content: &str, finish_reason: Option<&str>, refusal: Option<&str>, models: &[ModelInfo]) -> ModelGptRanking {
    if let Some(r) = refusal.filter(|r| !r.trim().is_empty()) {
        return ModelGptRanking::Unusable(format!("the LLM refused: {}", excerpt(r)));
    }
    if finish_reason == Some("length") {
        return ModelGptRanking::Unusable(format!(
            "the answer was truncated (finish_reason = length; raise llm.max_tokens): {}",
            excerpt(content)
        ));
    }
    if finish_reason == Some("content_filter") {
        return ModelGptRanking::Unusable("the server's content filter withheld the answer".into());
    }
    let Some(keys) = first_string_array(content) else {
        let why = if content.trim().is_empty() {
            "the answer is empty".to_string()
        } else {
            format!("no JSON array of model keys in the answer: {}", excerpt(content))
        };
        return ModelGptRanking::Unusable(why);
    };
    let mut order = Vec::new();
    let mut unknown = Vec::new();
    for k in keys {
        match models.iter().position(|m| m.key == k.trim()) {
            Some(i) if !order.contains(&i) => order.push(i),
            Some(_) => {}
            None => unknown.push(k),
        }
    }
    if order.is_empty() {
        return ModelGptRanking::Unusable(format!("the answer names no hub model: {}", excerpt(content)));
    }
    let left_out = (0..models.len()).filter(|i| !order.contains(i)).collect();
    ModelGptRanking::Ranked { order, left_out, unknown }
}

/// The first `[...]` in `text` that parses as a JSON array of strings (also
/// what the LLM captions read).
pub fn first_string_array(text: &str) -> Option<Vec<String>> {
    let mut from = 0;
    while let Some(open) = text[from..].find('[').map(|i| i + from) {
        let mut depth = 0usize;
        let mut end = None;
        let mut in_str = false;
        let mut escaped = false;
        for (i, c) in text[open..].char_indices() {
            match (in_str, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (true, false, '"') => in_str = false,
                (false, _, '"') => in_str = true,
                (false, _, '[') => depth += 1,
                (false, _, ']') => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(open + i + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end?;
        if let Ok(v) = serde_json::from_str::<Vec<String>>(&text[open..end]) {
            return Some(v);
        }
        from = open + 1;
    }
    None
}

fn excerpt(s: &str) -> String {
    let t = s.trim().replace('\n', " ");
    match t.char_indices().nth(160) {
        Some((i, _)) => format!("\"{}...\"", &t[..i]),
        None => format!("\"{t}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Vec<ModelInfo> {
        ["ViT-B-32/openai", "RN50/yfcc15m", "ViT-L-14/laion2b"]
            .iter()
            .map(|k| ModelInfo { key: k.to_string(), params_m: Some(100.0), gflops: None, imagenet_top1: None })
            .collect()
    }

    #[test]
    fn the_prompt_carries_the_task_and_the_cards() {
        let classes = vec!["cat".to_string(), "dog".to_string()];
        let p = user_prompt(&TaskInfo { name: "Pets", domain: "animals", task: "classification", class_names: &classes }, &hub());
        assert!(p.contains("Domain: animals") && p.contains("cat, dog"), "{p}");
        assert!(p.contains("architecture: RN50; pretraining data: yfcc15m; parameters: 100M"), "{p}");
    }

    #[test]
    fn answers_are_read_or_explained() {
        let h = hub();
        let r = parse_answer("```json\n[\"ViT-L-14/laion2b\", \"nope/x\", \"ViT-B-32/openai\"]\n```", Some("stop"), None, &h);
        assert_eq!(r, ModelGptRanking::Ranked { order: vec![2, 0], left_out: vec![1], unknown: vec!["nope/x".into()] });
        assert_eq!(r.top(3), Some(vec![2, 0, 1]));
        let s = r.scores(3).unwrap();
        assert!(s[2] > s[0] && s[1].is_nan());
        let bad = |c: &str, f: Option<&str>, refusal: Option<&str>| match parse_answer(c, f, refusal, &h) {
            ModelGptRanking::Unusable(why) => why,
            other => panic!("{other:?}"),
        };
        assert!(bad("[\"ViT-B-32/openai\", \"RN5", Some("length"), None).contains("truncated"));
        assert!(bad("", Some("stop"), Some("I can't help with that")).contains("refused"));
        assert!(bad("I'd pick the big one.", Some("stop"), None).contains("no JSON array"));
        assert!(bad("[\"a/b\"]", None, None).contains("names no hub model"));
        assert!(bad("[\"ViT-B-32/openai\", ", None, None).contains("no JSON array"));
    }
}
