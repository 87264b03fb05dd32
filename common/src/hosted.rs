//! The one client for hosted models over the OpenAI-compatible HTTP API
//! (`POST {base_url}/embeddings` and `POST {base_url}/chat/completions`: what
//! OpenAI, vLLM, Ollama, llama.cpp's server and infinity speak).
//!
//! Blocking (ureq): embed executors are synchronous and run on blocking
//! threads; the coordinator calls it from `spawn_blocking`. Requests are
//! spaced to `requests_per_minute` per client, and 429, 408, 5xx and
//! transport failures are retried with the project's [`Backoff`] (a
//! `Retry-After` header lengthens the wait). The API key is read from a file
//! and never appears in logs, errors or `Debug` output.

use crate::backoff::Backoff;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where a hosted model is served and how hard to call it.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// e.g. `https://api.openai.com/v1` or `http://127.0.0.1:7997`; the
    /// client appends `/embeddings` or `/chat/completions`.
    pub base_url: String,
    pub model: String,
    /// A file holding the API key alone; `None` for servers without keys.
    pub key_file: Option<PathBuf>,
    /// Request starts per minute from this client (0: no spacing).
    pub requests_per_minute: u32,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// Whole-request timeout.
    pub timeout: Duration,
}

impl Endpoint {
    /// An endpoint with the default limits: 60 requests a minute, 6
    /// attempts, 1 s doubling to 60 s between them, 300 s per request.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>, key_file: Option<PathBuf>) -> Endpoint {
        Endpoint {
            base_url: base_url.into(),
            model: model.into(),
            key_file,
            requests_per_minute: 60,
            max_attempts: 6,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            timeout: Duration::from_secs(300),
        }
    }
}

/// The API key; its `Debug` form is redacted.
#[derive(Clone)]
struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostedError {
    #[error("hosted model: cannot read the API key file {path}: {reason} (write the key, alone, into that file)")]
    KeyFile { path: String, reason: String },
    #[error("hosted model: the API key file {path} is empty (write the key, alone, into that file)")]
    EmptyKey { path: String },
    #[error("hosted model: base URL '{url}' is not http(s)://... (set base_url to the server's API root, e.g. http://127.0.0.1:7997/v1)")]
    BadUrl { url: String },
    #[error("hosted model: {url} answered HTTP {status}: {body} (check base_url, model and the key file)")]
    Rejected { url: String, status: u16, body: String },
    #[error("hosted model: {url} failed {attempts} times, last: {last} (is the server up and within its rate limits?)")]
    Exhausted { url: String, attempts: u32, last: String },
    #[error("hosted model: {url} answered something that is not an OpenAI-compatible {what}: {reason}")]
    Malformed { url: String, what: &'static str, reason: String },
}

impl HostedError {
    /// Whether a later retry of the whole job may succeed (the server was
    /// down or busy), as opposed to a configuration or protocol error.
    pub fn is_transient(&self) -> bool {
        matches!(self, HostedError::Exhausted { .. })
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage { role: "system".into(), content: content.into() }
    }
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage { role: "user".into(), content: content.into() }
    }
}

/// A chat completion's first choice as the server gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatAnswer {
    /// The text; empty when the server gave none (a refusal, a filter).
    pub content: String,
    /// `stop`, `length` (truncated), `content_filter`, ...
    pub finish_reason: Option<String>,
    /// The server's refusal text, where it reports one.
    pub refusal: Option<String>,
}

/// Largest answer body read (3,072-d embeddings of a 256-text batch as JSON are ~20 MB).
const BODY_LIMIT: u64 = 256 << 20;
/// Characters of an error body quoted in an error.
const QUOTE: usize = 300;

pub struct HostedClient {
    agent: ureq::Agent,
    base_url: String,
    model: String,
    key: Option<ApiKey>,
    endpoint: Endpoint,
    last_start: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for HostedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedClient").field("base_url", &self.base_url).field("model", &self.model).finish_non_exhaustive()
    }
}

