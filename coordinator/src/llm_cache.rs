//! Kept LLM answers: every chat answer the coordinator asks for (ModelGPT's
//! rankings, a task's class captions, graph node captions) is written as a
//! sealed record, `<request sha256>.json`, so that a rerun costs nothing and
//! `verify` can tell a kept answer from a changed one.
//!
//! A record holds the request (model, messages, temperature, max_tokens), the
//! answer, and the sha256 of each. Opening one checks that the request hashes
//! to the file's name and the answer to its recorded digest: a record edited
//! by hand, cut short or written for another question is refused, and the
//! caller asks again rather than use it.

use mll_common::artifact::ArtifactStore;
use mll_common::hosted::{ChatAnswer, ChatMessage, HostedClient};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

pub const FORMAT: &str = "mll-llm-answer/1";

/// The folder of kept answers in an artifact store (`llm/<key>.json`).
pub const ARTIFACT_DIR: &str = "llm";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Request {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub temperature: f64,
    pub max_tokens: Option<u32>,
}

impl Request {
    /// The cache key: the sha256 of the request's canonical JSON.
    pub fn key(&self) -> String {
        let canonical = serde_json::json!({
            "model": self.model, "messages": self.messages, "temperature": self.temperature, "max_tokens": self.max_tokens
        });
        sha256_hex(canonical.to_string().as_bytes())
    }

    /// The named artifact holding this request's answer.
    pub fn artifact_name(&self) -> String {
        format!("{ARTIFACT_DIR}/{}.json", self.key())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    format: String,
    request_sha256: String,
    request: Request,
    answer: ChatAnswer,
    answer_sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn answer_digest(a: &ChatAnswer) -> String {
    sha256_hex(&serde_json::to_vec(a).expect("an answer serialises"))
}

/// The record of `answer` to `request`, as written.
pub fn seal(request: &Request, answer: &ChatAnswer) -> Vec<u8> {
    let r = Record {
        format: FORMAT.into(),
        request_sha256: request.key(),
        request: request.clone(),
        answer: answer.clone(),
        answer_sha256: answer_digest(answer),
    };
    serde_json::to_vec_pretty(&r).expect("a record serialises")
}

/// The answer in a record named `key` (its file stem), or why it cannot be trusted.
pub fn open(key: &str, bytes: &[u8]) -> Result<ChatAnswer, String> {
    let r: Record = serde_json::from_slice(bytes).map_err(|e| format!("not a kept LLM answer ({FORMAT}): {e}"))?;
    if r.format != FORMAT {
        return Err(format!("format '{}', expected '{FORMAT}'", r.format));
    }
    let request_key = r.request.key();
    if request_key != key || r.request_sha256 != key {
        return Err(format!("its request hashes to {request_key}, not to its name {key}"));
    }
    if answer_digest(&r.answer) != r.answer_sha256 {
        return Err("its answer does not match the answer's recorded sha256 (changed after it was written)".into());
    }
    Ok(r.answer)
}

/// The kept answer to `messages` (temperature 0) from the artifact store,
/// else the LLM's, kept when `keep` accepts it: an unusable answer (a
/// refusal, a truncation) is then asked for again on the next run. A record
/// that fails its check is warned about and asked for again.
pub async fn chat(
    artifacts: &ArtifactStore,
    client: &Arc<HostedClient>,
    messages: Vec<ChatMessage>,
    max_tokens: Option<u32>,
    keep: impl Fn(&ChatAnswer) -> bool,
) -> anyhow::Result<ChatAnswer> {
    let request = Request { model: client.model().to_string(), messages, temperature: 0.0, max_tokens };
    let name = request.artifact_name();
    if let Some(bytes) = artifacts.get_named(&name)? {
        match open(&request.key(), &bytes) {
            Ok(a) => return Ok(a),
            Err(why) => tracing::warn!(artifact = %name, %why, "a kept LLM answer fails its check; asking again"),
        }
    }
    let (c, r) = (client.clone(), request.clone());
    let answer = tokio::task::spawn_blocking(move || c.chat(&r.messages, r.temperature, r.max_tokens)).await??;
    if keep(&answer) {
        artifacts.put_named(&name, &seal(&request, &answer))?;
    }
    Ok(answer)
}

/// Every kept answer under `dir` (`<key>.json` files), checked: (files
/// checked, [(path, why)] for those that fail).
pub fn check_dir(dir: &std::path::Path) -> std::io::Result<(usize, Vec<(std::path::PathBuf, String)>)> {
    let mut files: Vec<std::path::PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, vec![])),
        Err(e) => return Err(e),
    };
    files.sort();
    let mut bad = Vec::new();
    for path in &files {
        let key = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let checked = std::fs::read(path).map_err(|e| format!("cannot read it: {e}")).and_then(|b| open(key, &b));
        if let Err(why) = checked {
            bad.push((path.clone(), why));
        }
    }
    Ok((files.len(), bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(model: &str, max_tokens: Option<u32>) -> Request {
        Request { model: model.into(), messages: vec![ChatMessage::user("hi")], temperature: 0.0, max_tokens }
    }

    #[test]
    fn the_key_follows_what_is_asked() {
        assert_eq!(request("a", None).key(), request("a", None).key());
        assert_ne!(request("a", None).key(), request("b", None).key());
        assert_ne!(request("a", None).key(), request("a", Some(5)).key());
    }

    #[test]
    fn a_sealed_answer_opens_and_a_changed_one_does_not() {
        let q = request("m", Some(10));
        let a = ChatAnswer { content: "[\"x\"]".into(), finish_reason: Some("stop".into()), refusal: None };
        let bytes = seal(&q, &a);
        assert_eq!(open(&q.key(), &bytes).unwrap(), a);
        // The answer changed, the request changed, another name, cut short, not a record.
        let text = String::from_utf8(bytes.clone()).unwrap();
        let changed = text.replace("[\\\"x\\\"]", "[\\\"y\\\"]");
        assert_ne!(changed, text);
        assert!(open(&q.key(), changed.as_bytes()).unwrap_err().contains("recorded sha256"));
        let asked_else = text.replace("\"hi\"", "\"ho\"");
        assert!(open(&q.key(), asked_else.as_bytes()).unwrap_err().contains("hashes to"));
        assert!(open(&request("other", None).key(), &bytes).unwrap_err().contains("not to its name"));
        assert!(open(&q.key(), &bytes[..bytes.len() / 2]).is_err());
        assert!(open(&q.key(), br#"{"content": "x", "finish_reason": "stop", "refusal": null}"#).is_err());
    }

    #[test]
    fn check_dir_names_each_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let q = request("m", None);
        let a = ChatAnswer { content: "ok".into(), finish_reason: None, refusal: None };
        std::fs::write(dir.path().join(format!("{}.json", q.key())), seal(&q, &a)).unwrap();
        std::fs::write(dir.path().join(format!("{}.json", request("n", None).key())), seal(&q, &a)).unwrap();
        let (n, bad) = check_dir(dir.path()).unwrap();
        assert_eq!((n, bad.len()), (2, 1));
        assert_eq!(check_dir(&dir.path().join("none")).unwrap(), (0, vec![]));
    }
}
