//! Coordinator faults against the real RabbitMQ and Redis: a coordinator
//! killed in the middle of publishing, and two coordinators submitting the
//! same spec at once. Both end with one set of results and the report an
//! undisturbed run gives (docs/operations.md, "Reliability semantics").

use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// Messages waiting in this cluster's job queue (`rabbitmqctl`, as the
/// services script runs RabbitMQ on this machine).
fn queued(c: &Cluster) -> Option<u64> {
    let out = Command::new("rabbitmqctl").args(["-q", "list_queues", "name", "messages"]).output().ok()?;
    let queue = format!("{}.jobs", c.name);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(queue.as_str()))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// The report of the same spec run undisturbed, in local mode.
fn undisturbed_report(c: &Cluster, spec: &std::path::Path) -> Vec<u8> {
    let out = c.path("out-local");
    c.coordinator_ok(&["run", "--local", "--benchmark", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "--workers", "2"]);
    std::fs::read(out.join("report.json")).unwrap()
}

#[test]
fn a_coordinator_killed_mid_publish_is_resumed_without_losing_a_job() {
    let mut c = Cluster::new("midpub");
    // Every message confirmed alone, so publishing 20,000 jobs takes seconds.
    c.env.insert("MLL__COORDINATOR__PUBLISH_BATCH".into(), "1".into());
    let jobs = 20_000;
    let spec = c.write_spec("spec.toml", &diagnostic_spec("midpub", jobs, 0, &[]));
    let mut coord = c.spawn_coordinator(&["submit", "--benchmark", spec.to_str().unwrap()], "submit");
    // Kill it once some batches are confirmed (messages wait: no worker yet).
    let start = Instant::now();
    let at_kill = loop {
        if let Some(n) = queued(&c).filter(|n| *n > 0) {
            break Some(n);
        }
        if start.elapsed() > Duration::from_secs(60) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    kill9(&mut coord);
    let at_kill = at_kill.unwrap_or_else(|| panic!("no job was published:\n{}", c.logs()));
    std::thread::sleep(Duration::from_millis(500));
    let published = queued(&c).expect("queue listed");
    assert!(
        published < u64::from(jobs),
        "the coordinator finished publishing ({published} jobs) before it was killed; the test did not cut it"
    );
    eprintln!("killed mid-publish: {at_kill} queued when killed, {published} after");

    // Resume publishes every job without a result; workers finish the run.
    let mut w1 = c.spawn_worker("1");
    let mut w2 = c.spawn_worker("2");
    let out = c.path("out");
    c.coordinator_ok(&["resume", "midpub", "--wait", "--out", out.to_str().unwrap()]);
    let st = c.status("midpub");
    kill9(&mut w1);
    kill9(&mut w2);
    assert_eq!(st["state"], "done", "{st}");
    assert_eq!(Cluster::done_count(&st, "diagnostic"), u64::from(jobs));
    assert_eq!(st["stages"]["diagnostic"]["failed"], 0);
    assert_eq!(std::fs::read(out.join("report.json")).unwrap(), undisturbed_report(&c, &spec), "the resumed run's report differs");
}

#[test]
fn two_coordinators_submitting_the_same_spec_give_one_set_of_results_and_one_report() {
    let c = Cluster::new("twocoord");
    let jobs = 300;
    let spec = c.write_spec("spec.toml", &diagnostic_spec("twocoord", jobs, 5, &[]));
    let mut w1 = c.spawn_worker("1");
    let mut w2 = c.spawn_worker("2");
    let (out_a, out_b) = (c.path("out-a"), c.path("out-b"));
    let mut a = c.spawn_coordinator(&["submit", "--benchmark", spec.to_str().unwrap(), "--wait", "--out", out_a.to_str().unwrap()], "a");
    let mut b = c.spawn_coordinator(&["submit", "--benchmark", spec.to_str().unwrap(), "--wait", "--out", out_b.to_str().unwrap()], "b");
    assert_eq!(a.wait().unwrap().code(), Some(0), "{}", c.logs());
    assert_eq!(b.wait().unwrap().code(), Some(0), "{}", c.logs());
    let st = c.status("twocoord");
    kill9(&mut w1);
    kill9(&mut w2);
    assert_eq!(st["state"], "done", "{st}");
    assert_eq!(Cluster::done_count(&st, "diagnostic"), u64::from(jobs));
    // One result per job in the store, whoever published it first.
    assert_eq!(c.redis_set("twocoord", "done:diagnostic").len(), jobs as usize);
    let report_a = std::fs::read(out_a.join("report.json")).unwrap();
    assert_eq!(report_a, std::fs::read(out_b.join("report.json")).unwrap(), "the two coordinators wrote different reports");
    assert_eq!(report_a, undisturbed_report(&c, &spec), "the report differs from an undisturbed run's");
}
