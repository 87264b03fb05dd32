//! The ModelGPT baseline's protocol against a local test LLM (no LLM runs on
//! this machine): a small axum server speaking the OpenAI chat-completions
//! API returns canned answers per toy dataset: well-formed ones, a truncated
//! one, a refusal, a malformed one. The toy hub's report then shows ModelGPT
//! k = 1 and k = 3 columns and rankings where the answer was usable, a clear
//! note where it was not, asks nothing twice, and `report --modelgpt FILE`
//! gives the same numbers from imported answers.

use crate::adapt::{hub, repo};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The canned answer for a question: by the task named in its user message
/// (ModelGPT), or by the node named in it (LLM captions).
fn answer(body: &Value) -> Value {
    let user = body["messages"][1]["content"].as_str().unwrap_or_default();
    assert_eq!(body["temperature"], 0.0, "the LLM is asked at temperature 0");
    if body["messages"][0]["content"].as_str().unwrap().starts_with("You describe visual concepts") {
        let (content, refusal) = if user.contains("\"forbidden\"") {
            (Value::Null, json!("no"))
        } else {
            let name = user.split('"').nth(1).unwrap();
            (json!((1..=10).map(|i| format!("{i}. a {name}, view {i}")).collect::<Vec<_>>().join("\n")), Value::Null)
        };
        return json!({"choices": [{"message": {"content": content, "refusal": refusal}, "finish_reason": "stop"}]});
    }
    assert!(body["messages"][0]["content"].as_str().unwrap().contains("JSON array"), "{body}");
    let task = user.lines().next().unwrap_or_default().trim_start_matches("Task: ").to_string();
    let choice = |content: Value, finish: &str, refusal: Value| {
        json!({"id": "x", "object": "chat.completion", "model": body["model"],
               "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": refusal}, "finish_reason": finish}]})
    };
    match task.as_str() {
        // The domain specialists first, in prose-wrapped JSON (tolerated).
        "toy-pets" => {
            choice(json!("Ranking:\n```json\n[\"toy-animals/v1\", \"toy-nature/v2\", \"toy-generalist-l/v1\"]\n```"), "stop", Value::Null)
        }
        "toy-traffic" => {
            choice(json!("[\"toy-vehicles/v1\", \"toy-generalist-l/v1\", \"toy-generalist-m/v1\", \"no-such/model\"]"), "stop", Value::Null)
        }
        "toy-digits" => choice(json!("[\"toy-digits/v1\", \"toy-generalist-l"), "length", Value::Null),
        "toy-groceries" => choice(Value::Null, "stop", json!("I can't help with ranking models.")),
        _ => choice(json!("The generalist, probably."), "stop", Value::Null),
    }
}

/// Serves the test LLM on 127.0.0.1 from its own thread; returns its base URL and request count.
fn test_llm() -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let c = count.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let app = Router::new()
                .route(
                    "/v1/chat/completions",
                    // The workspace's axum has no `json` feature: the body is parsed by hand.
                    post(|State(n): State<Arc<AtomicUsize>>, body: String| async move {
                        n.fetch_add(1, Ordering::SeqCst);
                        let body: Value = serde_json::from_str(&body).unwrap();
                        ([(CONTENT_TYPE, "application/json")], answer(&body).to_string())
                    }),
                )
                .with_state(c);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}/v1"), count)
}

/// The toy spec with absolute paths (so it can live in a test folder), `edit`ed.
pub(crate) fn toy_spec_text(edit: impl Fn(String) -> String) -> String {
    let toy = std::fs::read_to_string(repo().join("configs/benchmarks/toy.toml")).unwrap();
    edit(
        toy.replace("data_root = \"../../out/toy-world\"", &format!("data_root = \"{}\"", repo().join("out/toy-world").display()))
            .replace("generator = \"../../scripts/", &format!("generator = \"{}/scripts/", repo().display())),
    )
}

pub(crate) fn dataset<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["datasets"].as_array().unwrap().iter().find(|d| d["name"] == name).unwrap()
}