/// Reads an API key file: the key alone, surrounding whitespace dropped.
fn read_key(path: &Path) -> Result<ApiKey, HostedError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| HostedError::KeyFile { path: path.display().to_string(), reason: e.kind().to_string() })?;
    let key = text.trim();
    if key.is_empty() {
        return Err(HostedError::EmptyKey { path: path.display().to_string() });
    }
    Ok(ApiKey(key.to_string()))
}

impl HostedClient {
    pub fn new(endpoint: Endpoint) -> Result<Self, HostedError> {
        let base_url = endpoint.base_url.trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(HostedError::BadUrl { url: endpoint.base_url.clone() });
        }
        let key = endpoint.key_file.as_deref().map(read_key).transpose()?;
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(endpoint.timeout)).build().into();
        Ok(HostedClient { agent, base_url, model: endpoint.model.clone(), key, endpoint, last_start: Mutex::new(None) })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Waits until this client may start another request.
    fn pace(&self) {
        if self.endpoint.requests_per_minute == 0 {
            return;
        }
        let gap = Duration::from_secs(60) / self.endpoint.requests_per_minute;
        let mut last = self.last_start.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = *last {
            let since = t.elapsed();
            if since < gap {
                std::thread::sleep(gap - since);
            }
        }
        *last = Some(Instant::now());
    }

    /// POSTs `body` to `{base_url}/{path}` with retries; the answer's JSON.
    fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, HostedError> {
        let url = format!("{}/{path}", self.base_url);
        let mut last = String::new();
        // What the server's Retry-After asked for (capped at 5 minutes).
        let mut asked = Duration::ZERO;
        let attempts = self.endpoint.max_attempts.max(1);
        for attempt in 1..=attempts {
            if attempt > 1 {
                std::thread::sleep(self.endpoint.backoff.delay(attempt - 1).max(asked));
                asked = Duration::ZERO;
            }
            self.pace();
            let mut req = self.agent.post(&url).header("Content-Type", "application/json");
            if let Some(key) = &self.key {
                req = req.header("Authorization", format!("Bearer {}", key.0));
            }
            let mut resp = match req.send_json(body) {
                Ok(r) => r,
                Err(e) => {
                    last = format!("transport: {e}");
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let wait = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
            let text = match resp.body_mut().with_config().limit(BODY_LIMIT).read_to_string() {
                Ok(t) => t,
                Err(e) => {
                    last = format!("HTTP {status}, reading the answer: {e}");
                    continue;
                }
            };
            if status == 429 || status == 408 || status >= 500 {
                last = format!("HTTP {status}: {}", quote(&text));
                asked = Duration::from_secs(wait.unwrap_or(0).min(300));
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(HostedError::Rejected { url, status, body: quote(&text) });
            }
            return serde_json::from_str(&text).map_err(|e| HostedError::Malformed {
                url: url.clone(),
                what: "JSON answer",
                reason: format!("{e}: {}", quote(&text)),
            });
        }
        Err(HostedError::Exhausted { url, attempts, last })
    }

    /// Embeds `texts`, `batch` texts per request; one vector per text, in order.
    /// `dimensions` asks models that can shorten their vectors (text-embedding-3-*) to.
    pub fn embed(&self, texts: &[String], dimensions: Option<u32>, batch: usize) -> Result<Vec<Vec<f32>>, HostedError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(batch.max(1)) {
            let mut body = serde_json::json!({ "model": self.model, "input": chunk, "encoding_format": "float" });
            if let Some(d) = dimensions {
                body["dimensions"] = d.into();
            }
            let answer = self.post("embeddings", &body)?;
            out.extend(parse_embeddings(&answer, chunk.len()).map_err(|reason| HostedError::Malformed {
                url: format!("{}/embeddings", self.base_url),
                what: "embeddings answer",
                reason,
            })?);
        }
        Ok(out)
    }

    /// One chat completion (first choice).
    pub fn chat(&self, messages: &[ChatMessage], temperature: f64, max_tokens: Option<u32>) -> Result<ChatAnswer, HostedError> {
        let mut body = serde_json::json!({ "model": self.model, "messages": messages, "temperature": temperature });
        if let Some(m) = max_tokens {
            body["max_tokens"] = m.into();
        }
        let answer = self.post("chat/completions", &body)?;
        parse_chat(&answer).map_err(|reason| HostedError::Malformed {
            url: format!("{}/chat/completions", self.base_url),
            what: "chat completion",
            reason,
        })
    }
}

