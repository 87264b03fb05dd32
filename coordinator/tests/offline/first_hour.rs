//! What a new user meets first (issue 22), without services: commands find a
//! local run under out/ by its name when no broker or store is configured,
//! `delete` asks before it removes one, `run --local` keeps the worker's log
//! lines in run.log and writes a progress line every few seconds without a
//! terminal, and `plan` lists each missing input once and exits 3.

use crate::support::{coordinator_bin, diagnostic_spec};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The coordinator in `dir` as a new user runs it: no broker or store
/// configured (no MLL__BROKER__* or MLL__STORE__* variable, no profile), stdin
/// not a terminal.
fn bare(dir: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(coordinator_bin());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("MLL__") || k == "MLL_CONFIG" || k == "MLL_CONFIG_DIR" {
            c.env_remove(&k);
        }
    }
    c.env("MLL__COORDINATOR__METRICS_ADDR", "127.0.0.1:0").env("MLL__LOG__FORMAT", "text");
    c.current_dir(dir).args(args).stdin(Stdio::null()).output().expect("run the coordinator")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn a_local_run_is_found_by_name_and_deleted_after_asking() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), diagnostic_spec("first", 6, 1_500, &[])).unwrap();
    // 6 jobs of 1.5 s: long enough for a progress line (every 5 s without a terminal).
    let run = bare(dir.path(), &["run", "--local", "--benchmark", "spec.toml"]);
    let (out, err) = text(&run);
    assert!(run.status.success(), "{out}\n{err}");
    assert!(err.contains("logs in out/first/run.log"), "{err}");
    assert!(err.contains("mll::progress") && err.contains("diagnostic") && err.contains("jobs"), "a progress line: {err}");
    assert!(!err.contains("executing") && !err.contains("committed"), "no log line per job on stderr: {err}");
    let log = std::fs::read_to_string(dir.path().join("out/first/run.log")).unwrap();
    assert_eq!(log.matches(" committed").count(), 6, "every job's lines are in run.log:\n{log}");

    // No --local: nothing configured, so out/<RUN> is where runs are.
    let status = bare(dir.path(), &["status", "first"]);
    assert!(status.status.success(), "{:?}", text(&status));
    assert!(text(&status).0.starts_with("run first: done"), "{:?}", text(&status));
    let verify = bare(dir.path(), &["verify", "first", "--json"]);
    assert!(verify.status.success(), "{:?}", text(&verify));
    let report = bare(dir.path(), &["report", "first", "--format", "json"]);
    assert!(report.status.success() && text(&report).0.contains("\"run\": \"first\""), "{:?}", text(&report));
    let hubs = bare(dir.path(), &["hub", "list"]);
    assert!(hubs.status.success(), "{:?}", text(&hubs));
    assert!(text(&hubs).0.contains("no hubs among the local runs in out"), "a diagnostic run is no hub: {:?}", text(&hubs));

    // A name that is not there says where it looked, why, and what finds the others.
    let missing = bare(dir.path(), &["status", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
    let err = text(&missing).1;
    assert!(err.contains("out/nope") && err.contains("no broker or store is configured") && err.contains("--cluster"), "{err}");
    assert!(err.contains("out/first"), "the local runs there are listed: {err}");
    let cancel = bare(dir.path(), &["cancel", "first"]);
    assert_eq!(cancel.status.code(), Some(2));
    assert!(text(&cancel).1.contains("Ctrl-C") && text(&cancel).1.contains("coordinator delete first"), "{:?}", text(&cancel));

    // delete asks; without a terminal to ask on it needs --yes.
    let refused = bare(dir.path(), &["delete", "first"]);
    assert_eq!(refused.status.code(), Some(2), "{:?}", text(&refused));
    assert!(text(&refused).1.contains("--yes"), "{:?}", text(&refused));
    assert!(dir.path().join("out/first/state.journal").is_file(), "nothing deleted without --yes");
    let deleted = bare(dir.path(), &["delete", "first", "--yes"]);
    assert!(deleted.status.success(), "{:?}", text(&deleted));
    assert!(!dir.path().join("out/first").exists(), "the folder held only what run --local wrote");
    assert_eq!(bare(dir.path(), &["status", "first"]).status.code(), Some(2));
}

#[test]
fn plan_lists_each_missing_input_once_with_its_fix_and_exits_3() {
    let data = tempfile::tempdir().unwrap();
    let spec = repo().join("configs/benchmarks/mll-49x17.toml");
    // A data root written with `..`: the messages show it resolved.
    let root = data.path().join("sub/..");
    std::fs::create_dir_all(data.path().join("sub")).unwrap();
    let args = ["plan", "--benchmark", spec.to_str().unwrap(), "--data-root", root.to_str().unwrap()];
    let plan = bare(&repo(), &args);
    let (out, err) = text(&plan);
    assert_eq!(plan.status.code(), Some(3), "{out}\n{err}");
    assert!(err.contains("plan incomplete") && err.contains("exit code 3"), "{err}");
    assert!(!err.contains("WARN") && !err.contains("CAPTIONS"), "nothing repeated as a warning: {err}");
    let missing: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("missing (")).skip(1).filter(|l| l.starts_with("  - ")).collect();
    assert_eq!(missing.len(), 20, "17 datasets, the graph, the embedder, the models:\n{out}");
    let resolved = data.path().canonicalize().unwrap().display().to_string();
    assert!(missing.iter().all(|m| !m.contains("/..")), "{out}");
    assert!(missing[0].contains(&format!("`scripts/prepare-data --only CIFAR100 --out {resolved} --captions DIR`")), "{out}");
    assert!(out.contains(&format!("coordinator graph build --out {resolved}/graph/graph.json")), "{out}");
    assert!(out.contains(&format!("scripts/embedder-folder --copy {resolved}/models/all-MiniLM-L6-v2")), "{out}");
    assert!(out.contains("hub models: 49 of 49 not exported") && out.contains("scripts/export-hub --benchmark"), "{out}");
    // Without the data the samples are unknown, but the catalog says how many the paper's splits hold.
    let ucf: Vec<&str> = out.lines().find(|l| l.starts_with("UCF101 ")).unwrap().split_whitespace().collect();
    assert_eq!(&ucf[1..4], ["101", "?", "13320"], "{out}");

    let json = bare(&repo(), &[&args[..], &["--json"]].concat());
    assert_eq!(json.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["complete"], false);
    assert_eq!(v["missing_models"].as_array().unwrap().len(), 49);
    let ucf = v["datasets"].as_array().unwrap().iter().find(|d| d["name"] == "UCF101").unwrap();
    assert_eq!((&ucf["samples"], &ucf["expected_samples"]), (&serde_json::Value::Null, &serde_json::json!(13320)));
}

#[test]
fn report_truth_works_on_the_shipped_table_and_a_missing_table_exits_2() {
    let out = tempfile::tempdir().unwrap();
    let truth = [
        "report",
        "--truth",
        "docs/published/openclip_classification_results.csv",
        "--benchmark",
        "configs/benchmarks/mll-49x17.toml",
        "--out",
        out.path().to_str().unwrap(),
    ];
    let ok = bare(&repo(), &truth);
    assert!(ok.status.success(), "{:?}", text(&ok));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    // open_clip's table has no FER2013, UCF101 or DMLab column.
    assert_eq!(report["summary"]["complete"], 14, "{}", report["summary"]);
    let mut gone = truth;
    gone[2] = "docs/published/no-such-table.csv";
    let missing = bare(&repo(), &gone);
    assert_eq!(missing.status.code(), Some(2), "{:?}", text(&missing));
    assert!(text(&missing).1.contains("docs/published/openclip_classification_results.csv"), "{:?}", text(&missing));
}