#[test]
fn modelgpt_columns_come_from_the_test_llm_and_bad_answers_become_notes() {
    let (h, _guard) = hub();
    let (url, count) = test_llm();
    let spec_text = toy_spec_text(|t| t + &format!("\n[llm]\nbase_url = \"{url}\"\nmodel = \"test-llm\"\nrequests_per_minute = 0\n"));
    let spec = h.env.write_spec("toy-llm.toml", &spec_text);
    let out = h.env.path("modelgpt-report");
    let hub_dir = h.dir();
    let args = |out: &std::path::Path| {
        vec![
            "report".to_string(),
            "toy".into(),
            "--run-dir".into(),
            hub_dir.display().to_string(),
            "--benchmark".into(),
            spec.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ]
    };
    let run = |a: Vec<String>| h.env.coordinator_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    run(args(&out));
    assert_eq!(count.load(Ordering::SeqCst), 5, "one question per toy dataset");

    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let pets = dataset(&report, "toy-pets");
    assert_eq!(pets["selections"]["modelgpt_k1"]["models"], json!(["toy-animals/v1"]));
    assert_eq!(pets["selections"]["modelgpt_k3"]["models"], json!(["toy-animals/v1", "toy-nature/v2", "toy-generalist-l/v1"]));
    let animals_top1 = pets["accuracy"].as_array().unwrap().iter().find(|a| a["model"] == "toy-animals/v1").unwrap()["top1"].clone();
    assert_eq!(pets["selections"]["modelgpt_k1"]["accuracy"], animals_top1, "k = 1 is the first model's zero-shot top-1");
    assert!(pets["selections"]["modelgpt_k3"]["accuracy"].as_f64().is_some());
    assert_eq!(pets["rankings"]["modelgpt"]["predicted"][0], "toy-animals/v1");
    let traffic = dataset(&report, "toy-traffic");
    assert!(traffic["notes"].to_string().contains("no-such/model"), "{}", traffic["notes"]);
    for (name, why) in [("toy-digits", "truncated"), ("toy-groceries", "refused"), ("toy-mixed", "no JSON array")] {
        let d = dataset(&report, name);
        assert_eq!(d["selections"]["modelgpt_k1"]["accuracy"], Value::Null, "{name}");
        assert!(d["notes"].to_string().contains(why), "{name}: {}", d["notes"]);
        assert!(d["rankings"].get("modelgpt").is_none(), "{name}");
    }
    assert!(report["notes"].to_string().contains("ModelGPT: rankings from llm test-llm"), "{}", report["notes"]);
    assert_eq!(report["summary"]["rankings"]["modelgpt"]["datasets"], 2);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| ModelGPT k=1 |") && md.contains("| ModelGPT k=3 |"), "{md}");
    assert!(md.contains("| modelgpt |"), "{md}");

    // A second report asks nothing again: the answers are kept in the run's artifacts.
    let again = h.env.path("modelgpt-report-2");
    run(args(&again));
    assert_eq!(count.load(Ordering::SeqCst), 5, "cached answers cost nothing twice");
    assert_eq!(std::fs::read(again.join("report.json")).unwrap(), std::fs::read(out.join("report.json")).unwrap());

    // The answers written beside the report import to the same numbers; the
    // note names the file instead of the LLM.
    let answers = out.join("modelgpt_answers.json");
    let imported = h.env.path("modelgpt-imported");
    let mut a = args(&imported);
    a.extend(["--modelgpt".to_string(), answers.display().to_string()]);
    run(a);
    let back: Value = serde_json::from_slice(&std::fs::read(imported.join("report.json")).unwrap()).unwrap();
    for d in ["toy-pets", "toy-traffic", "toy-digits"] {
        assert_eq!(dataset(&back, d)["selections"]["modelgpt_k3"], dataset(&report, d)["selections"]["modelgpt_k3"], "{d}");
    }
    assert!(back["notes"].to_string().contains("answers file"), "{}", back["notes"]);
    assert_eq!(count.load(Ordering::SeqCst), 5, "an imported report asks nothing");

    // A malformed answers file is a clear error naming the file, not a crash.
    let bad = h.env.path("bad-answers.json");
    std::fs::write(&bad, "{\"answers\": 3}").unwrap();
    let mut a = args(&h.env.path("modelgpt-bad"));
    a.extend(["--modelgpt".to_string(), bad.display().to_string()]);
    let o = h.env.coordinator(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad-answers.json"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_report_without_an_llm_says_modelgpt_was_not_run() {
    let (h, _guard) = hub();
    let report: Value = serde_json::from_slice(&std::fs::read(h.dir().join("report.json")).unwrap()).unwrap();
    assert!(report["notes"].to_string().contains("ModelGPT: not run"), "{}", report["notes"]);
    assert!(dataset(&report, "toy-pets")["selections"].get("modelgpt_k1").is_none());
    let md = std::fs::read_to_string(h.dir().join("report.md")).unwrap();
    assert!(md.contains("ModelGPT: not run") && !md.contains("ModelGPT k=1"), "{md}");
}

#[test]
fn graph_captions_are_written_cached_and_resumed() {
    let (h, _guard) = hub();
    let (url, count) = test_llm();
    let node = |id: &str, lemma: &str| json!({"id": id, "lemma": lemma, "definition": format!("a {lemma}"), "parents": [], "text": lemma, "captions": []});
    let graph = json!({"format_version": mll_common::data::graph::GRAPH_FORMAT_VERSION, "seed": 0,
        "nodes": [node("n1", "dog"), node("n2", "forbidden"), node("n3", "cat")], "images": []});
    let path = h.env.path("captions-graph.json");
    std::fs::write(&path, graph.to_string()).unwrap();
    let args = [
        "graph",
        "captions",
        "--graph",
        path.to_str().unwrap(),
        "--llm-model",
        "test-llm",
        "--llm-base-url",
        &url,
        "--requests-per-minute",
        "0",
    ];
    let first = h.env.coordinator(&args);
    assert!(!first.status.success(), "a node without captions is a failure to report");
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(err.contains("1 of 3 nodes") && err.contains("again"), "{err}");
    assert!(String::from_utf8_lossy(&first.stdout).contains("n2: refused"), "{}", String::from_utf8_lossy(&first.stdout));
    assert_eq!(count.load(Ordering::SeqCst), 3);
    let g: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(g["nodes"][0]["captions"].as_array().unwrap().len(), 10);
    assert_eq!(g["nodes"][0]["captions"][0], "a dog, view 1", "list markers are dropped");
    assert_eq!(g["nodes"][1]["captions"], json!([]));
    assert_eq!(g["nodes"][2]["captions"][9], "a cat, view 10");
    // Resumed: only the refused node is asked again.
    let _ = h.env.coordinator(&args);
    assert_eq!(count.load(Ordering::SeqCst), 4);
}

#[test]
fn a_tasks_class_captions_come_from_the_llm_when_no_file_is_given() {
    let (h, _guard) = hub();
    let (url, count) = test_llm();
    let pets = repo().join("out/toy-world/datasets/toy-pets");
    let names: Vec<String> = std::fs::read_to_string(pets.join("classnames.txt")).unwrap().lines().map(String::from).collect();
    let classes = h.env.path("llm-classes.txt");
    std::fs::write(&classes, names.iter().cloned().chain(["forbidden".to_string()]).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    let hub_dir = h.dir();
    let select = |extra: &[&str]| {
        let mut a =
            vec!["select", "--local", "--hub", "toy", "--hub-dir", hub_dir.to_str().unwrap(), "--classes", classes.to_str().unwrap()];
        a.extend_from_slice(extra);
        a.push("--json");
        let o = h.env.coordinator(&a);
        assert!(o.status.success(), "select {extra:?}: {}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let llm = ["--llm-model", "test-llm", "--llm-base-url", url.as_str(), "--llm-requests-per-minute", "0"];
    let asked = select(&llm);
    assert_eq!(count.load(Ordering::SeqCst), names.len() + 1, "one question per class");
    let embedded = asked["embedded"].as_str().unwrap();
    assert!(embedded.starts_with("captions written by the LLM test-llm, except 1 class embedded by its name"), "{embedded}");
    assert!(embedded.contains("'forbidden': refused: no"), "{embedded}");
    assert_eq!(asked["classes_without_captions"], json!(["forbidden"]));

    // The LLM's descriptions are embedded exactly as a captions file holding them is.
    let file: serde_json::Map<String, Value> =
        names.iter().map(|n| (n.clone(), json!((1..=10).map(|i| format!("a {n}, view {i}")).collect::<Vec<_>>()))).collect();
    let captions = h.env.path("llm-captions.json");
    std::fs::write(&captions, Value::Object(file).to_string()).unwrap();
    let from_file = select(&["--captions", captions.to_str().unwrap()]);
    assert_eq!(from_file["classes"], asked["classes"]);
    assert_eq!(from_file["ranking"], asked["ranking"]);
    let by_name = select(&[]);
    assert_ne!(by_name["classes"], asked["classes"], "names alone match other nodes or scores");

    // Again: the usable answers come from the hub's store; only the refused class is asked again.
    let again = select(&llm);
    assert_eq!(count.load(Ordering::SeqCst), names.len() + 2);
    assert_eq!(again["classes"], asked["classes"]);

    // A kept answer changed on disk: verify names it (exit 1), select asks again
    // instead of using it, and verify --repair deletes a damaged one.
    let kept = hub_dir.join("artifacts/llm");
    let mine: Vec<std::path::PathBuf> = std::fs::read_dir(&kept)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::read_to_string(p).unwrap().contains("a photograph of a"))
        .collect();
    assert_eq!(mine.len(), names.len(), "one kept answer per captioned class");
    let damage = |p: &std::path::Path| {
        let text = std::fs::read_to_string(p).unwrap();
        let changed = text.replacen(", view 1", ", view one", 1);
        assert_ne!(changed, text);
        std::fs::write(p, changed).unwrap();
    };
    damage(&mine[0]);
    let verify = |extra: &[&str]| {
        let mut a = vec!["verify", "toy", "--local", "--run-dir", hub_dir.to_str().unwrap()];
        a.extend_from_slice(extra);
        h.env.coordinator(&a)
    };
    let v = verify(&[]);
    let out = String::from_utf8_lossy(&v.stdout);
    assert_eq!(v.status.code(), Some(1), "{out}");
    assert!(out.contains(&format!("damaged LLM answer {}", mine[0].display())) && out.contains("recorded sha256"), "{out}");
    let before = count.load(Ordering::SeqCst);
    assert_eq!(select(&llm)["classes"], asked["classes"], "the damaged answer was asked for again, not used");
    assert_eq!(count.load(Ordering::SeqCst), before + 2, "the damaged class and the refused one");
    assert!(verify(&[]).status.success());
    damage(&mine[1]);
    let repaired = verify(&["--repair"]);
    assert!(repaired.status.success() && !mine[1].exists(), "{}", String::from_utf8_lossy(&repaired.stdout));
    select(&llm);
    assert_eq!(count.load(Ordering::SeqCst), before + 4);

    // adapt writes its classes' captions the same way (here all cached).
    let out = h.env.path("adapt-llm");
    let mut a = vec!["adapt", "--local", "--hub", "toy", "--hub-dir", hub_dir.to_str().unwrap(), "--task", pets.to_str().unwrap()];
    a.extend_from_slice(&llm);
    a.extend_from_slice(&["--k", "1", "--out", out.to_str().unwrap(), "--json"]);
    let o = h.env.coordinator(&a);
    assert!(o.status.success(), "adapt: {}", String::from_utf8_lossy(&o.stderr));
    let adapted: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(adapted["selection"]["embedded"], "captions written by the LLM test-llm");
    assert_eq!(count.load(Ordering::SeqCst), before + 4, "adapt asked nothing new");

    // A captions file and an LLM at once is a usage error naming both.
    let o = h.env.coordinator(&[
        "select",
        "--local",
        "--hub",
        "toy",
        "--hub-dir",
        hub_dir.to_str().unwrap(),
        "--classes",
        classes.to_str().unwrap(),
        "--captions",
        captions.to_str().unwrap(),
        "--llm-model",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--captions") && err.contains("--llm-model"), "{err}");
}