fn quote(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(QUOTE) {
        Some((i, _)) => format!("{}...", &t[..i]),
        None => t.to_string(),
    }
}

/// `{"data": [{"embedding": [...], "index": i}, ...]}` → vectors in input order.
fn parse_embeddings(answer: &serde_json::Value, expected: usize) -> Result<Vec<Vec<f32>>, String> {
    #[derive(Deserialize)]
    struct Item {
        embedding: Vec<f32>,
        #[serde(default)]
        index: Option<usize>,
    }
    #[derive(Deserialize)]
    struct Answer {
        data: Vec<Item>,
    }
    let a: Answer = serde_json::from_value(answer.clone()).map_err(|e| e.to_string())?;
    if a.data.len() != expected {
        return Err(format!("{} embeddings for {expected} texts", a.data.len()));
    }
    let mut rows: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (pos, item) in a.data.into_iter().enumerate() {
        let i = item.index.unwrap_or(pos);
        if i >= expected || rows[i].is_some() {
            return Err(format!("embedding index {i} is out of range or repeated"));
        }
        rows[i] = Some(item.embedding);
    }
    let rows: Vec<Vec<f32>> = rows.into_iter().map(|r| r.expect("every index filled: counts match, none repeated")).collect();
    let dim = rows.first().map_or(0, Vec::len);
    if rows.iter().any(|r| r.len() != dim || r.is_empty()) {
        return Err("embeddings of different or zero lengths".into());
    }
    Ok(rows)
}

