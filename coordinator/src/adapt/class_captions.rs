//! LLM captions for a new task's classes. When `select` or `adapt` gets no
//! captions file and a chat model is configured (`--llm-model`, else the hub
//! spec's `[llm]`), each class is described by that model the way MLL's
//! released class captions are (descriptions of a photograph of the class),
//! at temperature 0, and the descriptions are embedded as captions.
//!
//! Usable answers are kept as named artifacts of the hub's store
//! (`llm/<sha256 of the request>.json`, as ModelGPT's are), so selecting the
//! same classes again asks nothing. A refused, truncated or empty answer is
//! not kept: its class is embedded by its name, the output names it, and the
//! next run asks again. A request that fails outright (after the client's
//! retries) stops the command: a selection silently made from names when the
//! user asked for captions would be a different selection.

use super::task::ClassTexts;
use crate::llm_captions::{class_messages, descriptions, progress_bar};
use mll_common::artifact::ArtifactStore;
use mll_common::hosted::HostedClient;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Descriptions asked for per class (the released prompt's 10).
pub const PER_CLASS: usize = 10;

/// The chat model that writes a task's class captions.
#[derive(Clone)]
pub struct ClassCaptioner {
    pub client: Arc<HostedClient>,
    /// Longest answer asked for, in tokens.
    pub max_tokens: u32,
    /// Where the configuration came from (`--llm-model`, the hub spec's `[llm]`), for messages.
    pub from: String,
}

/// `classes` with every class described by the LLM (cached answers first).
pub async fn caption(classes: ClassTexts, captioner: &ClassCaptioner, artifacts: &ArtifactStore) -> anyhow::Result<ClassTexts> {
    let model = captioner.client.model().to_string();
    let bar = progress_bar("class", "classes", classes.names.len(), &model);
    let mut found = BTreeMap::new();
    let mut unusable = Vec::new();
    for name in &classes.names {
        let asked =
            crate::llm_cache::chat(artifacts, &captioner.client, class_messages(name, PER_CLASS), Some(captioner.max_tokens), |a| {
                descriptions(a).is_ok()
            })
            .await;
        let answer = match asked {
            Ok(a) => a,
            Err(e) => {
                bar.abandon();
                return Err(anyhow::anyhow!(
                    "asking the LLM {model} ({}) for the captions of class '{name}' failed: {e:#}. The answers received so far \
                     are kept, so the same command asks only for the rest; --captions FILE gives captions instead, \
                     --no-llm embeds the class names",
                    captioner.from
                ));
            }
        };
        match descriptions(&answer) {
            Ok(list) => {
                found.insert(name.clone(), list.into_iter().take(PER_CLASS).collect::<Vec<_>>());
            }
            Err(why) => {
                // Above the bar, not through it.
                bar.suspend(|| tracing::warn!(class = %name, %why, "the LLM gave no captions for a class: it is embedded by its name"));
                unusable.push((name.clone(), why));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    tracing::debug!(%model, classes = classes.names.len(), without = unusable.len(), "LLM class captions");
    Ok(classes.with_llm_captions(&found, &model, unusable))
}
