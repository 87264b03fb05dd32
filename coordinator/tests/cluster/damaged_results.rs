//! Results read back are not trusted: a result value damaged in Redis is named
//! with its job, counts as missing, and `verify --repair` computes exactly it
//! again; `status` only reads; a finished run cannot be cancelled; a run gone
//! from the store makes `submit --wait` say once what to run and give up.

use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn dead_letter_depth(c: &Cluster) -> u64 {
    let out = Command::new("rabbitmqctl").args(["-q", "list_queues", "name", "messages"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let queue = format!("{}.dead", c.name);
    text.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(queue.as_str())).then(|| f.next().and_then(|n| n.parse().ok())).flatten()
        })
        .unwrap_or_else(|| panic!("queue {queue} not listed:\n{text}"))
}

#[test]
fn a_damaged_result_in_redis_is_named_and_verify_repair_recomputes_exactly_it() {
    let c = Cluster::new("damaged");
    let mut w = c.spawn_worker("1");
    let spec = c.write_spec("spec.toml", &diagnostic_spec("damaged", 6, 0, &[]));
    let first = c.path("first");
    c.coordinator_ok(&["submit", "--benchmark", spec.to_str().unwrap(), "--wait", "--out", first.to_str().unwrap()]);
    c.coordinator_ok(&["verify", "damaged"]);

    // Overwrite bytes 12..20 of one result value, as the tester did.
    let job = c.redis_set("damaged", "done:diagnostic").into_iter().next().unwrap();
    let key = format!("{}:{{damaged}}:result:{job}", c.name);
    let len = c.redis(&["STRLEN", &key]);
    assert!(len.trim().parse::<u64>().unwrap() >= 20, "{key} holds {len} bytes");
    c.redis(&["SETRANGE", &key, "12", "XXXXXXXX"]);

    // report: the job is named and counts as missing, no panic.
    let out = c.coordinator(&["report", "damaged", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&job), "the damaged job is named: {}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["diagnostic"]["results"], 5, "{}", report["diagnostic"]);

    // verify lists it and fails; --repair republishes exactly that job.
    let out = c.coordinator(&["verify", "damaged"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&job), "{}", String::from_utf8_lossy(&out.stdout));
    let v: serde_json::Value = serde_json::from_str(&c.coordinator_ok(&["verify", "damaged", "--repair", "--json"])).unwrap();
    assert_eq!(v["bad"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["bad"][0]["job"], job.as_str());
    assert_eq!(v["bad"][0]["stage"], "diagnostic");
    assert_eq!(v["republished"], 1, "{v}");
    c.wait_status("damaged", Duration::from_secs(60), |s| Cluster::done_count(s, "diagnostic") == 6);
    c.coordinator_ok(&["verify", "damaged"]);
    let again = c.path("again");
    c.coordinator_ok(&["report", "damaged", "--out", again.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(first.join("report.json")).unwrap(),
        std::fs::read(again.join("report.json")).unwrap(),
        "the recomputed result gives the same report"
    );

    // A finished run cannot be cancelled.
    let out = c.coordinator(&["cancel", "damaged"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("done already"), "{}", stderr(&out));
    assert_eq!(c.status("damaged")["state"], "done");

    // status only reads: another run's dead letter stays in the shared queue.
    let other = c.write_spec("other.toml", &diagnostic_spec("other", 1, 0, &[0]));
    c.coordinator_ok(&["submit", "--benchmark", other.to_str().unwrap()]);
    let start = Instant::now();
    while dead_letter_depth(&c) == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "the poison job was never dead-lettered\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(300));
    }
    c.status("damaged");
    c.status("other");
    assert_eq!(dead_letter_depth(&c), 1, "status must not drain the dead-letter queue");
    kill9(&mut w);

    // An unknown run: say what exists instead of suggesting a resume that fails.
    let out = c.coordinator(&["status", "nosuchrun"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(text.contains("damaged") && text.contains("other") && !text.contains("resume nosuchrun"), "{text}");
}

#[test]
fn a_run_gone_from_the_store_makes_wait_say_resume_once_and_give_up() {
    let mut c = Cluster::new("gone");
    c.env.insert("MLL__COORDINATOR__PATIENCE_S".into(), "2".into());
    let spec = c.write_spec("spec.toml", &diagnostic_spec("gone", 3, 0, &[]));
    // No worker: the run stays open while its keys disappear.
    let mut coord = c.spawn_coordinator(&["submit", "--benchmark", spec.to_str().unwrap(), "--wait"], "wait");
    c.wait_status("gone", Duration::from_secs(60), |s| s["state"] == "running");
    let keys = c.redis(&["--scan", "--pattern", &format!("{}:*", c.name)]);
    for k in keys.lines().filter(|l| !l.is_empty()) {
        c.redis(&["DEL", k]);
    }
    let start = Instant::now();
    let status = loop {
        if let Some(st) = coord.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(120) {
            kill9(&mut coord);
            panic!("the coordinator kept waiting\n{}", c.logs());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = std::fs::read_to_string(c.path("coordinator-wait.log")).unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert_eq!(log.matches("waiting for that").count(), 1, "said once:\n{log}");
    assert!(log.contains("coordinator resume gone --wait"), "{log}");
}

/// A validly sealed result of another job, copied under a job's key (issue
/// 27, item 3), is refused like a damaged one: `report` leaves it out and
/// names the job, `verify` names it, `--repair` recomputes exactly it and
/// the report is the undisturbed one again.
#[test]
fn a_result_copied_under_another_jobs_key_is_named_and_repair_restores_the_report() {
    let c = Cluster::new("swapped");
    let mut w = c.spawn_worker("1");
    let spec = c.write_spec("spec.toml", &diagnostic_spec("swapped", 6, 0, &[]));
    let first = c.path("first");
    c.coordinator_ok(&["submit", "--benchmark", spec.to_str().unwrap(), "--wait", "--out", first.to_str().unwrap()]);

    let jobs: Vec<String> = c.redis_set("swapped", "done:diagnostic").into_iter().collect();
    let (from, onto) = (&jobs[0], &jobs[1]);
    let key = |job: &str| format!("{}:{{swapped}}:result:{job}", c.name);
    assert_eq!(c.redis(&["COPY", &key(from), &key(onto), "REPLACE"]).trim(), "1");

    let out = c.coordinator(&["verify", "swapped"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "verify must fail on a result of another job:\n{stdout}\n{}", stderr(&out));
    assert!(stdout.contains(onto.as_str()) && stdout.contains("1 bad"), "the job under the copied key is named:\n{stdout}");
    assert!(!stdout.contains(&format!("job {from}")), "the original stays good:\n{stdout}");

    let v: serde_json::Value = serde_json::from_str(&c.coordinator_ok(&["verify", "swapped", "--repair", "--json"])).unwrap();
    assert_eq!(v["bad"][0]["job"], onto.as_str(), "{v}");
    assert_eq!(v["republished"], 1, "{v}");
    c.wait_status("swapped", Duration::from_secs(60), |s| Cluster::done_count(s, "diagnostic") == 6);
    c.coordinator_ok(&["verify", "swapped"]);
    kill9(&mut w);
    let again = c.path("again");
    c.coordinator_ok(&["report", "swapped", "--out", again.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(first.join("report.json")).unwrap(),
        std::fs::read(again.join("report.json")).unwrap(),
        "the repaired run gives the undisturbed report"
    );
}

/// A job in the done set whose result key is gone (issue 27, item 10):
/// `verify` names it instead of "0 bad", and `--repair` computes it again.
#[test]
fn verify_names_a_done_job_whose_result_is_gone_and_repair_recomputes_it() {
    let c = Cluster::new("lost");
    let mut w = c.spawn_worker("1");
    let spec = c.write_spec("spec.toml", &diagnostic_spec("lost", 4, 0, &[]));
    let first = c.path("first");
    c.coordinator_ok(&["submit", "--benchmark", spec.to_str().unwrap(), "--wait", "--out", first.to_str().unwrap()]);
    let job = c.redis_set("lost", "done:diagnostic").into_iter().next().unwrap();
    assert_eq!(c.redis(&["DEL", &format!("{}:{{lost}}:result:{job}", c.name)]).trim(), "1");

    let out = c.coordinator(&["verify", "lost"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "verify must fail on a lost result:\n{stdout}\n{}", stderr(&out));
    assert!(stdout.contains(&job) && stdout.contains("result is gone"), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&c.coordinator_ok(&["verify", "lost", "--repair", "--json"])).unwrap();
    assert_eq!(v["republished"], 1, "{v}");
    c.wait_status("lost", Duration::from_secs(60), |s| Cluster::done_count(s, "diagnostic") == 4);
    c.coordinator_ok(&["verify", "lost"]);
    kill9(&mut w);
    let again = c.path("again");
    c.coordinator_ok(&["report", "lost", "--out", again.to_str().unwrap()]);
    assert_eq!(std::fs::read(first.join("report.json")).unwrap(), std::fs::read(again.join("report.json")).unwrap());
}