fn parse_chat(answer: &serde_json::Value) -> Result<ChatAnswer, String> {
    let choice = answer.get("choices").and_then(|c| c.get(0)).ok_or("no choices[0]")?;
    let message = choice.get("message").ok_or("choices[0] has no message")?;
    let content = match message.get("content") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => return Err(format!("message.content is {other}, not a string")),
    };
    let finish_reason = choice.get("finish_reason").and_then(|f| f.as_str()).map(str::to_string);
    let refusal = message.get("refusal").and_then(|r| r.as_str()).map(str::to_string);
    Ok(ChatAnswer { content, finish_reason, refusal })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_shows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "sk-secret-123\n").unwrap();
        let c = HostedClient::new(Endpoint::new("http://127.0.0.1:9", "m", Some(path))).unwrap();
        assert_eq!(c.key.as_ref().unwrap().0, "sk-secret-123");
        assert!(!format!("{c:?} {:?}", c.key).contains("secret"));
        let missing = HostedClient::new(Endpoint::new("http://x", "m", Some(dir.path().join("nope")))).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
        assert!(HostedClient::new(Endpoint::new("ftp://x", "m", None)).unwrap_err().to_string().contains("base_url"));
    }

    #[test]
    fn embeddings_come_back_in_input_order() {
        let a = serde_json::json!({"data": [{"embedding": [0.0, 1.0], "index": 1}, {"embedding": [1.0, 0.0], "index": 0}]});
        assert_eq!(parse_embeddings(&a, 2).unwrap(), vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!(parse_embeddings(&a, 3).unwrap_err().contains("2 embeddings for 3"));
        let dup = serde_json::json!({"data": [{"embedding": [0.0], "index": 0}, {"embedding": [1.0], "index": 0}]});
        assert!(parse_embeddings(&dup, 2).is_err());
    }

    #[test]
    fn chat_answers_keep_refusals_and_truncation() {
        let a = serde_json::json!({"choices": [{"message": {"content": null, "refusal": "I can't"}, "finish_reason": "stop"}]});
        let c = parse_chat(&a).unwrap();
        assert_eq!((c.content.as_str(), c.refusal.as_deref()), ("", Some("I can't")));
        let t = serde_json::json!({"choices": [{"message": {"content": "1. a"}, "finish_reason": "length"}]});
        assert_eq!(parse_chat(&t).unwrap().finish_reason.as_deref(), Some("length"));
        assert!(parse_chat(&serde_json::json!({"error": "x"})).is_err());
    }

    /// A one-thread HTTP server answering each request with the next canned
    /// `(status, body)`; returns its base URL and the request bodies it saw.
    fn canned(answers: Vec<(u16, String)>) -> (String, std::sync::mpsc::Receiver<(String, String)>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut len, mut auth) = (0usize, String::new());
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let l = line.trim_end().to_ascii_lowercase();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if l.starts_with("authorization:") {
                        auth = line.trim_end()["authorization:".len()..].trim().to_string();
                    }
                }
                let mut req = vec![0u8; len];
                reader.read_exact(&mut req).unwrap();
                tx.send((auth, String::from_utf8(req).unwrap())).unwrap();
                let mut w = stream;
                let extra = if status == 429 { "Retry-After: 0\r\n" } else { "" };
                write!(
                    w,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
        });
        (url, rx)
    }

    fn fast(url: &str, key: Option<PathBuf>) -> Endpoint {
        let mut e = Endpoint::new(url, "m", key);
        e.backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(20));
        e.max_attempts = 3;
        e.requests_per_minute = 0;
        e
    }

    #[test]
    fn busy_servers_are_retried_and_texts_go_in_batches() {
        let ok = |rows: &[[f32; 2]]| {
            let data: Vec<_> = rows.iter().enumerate().map(|(i, r)| serde_json::json!({"embedding": r, "index": i})).collect();
            (200, serde_json::json!({"data": data}).to_string())
        };
        let (url, seen) = canned(vec![
            (429, "{\"error\": \"slow down\"}".into()),
            ok(&[[1.0, 0.0], [0.0, 1.0]]),
            (503, "busy".into()),
            ok(&[[0.5, 0.5]]),
        ]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "sk-test\n").unwrap();
        let c = HostedClient::new(fast(&url, Some(dir.path().join("key")))).unwrap();
        let texts: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let got = c.embed(&texts, Some(2), 2).unwrap();
        assert_eq!(got, vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.5, 0.5]]);
        let requests: Vec<(String, String)> = seen.try_iter().collect();
        assert_eq!(requests.len(), 4, "two batches, each retried once");
        assert!(requests.iter().all(|(auth, _)| auth == "Bearer sk-test"));
        let last: serde_json::Value = serde_json::from_str(&requests[3].1).unwrap();
        assert_eq!((last["input"].clone(), last["dimensions"].clone()), (serde_json::json!(["c"]), serde_json::json!(2)));
    }

    #[test]
    fn refusals_by_http_stop_at_once_and_outages_are_transient() {
        let (url, seen) = canned(vec![(401, "{\"error\": \"bad key\"}".into())]);
        let err = HostedClient::new(fast(&url, None)).unwrap().chat(&[ChatMessage::user("hi")], 0.0, None).unwrap_err();
        assert!(matches!(err, HostedError::Rejected { status: 401, .. }) && !err.is_transient(), "{err}");
        assert!(err.to_string().contains("bad key"), "{err}");
        assert_eq!(seen.try_iter().count(), 1);
        let (url, _) = canned(vec![(500, "x".into()), (502, "y".into()), (503, "z".into())]);
        let err = HostedClient::new(fast(&url, None)).unwrap().chat(&[ChatMessage::user("hi")], 0.0, None).unwrap_err();
        assert!(err.is_transient() && err.to_string().contains("3 times"), "{err}");
    }
}
