//! LLM node captions (`coordinator graph captions --llm-model ...`): the
//! released `MLL/label.py` asks an LLM for 10 descriptions per graph node
//! (its release writes none); this asks any OpenAI-compatible chat model for
//! them, one request per node at temperature 0, and writes them into
//! graph.json's node `captions` (what the text embedder matches classes to).
//!
//! Resumable and cached: each usable answer is written to the cache folder
//! as it arrives (`<sha256 of the request>.json`), so an interrupted run, or
//! a second one, asks only for the nodes still missing. An unusable answer
//! (refused, truncated, no descriptions) is not cached: the node keeps its
//! captions, is named in the summary, and the next run asks again.

use crate::llm_cache::{open, seal, Request};
use mll_common::data::graph::{Graph, GraphNode};
use mll_common::hosted::{ChatAnswer, ChatMessage, HostedClient};
use std::path::Path;

pub const SYSTEM: &str = "You describe visual concepts for image classification. Answer with a JSON array of strings and nothing else.";

/// The question for one node: `per_node` short descriptions of what it looks like.
pub fn messages(node: &GraphNode, per_node: usize) -> Vec<ChatMessage> {
    let name = if node.lemma.is_empty() { node.id.as_str() } else { node.lemma.as_str() };
    let user = format!(
        "Give {per_node} different short descriptions of what a \"{name}\" ({}) looks like in a photo, one sentence each, \
         as a JSON array of {per_node} strings.",
        if node.definition.is_empty() { "a WordNet concept" } else { node.definition.as_str() }
    );
    vec![ChatMessage::system(SYSTEM), ChatMessage::user(user)]
}

/// The question for one class of a new task: `per_class` descriptions of a
/// photograph of it, in the manner of MLL's released class captions ("The
/// photograph of an apple in image classification shows ...").
pub fn class_messages(class: &str, per_class: usize) -> Vec<ChatMessage> {
    let user = format!(
        "Give {per_class} different descriptions of a photograph of a \"{class}\" in image classification: what the \
         photograph shows and how it looks, one or two sentences each, as a JSON array of {per_class} strings."
    );
    vec![ChatMessage::system(SYSTEM), ChatMessage::user(user)]
}

/// The progress bar of a captions loop over `n` things (`one` node, `many`
/// nodes), drawn on a terminal only.
pub fn progress_bar(one: &str, many: &str, n: usize, model: &str) -> indicatif::ProgressBar {
    let template = format!("LLM {one} captions ({{msg}}) {{bar:30}} {{pos}}/{{len}} {many}, ETA {{eta}}");
    let bar =
        indicatif::ProgressBar::new(n as u64).with_style(indicatif::ProgressStyle::with_template(&template).expect("a valid template"));
    bar.set_message(model.to_string());
    bar
}

/// The descriptions in an answer: its JSON array of strings, else its
/// non-empty lines with list markers removed; `Err` says why there are none.
pub fn descriptions(a: &ChatAnswer) -> Result<Vec<String>, String> {
    if let Some(r) = a.refusal.as_deref().filter(|r| !r.trim().is_empty()) {
        return Err(format!("refused: {r}"));
    }
    if a.finish_reason.as_deref() == Some("length") {
        return Err("truncated (finish_reason = length)".into());
    }
    let list = match mll_method::modelgpt::first_string_array(&a.content) {
        Some(v) => v,
        None => a
            .content
            .lines()
            .map(|l| l.trim().trim_start_matches(|c: char| c.is_ascii_digit() || matches!(c, '.' | ')' | '-' | '*' | ' ')).trim())
            .filter(|l| !l.is_empty() && !l.starts_with("```"))
            .map(str::to_string)
            .collect(),
    };
    let list: Vec<String> = list.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if list.is_empty() {
        return Err("no descriptions in the answer".into());
    }
    Ok(list)
}

/// What a captions run did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CaptionsSummary {
    pub nodes: usize,
    /// Answers read back from the cache.
    pub cached: usize,
    /// Answers asked for now.
    pub asked: usize,
    /// Nodes left without new captions, with why.
    pub failed: Vec<(String, String)>,
}

/// Fills every node's captions from the LLM (or the cache), writing each
/// usable answer to `cache` as it arrives; returns the graph and what happened.
pub fn caption_graph(
    mut graph: Graph,
    client: &HostedClient,
    cache: &Path,
    per_node: usize,
    max_tokens: u32,
) -> anyhow::Result<(Graph, CaptionsSummary)> {
    std::fs::create_dir_all(cache).map_err(|e| anyhow::anyhow!("cannot create the captions cache {}: {e}", cache.display()))?;
    let mut summary = CaptionsSummary { nodes: graph.nodes.len(), ..Default::default() };
    // Thousands of nodes at a paced request rate take hours: show where it is.
    let bar = progress_bar("node", "nodes", graph.nodes.len(), client.model());
    for node in &mut graph.nodes {
        bar.inc(1);
        let request = Request {
            model: client.model().to_string(),
            messages: messages(node, per_node),
            temperature: 0.0,
            max_tokens: Some(max_tokens),
        };
        let file = cache.join(format!("{}.json", request.key()));
        // A kept answer that fails its check is asked for again (and rewritten).
        let cached = std::fs::read(&file).ok().and_then(|b| open(&request.key(), &b).ok());
        let cached_ok = cached.is_some();
        let answer = match cached {
            Some(a) => {
                summary.cached += 1;
                a
            }
            None => match client.chat(&request.messages, request.temperature, request.max_tokens) {
                Ok(a) => {
                    summary.asked += 1;
                    a
                }
                Err(e) => {
                    summary.failed.push((node.id.clone(), e.to_string()));
                    continue;
                }
            },
        };
        match descriptions(&answer) {
            Ok(list) => {
                if !cached_ok {
                    mll_method::report::write_atomically(&file, &seal(&request, &answer))
                        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
                }
                node.captions = list.into_iter().take(per_node).collect();
            }
            Err(why) => summary.failed.push((node.id.clone(), why)),
        }
    }
    bar.finish_and_clear();
    Ok((graph, summary))
}
